//! The public listener: accept, terminate TLS when configured (ALPN h2/http1.1),
//! serve HTTP/1.1 and HTTP/2 (h2c with prior knowledge without TLS) on each connection, and on shutdown stop accepting and drain in-flight requests
//! within a grace period. Never logs request data.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;

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
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);
    let graceful = GracefulShutdown::new();
    let worker = proxy.worker();
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
                let builder = builder.clone();
                let (plain, secure) = (Conn { peer, tls: false }, Conn { peer, tls: true });
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let Some(tls) = tls else {
                        serve_conn(&builder, watcher, TokioIo::new(stream), worker, plain).await;
                        return;
                    };
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_conn(&builder, watcher, TokioIo::new(stream), worker, secure).await;
                        }
                        _ => tracing::debug!(peer = %peer_class(peer), "TLS handshake failed or timed out"),
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => true,
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_s = grace.as_secs(), "grace period over; closing remaining connections");
            false
        }
    }
}

/// Serves one accepted (and, with TLS, decrypted) connection until it ends or drains.
async fn serve_conn<I>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
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
    let connection = builder.serve_connection(io, service);
    if let Err(e) = watcher.watch(connection.into_owned()).await {
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
