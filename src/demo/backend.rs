//! The demo backend server: accepts HTTP/1.1 and HTTP/2 on a listener it is given, hands
//! each request to the `api` module, and keeps the bookkeeping tests assert on (how many
//! requests arrived, the last one's headers and target).
//!
//! It stands where a shop's real API would stand, behind the proxy, and so it must never
//! decrypt, interpret or rewrite what it is sent. It logs no header, body or query value.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::store::Store;

/// How long shutdown waits for in-flight requests before cutting connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed `accept` (for example, out of file descriptors) before retrying.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A running demo backend. Dropping it also stops the server, without waiting.
pub struct BackendHandle {
    /// The address the backend listens on.
    pub addr: SocketAddr,
    /// The SQLite file the backend stores to.
    pub db_path: PathBuf,
    shutdown: watch::Sender<()>,
    task: JoinHandle<()>,
    stats: Arc<Stats>,
}

impl BackendHandle {
    /// Total HTTP requests the backend has received (any path), for "the backend saw
    /// nothing" assertions.
    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::SeqCst)
    }

    /// The last request's headers as the backend saw them (names lowercased, one entry per
    /// header line, in arrival order); empty before the first request.
    pub fn last_headers(&self) -> Vec<(String, String)> {
        self.stats
            .last()
            .as_ref()
            .map(|last| last.headers.clone())
            .unwrap_or_default()
    }

    /// The last request's path and query exactly as received.
    pub fn last_target(&self) -> Option<String> {
        self.stats.last().as_ref().map(|last| last.target.clone())
    }

    /// Stops accepting, lets in-flight requests finish (up to a drain timeout) and waits
    /// for the server task to end.
    pub async fn shutdown(self) {
        // An error only means every receiver is gone, i.e. the server already stopped.
        let _ = self.shutdown.send(());
        if let Err(err) = self.task.await {
            tracing::warn!(error = %err, "demo backend task ended abnormally");
        }
    }
}

/// Serves the demo shop on an already-bound listener until [`BackendHandle::shutdown`],
/// storing to the SQLite file at `db_path` (created, with its parent directories, if
/// missing).
pub async fn start_backend(
    listener: TcpListener,
    db_path: PathBuf,
) -> anyhow::Result<BackendHandle> {
    let addr = listener
        .local_addr()
        .context("reading the demo backend's listen address")?;
    let store = {
        let path = db_path.clone();
        tokio::task::spawn_blocking(move || open_store(&path))
            .await
            .context("opening the demo database")??
    };
    let stats = Arc::new(Stats::default());
    let shared = Arc::new(Shared {
        store,
        stats: Arc::clone(&stats),
    });
    let (shutdown, signal) = watch::channel(());
    let task = tokio::spawn(accept_loop(listener, shared, signal));
    tracing::info!(%addr, "demo backend listening");
    Ok(BackendHandle {
        addr,
        db_path,
        shutdown,
        task,
        stats,
    })
}

fn open_store(path: &Path) -> anyhow::Result<Store> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the directory {}", parent.display()))?;
    }
    Store::open(path).with_context(|| format!("opening the demo database {}", path.display()))
}

/// What every request handler can reach.
pub(super) struct Shared {
    pub(super) store: Store,
    pub(super) stats: Arc<Stats>,
}

/// Request bookkeeping for test assertions.
#[derive(Default)]
pub(super) struct Stats {
    requests: AtomicU64,
    last: Mutex<Option<LastRequest>>,
}

struct LastRequest {
    headers: Vec<(String, String)>,
    target: String,
}

impl Stats {
    /// Counts a request and remembers its headers and target.
    pub(super) fn record(&self, req: &Request<Incoming>) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let headers = req
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        let target = request_target(req);
        *self.last() = Some(LastRequest { headers, target });
    }

    fn last(&self) -> MutexGuard<'_, Option<LastRequest>> {
        // The guarded data is replaced whole, so a poisoned lock still holds a valid value.
        self.last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The request's path and query as received (HTTP/2's `:path`, HTTP/1's origin form).
pub(super) fn request_target(req: &Request<Incoming>) -> String {
    req.uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| req.uri().path().to_owned())
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut signal: watch::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // A send or a dropped handle both mean stop.
            _ = signal.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared), signal.clone()));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "demo backend accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        tracing::warn!("demo backend drain timed out, closing remaining connections");
        connections.shutdown().await;
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, mut signal: watch::Receiver<()>) {
    let service = service_fn(move |req: Request<Incoming>| {
        let shared = Arc::clone(&shared);
        async move {
            shared.stats.record(&req);
            Ok::<_, Infallible>(super::api::handle(shared, req).await)
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The timer arms hyper's default HTTP/1 header read timeout.
    builder.http1().timer(TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = signal.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(error = %err, "demo backend connection ended with an error");
    }
}
