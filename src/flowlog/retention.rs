//! Deleting the flow log's rotated files once their events are older than
//! `flow_log.delete_after`: storage limitation for an audit trail that would otherwise
//! grow for ever.
//!
//! Part of the writer stage. It deletes only rotated files of this log (the names
//! [`files::rotated_path`] gives, in its directory), only from the oldest on, and only a
//! file whose last event is older than the limit: what stays is always the newer end of
//! the chain, which `audit verify` checks as such. It never deletes the current file, a
//! file it cannot date, or anything after one it keeps.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::files::{self, last_complete_line, line_info};
use super::time::rfc3339_millis;

/// Deletes the oldest rotated files of the log at `path` whose last event is older than
/// `now - keep`. Returns how many it deleted; a failure is logged and ends the round
/// (the next round tries again).
pub(crate) fn prune(path: &Path, keep: Duration, now: SystemTime) -> u64 {
    let Some(cutoff) = now.checked_sub(keep) else {
        return 0;
    };
    let mut deleted = 0;
    for file in files::files_in_order(path) {
        if file == path {
            break;
        }
        let Some(last) = last_event_time(&file) else {
            tracing::warn!(file = %file.display(), "flow log file has no readable last event; keeping it and every newer file");
            break;
        };
        if last >= cutoff {
            break;
        }
        match std::fs::remove_file(&file) {
            Ok(()) => {
                deleted += 1;
                tracing::info!(file = %file.display(), last_event = %rfc3339_millis(last), "flow log file past delete_after deleted");
            }
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot delete flow log file past delete_after; trying again later");
                break;
            }
        }
    }
    deleted
}

/// The `time` of the file's last complete event line.
fn last_event_time(file: &Path) -> Option<SystemTime> {
    let mut f = File::open(file).ok()?;
    let line = last_complete_line(&mut f).ok()??;
    line_info(&line)?.time
}

/// How often the writer looks for files to delete besides after each rotation: hourly,
/// or as often as the limit itself when that is shorter (never more than once a second).
pub(crate) fn every(keep: Duration) -> Duration {
    keep.clamp(Duration::from_secs(1), Duration::from_secs(3600))
}
