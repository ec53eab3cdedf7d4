//! Pass-through: a route without rules, and bodies no rule reads, go through untouched
//! in both directions, bit for bit, with no size cap from `max_body` (they stream).

use http::{Method, StatusCode};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use crate::support::raw::chunked;
use crate::support::{customer_routes, Stack};

const UPLOADS: &str = r#"
[[route]]
name = "uploads"
methods = ["POST", "GET"]
path = "/api/uploads/{*rest}"
"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

async fn passthrough_stack() -> Stack {
    // max_body far below the upload size: a route without rules must not buffer.
    Stack::builder()
        .routes(&format!("{}{UPLOADS}", customer_routes()))
        .max_body("1MiB")
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_megabyte_binary_upload_and_download_are_bit_identical() {
    let stack = passthrough_stack().await;
    let data = random_bytes(6 * 1024 * 1024 + 7);
    let sha = hex(&Sha256::digest(&data));
    let up = stack
        .send(
            Method::POST,
            "/api/uploads",
            &[("content-type", "application/octet-stream")],
            data.clone(),
        )
        .await;
    assert_eq!(
        up.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&up.body)
    );
    let answer = up.json();
    assert_eq!(
        answer["sha256"],
        sha.as_str(),
        "the backend got the same bytes"
    );
    assert_eq!(answer["len"], data.len());
    let id = answer["id"].as_i64().expect("id");

    let down = stack.get(&format!("/api/uploads/{id}")).await;
    assert_eq!(down.status, StatusCode::OK);
    assert_eq!(down.header("content-type"), "application/octet-stream");
    assert_eq!(down.body.len(), data.len());
    assert!(down.body == data, "downloaded bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_without_length_streams_through_unchanged() {
    let stack = passthrough_stack().await;
    let data = random_bytes(3 * 1024 * 1024);
    let head = "POST /api/uploads HTTP/1.1\r\nHost: shop.example\r\n\
                Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\
                Connection: close\r\n\r\n";
    let reply = stack.raw_streaming(head, chunked(&data, 100_000)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let answer: serde_json::Value = serde_json::from_slice(&reply.body).expect("json");
    assert_eq!(answer["sha256"], hex(&Sha256::digest(&data)).as_str());
    assert_eq!(answer["len"], data.len());
}

/// Routes without rules open nothing on the way back either: a ciphertext echoed there
/// stays ciphertext, so such a route cannot serve as a decryption oracle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_on_a_route_without_rules_passes_byte_identical_both_ways() {
    let stack = passthrough_stack().await;
    let token = stack
        .keyring()
        .seal(
            tarnkappe::crypto::Mode::Random,
            "customer.email",
            tarnkappe::crypto::ValueType::String,
            b"a@b.c",
        )
        .expect("seal");
    let body = format!(
        "{{ \"email\" : \"plain@example.com\",\"n\":12345678901234567890123, \"t\":\"{token}\",\"dup\":1,\"dup\":2 }}"
    );
    let reply = stack
        .send(
            Method::POST,
            "/api/echo",
            &[("content-type", "application/json")],
            body.clone(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), body);
    assert_eq!(reply.header("content-type"), "application/json");
}
