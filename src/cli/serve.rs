//! `tarnkappe serve`: the proxy until SIGTERM/SIGINT (stop accepting, drain within the
//! grace period, flush the flow log, exit 0), reloading config and keyring on SIGHUP
//! or, with `--watch`, when either file changes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::KeyringSource;
use crate::server::{self, Server};

use super::load_or_exit;

/// `serve` options.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The config file.
    #[arg(long, env = "TARNKAPPE_CONFIG")]
    pub config: PathBuf,
    /// How long in-flight requests may take to finish after SIGTERM (e.g. 30s).
    #[arg(long, env = "TARNKAPPE_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub grace: Duration,
    /// Also reload when the config or keyring file changes (checked every 2 s).
    #[arg(long)]
    pub watch: bool,
    /// Listener threads, each with its own runtime and upstream pool (default: one per core).
    #[arg(long, env = "TARNKAPPE_WORKERS")]
    pub workers: Option<usize>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration(s)
}

/// Runs the proxy.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let loaded = match load_or_exit(&args.config) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let listen = loaded.config.listen;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = args.workers.unwrap_or(cores).max(1);
    // With a fixed port, worker threads own the listeners and this runtime only watches
    // signals; an ephemeral port cannot be shared, so one listener runs here instead.
    let shared_port = listen.port() != 0;
    let rt = if shared_port {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }
    .context("starting the runtime")?;
    rt.block_on(async move {
        let recorder = server::recorder(&loaded)?;
        let routes = loaded.config.router.routes().len();
        let server = if shared_port {
            Server::start_workers(loaded, listen, workers, recorder, args.grace).await?
        } else {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            Server::start(loaded, listener, recorder, args.grace)?
        };
        let admin = server
            .admin_addr
            .map_or_else(|| "none".to_owned(), |a| a.to_string());
        tracing::info!(address = %server.addr, admin = %admin, routes, workers, "tarnkappe listening");
        wait_for_stop(&server, args.watch).await?;
        tracing::info!(
            grace_s = args.grace.as_secs(),
            "shutting down: draining in-flight requests"
        );
        let drained = server.shutdown().await;
        tracing::info!(drained, "stopped");
        Ok(ExitCode::SUCCESS)
    })
}

fn reload(server: &Server, why: &'static str) {
    match server.reload() {
        Ok(()) => tracing::info!(trigger = why, "config and keyring reloaded"),
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!(trigger = why, problem = %e, "reload refused; the old config keeps serving");
            }
        }
    }
}

/// Modification times of the config and keyring files, to notice edits.
fn stamps(server: &Server) -> Vec<Option<SystemTime>> {
    let snap = server.proxy.snapshot();
    let mut files: Vec<&Path> = vec![&snap.config.source];
    if let KeyringSource::File(k) = &snap.config.keyring {
        files.push(k);
    }
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

async fn wait_for_stop(server: &Server, watch: bool) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut seen = stamps(server);
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = hup.recv() => {
                reload(server, "sighup");
                seen = stamps(server);
            }
            _ = tick.tick(), if watch => {
                let now = stamps(server);
                if now != seen {
                    reload(server, "file change");
                    seen = now;
                }
            }
        }
    }
}
