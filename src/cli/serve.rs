//! `tarnkappe serve`: the proxy until SIGTERM/SIGINT (drain), reloading on SIGHUP.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};

use crate::server::{self, Server, DEFAULT_GRACE};

use super::load_or_exit;

/// Runs the proxy.
pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let loaded = match load_or_exit(path) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let listen = loaded.config.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let recorder = server::recorder(&loaded)?;
        let routes = loaded.config.router.routes().len();
        let server = Server::start(loaded, listener, recorder, DEFAULT_GRACE)?;
        tracing::info!(address = %server.addr, routes, "tarnkappe listening");
        wait_for_stop(&server).await?;
        tracing::info!("shutting down: draining in-flight requests");
        let drained = server.shutdown().await;
        tracing::info!(drained, "stopped");
        Ok(ExitCode::SUCCESS)
    })
}

async fn wait_for_stop(server: &Server) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = hup.recv() => match server.reload() {
                Ok(()) => tracing::info!("config and keyring reloaded"),
                Err(errors) => {
                    for e in &errors.0 {
                        tracing::error!(problem = %e, "reload refused; the old config keeps serving");
                    }
                }
            },
        }
    }
}
