//! `tarnkappe keys generate|rotate|list`: keyring files. Never prints key bytes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::crypto::Keyring;

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a new keyring file (mode 0600) with one active key.
    Generate {
        /// Where to write it; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Add a new key version and make it active; old versions still open.
    Rotate {
        /// The keyring file.
        #[arg(long)]
        keyring: PathBuf,
    },
    /// List key versions (ids, creation times, which is active).
    List {
        /// The keyring file.
        #[arg(long)]
        keyring: PathBuf,
    },
}

/// Runs a `keys` subcommand.
pub fn run(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::Generate { out } => {
            let ring = Keyring::generate().context("generating keys")?;
            ring.write_new(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "wrote {} with key 1 active; keep it secret and backed up",
                out.display()
            );
        }
        KeysCommand::Rotate { keyring } => {
            let mut ring = Keyring::load(&keyring)
                .with_context(|| format!("loading {}", keyring.display()))?;
            let id = ring.rotate().context("generating a key")?;
            ring.save(&keyring)
                .with_context(|| format!("saving {}", keyring.display()))?;
            println!(
                "key {id} is now active in {}; older keys still open existing data",
                keyring.display()
            );
            println!("reload running proxies (SIGHUP) or restart them to use it");
        }
        KeysCommand::List { keyring } => {
            let ring = Keyring::load(&keyring)
                .with_context(|| format!("loading {}", keyring.display()))?;
            println!("{:>4}  {:<22}  state", "id", "created");
            for k in ring.list() {
                println!(
                    "{:>4}  {:<22}  {}",
                    k.id,
                    k.created,
                    if k.active { "active" } else { "opens old data" }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
