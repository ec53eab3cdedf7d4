//! Upstream faults: a backend that is not there is a 502, one that answers too late is a
//! 504, both as problem+json, and the proxy keeps serving.

use std::time::{Duration, Instant};

use http::StatusCode;

use crate::support::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_not_listening_is_a_502_problem() {
    let stack = Stack::builder().dead_upstream().start().await;
    let on_rule_route = stack
        .post_json("/api/customers", r#"{"email":"a@example.com"}"#)
        .await;
    on_rule_route.assert_problem(StatusCode::BAD_GATEWAY, "upstream_failed");
    assert!(!on_rule_route.text().contains("a@example.com"));
    let passthrough = stack.get("/api/headers").await;
    passthrough.assert_problem(StatusCode::BAD_GATEWAY, "upstream_failed");
    // The answer carries the request id, so an operator can find the exchange.
    assert_eq!(
        passthrough.json()["request_id"],
        passthrough.header("x-request-id")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_slower_than_the_timeout_is_a_504_problem() {
    let stack = Stack::builder().upstream_timeout("300ms").start().await;
    let started = Instant::now();
    let slow = stack.get("/api/slow?ms=5000").await;
    slow.assert_problem(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered at the timeout, not when the backend finished"
    );
    let fast = stack.get("/api/slow?ms=0").await;
    assert_eq!(fast.status, StatusCode::OK, "still serving");
    let id = stack
        .create("customers", r#"{"email":"after@example.com"}"#)
        .await;
    assert_eq!(
        stack.get(&format!("/api/customers/{id}")).await.text(),
        r#"{"email":"after@example.com"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_in_flight_is_a_503_problem_and_the_slot_comes_back() {
    let stack = Stack::builder().limit("max_in_flight = 1").start().await;
    let slow = stack.get("/api/slow?ms=700");
    let second = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stack.get("/api/slow?ms=0").await
    };
    let (slow, second) = tokio::join!(slow, second);
    assert_eq!(slow.status, StatusCode::OK);
    second.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    // Refusals and finished exchanges both give their slot back.
    for _ in 0..3 {
        assert_eq!(stack.get("/api/slow?ms=0").await.status, StatusCode::OK);
    }
}
