//! HTTP/2 (h2c with prior knowledge) on the public listener: the same at-rest round trip
//! as over HTTP/1.1, and the same forwarding to the HTTP/1.1 upstream.

use http::{Method, StatusCode, Version};

use crate::at_rest::{JANE, JANE_SECRETS};
use crate::support::{contains, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_rest_round_trip_over_http2() {
    let stack = Stack::start().await;
    let created = stack
        .send_h2(
            Method::POST,
            "/api/customers",
            &[("content-type", "application/json")],
            JANE,
        )
        .await;
    assert_eq!(created.version, Version::HTTP_2);
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let id = created.json()["id"].as_i64().expect("id");

    let bytes = stack.db_file_bytes();
    for secret in JANE_SECRETS {
        assert!(
            !contains(&bytes, secret),
            "{secret:?} is in the database file"
        );
    }

    let back = stack
        .send_h2(Method::GET, &format!("/api/customers/{id}"), &[], "")
        .await;
    assert_eq!(back.version, Version::HTTP_2);
    assert_eq!(back.status, StatusCode::OK);
    assert_eq!(back.text(), JANE, "byte-exact over HTTP/2");
    assert_eq!(back.header("content-length"), JANE.len().to_string());

    let list = stack.send_h2(Method::GET, "/api/customers", &[], "").await;
    assert_eq!(list.text(), format!("[{JANE}]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_reach_the_backend_as_http1_with_forwarding_headers() {
    let stack = Stack::start().await;
    let reply = stack
        .send_h2(
            Method::GET,
            "/api/headers",
            &[("x-request-id", "h2-req")],
            "",
        )
        .await;
    assert_eq!(reply.version, Version::HTTP_2);
    let seen = reply.json();
    assert_eq!(seen["_version"], "HTTP/1.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-request-id"], "h2-req");
    assert_eq!(reply.header("x-request-id"), "h2-req");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_body_over_http2_is_refused_before_the_backend() {
    let stack = Stack::start().await;
    let before = stack.backend.requests();
    let reply = stack
        .send_h2(
            Method::POST,
            "/api/customers",
            &[("content-type", "application/json")],
            r#"{"email":"a@example.com","email":"b@example.com"}"#,
        )
        .await;
    reply.assert_problem(StatusCode::BAD_REQUEST, "duplicate_member");
    assert_eq!(stack.backend.requests(), before);
}

/// HTTP/2 has no Host header: the host the client asked for is the `:authority`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_authority_reaches_the_backend_as_x_forwarded_host() {
    let stack = Stack::start().await;
    let seen = stack
        .send_h2(Method::GET, "/api/headers", &[], "")
        .await
        .json();
    assert_ne!(
        seen["x-forwarded-host"],
        stack.backend.addr.to_string(),
        "the backend's own address is not the host the client asked for"
    );
    assert_eq!(seen["x-forwarded-host"], stack.server().addr.to_string());
}

/// An HTTP/1 request whose first bytes could begin the HTTP/2 preface, sent in pieces:
/// the listener waits for the bytes that tell, then serves it as HTTP/1.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_request_starting_like_the_preface_is_served_as_http1() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stack = Stack::start().await;
    let body = r#"{"email":"p@example.com"}"#;
    let rest = format!(
        "OST /api/customers HTTP/1.1\r\nhost: shop\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut tcp = tokio::net::TcpStream::connect(stack.server().addr)
        .await
        .expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    tcp.write_all(b"P").await.expect("first byte");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    tcp.write_all(rest.as_bytes()).await.expect("the rest");
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.expect("answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}

/// Stops the proxy and checks that the drain took well under the grace period.
async fn drains_at_once(stack: &mut Stack) {
    let started = std::time::Instant::now();
    stack.stop_proxy().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "drained in {:?}",
        started.elapsed()
    );
}

/// A client that connected but has not said a word yet (the listener is still waiting
/// for the bytes that tell HTTP/1.1 from HTTP/2) does not hold up a drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_does_not_hold_up_the_drain() {
    let mut stack = Stack::start().await;
    let _silent = tokio::net::TcpStream::connect(stack.server().addr)
        .await
        .expect("connect");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    drains_at_once(&mut stack).await;
}

/// Idle keep-alive connections, HTTP/1.1 and HTTP/2, are closed by the drain at once
/// rather than waited for until the grace period ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_do_not_hold_up_the_drain() {
    let mut stack = Stack::start().await;
    assert_eq!(stack.get("/api/customers/1").await.status.as_u16(), 404);
    let h2 = stack
        .send_h2(
            http::Method::GET,
            "/api/customers/1",
            &[],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(h2.status.as_u16(), 404);
    // Both clients now hold an idle connection to the proxy.
    drains_at_once(&mut stack).await;
}
