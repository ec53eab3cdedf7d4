//! `serve` as a library call: start the flow log, the proxy and the listener on an
//! already-bound socket; stop with a drain. Tests start the real proxy this way on
//! 127.0.0.1:0; the CLI adds signals around it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
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
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<bool>,
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
        mut recorder: Recorder,
        grace: Duration,
    ) -> anyhow::Result<Server> {
        let addr = listener
            .local_addr()
            .context("reading the listener address")?;
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
        let admin_addr = match admin {
            Some(a) => {
                let state = AdminState {
                    proxy: proxy.clone(),
                    registry,
                    metrics: metrics.clone(),
                };
                let bound = crate::admin::spawn(a, state)
                    .with_context(|| format!("binding the admin listener {a}"))?;
                Some(bound)
            }
            None => None,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::listener::serve(
            listener,
            proxy.clone(),
            async move {
                let _ = stopped.await;
            },
            grace,
        ));
        Ok(Server {
            addr,
            proxy,
            admin_addr,
            metrics,
            stop: Some(stop),
            task,
            grace,
        })
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
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let drained = (&mut self.task).await.unwrap_or(false);
        if let Some(log) = self.proxy.recorder().flowlog() {
            // Every event emitted so far reaches the disk before we return.
            log.flush(self.grace.min(Duration::from_secs(10)));
        }
        drained
    }
}

/// Reloads the proxy's config file atomically.
pub fn reload(proxy: &Proxy) -> Result<(), ConfigErrors> {
    let path = proxy.snapshot().config.source.clone();
    let loaded = config::load(&path)?;
    proxy.replace(loaded);
    Ok(())
}
