//! The public listener: accept, terminate TLS when configured (ALPN h2/http1.1),
//! serve HTTP/1.1 and HTTP/2 (h2c with prior knowledge without TLS) on each connection, and on shutdown stop accepting and drain in-flight requests
//! within a grace period. Never logs request data.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::drain::{Drain, Ticket};
use crate::proxy::{Conn, Proxy, Worker};

/// Serves `proxy` on `listener` until `shutdown` resolves, then drains for at most
/// `grace`. Returns whether every connection finished within the grace period.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> bool {
    let header_timeout = proxy.snapshot().config.limits.header_timeout;
    let worker = proxy.worker();
    let mut h1 = http1::Builder::new();
    h1.timer(worker.timer())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new()).max_concurrent_streams(256);
    let builders = Arc::new(Builders { h1, h2 });
    let drain = Drain::default();
    // Tells connections still deciding their protocol (before hyper has them, where
    // the graceful watcher cannot reach) that the listener is draining.
    let (draining, _) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let tls = proxy.snapshot().config.tls.clone();
                let worker = worker.clone();
                let builders = builders.clone();
                let ticket = drain.ticket();
                let mut draining = draining.subscribe();
                tokio::spawn(async move {
                    let Some(tls) = tls else {
                        // Without TLS, HTTP/2 only with prior knowledge: its preface. A
                        // client that has said nothing yet when the drain starts is closed.
                        let Some(Ok(h2)) = before_drain(&mut draining, header_timeout, sends_h2_preface(&stream)).await else {
                            return;
                        };
                        let conn = Conn { peer, tls: false };
                        serve_conn(&builders, h2, ticket, TokioIo::new(stream), worker, conn).await;
                        return;
                    };
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                    match before_drain(&mut draining, header_timeout, acceptor.accept(stream)).await {
                        Some(Ok(stream)) => {
                            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            let conn = Conn { peer, tls: true };
                            serve_conn(&builders, h2, ticket, TokioIo::new(stream), worker, conn).await;
                        }
                        _ => tracing::debug!(peer = %peer_class(peer), "TLS handshake failed, timed out or ended by the drain"),
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    draining.send_replace(true);
    tokio::select! {
        () = drain.shutdown() => true,
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_s = grace.as_secs(), "grace period over; closing remaining connections");
            false
        }
    }
}

/// `step`, given at most `limit`, and given up when the listener starts draining:
/// None then, or when the time is over.
async fn before_drain<T>(
    draining: &mut tokio::sync::watch::Receiver<bool>,
    limit: Duration,
    step: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        done = tokio::time::timeout(limit, step) => done.ok(),
        _ = draining.wait_for(|d| *d) => None,
    }
}

/// One listener's connection settings for each protocol.
struct Builders {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

/// The client connection preface of HTTP/2 (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Does the client open with the HTTP/2 preface? Looks without consuming: as soon as
/// the bytes seen differ from it (the first byte, for any HTTP/1 request) the answer
/// is no; a connection closed before saying enough is served as HTTP/1 (which ends it).
async fn sends_h2_preface(stream: &tokio::net::TcpStream) -> std::io::Result<bool> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(false);
        }
        if n == H2_PREFACE.len() || n == 0 {
            return Ok(n > 0);
        }
        // A prefix of the preface so far (rare: a client sending it piecemeal): look
        // again shortly; the caller's header timeout bounds the waiting.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Serves one accepted (and, with TLS, decrypted) connection until it ends or drains.
async fn serve_conn<I>(
    builders: &Builders,
    h2: bool,
    ticket: Ticket,
    io: TokioIo<I>,
    worker: Arc<Worker>,
    conn: Conn,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let peer = conn.peer;
    let service = service_fn(move |req| {
        let worker = worker.clone();
        async move { Ok::<_, std::convert::Infallible>(worker.handle(req, conn).await) }
    });
    let ended = if h2 {
        ticket
            .watch(builders.h2.serve_connection(io, service))
            .await
    } else {
        ticket
            .watch(builders.h1.serve_connection(io, service))
            .await
    };
    if let Err(e) = ended {
        tracing::debug!(peer = %peer_class(peer), error = %e, "connection ended with an error");
    }
}

/// Loopback or not: enough to debug, never a client address in logs.
fn peer_class(peer: SocketAddr) -> &'static str {
    if peer.ip().is_loopback() {
        "loopback"
    } else {
        "remote"
    }
}
