//! The admin listener (never the public one): `/metrics` (Prometheus text), `/healthz`
//! (alive), `/readyz` (config and keyring loaded, flow log writable, upstream reachable).
//! It runs on its own OS thread with its own single-threaded runtime, so a scrape or
//! probe storm cannot take the public port's workers. GET and HEAD only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus::{Encoder, Registry, TextEncoder};

use crate::metrics::Metrics;
use crate::proxy::Proxy;

/// What the admin endpoints read.
#[derive(Clone)]
pub struct AdminState {
    /// The proxy (snapshot, flow log).
    pub proxy: Arc<Proxy>,
    /// The registry to expose.
    pub registry: Registry,
    /// The metric families (flow-log counters are mirrored at scrape time).
    pub metrics: Arc<Metrics>,
}

/// Starts the admin listener on its own thread; returns the bound address.
pub fn spawn(addr: SocketAddr, state: AdminState) -> std::io::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let local = std_listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("tarnkappe-admin".into())
        .spawn(move || {
            rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                tracing::error!("admin listener could not start");
                return;
            };
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        })?;
    Ok(local)
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn handle(state: &AdminState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => ready(state).await,
        "/metrics" => metrics(state),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn metrics(state: &AdminState) -> Response<Full<Bytes>> {
    if let Some(log) = state.proxy.recorder().flowlog() {
        mirror(&state.metrics.flow_log_events, log.events_written());
        mirror(
            &state.metrics.flow_log_errors,
            log.errors() + log.write_failures(),
        );
        mirror(&state.metrics.flow_log_files_deleted, log.files_deleted());
    }
    let mut buf = Vec::new();
    let encoder = TextEncoder::new();
    if encoder.encode(&state.registry.gather(), &mut buf).is_err() {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n");
    }
    let mut r = text(StatusCode::OK, buf);
    if let Ok(v) = header::HeaderValue::from_str(encoder.format_type()) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// Counters only go up: add what the writer counted since the last scrape.
fn mirror(c: &prometheus::IntCounter, now: u64) {
    let seen = c.get();
    if now > seen {
        c.inc_by(now - seen);
    }
}

async fn ready(state: &AdminState) -> Response<Full<Bytes>> {
    let snap = state.proxy.snapshot();
    let mut problems = Vec::new();
    if state
        .proxy
        .recorder()
        .flowlog()
        .is_some_and(|l| !l.healthy())
    {
        problems.push("flow log not writable");
    }
    let up = snap.config.upstream.authority.as_str().to_owned();
    let reachable =
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(up)).await;
    if !matches!(reachable, Ok(Ok(_))) {
        problems.push("upstream not reachable");
    }
    if problems.is_empty() {
        text(StatusCode::OK, "ready\n")
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join(", ")),
        )
    }
}
