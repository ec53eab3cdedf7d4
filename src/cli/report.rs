//! `tarnkappe report FILE... --out PATH [--format F] [--config CONFIG]`: builds the
//! data-flow report from flow-log files (see docs/report.md).
//!
//! Exit codes: 0 report written; 65 report written but the hash chain is broken (the
//! report says where); 78 invalid config; 1 unreadable input or output. It prints only
//! file names, counts and the chain's verdict, never an event.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::report::{self, model::ChainStatus, Configured, Format};

use super::{EXIT_CONFIG, EXIT_DATAERR};

/// Arguments of `report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Flow-log files, oldest first; a current file expands to its rotation set. Files of
    /// several replicas (instances) merge into one report.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Where to write the report (`-` for stdout).
    #[arg(long)]
    pub out: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "html")]
    pub format: Format,
    /// The config: adds the configured rules (records of processing), flags rules that
    /// never matched, and supplies the HMAC key for HMAC-chained logs.
    #[arg(long, env = "TARNKAPPE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Runs `report`.
pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let files = report::expand_files(&args.files);
    if let Some(missing) = files.iter().find(|f| !f.exists()) {
        anyhow::bail!("{}: no such flow-log file", missing.display());
    }
    let config = match &args.config {
        Some(path) => match crate::config::load_config(path) {
            Ok(c) => Some(c),
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("{} problem(s) in {}", errors.0.len(), path.display());
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
        },
        None => None,
    };
    let key = config.as_ref().and_then(hmac_key);
    let configured = config.as_ref().map(Configured::from_config);
    let built = report::generate(&files, configured.as_ref(), key.as_deref())?;
    let text = report::render(&built, args.format);
    write_out(&args.out, text.as_bytes())?;
    let high = built
        .findings
        .iter()
        .filter(|f| f.severity == report::model::Severity::High)
        .count();
    eprintln!(
        "report: {} event(s) from {} file(s), {} instance(s); {} finding(s), {high} high; chain {}; written to {}",
        built.input.events,
        files.len(),
        built.input.instances.len(),
        built.findings.len(),
        match built.chain.status {
            ChainStatus::Intact => "intact",
            ChainStatus::Broken => "BROKEN",
            ChainStatus::Unverified => "not verified",
        },
        args.out.display()
    );
    if built.chain.status == ChainStatus::Broken {
        eprintln!("{}", built.chain.summary);
        return Ok(ExitCode::from(EXIT_DATAERR));
    }
    Ok(ExitCode::SUCCESS)
}

/// The flow-log HMAC key, when the config chains with one and its keyring loads.
fn hmac_key(config: &crate::config::Config) -> Option<zeroize::Zeroizing<[u8; 32]>> {
    if !config.flow_log.as_ref().is_some_and(|f| f.hmac) {
        return None;
    }
    match crate::config::load_keyring(config) {
        Ok(k) => Some(k.derive_secret("flow-log-hmac")),
        Err(errors) => {
            eprintln!("warning: the flow-log HMAC key is unavailable, the chain cannot be verified:\n{errors}");
            None
        }
    }
}

/// Writes the whole report next to `path` and renames it into place, so a reader never
/// sees half a report.
fn write_out(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes).context("cannot write to stdout")?;
        return out.flush().context("cannot write to stdout");
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let (tmp, mut file) = tempfile_in(dir, path)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("{}: cannot write", path.display()));
    }
    Ok(())
}

fn tempfile_in(dir: &Path, path: &Path) -> anyhow::Result<(PathBuf, std::fs::File)> {
    let name = path
        .file_name()
        .map_or_else(|| "report".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("{}: cannot create", tmp.display()))?;
    Ok((tmp, file))
}
