//! Access only where needed: a route with `reveal_to` opens ciphertext only for the
//! callers it names (a token in `X-Tarnkappe-Caller`, configured by its SHA-256); every
//! other caller gets the marker or the stored ciphertext, never plaintext. The token never
//! reaches the backend, and the flow event names the caller.

use http::{Method, StatusCode};
use sha2::{Digest, Sha256};
use tarnkappe::crypto::MARKER;

use crate::support::Stack;

const STOREFRONT: &str = "storefront-token-7f3a";
const SUPPORT: &str = "support-token-19c2";

fn hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn routes() -> String {
    format!(
        r#"
[[caller]]
name = "storefront"
token_sha256 = "{}"

[[caller]]
name = "support"
token_sha256 = "{}"

[[route]]
name = "customers"
path = "/api/customers/{{*rest}}"
reveal_to = ["storefront"]
  [[route.field]]
  path = "$.email"
  label = "customer.email"
  category = "email"
  action = "encrypt"

[[route]]
name = "subscriptions"
path = "/api/subscriptions/{{*rest}}"
reveal_to = ["storefront"]
conceal = "ciphertext"
  [[route.field]]
  path = "$.iban"
  label = "subscription.iban"
  category = "bank"
  action = "encrypt"
"#,
        hex(STOREFRONT),
        hex(SUPPORT)
    )
}

#[tokio::test]
async fn only_named_callers_see_plaintext() {
    let mut stack = Stack::builder().routes(&routes()).flow_log().start().await;
    let created = stack
        .send(
            Method::POST,
            "/api/customers",
            &[
                ("content-type", "application/json"),
                ("x-tarnkappe-caller", STOREFRONT),
            ],
            r#"{"email":"reveal-me@example.com"}"#,
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert!(
        !stack
            .backend
            .last_headers()
            .iter()
            .any(|(k, _)| k == "x-tarnkappe-caller"),
        "the caller token reached the backend"
    );

    let as_storefront = stack
        .send(
            Method::GET,
            "/api/customers/1",
            &[("x-tarnkappe-caller", STOREFRONT)],
            "",
        )
        .await;
    assert_eq!(as_storefront.text(), r#"{"email":"reveal-me@example.com"}"#);

    for headers in [
        vec![("x-tarnkappe-caller", SUPPORT)],
        vec![("x-tarnkappe-caller", "forged")],
        vec![],
    ] {
        let reply = stack
            .send(Method::GET, "/api/customers/1", &headers, "")
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.text(),
            format!(r#"{{"email":"{MARKER}"}}"#),
            "{headers:?}"
        );
        assert_eq!(reply.header("cache-control"), "no-store");
    }

    stack.stop_proxy().await;
    let log = std::fs::read_to_string(&stack.flow_log_path).unwrap();
    assert!(log.contains(r#""caller":"storefront""#), "caller recorded");
    assert!(
        !log.contains(STOREFRONT) && !log.contains(SUPPORT),
        "token in the flow log"
    );
}

#[tokio::test]
async fn conceal_ciphertext_returns_what_the_backend_stores() {
    let stack = Stack::builder().routes(&routes()).start().await;
    let body = r#"{"iban":"DE89370400440532013000"}"#;
    let headers = [
        ("content-type", "application/json"),
        ("x-tarnkappe-caller", STOREFRONT),
    ];
    let created = stack
        .send(Method::POST, "/api/subscriptions", &headers, body)
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let stored = stack.stored("subscriptions", 1);
    let anonymous = stack.get("/api/subscriptions/1").await;
    assert_eq!(anonymous.text(), stored, "the stored ciphertext, unopened");
    assert!(!anonymous.text().contains("DE89"));
    let allowed = stack
        .send(
            Method::GET,
            "/api/subscriptions/1",
            &[("x-tarnkappe-caller", STOREFRONT)],
            "",
        )
        .await;
    assert_eq!(allowed.text(), body);
}

#[test]
fn unknown_callers_and_bad_hashes_are_config_errors() {
    let text = "[listen]\naddress = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://127.0.0.1:1\"\n\
         [[caller]]\nname = \"a\"\ntoken_sha256 = \"abc\"\n\
         [[route]]\nname = \"r\"\npath = \"/x\"\nreveal_to = [\"nobody\"]\nconceal = \"hide\"\n";
    let errors = tarnkappe::config::compile(
        text,
        "c.toml",
        std::path::Path::new("."),
        std::path::Path::new("c.toml"),
    )
    .unwrap_err();
    let all = errors.to_string();
    assert_eq!(errors.0.len(), 3, "{all}");
    assert!(
        all.contains("caller[0].token_sha256: must be 64 hex digits"),
        "{all}"
    );
    assert!(
        all.contains("route[0].reveal_to[0]: no [[caller]] named `nobody`"),
        "{all}"
    );
    assert!(all.contains("route[0].conceal: must be"), "{all}");
}
