//! The proxy's own HTTP/1.1 client against a hand-written backend that answers with
//! exactly the bytes a test gives, in pieces as small as one byte: chunked and
//! close-delimited answers, interim answers, answers to HEAD, an answer before the
//! request body has been read, and framing the client must refuse.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::support::raw::read_request_head;
use crate::support::Stack;

/// How the backend reads each request before it answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// Head and body (by Content-Length or chunked).
    Whole,
    /// The head only: it answers at once and then reads nothing more for a while.
    HeadOnly,
    /// The head, then `100 Continue` at once, then the body.
    Continue,
}

/// A backend that answers every request with `answer`, written `piece` bytes at a
/// time; closes after the answer when `close`. Returns its address, the count of
/// accepted connections and the request bodies it read.
async fn backend(
    answer: &'static [u8],
    piece: usize,
    reads: Reads,
    close: bool,
) -> (
    std::net::SocketAddr,
    Arc<AtomicUsize>,
    Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (count, seen) = (accepted.clone(), bodies.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                while let Some(body) = read_request(&mut stream, reads).await {
                    seen.lock().expect("lock").push(body);
                    for part in answer.chunks(piece) {
                        if stream.get_mut().write_all(part).await.is_err() {
                            return;
                        }
                        if piece < answer.len() {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                    if reads == Reads::HeadOnly {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        return;
                    }
                    if close {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted, bodies)
}

/// Reads one request; returns its body (empty when `reads` is HeadOnly), None at EOF.
async fn read_request(stream: &mut BufReader<TcpStream>, reads: Reads) -> Option<Vec<u8>> {
    let (length, chunked) = read_request_head(stream).await?;
    if reads == Reads::HeadOnly {
        return Some(Vec::new());
    }
    if reads == Reads::Continue {
        stream
            .get_mut()
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .ok()?;
    }
    let mut body = Vec::new();
    let mut line = String::new();
    if !chunked {
        body.resize(length, 0);
        stream.read_exact(&mut body).await.ok()?;
        return Some(body);
    }
    loop {
        line.clear();
        stream.read_line(&mut line).await.ok()?;
        let size = usize::from_str_radix(line.trim(), 16).ok()?;
        let mut chunk = vec![0; size + 2];
        stream.read_exact(&mut chunk).await.ok()?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

const CHUNKED: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n\
    5\r\nhello\r\n1;note=x\r\n \r\n6\r\nworld!\r\n0\r\nx-checksum: 1\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_answers_arrive_whole_even_a_byte_at_a_time() {
    let (addr, accepted, _) = backend(CHUNKED, 1, Reads::Whole, false).await;
    let stack = Stack::builder().upstream_at(addr).start().await;
    for _ in 0..3 {
        let reply = stack.get("/api/anything").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.text(), "hello world!");
        assert_eq!(reply.header("x-checksum"), "", "trailers are not passed on");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the connection is reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_gets_no_hop_by_hop_header_of_the_backend() {
    let answer = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret route\r\n\
        Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\n\
        X-Kept: yes\r\ncontent-length: 2\r\n\r\nok";
    let (addr, accepted, _) = backend(answer, 1024, Reads::Whole, false).await;
    let stack = Stack::builder().upstream_at(addr).start().await;
    for _ in 0..2 {
        let reply = stack.get("/api/anything").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("x-kept"), "yes");
        for hop in ["x-hop", "keep-alive", "proxy-connection", "upgrade"] {
            assert_eq!(reply.header(hop), "", "{hop} reached the client");
        }
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "keep-alive still honoured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_delimited_answers_arrive_whole_and_the_next_request_gets_a_new_connection() {
    let answer = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end";
    let (addr, accepted, _) = backend(answer, 4, Reads::Whole, true).await;
    let stack = Stack::builder().upstream_at(addr).start().await;
    for _ in 0..2 {
        let reply = stack.get("/api/anything").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.text(), "until the end");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_answers_are_skipped() {
    let answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n\
        HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok";
    let (addr, accepted, bodies) = backend(answer, 7, Reads::Whole, false).await;
    let stack = Stack::builder().upstream_at(addr).start().await;
    let reply = stack
        .send(
            Method::POST,
            "/api/anything",
            &[("expect", "100-continue")],
            "abc",
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.text(), "ok");
    assert_eq!(stack.get("/api/again").await.status, StatusCode::CREATED);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(bodies.lock().expect("lock")[0], b"abc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_to_head_have_a_length_and_no_body() {
    let answer = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 12\r\n\r\n";
    let (addr, accepted, _) = backend(answer, 64, Reads::Whole, false).await;
    let stack = Stack::builder().upstream_at(addr).start().await;
    for _ in 0..3 {
        let reply = stack
            .send(Method::HEAD, "/api/anything", &[], Bytes::new())
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("content-length"), "12");
        assert!(reply.body.is_empty());
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "no body was waited for");
}

/// The head of a binary upload of `len` bytes that closes the connection after it.
fn upload_head(len: usize) -> String {
    format!(
        "POST /api/upload HTTP/1.1\r\nHost: shop\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_before_the_body_was_read_reaches_the_client() {
    let answer = b"HTTP/1.1 413 Content Too Large\r\ncontent-type: text/plain\r\ncontent-length: 8\r\nconnection: close\r\n\r\ntoo big!";
    let (addr, _, _) = backend(answer, 1024, Reads::HeadOnly, false).await;
    let stack = Stack::builder()
        .upstream_at(addr)
        .upstream_timeout("30s")
        .start()
        .await;
    // Far more than the sockets between proxy and backend hold, so the upload stalls.
    let upload = vec![b'x'; 6 * 1024 * 1024];
    let head = upload_head(upload.len());
    let started = std::time::Instant::now();
    let reply = stack.raw_streaming(head, upload).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.text(), "too big!");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not held until a timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_continue_during_a_large_upload_does_not_stop_it() {
    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let (addr, _, bodies) = backend(answer, 1024, Reads::Continue, false).await;
    let stack = Stack::builder()
        .upstream_at(addr)
        .upstream_timeout("5s")
        .start()
        .await;
    // Far more than the sockets hold: the backend's 100 arrives mid-upload.
    let upload: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let head = upload_head(upload.len());
    let reply = stack.raw_streaming(head, upload.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), "ok");
    assert!(
        bodies.lock().expect("lock")[0] == upload,
        "the whole upload arrived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_or_broken_answers_are_a_502_and_the_proxy_keeps_serving() {
    for answer in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
        b"this is not HTTP\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-le",
    ] {
        let (addr, _, _) = backend(answer, 1024, Reads::Whole, true).await;
        let stack = Stack::builder().upstream_at(addr).start().await;
        let reply = stack.get("/api/anything").await;
        reply.assert_problem(StatusCode::BAD_GATEWAY, "upstream_failed");
        assert_eq!(
            stack.get("/api/again").await.status,
            StatusCode::BAD_GATEWAY
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_of_unknown_length_go_upstream_chunked_and_arrive_whole() {
    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let (addr, _, bodies) = backend(answer, 1024, Reads::Whole, false).await;
    let stack = Stack::builder().upstream_at(addr).start().await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let head =
        "POST /api/upload HTTP/1.1\r\nHost: shop\r\nContent-Type: application/octet-stream\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let reply = stack
        .raw_streaming(head, crate::support::raw::chunked(&data, 70_000))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(bodies.lock().expect("lock")[0], data);
}

/// A large answer, chunked in uneven pieces or ended by closing, arrives bit for bit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_chunked_and_close_delimited_answers_arrive_bit_identical() {
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut chunked = b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    let mut at = 0;
    for size in [1usize, 10, 4095, 65_536, 300_000].iter().cycle() {
        let end = (at + size).min(data.len());
        chunked.extend_from_slice(format!("{:x}\r\n", end - at).as_bytes());
        chunked.extend_from_slice(&data[at..end]);
        chunked.extend_from_slice(b"\r\n");
        at = end;
        if at == data.len() {
            break;
        }
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let mut closed = b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\r\n".to_vec();
    closed.extend_from_slice(&data);
    for (answer, close) in [(chunked, false), (closed, true)] {
        let answer: &'static [u8] = Box::leak(answer.into_boxed_slice());
        let (addr, _, _) = backend(answer, 200_000, Reads::Whole, close).await;
        let stack = Stack::builder().upstream_at(addr).start().await;
        for _ in 0..2 {
            let reply = stack.get("/api/export").await;
            assert_eq!(reply.status, StatusCode::OK);
            assert!(
                reply.body == data[..],
                "{} bytes, not the same",
                reply.body.len()
            );
        }
    }
}
