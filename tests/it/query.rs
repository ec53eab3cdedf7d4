//! Query-parameter rules: `[[route.query]]` seals a parameter before the upstream, so a
//! look-up by email works against a backend that stores deterministic ciphertext, and the
//! plaintext never appears in the upstream's request line (or its access log).

use http::{Method, StatusCode};

use crate::support::Stack;

const ROUTES: &str = r#"
[[route]]
name = "customers"
path = "/api/customers/{*rest}"
  [[route.query]]
  path = "$.email"
  label = "customer.email"
  category = "email"
  action = "encrypt-deterministic"
  [[route.field]]
  path = "$.email"
  label = "customer.email"
  category = "email"
  action = "encrypt-deterministic"
"#;

#[tokio::test]
async fn lookup_by_email_goes_upstream_as_ciphertext_and_finds_the_row() {
    let stack = Stack::builder().routes(ROUTES).start().await;
    for email in ["jane@example.com", "joe@example.com"] {
        let reply = stack
            .post_json(
                "/api/customers",
                &format!(r#"{{"email":"{email}","plan":"gold"}}"#),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let found = stack
        .get("/api/customers?email=jane%40example.com&sort=id")
        .await;
    assert_eq!(found.status, StatusCode::OK);
    assert_eq!(
        found.text(),
        r#"[{"email":"jane@example.com","plan":"gold"}]"#
    );
    let target = stack.backend.last_target().unwrap();
    assert!(
        !target.contains("jane"),
        "plaintext in the upstream request line: {target}"
    );
    assert!(
        target.contains("email=tk1.") && target.ends_with("&sort=id"),
        "{target}"
    );
}

#[tokio::test]
async fn our_ciphertext_in_a_query_is_refused() {
    let stack = Stack::builder().routes(ROUTES).start().await;
    stack
        .post_json("/api/customers", r#"{"email":"a@b.de"}"#)
        .await;
    let stored = stack.stored("customers", 1);
    let token = stored
        .split('"')
        .find(|s| s.starts_with("tk1."))
        .unwrap()
        .to_owned();
    let before = stack.backend.requests();
    let reply = stack
        .send(
            Method::GET,
            &format!("/api/customers?email={token}"),
            &[],
            "",
        )
        .await;
    reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "ciphertext_in_request");
    assert_eq!(
        stack.backend.requests(),
        before,
        "the backend saw the request"
    );
}
