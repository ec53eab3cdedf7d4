//! Flow-log files on disk: rotated names, listing a file set in chain order, and reading
//! the first and last line of a file to continue its chain after a restart.
//!
//! Part of the writer stage. It must never delete or rewrite a complete line: the only
//! change it makes to an existing file is cutting an incomplete last line (see
//! [`cut_partial_tail`]).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

use super::{chain, time};

/// Lists a flow log's files in chain order: the rotated files
/// (`<stem>.<yyyymmddThhmmssZ>-<first seq>.jsonl`, same directory) oldest first, then the
/// current file at `path` if it exists. `"-"` (stdout) has no files.
pub fn files_in_order(path: &Path) -> Vec<PathBuf> {
    if path == Path::new("-") {
        return Vec::new();
    }
    let mut rotated = rotated_files(path);
    rotated.sort_by(|a, b| a.0.cmp(&b.0));
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    files
}

/// Sort key of a rotated file: start time, first seq, collision counter.
type RotKey = (String, u64, u64);

fn rotated_files(path: &Path) -> Vec<(RotKey, PathBuf)> {
    let (Some(dir), Some(prefix)) = (parent_dir(path), rotation_prefix(path)) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let key = parse_rotated(name.strip_prefix(&prefix)?)?;
            Some((key, e.path()))
        })
        .collect()
}

/// `TS-SEQ.jsonl` or `TS-SEQ-N.jsonl` after the `<stem>.` prefix.
fn parse_rotated(rest: &str) -> Option<RotKey> {
    let rest = rest.strip_suffix(".jsonl")?;
    let mut parts = rest.split('-');
    let ts = parts.next()?;
    let seq = parts.next()?;
    let n = parts.next().unwrap_or("0");
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let b = ts.as_bytes();
    let ts_ok =
        b.len() == 16 && b[8] == b'T' && b[15] == b'Z' && digits(&ts[..8]) && digits(&ts[9..15]);
    if !ts_ok || !digits(seq) || !digits(n) || parts.next().is_some() {
        return None;
    }
    Some((ts.to_string(), seq.parse().ok()?, n.parse().ok()?))
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> Option<PathBuf> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Some(PathBuf::from(".")),
        Some(p) => Some(p.to_path_buf()),
        None => None,
    }
}

fn rotation_prefix(path: &Path) -> Option<String> {
    Some(format!("{}.", path.file_stem()?.to_str()?))
}

/// A free name for the current file once rotated: it began at `started` with `first_seq`.
/// Never an existing file: a collision (only after a chain restarted) adds `-N`.
pub(crate) fn rotated_path(path: &Path, started: SystemTime, first_seq: u64) -> Option<PathBuf> {
    let dir = parent_dir(path)?;
    let prefix = rotation_prefix(path)?;
    let base = format!("{prefix}{}-{first_seq}", time::compact(started));
    (0..1000u32)
        .map(|n| match n {
            0 => dir.join(format!("{base}.jsonl")),
            n => dir.join(format!("{base}-{n}.jsonl")),
        })
        .find(|p| !p.exists())
}

/// The chain members of a line that the writer needs to continue after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineInfo {
    pub seq: u64,
    pub hash: String,
    pub time: Option<SystemTime>,
}

/// Reads `seq`, `hash` and `time` from one of our lines; `None` if it is not one.
pub(crate) fn line_info(line: &[u8]) -> Option<LineInfo> {
    #[derive(Deserialize)]
    struct Members {
        seq: u64,
        hash: String,
        time: String,
    }
    let m: Members = serde_json::from_slice(line).ok()?;
    chain::is_hash(&m.hash).then(|| LineInfo {
        seq: m.seq,
        time: time::parse_rfc3339(&m.time),
        hash: m.hash,
    })
}

/// The last line of `file` that ends in `\n` (without it), ignoring an incomplete tail.
pub(crate) fn last_complete_line(file: &mut File) -> io::Result<Option<Vec<u8>>> {
    let len = file.metadata()?.len();
    let mut window: u64 = 8 * 1024;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        file.by_ref().take(len - start).read_to_end(&mut buf)?;
        let Some(end) = buf.iter().rposition(|&c| c == b'\n') else {
            if start == 0 {
                return Ok(None);
            }
            window *= 2;
            continue;
        };
        match buf[..end].iter().rposition(|&c| c == b'\n') {
            Some(nl) => return Ok(Some(buf[nl + 1..end].to_vec())),
            None if start == 0 => return Ok(Some(buf[..end].to_vec())),
            None => window *= 2,
        }
    }
}

/// The first line of `file` if it is complete (without its `\n`).
pub(crate) fn first_line(file: &mut File) -> io::Result<Option<Vec<u8>>> {
    file.seek(SeekFrom::Start(0))?;
    let mut line = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(nl) = chunk[..n].iter().position(|&c| c == b'\n') {
            line.extend_from_slice(&chunk[..nl]);
            return Ok(Some(line));
        }
        line.extend_from_slice(&chunk[..n]);
    }
}

/// If `file` does not end in `\n`, cuts it back to just after its last `\n` and returns
/// how many bytes were cut. An incomplete last line is a write the process did not finish
/// (a crash, or a failed write whose rollback failed); appending after it would corrupt
/// the next event.
pub(crate) fn cut_partial_tail(file: &mut File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    let mut keep = len;
    let mut buf = vec![0u8; 8 * 1024];
    while keep > 0 {
        let start = keep.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(keep - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(nl) = chunk.iter().rposition(|&c| c == b'\n') {
            keep = start + nl as u64 + 1;
            break;
        }
        keep = start;
    }
    if keep < len {
        file.set_len(keep)?;
    }
    Ok(len - keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn lists_rotated_oldest_first_then_current() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flow.jsonl");
        for name in [
            "flow.20240102T000000Z-30.jsonl",
            "flow.20240101T000000Z-10.jsonl",
            "flow.20240101T000000Z-9.jsonl",
            "flow.20240101T000000Z-10-1.jsonl",
            "flow.jsonl",
            "flow.bak",
            "flow.2024-1.jsonl",
            "other.20240101T000000Z-1.jsonl",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let names: Vec<String> = files_in_order(&path)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "flow.20240101T000000Z-9.jsonl",
                "flow.20240101T000000Z-10.jsonl",
                "flow.20240101T000000Z-10-1.jsonl",
                "flow.20240102T000000Z-30.jsonl",
                "flow.jsonl",
            ]
        );
        let t = UNIX_EPOCH + Duration::from_secs(1_704_067_200);
        let next = rotated_path(&path, t, 10).unwrap();
        assert!(
            next.ends_with("flow.20240101T000000Z-10-2.jsonl"),
            "{next:?}"
        );
        assert!(files_in_order(Path::new("-")).is_empty());
    }

    #[test]
    fn reads_first_and_last_lines_and_cuts_partial_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.jsonl");
        let long = "x".repeat(20_000);
        std::fs::write(&path, format!("first\n{long}\nlast\npart")).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .unwrap();
        assert_eq!(first_line(&mut f).unwrap().unwrap(), b"first");
        assert_eq!(last_complete_line(&mut f).unwrap().unwrap(), b"last");
        assert_eq!(cut_partial_tail(&mut f).unwrap(), 4);
        assert_eq!(cut_partial_tail(&mut f).unwrap(), 0);
        f.write_all(b"more\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("\nlast\nmore\n"));

        std::fs::write(&path, format!("{long}\n")).unwrap();
        let mut f = File::open(&path).unwrap();
        assert_eq!(last_complete_line(&mut f).unwrap().unwrap().len(), 20_000);
        std::fs::write(&path, "no newline").unwrap();
        let mut f = File::open(&path).unwrap();
        assert_eq!(last_complete_line(&mut f).unwrap(), None);
        assert_eq!(first_line(&mut f).unwrap(), None);
    }
}
