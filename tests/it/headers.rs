//! Headers and request targets on the way to the backend: forwarding headers added, a
//! request id kept (sanitized) or generated and returned, hop-by-hop headers removed, and
//! the path the route matched is exactly the path the backend receives.

use http::StatusCode;

use crate::support::Stack;

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn is_generated_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_set_and_hop_by_hop_headers_removed() {
    let stack = Stack::start().await;
    let reply = stack
        .raw(
            "GET /api/headers HTTP/1.1\r\nHost: shop.example:8443\r\n\
             Connection: close, X-Secret-Hop\r\nX-Secret-Hop: hop-value\r\n\
             Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic c2VjcmV0\r\n\
             Proxy-Connection: keep-alive\r\nX-Forwarded-For: 203.0.113.9\r\n\
             X-Kept: still-here\r\nX-Request-Id: client-id.42_x\r\n\r\n",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = stack.backend.last_headers();
    assert_eq!(
        header(&seen, "x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(header(&seen, "x-forwarded-proto"), Some("http"));
    assert_eq!(header(&seen, "x-forwarded-host"), Some("shop.example:8443"));
    assert_eq!(
        header(&seen, "host"),
        Some(stack.backend.addr.to_string().as_str()),
        "the backend is addressed by its own name"
    );
    assert_eq!(header(&seen, "x-kept"), Some("still-here"));
    for hop in [
        "x-secret-hop",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert_eq!(header(&seen, hop), None, "{hop} reached the backend");
    }
    assert!(
        header(&seen, "connection")
            .is_none_or(|v| !v.to_ascii_lowercase().contains("x-secret-hop")),
        "the client's Connection header reached the backend"
    );
    assert_eq!(header(&seen, "x-request-id"), Some("client-id.42_x"));
    assert_eq!(reply.header("x-request-id"), "client-id.42_x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_generated_when_missing_or_unusable() {
    let stack = Stack::start().await;
    let none = stack.get("/api/headers").await;
    let generated = none.header("x-request-id").to_owned();
    assert!(is_generated_id(&generated), "{generated:?}");
    assert_eq!(
        header(&stack.backend.last_headers(), "x-request-id"),
        Some(generated.as_str())
    );

    let long = "a".repeat(65);
    for bad in ["has space", "semi;colon", "<script>", long.as_str()] {
        let reply = stack
            .raw(format!(
                "GET /api/headers HTTP/1.1\r\nHost: x\r\nX-Request-Id: {bad}\r\nConnection: close\r\n\r\n"
            ))
            .await;
        let id = reply.header("x-request-id").to_owned();
        assert!(is_generated_id(&id), "{bad:?} was replaced, got {id:?}");
        assert_eq!(
            header(&stack.backend.last_headers(), "x-request-id"),
            Some(id.as_str()),
            "the backend sees the replacement, never {bad:?}"
        );
    }
    // Each generated id is fresh.
    let again = stack.get("/api/headers").await;
    assert_ne!(again.header("x-request-id"), generated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normalised_path_is_the_path_the_backend_receives() {
    let stack = Stack::start().await;
    let id = stack
        .create("customers", r#"{"email":"path@example.com"}"#)
        .await;
    let cases = [
        (
            "//api/./customers/../customers".to_owned(),
            "/api/customers".to_owned(),
        ),
        (
            format!("/api//customers/./{id}"),
            format!("/api/customers/{id}"),
        ),
        (
            format!("/api/%63ustomers/{id}?x=1"),
            format!("/api/customers/{id}?x=1"),
        ),
        (
            format!("/api/x/%2e%2e/customers/{id}"),
            format!("/api/customers/{id}"),
        ),
    ];
    for (sent, received) in cases {
        let reply = stack
            .raw(format!(
                "GET {sent} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            ))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{sent}: {}", reply.text());
        assert_eq!(
            stack.backend.last_target().as_deref(),
            Some(received.as_str()),
            "{sent}"
        );
        // Matched the rule route: the answer is opened.
        assert!(
            reply.text().contains("path@example.com"),
            "{sent}: {}",
            reply.text()
        );
    }
}

/// Several `X-Forwarded-For` lines are one list (RFC 9110 §5.3): every hop must survive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_keeps_every_earlier_hop_across_header_lines() {
    let stack = Stack::start().await;
    let reply = stack
        .raw(
            "GET /api/headers HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\n\
             X-Forwarded-For: 198.51.100.7\r\nConnection: close\r\n\r\n",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen = stack.backend.last_headers();
    let xff: Vec<&str> = seen
        .iter()
        .filter(|(k, _)| k == "x-forwarded-for")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(xff.join(", "), "203.0.113.9, 198.51.100.7, 127.0.0.1");
}
