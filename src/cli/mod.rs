//! The command line: one file per subcommand. Each returns an exit code; `main` only
//! maps it. Exit codes: 0 ok, 1 runtime failure, 2 usage, 65 broken audit chain,
//! 78 invalid config.

mod check;
mod demo;
mod health;
mod keys;
mod report;
mod seal;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for an invalid config (EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;
/// Exit code for a broken audit chain (EX_DATAERR).
pub const EXIT_DATAERR: u8 = 65;

/// tarnkappe: a transparent encrypting reverse proxy for shop APIs.
#[derive(Debug, Parser)]
#[command(name = "tarnkappe", version, about)]
pub struct Cli {
    /// Log format: human or json.
    #[arg(
        long,
        global = true,
        env = "TARNKAPPE_LOG_FORMAT",
        default_value = "human"
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy until SIGTERM/SIGINT, then drain in-flight requests.
    Serve(serve::ServeArgs),
    /// Validate config and keyring; print the privacy assessment.
    Check(ConfigArg),
    /// Create, rotate and list keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Apply a route's request rules to NDJSON on stdin (backfill).
    Seal(seal::SealArgs),
    /// Open our ciphertexts in NDJSON on stdin.
    Unseal(seal::SealArgs),
    /// Audit-trail tools.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Start the proxy in front of a bundled demo shop, and show what to try.
    Demo(demo::DemoArgs),
    /// Build the data-flow map and data inventory from flow logs.
    Report(report::ReportArgs),
    /// Run the bundled demo shop backend alone (for docker compose).
    DemoBackend(demo::BackendArgs),
    /// Probe the admin listener (for container health checks).
    Health(health::HealthArgs),
}

/// `--config FILE` (or TARNKAPPE_CONFIG).
#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// The config file.
    #[arg(long, env = "TARNKAPPE_CONFIG")]
    pub config: PathBuf,
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the flow log's hash chain across files (oldest first).
    Verify {
        /// Flow-log files, oldest first; a directory or the current file expands to its rotation set.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The config, when the chain uses the keyring's HMAC key.
        #[arg(long, env = "TARNKAPPE_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(a) => serve::run(a),
        Command::Check(a) => check::run(&a.config),
        Command::Keys(k) => keys::run(k),
        Command::Seal(a) => seal::run(a, true),
        Command::Unseal(a) => seal::run(a, false),
        Command::Audit(AuditCommand::Verify { files, config }) => {
            check::verify(&files, config.as_deref())
        }
        Command::Demo(a) => demo::run(a),
        Command::DemoBackend(a) => demo::run_backend(a),
        Command::Health(a) => health::run(a),
        Command::Report(a) => report::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Loads a config or prints every problem and returns the exit code.
pub(crate) fn load_or_exit(path: &std::path::Path) -> Result<crate::config::Loaded, ExitCode> {
    crate::config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!("{} problem(s) in {}", errors.0.len(), path.display());
        ExitCode::from(EXIT_CONFIG)
    })
}
