//! The data-flow report (`tarnkappe report`): reads flow-log files after the fact and
//! writes the data-flow map, the data inventory, refused exchanges, the chain check and
//! records of processing, as HTML, JSON, Markdown, Mermaid or DOT. See docs/report.md.
//!
//! Stages: [`scan`] streams the events into bounded counters (never holding an event),
//! while `flowlog::verify` checks the chain on a second thread; [`build`], [`findings`]
//! and [`graph`] turn counters and config into the [`Report`]; the renderers escape and
//! write it. Events hold no field value, and nothing here may add one: the report carries
//! config names, closed-set names, counts and times only.

pub mod build;
pub mod escape;
pub mod findings;
pub mod graph;
pub mod model;
pub mod scan;
pub mod sections;

mod dot;
mod html;
mod json;
mod md;
mod mermaid;
mod svg;

use std::path::{Path, PathBuf};

use crate::flowlog::{self, BreakKind, ChainBreak, VerifyReport};

pub use model::{Configured, Report};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One self-contained HTML file (diagram, tables, chain check).
    Html,
    /// The same data, machine-readable (schema in docs/report.md).
    Json,
    /// The same for a wiki, with the diagram as Mermaid.
    Md,
    /// The diagram alone, Mermaid flowchart.
    Mermaid,
    /// The diagram alone, Graphviz DOT.
    Dot,
}

/// Why a report could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read.
    #[error("{}: cannot read file: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Reads `files` (in the order given) and builds the report: the events are aggregated
/// on this thread while the chain is verified on another. `hmac_key` is the flow-log
/// HMAC key, needed to verify HMAC-chained events.
pub fn generate(
    files: &[PathBuf],
    configured: Option<&Configured>,
    hmac_key: Option<&[u8; 32]>,
) -> Result<Report, ReportError> {
    let (agg, verified) = std::thread::scope(|s| {
        let verifier = s.spawn(|| flowlog::verify(files, hmac_key));
        let agg = aggregate(files);
        let verified = verifier.join().unwrap_or_else(|_| {
            Err(ChainBreak {
                file: PathBuf::new(),
                line: 0,
                kind: BreakKind::Unreadable {
                    error: "the verifier stopped unexpectedly".into(),
                },
            })
        });
        (agg, verified)
    });
    let agg = agg?;
    let names = files.iter().map(|f| f.display().to_string()).collect();
    Ok(build::build(
        &agg,
        configured,
        chain_result(verified),
        names,
    ))
}

fn aggregate(files: &[PathBuf]) -> Result<scan::Aggregate, ReportError> {
    let mut agg = scan::Aggregate::default();
    for f in files {
        agg.read_file(f).map_err(|source| ReportError::Read {
            file: f.clone(),
            source,
        })?;
    }
    Ok(agg)
}

/// The verification outcome as the report shows it.
pub fn chain_result(verified: Result<VerifyReport, ChainBreak>) -> model::ChainResult {
    use model::{BreakRow, ChainResult, ChainStatus};
    match verified {
        Ok(v) => ChainResult {
            status: ChainStatus::Intact,
            summary: format!(
                "intact: {} event(s) in {} file(s), {} instance(s)",
                v.events, v.files, v.instances
            ),
            instances: v.chains,
            break_at: None,
        },
        Err(b) => {
            let unverified = b.kind == BreakKind::MacKeyNeeded;
            let at = BreakRow {
                file: b.file.display().to_string(),
                line: b.line,
                problem: b.kind.to_string(),
            };
            ChainResult {
                status: if unverified {
                    ChainStatus::Unverified
                } else {
                    ChainStatus::Broken
                },
                summary: if unverified {
                    "the events are HMAC-chained: give --config with the keyring to verify them"
                        .into()
                } else {
                    format!("broken at {b}")
                },
                instances: Vec::new(),
                break_at: Some(at),
            }
        }
    }
}

/// The report in `format`.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Html => html::render(report),
        Format::Json => json::render(report),
        Format::Md => md::render(report),
        Format::Mermaid => mermaid::render(&report.diagram),
        Format::Dot => dot::render(&report.diagram),
    }
}

/// The files to read for the arguments given: a current flow-log file expands to its
/// rotation set (rotated files oldest first, then itself), as `audit verify` does; a file
/// named twice is read once.
pub fn expand_files(args: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for a in args {
        let set = if a.is_file() {
            flowlog::files_in_order(a)
        } else {
            Vec::new()
        };
        let set = if set.is_empty() { vec![a.clone()] } else { set };
        for f in set {
            if seen.insert(canonical(&f)) {
                out.push(f);
            }
        }
    }
    out
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}
