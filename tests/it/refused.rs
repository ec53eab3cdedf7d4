//! Fail closed: every request body a rule route cannot read strictly is refused with a
//! 4xx problem+json answer, the backend sees nothing, the answer never echoes the input,
//! and the proxy keeps serving.

use http::{Method, StatusCode};
use tarnkappe::crypto::{Keyring, Mode, ValueType, MARKER};

use crate::support::raw::chunked;
use crate::support::{contains, Stack};

/// In every refused body; must never come back in an answer.
const SECRET: &str = "jane.secret@example.com";

/// A refused request sent with the HTTP/1.1 client.
struct Case {
    what: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    status: StatusCode,
    reason: &'static str,
}

fn json(what: &'static str, body: impl Into<Vec<u8>>, status: u16, reason: &'static str) -> Case {
    Case {
        what,
        headers: vec![("content-type", "application/json")],
        body: body.into(),
        status: StatusCode::from_u16(status).expect("status"),
        reason,
    }
}

fn typed(
    what: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: &str,
    status: u16,
    reason: &'static str,
) -> Case {
    Case {
        what,
        headers,
        body: body.as_bytes().to_vec(),
        status: StatusCode::from_u16(status).expect("status"),
        reason,
    }
}

fn cases(token: &str, foreign: &str) -> Vec<Case> {
    let deep = format!(
        r#"{{"email":"{SECRET}","x":{}{}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    let escaped_token = token.replacen("tk1.", "\\u0074k1.", 1);
    let many = format!(r#"{{"email":"{SECRET}","n":[{}0]}}"#, "0,".repeat(2000));
    vec![
        json(
            "malformed JSON",
            format!(r#"{{"email":"{SECRET}","#),
            400,
            "malformed_json",
        ),
        json(
            "duplicate member names",
            format!(r#"{{"email":"{SECRET}","email":"other@example.com"}}"#),
            400,
            "duplicate_member",
        ),
        json(
            "duplicate member names, one escaped",
            format!(r#"{{"em\u0061il":"{SECRET}","email":"other@example.com"}}"#),
            400,
            "duplicate_member",
        ),
        json(
            "duplicate member names where no rule looks",
            format!(r#"{{"email":"{SECRET}","plan":1,"plan":2}}"#),
            400,
            "duplicate_member",
        ),
        json(
            "form body claiming to be JSON",
            format!("email={SECRET}&plan=gold"),
            400,
            "malformed_json",
        ),
        json(
            "invalid UTF-8",
            [
                br#"{"name":"J"#.as_slice(),
                b"\xff",
                SECRET.as_bytes(),
                b"\"}",
            ]
            .concat(),
            400,
            "invalid_utf8",
        ),
        json(
            "byte order mark",
            [
                b"\xEF\xBB\xBF".as_slice(),
                format!(r#"{{"email":"{SECRET}"}}"#).as_bytes(),
            ]
            .concat(),
            400,
            "bom",
        ),
        json(
            "lone surrogate",
            format!(r#"{{"name":"\ud800 {SECRET}"}}"#),
            400,
            "lone_surrogate",
        ),
        json("nesting deeper than the limit", deep, 400, "too_deep"),
        json("more values than the limit", many, 413, "too_many_nodes"),
        json(
            "trailing data",
            format!(r#"{{"email":"{SECRET}"}} {{"plan":1}}"#),
            400,
            "trailing_data",
        ),
        json(
            "our ciphertext in a member no rule names",
            format!(r#"{{"email":"{SECRET}","notes":[{{"ref":"{token}"}}]}}"#),
            422,
            "ciphertext_in_request",
        ),
        json(
            "our ciphertext in a sealed member",
            format!(r#"{{"email":"{token}"}}"#),
            422,
            "ciphertext_in_request",
        ),
        json(
            "our ciphertext spelled with an escape",
            format!(r#"{{"email":"{SECRET}","plan":"{escaped_token}"}}"#),
            422,
            "ciphertext_in_request",
        ),
        json(
            "a ciphertext of another keyring (same shape)",
            format!(r#"{{"email":"{SECRET}","plan":"{foreign}"}}"#),
            422,
            "ciphertext_in_request",
        ),
        json(
            "the marker",
            format!(r#"{{"email":"{SECRET}","name":"{MARKER}"}}"#),
            422,
            "ciphertext_in_request",
        ),
        typed(
            "gzip content encoding",
            vec![
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            &format!(r#"{{"email":"{SECRET}"}}"#),
            415,
            "unsupported_content_encoding",
        ),
        typed(
            "text/plain on a rule route",
            vec![("content-type", "text/plain")],
            &format!(r#"{{"email":"{SECRET}"}}"#),
            415,
            "unsupported_media_type",
        ),
        typed(
            "no content type on a rule route",
            vec![],
            &format!(r#"{{"email":"{SECRET}"}}"#),
            415,
            "unsupported_media_type",
        ),
        typed(
            "JSON in a charset we do not read",
            vec![("content-type", "application/json; charset=latin1")],
            &format!(r#"{{"email":"{SECRET}"}}"#),
            415,
            "unsupported_media_type",
        ),
    ]
}

fn assert_no_echo(what: &str, body: &[u8]) {
    assert!(
        !contains(body, SECRET),
        "{what}: the answer echoes the input"
    );
    assert!(
        !contains(body, "jane"),
        "{what}: the answer echoes the input"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_refused_before_the_backend() {
    let stack = Stack::builder()
        .max_body("64KiB")
        .limit("max_nodes = 1000")
        .start()
        .await;
    let token = stack
        .keyring()
        .seal(Mode::Random, "customer.email", ValueType::String, b"x@y.z")
        .expect("seal");
    let foreign = Keyring::generate()
        .expect("keys")
        .seal(Mode::Random, "customer.email", ValueType::String, b"x@y.z")
        .expect("seal");
    let before = stack.backend.requests();
    for case in cases(&token, &foreign) {
        let reply = stack
            .send(Method::POST, "/api/customers", &case.headers, case.body)
            .await;
        reply.assert_problem(case.status, case.reason);
        assert_eq!(reply.header("cache-control"), "no-store", "{}", case.what);
        assert_no_echo(case.what, &reply.body);
        assert_eq!(
            stack.backend.requests(),
            before,
            "{} reached the backend",
            case.what
        );
    }
    let ok = stack
        .post_json("/api/customers", r#"{"email":"fine@example.com"}"#)
        .await;
    assert_eq!(
        ok.status,
        StatusCode::CREATED,
        "still serving: {}",
        ok.text()
    );
    assert_eq!(stack.backend.requests(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_max_body_are_refused_whether_declared_or_chunked() {
    let stack = Stack::builder().max_body("64KiB").start().await;
    let big = format!(
        r#"{{"email":"{SECRET}","pad":"{}"}}"#,
        "x".repeat(200 * 1024)
    );
    let before = stack.backend.requests();

    let head = format!(
        "POST /api/customers HTTP/1.1\r\nHost: shop.example\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        big.len()
    );
    let declared = stack.raw_streaming(head, big.clone().into_bytes()).await;
    declared.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    assert_no_echo("declared length", &declared.body);
    assert_eq!(stack.backend.requests(), before);

    let head =
        "POST /api/customers HTTP/1.1\r\nHost: shop.example\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let streamed = stack
        .raw_streaming(head, chunked(big.as_bytes(), 16 * 1024))
        .await;
    streamed.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    assert_no_echo("chunked", &streamed.body);
    assert_eq!(stack.backend.requests(), before);

    // Just under the limit, chunked, goes through.
    let small = format!(
        r#"{{"email":"{SECRET}","pad":"{}"}}"#,
        "x".repeat(32 * 1024)
    );
    let ok = stack
        .raw_streaming(head, chunked(small.as_bytes(), 4096))
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text());
    assert_eq!(stack.backend.requests(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_path_encoding_is_refused_before_the_backend() {
    let stack = Stack::start().await;
    let before = stack.backend.requests();
    for path in [
        "/api/customers%2F1",
        "/api/customers%2f1",
        "/api/%5Ccustomers",
        "/api/customers%00",
    ] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: shop.example\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        let reply = stack.raw(request).await;
        reply.assert_problem(StatusCode::BAD_REQUEST, "path_ambiguous_escape");
        assert_eq!(
            stack.backend.requests(),
            before,
            "{path} reached the backend"
        );
    }
    let ok = stack.get("/api/customers").await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_slower_than_the_body_timeout_is_refused_before_the_backend() {
    let stack = Stack::builder()
        .limit("body_timeout = \"300ms\"")
        .start()
        .await;
    let before = stack.backend.requests();
    // Declares 100 bytes, sends 30, then stalls with the connection open.
    let head = format!(
        "POST /api/customers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"email\":\"{SECRET}\""
    );
    let reply = stack.raw(head).await;
    reply.assert_problem(StatusCode::REQUEST_TIMEOUT, "body_timeout");
    assert_no_echo("stalled body", &reply.body);
    assert_eq!(stack.backend.requests(), before);
    let ok = stack.get("/api/customers").await;
    assert_eq!(ok.status, StatusCode::OK, "still serving");
}
