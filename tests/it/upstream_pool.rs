//! The upstream connection pool, against a hand-written HTTP/1.1 backend that counts
//! its connections: keep-alive connections are reused, a connection the backend closed
//! while idle costs no request, and a backend that says `Connection: close` gets a
//! fresh connection each time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::support::raw::read_request_head;
use crate::support::Stack;

/// How the backend treats a connection after each answer.
#[derive(Clone, Copy)]
enum AfterAnswer {
    /// Keeps it open for the next request.
    KeepAlive,
    /// Announces `Connection: close` and closes.
    Close,
    /// Keeps it open, but closes it silently once idle for 50 ms.
    IdleClose,
}

/// Starts the backend; returns its address and the count of accepted connections.
async fn backend(after: AfterAnswer) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream, after));
        }
    });
    (addr, accepted)
}

async fn serve(stream: tokio::net::TcpStream, after: AfterAnswer) {
    let mut stream = BufReader::new(stream);
    loop {
        let head = match after {
            AfterAnswer::IdleClose => {
                match tokio::time::timeout(
                    Duration::from_millis(50),
                    read_request_head(&mut stream),
                )
                .await
                {
                    Ok(head) => head,
                    Err(_) => return, // idle too long: close without a word
                }
            }
            _ => read_request_head(&mut stream).await,
        };
        let Some((length, _)) = head else { return };
        let mut body = vec![0; length];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let close = matches!(after, AfterAnswer::Close);
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n{}\r\n{{\"ok\":true}}",
            if close { "connection: close\r\n" } else { "" }
        );
        if stream.get_mut().write_all(answer.as_bytes()).await.is_err() || close {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_are_reused() {
    let (addr, accepted) = backend(AfterAnswer::KeepAlive).await;
    let stack = Stack::builder().upstream_at(addr).start().await;
    for _ in 0..20 {
        assert_eq!(stack.get("/api/anything").await.status, StatusCode::OK);
        let posted = stack
            .post_json("/api/customers", r#"{"email":"a@example.com"}"#)
            .await;
        assert_eq!(posted.status, StatusCode::OK);
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection for 40 exchanges"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_gets_a_fresh_connection_each_time() {
    let (addr, accepted) = backend(AfterAnswer::Close).await;
    let stack = Stack::builder().upstream_at(addr).start().await;
    for _ in 0..10 {
        assert_eq!(stack.get("/api/anything").await.status, StatusCode::OK);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_while_idle_costs_no_request() {
    let (addr, accepted) = backend(AfterAnswer::IdleClose).await;
    let stack = Stack::builder().upstream_at(addr).start().await;
    for _ in 0..5 {
        assert_eq!(stack.get("/api/anything").await.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
}
