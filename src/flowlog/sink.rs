//! Where the writer thread puts sealed lines: a file (rotated by size and age) or stdout.
//!
//! Part of the writer stage. It must never leave half a line behind (a failed write is
//! rolled back), never rotate anything but a regular file (tests point it at `/dev/full`),
//! and never overwrite an existing file when rotating.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::files::{self, cut_partial_tail, first_line, line_info, parent_dir};
use super::syncer::{forget_pages, Job};

/// When a file is rotated; zero disables a limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_bytes: u64,
    pub max_age: Duration,
}

/// The output target.
pub(crate) enum Sink {
    Stdout,
    File(FileSink),
}

impl Sink {
    /// `-` is stdout; anything else a file, created (with its directory) if missing.
    pub(crate) fn open(path: &Path) -> io::Result<Sink> {
        if path == Path::new("-") {
            return Ok(Sink::Stdout);
        }
        FileSink::open(path).map(Sink::File)
    }

    /// False when the file at our path is gone or is another file (deleted, moved away):
    /// writing on would go into an unlinked file nobody can read.
    pub(crate) fn still_current(&self) -> bool {
        match self {
            Sink::Stdout => true,
            Sink::File(f) => f.still_current(),
        }
    }

    /// Whether the file must be rotated before `line_len` more bytes follow the
    /// `buffered` bytes not yet written.
    pub(crate) fn should_rotate(
        &self,
        buffered: usize,
        line_len: usize,
        now: SystemTime,
        limits: Limits,
    ) -> bool {
        match self {
            Sink::Stdout => false,
            Sink::File(f) => f.should_rotate(buffered as u64, line_len as u64, now, limits),
        }
    }

    /// Appends whole lines; `first` is the time and seq of the first of them.
    pub(crate) fn write(&mut self, buf: &[u8], first: (SystemTime, u64)) -> io::Result<()> {
        match self {
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(buf)?;
                out.flush()
            }
            Sink::File(f) => f.write(buf, first),
        }
    }

    /// Makes everything written so far durable, in line.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout => io::stdout().lock().flush(),
            Sink::File(f) => f.sync(),
        }
    }

    /// The same as a job for the sync thread, through a duplicate of the file's handle;
    /// `None` where there is nothing to wait for (stdout is flushed on each write,
    /// devices are not synced).
    pub(crate) fn sync_job(&self) -> Option<io::Result<Job>> {
        match self {
            Sink::File(f) if f.regular => Some(f.file.try_clone().map(Job::Data)),
            _ => None,
        }
    }

    /// Renames the current file to its rotated name and starts a new one at the path.
    /// Returns the renamed file's sync, for the sync thread: the writer goes on in the
    /// new file meanwhile.
    pub(crate) fn rotate(&mut self, now: SystemTime) -> io::Result<Option<Job>> {
        match self {
            Sink::Stdout => Ok(None),
            Sink::File(f) => f.rotate(now).map(Some),
        }
    }
}

/// An open flow-log file and what rotation needs to know about it.
pub(crate) struct FileSink {
    path: PathBuf,
    file: File,
    /// (device, inode), to notice the file being deleted or replaced.
    id: (u64, u64),
    /// Only regular files are rotated, cut and synced.
    regular: bool,
    /// Bytes in the file that end in a complete line.
    len: u64,
    /// Time and seq of the file's first event, once it has one.
    started: Option<SystemTime>,
    first_seq: Option<u64>,
}

impl FileSink {
    fn open(path: &Path) -> io::Result<FileSink> {
        if let Some(dir) = parent_dir(path) {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let meta = file.metadata()?;
        let mut sink = FileSink {
            path: path.to_path_buf(),
            id: (meta.dev(), meta.ino()),
            regular: meta.is_file(),
            len: 0,
            started: None,
            first_seq: None,
            file,
        };
        if sink.regular {
            let cut = cut_partial_tail(&mut sink.file)?;
            if cut > 0 {
                tracing::warn!(path = %path.display(), bytes = cut, "flow log ended in an incomplete line; cut it off");
            }
            sink.len = sink.file.metadata()?.len();
            let first = first_line(&mut sink.file)?.and_then(|l| line_info(&l));
            if let Some(info) = first {
                sink.started = info.time;
                sink.first_seq = Some(info.seq);
            }
        }
        Ok(sink)
    }

    fn still_current(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id)
    }

    fn should_rotate(&self, buffered: u64, line_len: u64, now: SystemTime, limits: Limits) -> bool {
        if !self.regular || self.len + buffered == 0 {
            return false;
        }
        let too_big = limits.max_bytes > 0 && self.len + buffered + line_len > limits.max_bytes;
        let too_old = self.len > 0
            && !limits.max_age.is_zero()
            && self
                .started
                .is_some_and(|s| now.duration_since(s).unwrap_or(Duration::ZERO) >= limits.max_age);
        too_big || too_old
    }

    fn write(&mut self, buf: &[u8], first: (SystemTime, u64)) -> io::Result<()> {
        if let Err(e) = self.file.write_all(buf) {
            if self.regular {
                // Best effort: a half-written line would break every later event's line.
                // If this fails too, the next open cuts the tail.
                let _ = self.file.set_len(self.len);
            }
            return Err(e);
        }
        if self.len == 0 || self.started.is_none() {
            self.started = Some(first.0);
            self.first_seq = Some(first.1);
        }
        self.len += buf.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        if self.regular {
            self.file.sync_data()?;
            forget_pages(&self.file);
        }
        Ok(())
    }

    /// If opening the new file fails, `self` stays the renamed file (no longer current,
    /// so the next write opens the path again; its failure path syncs this one).
    fn rotate(&mut self, now: SystemTime) -> io::Result<Job> {
        let started = self.started.unwrap_or(now);
        let target = files::rotated_path(&self.path, started, self.first_seq.unwrap_or(0))
            .ok_or_else(|| io::Error::other("no free name for the rotated flow-log file"))?;
        fs::rename(&self.path, &target)?;
        let old = std::mem::replace(self, FileSink::open(&self.path)?);
        tracing::info!(rotated = %target.display(), "flow log rotated");
        Ok(Job::Rotated {
            file: old.file,
            dir: parent_dir(&self.path),
        })
    }
}
