//! `tarnkappe seal|unseal --config F --route NAME`: the proxy's rules over NDJSON on
//! stdin, for backfilling data a shop already holds in plaintext. What `seal` writes,
//! the proxy opens. A line that cannot be processed stops the run with its line number
//! and reason, never its content.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::transform::{request, response};

use super::load_or_exit;

/// Arguments of seal and unseal.
#[derive(Debug, clap::Args)]
pub struct SealArgs {
    /// The config file.
    #[arg(long, env = "TARNKAPPE_CONFIG")]
    pub config: PathBuf,
    /// The route whose rules apply.
    #[arg(long)]
    pub route: String,
}

/// Runs seal (`seal = true`) or unseal.
pub fn run(args: SealArgs, seal: bool) -> anyhow::Result<ExitCode> {
    let loaded = match load_or_exit(&args.config) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let config = &loaded.config;
    let Some(route) = config
        .router
        .routes()
        .iter()
        .find(|r| *r.name == args.route)
    else {
        bail!(
            "no route named `{}` in {}",
            args.route,
            args.config.display()
        );
    };
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut lines = 0u64;
    for (n, line) in stdin.split(b'\n').enumerate() {
        let line = line.context("reading stdin")?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let result = if seal {
            request::transform_json(line, &route.rules, &loaded.keyring, config.limits.json)
                .map(|t| t.body)
                .map_err(|e| e.reason())
        } else {
            response::open_json(line, &config.labels, &loaded.keyring, config.limits.json)
                .map(|o| o.body.unwrap_or_else(|| line.to_vec()))
                .map_err(|e| e.reason())
        };
        match result {
            Ok(bytes) => {
                out.write_all(&bytes)?;
                out.write_all(b"\n")?;
                lines += 1;
            }
            Err(reason) => {
                out.flush()?;
                bail!(
                    "stdin line {}: {reason}; {lines} line(s) written before it",
                    n + 1
                );
            }
        }
    }
    out.flush()?;
    eprintln!(
        "{} {lines} line(s) with route {}",
        if seal { "sealed" } else { "unsealed" },
        route.name
    );
    Ok(ExitCode::SUCCESS)
}
