//! `tarnkappe health`: asks the admin listener's `/healthz` (or `/readyz`) and exits 0
//! when it answers 200, 1 otherwise. For Docker's HEALTHCHECK: no curl in the image.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};

/// `health` options.
#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// The config whose `[admin] address` to ask (`--admin` wins when both are given).
    #[arg(long, env = "TARNKAPPE_CONFIG")]
    pub config: Option<PathBuf>,
    /// The admin address to ask (instead of reading the config).
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// Ask `/readyz` instead of `/healthz`.
    #[arg(long)]
    pub ready: bool,
}

/// Runs the probe.
pub fn run(args: HealthArgs) -> anyhow::Result<ExitCode> {
    let addr = match (args.admin, &args.config) {
        (Some(a), _) => a,
        (None, Some(path)) => {
            let config = crate::config::load_config(path).map_err(|e| anyhow::anyhow!("{e}"))?;
            match config.admin {
                Some(a) if a.ip().is_unspecified() => {
                    SocketAddr::new([127, 0, 0, 1].into(), a.port())
                }
                Some(a) => a,
                None => bail!("{} has no [admin] address", path.display()),
            }
        }
        (None, None) => bail!("give --admin ADDRESS or --config FILE"),
    };
    let path = if args.ready { "/readyz" } else { "/healthz" };
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).context("reading the answer")?;
    if &head[..9] == b"HTTP/1.1 " && &head[9..12] == b"200" {
        println!("ok");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("unhealthy: {}", String::from_utf8_lossy(&head[9..12]));
        Ok(ExitCode::from(1))
    }
}
