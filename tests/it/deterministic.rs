//! Deterministic sealing: `encrypt-deterministic` gives equal ciphertext for equal values
//! (so the backend can still look a customer up by email), `encrypt` never does, and
//! `hash` gives equal pseudonyms for equal values.

use crate::support::{member_token, Stack};

const A: &str = r#"{"email":"same@example.com","name":"Same Name"}"#;
const B: &str = r#"{"email":"same@example.com","name":"Same Name","plan":"other"}"#;
const C: &str = r#"{"email":"other@example.com","name":"Same Name"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deterministic_encryption_gives_equal_ciphertext_and_random_does_not() {
    let stack = Stack::start().await;
    let a = stack.stored("customers", stack.create("customers", A).await);
    let b = stack.stored("customers", stack.create("customers", B).await);
    let c = stack.stored("customers", stack.create("customers", C).await);
    let (ea, eb, ec) = (
        member_token(&a, "/email"),
        member_token(&b, "/email"),
        member_token(&c, "/email"),
    );
    assert!(ea.starts_with("tk1.1.ds."));
    assert_eq!(ea, eb, "equal emails, equal ciphertext");
    assert_ne!(ea, ec, "different emails, different ciphertext");
    let (na, nb) = (member_token(&a, "/name"), member_token(&b, "/name"));
    assert!(na.starts_with("tk1.1.rs."));
    assert_ne!(na, nb, "random mode: equal names, different ciphertext");

    // The backend can look the customer up by the ciphertext in its email column.
    let hits: i64 = stack
        .db()
        .query_row(
            "SELECT COUNT(*) FROM customers WHERE email = ?1",
            [&ea],
            |r| r.get(0),
        )
        .expect("lookup");
    assert_eq!(hits, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_gives_equal_pseudonyms_for_equal_values_anywhere_in_the_document() {
    let stack = Stack::start().await;
    let doc = r#"{"email":"sub@example.com","contacts":[{"email":"sub@example.com"},{"email":"x@example.com"}]}"#;
    let id = stack.create("subscriptions", doc).await;
    let stored = stack.stored("subscriptions", id);
    assert!(!stored.contains("example.com"));
    let top = member_token(&stored, "/email");
    assert!(top.starts_with("tkp1."));
    assert_eq!(member_token(&stored, "/contacts/0/email"), top);
    assert_ne!(member_token(&stored, "/contacts/1/email"), top);
    // Pseudonyms are not ours to open: they come back as they are stored.
    let back = stack.get(&format!("/api/subscriptions/{id}")).await;
    assert_eq!(back.text(), stored);
}
