//! `tarnkappe report`: being written.

/// Arguments of `report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Flow-log files.
    pub files: Vec<std::path::PathBuf>,
}

/// Runs `report`.
pub fn run(_args: ReportArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("report is being written")
}
