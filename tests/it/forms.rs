//! Form bodies (`application/x-www-form-urlencoded`) on a route with rules: the key a
//! rule names reaches the backend as ciphertext (or masked), every other pair byte for
//! byte as sent; broken escapes and our own ciphertext are refused.

use http::{Method, StatusCode};
use tarnkappe::crypto::{Mode, ValueType};

use crate::support::Stack;

const ECHO_ROUTE: &str = r#"
[[route]]
name = "signup-form"
methods = ["POST"]
path = "/api/echo"

  [[route.field]]
  path = "$.email"
  label = "form.email"
  category = "email"
  action = "encrypt"

  [[route.field]]
  path = "$.card"
  label = "form.card"
  category = "card"
  action = "mask"
  keep_last = 4
"#;

const FORM: &str = "application/x-www-form-urlencoded";

async fn post_form(stack: &Stack, body: &str) -> crate::support::Reply {
    stack
        .send(
            Method::POST,
            "/api/echo",
            &[("content-type", FORM)],
            body.to_owned(),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_form_key_reaches_the_backend_sealed_and_other_pairs_untouched() {
    let stack = Stack::builder().routes(ECHO_ROUTE).start().await;
    let body = "plan=gold%2Bplus&email=jane%40example.com&note=caf%C3%A9+au+lait%21&card=4111111111111111&flag&empty=";
    // /api/echo answers with the body it received: what the backend saw.
    let reply = post_form(&stack, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // A form answer is not JSON, so it is not opened: it shows what the backend got.
    assert_eq!(reply.header("content-type"), FORM);
    let seen = reply.text();
    assert!(!seen.contains("jane"), "{seen}");
    let pairs: Vec<&str> = seen.split('&').collect();
    assert_eq!(pairs.len(), 6, "{seen}");
    assert_eq!(pairs[0], "plan=gold%2Bplus");
    assert_eq!(pairs[2], "note=caf%C3%A9+au+lait%21");
    assert_eq!(pairs[3], "card=%2A%2A%2A%2A%2A%2A%2A%2A%2A%2A%2A%2A1111");
    assert_eq!(pairs[4], "flag");
    assert_eq!(pairs[5], "empty=");
    let token = pairs[1].strip_prefix("email=").expect("email pair");
    assert!(token.starts_with("tk1.1.rs."), "{token}");
    let (value_type, plaintext) = stack.keyring().open("form.email", token).expect("opens");
    assert_eq!(value_type, ValueType::String);
    assert_eq!(&plaintext[..], b"jane@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_or_sealed_form_values_are_refused_before_the_backend() {
    let stack = Stack::builder().routes(ECHO_ROUTE).start().await;
    let token = stack
        .keyring()
        .seal(Mode::Random, "form.email", ValueType::String, b"x@y.z")
        .expect("seal");
    let before = stack.backend.requests();
    let cases = [
        ("email=jane%zz", StatusCode::BAD_REQUEST, "malformed_form"),
        ("email=jane%ff", StatusCode::BAD_REQUEST, "malformed_form"),
        (
            &format!("email=jane%40x.y&ref={token}") as &str,
            StatusCode::UNPROCESSABLE_ENTITY,
            "ciphertext_in_request",
        ),
    ];
    for (body, status, reason) in cases {
        let reply = post_form(&stack, body).await;
        reply.assert_problem(status, reason);
        assert!(!reply.text().contains("jane"), "{body}: echoed");
        assert_eq!(
            stack.backend.requests(),
            before,
            "{body} reached the backend"
        );
    }
    assert_eq!(
        post_form(&stack, "email=ok%40x.y").await.status,
        StatusCode::OK
    );
}

/// The form key is compared after decoding, as the backend will decode it: an escaped
/// spelling of a named key is sealed too, and so is every repetition of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_and_repeated_form_keys_are_sealed() {
    let stack = Stack::builder().routes(ECHO_ROUTE).start().await;
    let reply = post_form(
        &stack,
        "em%61il=first%40example.com&email=second%40example.com",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = reply.text();
    assert!(!seen.contains("example.com"), "{seen}");
    let pairs: Vec<&str> = seen.split('&').collect();
    assert_eq!(pairs.len(), 2, "{seen}");
    let keyring = stack.keyring();
    for (pair, (key, want)) in pairs.iter().zip([
        ("em%61il=", "first@example.com"),
        ("email=", "second@example.com"),
    ]) {
        let token = pair.strip_prefix(key).expect("key kept as sent");
        let (_, plaintext) = keyring.open("form.email", token).expect("opens");
        assert_eq!(&plaintext[..], want.as_bytes());
    }
}
