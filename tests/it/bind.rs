//! Record binding (`bind = "id"`): a ciphertext is bound to its label and to the value of
//! a sibling member (the record key), so swapping ciphertexts between two records of the
//! same field gives the marker, not the other customer's data.

use http::StatusCode;
use tarnkappe::crypto::MARKER;

use crate::support::Stack;

const ROUTES: &str = r#"
[[route]]
name = "customers"
path = "/api/customers/{*rest}"
  [[route.field]]
  path = "$.email"
  label = "customer.email"
  category = "email"
  action = "encrypt"
  bind = "id"
"#;

fn token(doc: &str) -> String {
    doc.split('"')
        .find(|s| s.starts_with("tk1."))
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn ciphertexts_swapped_between_records_open_to_the_marker() {
    let stack = Stack::builder().routes(ROUTES).start().await;
    let a = r#"{"id":"cus_a","email":"alice@example.com"}"#;
    let b = r#"{"id":"cus_b","email":"bob@example.com"}"#;
    assert_eq!(
        stack.post_json("/api/customers", a).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        stack.post_json("/api/customers", b).await.status,
        StatusCode::CREATED
    );
    assert_eq!(stack.get("/api/customers/1").await.text(), a);
    assert_eq!(
        stack.get("/api/customers").await.text(),
        format!("[{a},{b}]")
    );

    let (doc_a, doc_b) = (stack.stored("customers", 1), stack.stored("customers", 2));
    let (tok_a, tok_b) = (token(&doc_a), token(&doc_b));
    let db = stack.db_rw();
    db.execute(
        "update customers set doc = ?1 where id = 1",
        [doc_a.replace(&tok_a, &tok_b)],
    )
    .unwrap();
    db.execute(
        "update customers set doc = ?1 where id = 2",
        [doc_b.replace(&tok_b, &tok_a)],
    )
    .unwrap();

    let swapped = stack.get("/api/customers/1").await.text().to_owned();
    assert_eq!(swapped, format!(r#"{{"id":"cus_a","email":"{MARKER}"}}"#));
    assert!(!stack
        .get("/api/customers")
        .await
        .text()
        .contains("example.com"));
}

#[tokio::test]
async fn a_bound_field_without_its_record_key_is_refused() {
    let stack = Stack::builder().routes(ROUTES).start().await;
    let before = stack.backend.requests();
    let reply = stack
        .post_json("/api/customers", r#"{"email":"nokey@example.com"}"#)
        .await;
    reply.assert_problem(StatusCode::BAD_REQUEST, "missing_record_key");
    assert!(!reply.text().contains("nokey"));
    assert_eq!(
        stack.backend.requests(),
        before,
        "the backend saw the request"
    );
}
