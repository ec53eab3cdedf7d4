//! At rest: what the shop's database holds after customers went through the proxy, and
//! what the frontend reads back. The database file must hold no sensitive plaintext; the
//! frontend must get back exactly the bytes it sent, every JSON type included.

use http::{Method, StatusCode};

use crate::support::{contains, member_token, tokens, Stack};

/// A customer with every kind of sensitive member, canonical string escapes in the sealed
/// members (so the round trip can be byte-exact), and unsealed members whose spelling a
/// re-serialising proxy would change (big number, `1e2`, escapes, odd spacing).
pub const JANE: &str = concat!(
    r#"{"email":"jane.doe@example.com", "name":"Jane Doe-Müller 😀","#,
    r#""address":{"street":"Hauptstraße 5","city":"Köln","zip":"50667"},"#,
    r#""phone":"+49 221 5550123","payment":{"card_number":"4111111111111111","brand":"visa"},"#,
    r#""customer_number":98765432109876543210987,"#,
    r#""kinds":{"s":"secret string","n":1e2,"t":true,"f":false,"z":null,"#,
    r#""o":{"k":[1,2.50,{"deep":"hidden-object"}]},"a":["hidden-array",-0,1E-7]},"#,
    "\n  \"big\" : 12345678901234567890123,\"ratio\":1e2,",
    r#""note":"caf\u00e9 \ud83d\ude00 ünïcødé","plan":"gold-plan"}"#
);

/// Everything in [`JANE`] that must never reach the database in plaintext.
pub const JANE_SECRETS: &[&str] = &[
    "jane.doe@example.com",
    "jane.doe",
    "Jane Doe",
    "Müller",
    "Hauptstraße",
    "Köln",
    "50667",
    "+49 221 5550123",
    "5550123",
    "4111111111111111",
    "98765432109876543210987",
    "secret string",
    "hidden-object",
    "hidden-array",
];

const JOHN: &str = r#"{"email":"john@example.org","name":"John Roe","address":"1 Main St","phone":"555-0199","kinds":{"n":-12.5e-3},"plan":"basic"}"#;

const JOHN_SECRETS: &[&str] = &["john@example.org", "John Roe", "1 Main St", "555-0199"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_file_holds_no_sensitive_plaintext() {
    let stack = Stack::start().await;
    let jane = stack.create("customers", JANE).await;
    let john = stack.create("customers", JOHN).await;
    let bytes = stack.db_file_bytes();
    for secret in JANE_SECRETS.iter().chain(JOHN_SECRETS) {
        assert!(
            !contains(&bytes, secret),
            "{secret:?} is in the database file"
        );
    }
    // The scan would see plaintext if there were any: unsealed members are there as sent.
    assert!(contains(&bytes, "gold-plan"));
    assert!(contains(&bytes, "12345678901234567890123"));
    // And through SQLite itself, every row and column.
    let db = stack.db();
    let mut stmt = db
        .prepare("SELECT id, doc, COALESCE(email, '') FROM customers ORDER BY id")
        .expect("query");
    let rows: Vec<(i64, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![jane, john]
    );
    for (_, doc, email) in &rows {
        for secret in JANE_SECRETS.iter().chain(JOHN_SECRETS) {
            assert!(!doc.contains(secret), "{secret:?} is in a stored doc");
        }
        assert!(
            email.starts_with("tk1."),
            "the lookup column holds ciphertext"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_document_holds_tokens_where_rules_select_and_original_bytes_elsewhere() {
    let stack = Stack::start().await;
    let id = stack.create("customers", JANE).await;
    let doc = stack.stored("customers", id);
    // Mode and original type are in the header: `tk1.<kid>.<mode><type>.`
    let expect = [
        ("/email", "tk1.1.ds."),
        ("/name", "tk1.1.rs."),
        ("/address", "tk1.1.ro."),
        ("/phone", "tk1.1.rs."),
        ("/payment/card_number", "tk1.1.rs."),
        ("/customer_number", "tk1.1.rn."),
        ("/kinds/s", "tk1.1.rs."),
        ("/kinds/n", "tk1.1.rn."),
        ("/kinds/t", "tk1.1.rb."),
        ("/kinds/f", "tk1.1.rb."),
        ("/kinds/z", "tk1.1.rz."),
        ("/kinds/o", "tk1.1.ro."),
        ("/kinds/a", "tk1.1.ra."),
    ];
    for (pointer, prefix) in expect {
        let token = member_token(&doc, pointer);
        assert!(token.starts_with(prefix), "{pointer}: {prefix}...");
    }
    assert_eq!(tokens(&doc).len(), expect.len());
    // What no rule selects kept its exact spelling: spacing, number text, escapes.
    assert!(doc.starts_with(r#"{"email":"tk1."#));
    assert!(doc.contains(r#"", "name":"tk1."#));
    assert!(doc.contains(r#"","brand":"visa"}"#));
    assert!(doc.ends_with(concat!(
        "},\n  \"big\" : 12345678901234567890123,\"ratio\":1e2,",
        r#""note":"caf\u00e9 \ud83d\ude00 ünïcødé","plan":"gold-plan"}"#
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_back_returns_the_exact_bytes_sent() {
    let stack = Stack::start().await;
    let id = stack.create("customers", JANE).await;
    let reply = stack.get(&format!("/api/customers/{id}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), JANE, "byte-exact round trip");
    assert_eq!(reply.header("content-length"), JANE.len().to_string());
    assert_eq!(reply.header("cache-control"), "no-store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_of_every_json_type_round_trip_with_their_type() {
    let stack = Stack::start().await;
    let id = stack.create("customers", JANE).await;
    let v = stack.get(&format!("/api/customers/{id}")).await.json();
    let kinds = &v["kinds"];
    assert!(kinds["s"].is_string());
    assert!(kinds["n"].is_number());
    assert_eq!(kinds["t"], serde_json::Value::Bool(true));
    assert_eq!(kinds["f"], serde_json::Value::Bool(false));
    assert!(kinds["z"].is_null());
    assert!(kinds["o"].is_object());
    assert!(kinds["a"].is_array());
    assert!(v["customer_number"].is_number());
    assert!(v["address"].is_object());
    let original: serde_json::Value = serde_json::from_str(JANE).expect("JANE is JSON");
    assert_eq!(v, original);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_endpoint_opens_every_token_of_every_document() {
    let stack = Stack::start().await;
    stack.create("customers", JANE).await;
    stack.create("customers", JOHN).await;
    let reply = stack.get("/api/customers").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), format!("[{JANE},{JOHN}]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_replaces_with_ciphertext_and_reads_back_exactly() {
    let stack = Stack::start().await;
    let id = stack.create("customers", JOHN).await;
    let path = format!("/api/customers/{id}");
    let reply = stack
        .send(
            Method::PUT,
            &path,
            &[("content-type", "application/json")],
            JANE,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let doc = stack.stored("customers", id);
    for secret in JANE_SECRETS {
        assert!(!doc.contains(secret), "{secret:?} stored by PUT");
    }
    assert_eq!(stack.get(&path).await.text(), JANE);
}

/// A sealed string is stored as its decoded content, so on the way back it is written in
/// canonical JSON escaping: the value is the same, the spelling of the escapes may not be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_strings_in_sealed_members_round_trip_by_value() {
    let stack = Stack::start().await;
    let sent =
        r#"{"email":"j\u0061ne@example.com","name":"\u00c9mile \"Q\" \/ Zo\u00eb\n","plan":"x"}"#;
    let id = stack.create("customers", sent).await;
    let doc = stack.stored("customers", id);
    assert!(!doc.contains("ane@example.com") && !doc.contains("mile"));
    let back = stack.get(&format!("/api/customers/{id}")).await.json();
    let original: serde_json::Value = serde_json::from_str(sent).expect("JSON");
    assert_eq!(back, original);
    assert_eq!(back["email"], "jane@example.com");
}
