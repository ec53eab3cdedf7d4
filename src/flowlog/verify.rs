//! `audit verify`: checks flow-log files, in the order given, as one hash chain per
//! instance, and names the file and line of the first break.
//!
//! Read-only: it must never modify a file, and never print a line's content (a damaged
//! line may hold anything); only file names, line numbers and what is wrong.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::chain::{self, GENESIS_PREV};
use super::read::LoggedEvent;

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events checked.
    pub events: u64,
    /// Files checked.
    pub files: usize,
    /// Distinct instances (chains).
    pub instances: usize,
    /// Earliest event time.
    pub first_time: Option<String>,
    /// Latest event time.
    pub last_time: Option<String>,
    /// One entry per instance, by instance id.
    pub chains: Vec<ChainSummary>,
}

/// One instance's chain as verified (also the report's per-instance chain row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainSummary {
    /// The instance id.
    pub instance: String,
    /// Seq of its first event in the files given.
    pub first_seq: u64,
    /// Seq of its last event.
    pub last_seq: u64,
    /// Hash of its last event: record it elsewhere to detect later truncation.
    pub last_hash: String,
    /// True if the first event starts the chain (`prev` all zeros); false if earlier
    /// files were not given (archived, or deleted).
    pub from_genesis: bool,
    /// True if its events are HMAC-protected.
    pub mac: bool,
}

/// The first place where the files do not form an intact chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The file.
    pub file: PathBuf,
    /// 1-based line number; 0 when the file as a whole is the problem.
    pub line: u64,
    /// What is wrong.
    pub kind: BreakKind,
}

/// Kinds of chain break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakKind {
    /// The line's content does not match its hash: it was edited (or, for HMAC lines, the
    /// key is not the one it was written with).
    EditedLine {
        /// The line's hash is an HMAC.
        keyed: bool,
    },
    /// `prev` is not the hash of this instance's previous event: lines deleted, inserted
    /// or reordered, or (at the first line of a file) a missing file before this one.
    BadLink {
        /// The break is at line 1 of a file.
        at_file_start: bool,
    },
    /// Links are intact but the sequence number skips or repeats.
    SeqGap {
        /// Previous seq + 1.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// A line in the middle of a file is not a flow event.
    Unparsable,
    /// The file's last line is incomplete or not an event.
    TruncatedTail,
    /// The event is HMAC-protected and no key was given.
    MacKeyNeeded,
    /// A key was given but this instance's chain is (from here on) only SHA-256: the HMAC
    /// protection was stripped.
    MacMissing,
    /// The file cannot be read.
    Unreadable {
        /// The OS error.
        error: String,
    },
}

impl fmt::Display for BreakKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakKind::EditedLine { keyed: false } => {
                f.write_str("event was changed after it was written (its hash does not match its content)")
            }
            BreakKind::EditedLine { keyed: true } => f.write_str(
                "event was changed after it was written, or the HMAC key is not the one it was written with",
            ),
            BreakKind::BadLink { at_file_start: true } => f.write_str(
                "missing file or lines before this one (`prev` is not the hash of the previous file's last event)",
            ),
            BreakKind::BadLink { at_file_start: false } => f.write_str(
                "`prev` is not the hash of the event before it: a line was deleted, inserted or moved",
            ),
            BreakKind::SeqGap { expected, found } => {
                write!(f, "sequence number {found} where {expected} was expected")
            }
            BreakKind::Unparsable => f.write_str("not a flow-log event"),
            BreakKind::TruncatedTail => {
                f.write_str("last line is incomplete (truncated write or cut file)")
            }
            BreakKind::MacKeyNeeded => {
                f.write_str("event is HMAC-protected; verifying it needs the flow-log HMAC key")
            }
            BreakKind::MacMissing => f.write_str(
                "an HMAC key was given but this event has only a plain SHA-256 hash (HMAC protection removed?)",
            ),
            BreakKind::Unreadable { error } => write!(f, "cannot read file: {error}"),
        }
    }
}

impl std::error::Error for ChainBreak {}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file.display(), self.kind),
            n => write!(f, "{}:{}: {}", self.file.display(), n, self.kind),
        }
    }
}

/// Per-instance progress.
struct Chain {
    first_seq: u64,
    last_seq: u64,
    last_hash: String,
    from_genesis: bool,
    mac_seen: bool,
    /// Where its last event is (index into the files, line), to point at when the whole
    /// chain lacks HMAC.
    last_at: (usize, u64),
}

#[derive(Default)]
struct State {
    chains: BTreeMap<String, Chain>,
    events: u64,
    first_time: Option<String>,
    last_time: Option<String>,
}

/// Checks `files` in the given order as one chain per instance. With `hmac_key`, HMAC
/// lines are checked with it, and each instance's chain must be HMAC-protected (plain
/// events allowed only before its first HMAC event, when HMAC was switched on).
pub fn verify(files: &[PathBuf], hmac_key: Option<&[u8; 32]>) -> Result<VerifyReport, ChainBreak> {
    let mut st = State::default();
    for (index, file) in files.iter().enumerate() {
        verify_file((index, file), hmac_key, &mut st)?;
    }
    if hmac_key.is_some() {
        if let Some(c) = st.chains.values().find(|c| !c.mac_seen) {
            return Err(ChainBreak {
                file: files[c.last_at.0].clone(),
                line: c.last_at.1,
                kind: BreakKind::MacMissing,
            });
        }
    }
    Ok(VerifyReport {
        events: st.events,
        files: files.len(),
        instances: st.chains.len(),
        first_time: st.first_time,
        last_time: st.last_time,
        chains: st
            .chains
            .into_iter()
            .map(|(instance, c)| ChainSummary {
                instance,
                first_seq: c.first_seq,
                last_seq: c.last_seq,
                last_hash: c.last_hash,
                from_genesis: c.from_genesis,
                mac: c.mac_seen,
            })
            .collect(),
    })
}

fn verify_file(
    (index, path): (usize, &Path),
    key: Option<&[u8; 32]>,
    st: &mut State,
) -> Result<(), ChainBreak> {
    let at = |line: u64, kind: BreakKind| ChainBreak {
        file: path.to_path_buf(),
        line,
        kind,
    };
    let unreadable = |line: u64, e: std::io::Error| {
        at(
            line,
            BreakKind::Unreadable {
                error: e.to_string(),
            },
        )
    };
    let file = File::open(path).map_err(|e| unreadable(0, e))?;
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        if reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| unreadable(line_no + 1, e))?
            == 0
        {
            return Ok(());
        }
        line_no += 1;
        if buf.pop() != Some(b'\n') {
            return Err(at(line_no, BreakKind::TruncatedTail));
        }
        match check_line(&buf, key, st, (index, line_no)) {
            Ok(()) => {}
            Err(BreakKind::Unparsable) => {
                let last = reader
                    .fill_buf()
                    .map_err(|e| unreadable(line_no + 1, e))?
                    .is_empty();
                let kind = if last {
                    BreakKind::TruncatedTail
                } else {
                    BreakKind::Unparsable
                };
                return Err(at(line_no, kind));
            }
            Err(kind) => return Err(at(line_no, kind)),
        }
    }
}

fn check_line(
    line: &[u8],
    key: Option<&[u8; 32]>,
    st: &mut State,
    (index, line_no): (usize, u64),
) -> Result<(), BreakKind> {
    let ev = LoggedEvent::parse(line).ok_or(BreakKind::Unparsable)?;
    let (canonical, stated) = chain::unseal(line).ok_or(BreakKind::Unparsable)?;
    if stated != ev.hash || !chain::is_hash(&ev.prev) {
        return Err(BreakKind::Unparsable);
    }
    let prior = st.chains.get(&ev.instance);
    let mac_key = match (ev.mac, key) {
        (true, None) => return Err(BreakKind::MacKeyNeeded),
        (true, Some(k)) => Some(k),
        (false, Some(_)) if prior.is_some_and(|c| c.mac_seen) => return Err(BreakKind::MacMissing),
        (false, _) => None,
    };
    if chain::digest(mac_key, &ev.prev, &canonical) != ev.hash {
        return Err(BreakKind::EditedLine { keyed: ev.mac });
    }
    if let Some(c) = prior {
        if ev.prev != c.last_hash {
            return Err(BreakKind::BadLink {
                at_file_start: line_no == 1,
            });
        }
        if Some(ev.seq) != c.last_seq.checked_add(1) {
            return Err(BreakKind::SeqGap {
                expected: c.last_seq.saturating_add(1),
                found: ev.seq,
            });
        }
    }
    let entry = st.chains.entry(ev.instance).or_insert_with(|| Chain {
        first_seq: ev.seq,
        last_seq: ev.seq,
        last_hash: String::new(),
        from_genesis: ev.prev == GENESIS_PREV,
        mac_seen: false,
        last_at: (index, line_no),
    });
    entry.last_seq = ev.seq;
    entry.last_hash = ev.hash;
    entry.mac_seen |= ev.mac;
    entry.last_at = (index, line_no);
    st.events += 1;
    if st.first_time.as_ref().is_none_or(|t| ev.time < *t) {
        st.first_time = Some(ev.time.clone());
    }
    if st.last_time.as_ref().is_none_or(|t| ev.time > *t) {
        st.last_time = Some(ev.time);
    }
    Ok(())
}
