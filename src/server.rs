//! `serve` as a library call: start the flow log, the proxy and the listener on an
//! already-bound socket; stop with a drain. Tests start the real proxy this way on
//! 127.0.0.1:0; the CLI adds signals around it, and runs one listener per core
//! (`start_workers`): each worker thread has its own single-threaded runtime, its own
//! `SO_REUSEPORT` socket and its own upstream pool, so an exchange never hops threads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use prometheus::Registry;

use crate::admin::AdminState;
use crate::config::{self, ClientAddress, ConfigErrors, Loaded};
use crate::flowlog::{ConfigStr, FlowLog, FlowLogConfig, OnFailure};
use crate::metrics::Metrics;
use crate::proxy::{Proxy, Recorder};

/// A running proxy.
pub struct Server {
    /// The public address it listens on.
    pub addr: SocketAddr,
    /// The proxy state (snapshot, recorder).
    pub proxy: Arc<Proxy>,
    /// The admin listener's address, if configured.
    pub admin_addr: Option<SocketAddr>,
    /// The metric families.
    pub metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    /// The listener task(s); None until one is started.
    task: Option<JoinHandle<bool>>,
    grace: Duration,
}

/// Default drain time on shutdown.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// Starts the flow log configured in `loaded`, if any.
pub fn start_flow_log(loaded: &Loaded) -> anyhow::Result<Option<FlowLog>> {
    let Some(s) = &loaded.config.flow_log else {
        return Ok(None);
    };
    let mut cfg = FlowLogConfig::new(s.path.clone(), ConfigStr::new(&s.instance));
    cfg.max_bytes = s.rotate_size;
    cfg.max_age = s.rotate_every;
    cfg.queue = s.queue;
    cfg.delete_after = s.delete_after;
    cfg.on_failure = if s.reject_on_failure {
        OnFailure::Reject
    } else {
        OnFailure::Continue
    };
    if s.hmac {
        cfg.hmac_key = Some(loaded.keyring.derive_secret("flow-log-hmac"));
    }
    let log = FlowLog::start(cfg)
        .with_context(|| format!("starting the flow log at {}", s.path.display()))?;
    Ok(Some(log))
}

/// Builds the recorder for `loaded`.
pub fn recorder(loaded: &Loaded) -> anyhow::Result<Recorder> {
    let log = start_flow_log(loaded)?;
    let hashes = loaded
        .config
        .flow_log
        .as_ref()
        .is_some_and(|f| f.client_address == ClientAddress::Hash);
    let key = if hashes {
        *loaded.keyring.derive_secret("client-address")
    } else {
        [0u8; 32]
    };
    Ok(Recorder::new(log, key))
}

impl Server {
    /// Starts serving `loaded` on `listener` with `recorder`.
    pub fn start(
        loaded: Loaded,
        listener: TcpListener,
        recorder: Recorder,
        grace: Duration,
    ) -> anyhow::Result<Server> {
        let addr = listener
            .local_addr()
            .context("reading the listener address")?;
        let (mut server, admin) = Server::prepare(loaded, addr, recorder, grace)?;
        let stopped = stopped(&server.stop);
        server.task = Some(tokio::spawn(crate::listener::serve(
            listener,
            server.proxy.clone(),
            stopped,
            grace,
        )));
        server.open_admin(admin)?;
        Ok(server)
    }

    /// Starts `workers` listener threads on `addr` (one per core is the usual choice),
    /// each with its own runtime, socket (`SO_REUSEPORT`) and upstream pool.
    pub async fn start_workers(
        loaded: Loaded,
        addr: SocketAddr,
        workers: usize,
        recorder: Recorder,
        grace: Duration,
    ) -> anyhow::Result<Server> {
        let (mut server, admin) = Server::prepare(loaded, addr, recorder, grace)?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
        let mut threads = Vec::new();
        for n in 0..workers.max(1) {
            let (proxy, stopped, ready) = (
                server.proxy.clone(),
                stopped(&server.stop),
                ready_tx.clone(),
            );
            let thread = std::thread::Builder::new()
                .name(format!("tarnkappe-w{n}"))
                .spawn(move || worker(addr, proxy, stopped, grace, ready))
                .context("starting a worker thread")?;
            threads.push(thread);
        }
        drop(ready_tx);
        for _ in 0..threads.len() {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let _ = server.stop.send(true);
                    return Err(e).with_context(|| format!("binding {addr}"));
                }
                Err(_) => anyhow::bail!("a worker thread stopped while starting"),
            }
        }
        server.task = Some(tokio::task::spawn_blocking(move || {
            threads.into_iter().all(|t| t.join().unwrap_or(false))
        }));
        // Only now: a health check that passes means the public port listens.
        server.open_admin(admin)?;
        Ok(server)
    }

    /// Metrics and proxy state, before any listener runs; with the admin listener's
    /// address and state, to open once the public listener is bound.
    fn prepare(
        loaded: Loaded,
        addr: SocketAddr,
        mut recorder: Recorder,
        grace: Duration,
    ) -> anyhow::Result<(Server, Option<(SocketAddr, AdminState)>)> {
        let registry = Registry::new();
        let metrics = Arc::new(Metrics::new(&registry).context("registering metrics")?);
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .context("registering process metrics")?;
        let observer = metrics.clone();
        recorder.observe(Arc::new(move |ex| observer.observe(ex)));
        let admin = loaded.config.admin;
        let proxy = Arc::new(Proxy::new(loaded, recorder));
        let admin = admin.map(|a| {
            let state = AdminState {
                proxy: proxy.clone(),
                registry,
                metrics: metrics.clone(),
            };
            (a, state)
        });
        let (stop, _) = watch::channel(false);
        let server = Server {
            addr,
            proxy,
            admin_addr: None,
            metrics,
            stop,
            task: None,
            grace,
        };
        Ok((server, admin))
    }

    /// Opens the admin listener, if configured; stops the public listener if it cannot.
    fn open_admin(&mut self, admin: Option<(SocketAddr, AdminState)>) -> anyhow::Result<()> {
        let Some((a, state)) = admin else {
            return Ok(());
        };
        match crate::admin::spawn(a, state) {
            Ok(bound) => {
                self.admin_addr = Some(bound);
                Ok(())
            }
            Err(e) => {
                let _ = self.stop.send(true);
                Err(e).with_context(|| format!("binding the admin listener {a}"))
            }
        }
    }

    /// Reloads config and keyring from the config file; on any error the old ones stay.
    pub fn reload(&self) -> Result<(), ConfigErrors> {
        let result = reload(&self.proxy);
        match &result {
            Ok(()) => self.metrics.reloads.inc(),
            Err(_) => self.metrics.reload_failures.inc(),
        }
        result
    }

    /// Stops accepting, drains, flushes the flow log. Returns whether the drain finished in time.
    pub async fn shutdown(mut self) -> bool {
        let _ = self.stop.send(true);
        let drained = match self.task.take() {
            Some(task) => task.await.unwrap_or(false),
            None => true,
        };
        if let Some(log) = self.proxy.recorder().flowlog() {
            // Every event emitted so far reaches the disk before we return.
            log.flush(self.grace.min(Duration::from_secs(10)));
        }
        drained
    }
}

/// A future that resolves once `stop` says so.
fn stopped(stop: &watch::Sender<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = stop.subscribe();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// One worker thread: its own runtime and `SO_REUSEPORT` socket; serves until stopped.
fn worker(
    addr: SocketAddr,
    proxy: Arc<Proxy>,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
    ready: std::sync::mpsc::Sender<std::io::Result<()>>,
) -> bool {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return false;
        }
    };
    rt.block_on(async move {
        let bound = (|| {
            let socket = match addr {
                SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            socket.set_reuseaddr(true)?;
            socket.set_reuseport(true)?;
            socket.set_nodelay(true)?;
            socket.bind(addr)?;
            socket.listen(1024)
        })();
        match bound {
            Ok(listener) => {
                let _ = ready.send(Ok(()));
                crate::listener::serve(listener, proxy, stopped, grace).await
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                false
            }
        }
    })
}

/// Reloads the proxy's config file atomically.
pub fn reload(proxy: &Proxy) -> Result<(), ConfigErrors> {
    let path = proxy.snapshot().config.source.clone();
    let loaded = config::load(&path)?;
    proxy.replace(loaded);
    Ok(())
}
