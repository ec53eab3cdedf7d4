//! The flow log's handle: configuration, start-up (continuing an existing chain), and the
//! non-blocking `emit` the proxy calls once per exchange.
//!
//! Part of the writer stage. `emit` must never block, wait or allocate a file: it only
//! tries to enqueue. Nothing here may log an event's content or the HMAC key.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use zeroize::Zeroizing;

use super::chain::FieldHeads;
use super::event::{ConfigStr, FieldEvent, FlowEvent};
use super::files::{files_in_order, last_complete_line, line_info};
use super::sink::{Limits, Sink};
use super::syncer::Syncer;
use super::worker::{Link, Msg, Shared, Stamped, Worker};

/// What the proxy does while the flow log cannot be written (config `on_log_failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Rule routes answer 503 until the log is writable again.
    #[default]
    Reject,
    /// Keep serving; lost events are counted in `tarnkappe_flow_log_errors_total`.
    Continue,
}

/// Everything the writer needs; built by the config module.
pub struct FlowLogConfig {
    /// The current file; `-` writes to stdout (no rotation, chain starts afresh).
    pub path: PathBuf,
    /// Rotate before the file would grow past this many bytes; 0 = never by size.
    pub max_bytes: u64,
    /// Rotate once the file's first event is this old (checked on write); 0 = never by age.
    pub max_age: Duration,
    /// Events that may wait for the writer; more are counted as lost. At least 1.
    pub queue: usize,
    /// Stored for the proxy; see [`FlowLog::reject_when_unhealthy`].
    pub on_failure: OnFailure,
    /// With a key, `hash` is HMAC-SHA256 and each event says `"mac":true`.
    pub hmac_key: Option<Zeroizing<[u8; 32]>>,
    /// This proxy instance's id, written into every event.
    pub instance: ConfigStr,
    /// Delete rotated files whose last event is older than this; `None` keeps them all.
    pub delete_after: Option<Duration>,
}

impl FlowLogConfig {
    /// Default `max_bytes` (and the config's `rotate_size`): 64 MiB.
    pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;
    /// Default `max_age` (and the config's `rotate_every`): one day.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
    /// Default `queue` (and the config's): 6.4 s of a stalled disk at 41,000 exchanges
    /// a second. It takes memory only while events wait.
    pub const DEFAULT_QUEUE: usize = 262_144;
    /// Most events held for retrying while the target fails (fewer if `queue` is
    /// smaller): a failing disk then costs bounded memory however large the queue.
    pub const MAX_HELD: usize = 65_536;

    /// A config with the defaults above, rejecting on failure, without HMAC.
    pub fn new(path: impl Into<PathBuf>, instance: ConfigStr) -> FlowLogConfig {
        FlowLogConfig {
            path: path.into(),
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_age: Self::DEFAULT_MAX_AGE,
            queue: Self::DEFAULT_QUEUE,
            on_failure: OnFailure::Reject,
            hmac_key: None,
            instance,
            delete_after: None,
        }
    }
}

impl fmt::Debug for FlowLogConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowLogConfig")
            .field("path", &self.path)
            .field("max_bytes", &self.max_bytes)
            .field("max_age", &self.max_age)
            .field("queue", &self.queue)
            .field("on_failure", &self.on_failure)
            .field("hmac", &self.hmac_key.is_some())
            .field("instance", &self.instance)
            .finish()
    }
}

/// Why the flow log could not start.
#[derive(Debug, thiserror::Error)]
pub enum FlowLogError {
    /// The file or its directory cannot be created or opened for appending.
    #[error("flow log {}: cannot open for appending: {source}", path.display())]
    Open {
        /// The configured path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// An existing file cannot be read to continue its chain.
    #[error("flow log {}: cannot read its last event to continue the chain: {source}", path.display())]
    ReadTail {
        /// The file read.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The newest existing file ends in a line that is not a flow event.
    #[error("flow log {}: the last line is not a flow event, so the chain cannot continue; run `tarnkappe audit verify` on the files and move this one aside", path.display())]
    CorruptTail {
        /// The file whose last line is bad.
        path: PathBuf,
    },
    /// `queue` is 0.
    #[error("flow log: queue must hold at least one event")]
    ZeroQueue,
    /// The writer thread could not be started.
    #[error("flow log: cannot start the writer thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// The flow log: cheap to clone, one writer thread behind all clones.
#[derive(Clone)]
pub struct FlowLog {
    inner: Arc<Inner>,
}

struct Inner {
    /// Unbounded by itself: `Shared::queued` bounds it at `cap`, so that memory is
    /// taken only by events actually waiting, not reserved for the whole queue at start.
    tx: Sender<Msg>,
    cap: usize,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    on_failure: OnFailure,
    next_ticket: AtomicU64,
    path: PathBuf,
    #[cfg(test)]
    sync_probe: super::syncer::Probe,
}

impl fmt::Debug for FlowLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowLog")
            .field("path", &self.inner.path)
            .field("healthy", &self.healthy())
            .finish_non_exhaustive()
    }
}

impl FlowLog {
    /// Opens (creating the directory and file) the flow log, continues the chain of the
    /// newest existing file (seq and `prev`), and starts the writer thread. Fails if the
    /// file cannot be opened for appending or its last line is not an event.
    pub fn start(cfg: FlowLogConfig) -> Result<FlowLog, FlowLogError> {
        if cfg.queue == 0 {
            return Err(FlowLogError::ZeroQueue);
        }
        let sink = Sink::open(&cfg.path).map_err(|source| FlowLogError::Open {
            path: cfg.path.clone(),
            source,
        })?;
        let chain = resume_chain(&cfg.path)?;
        if chain.seq > 0 {
            tracing::info!(path = %cfg.path.display(), seq = chain.seq, "flow log continues its chain");
        }
        let shared = Arc::new(Shared::default());
        shared.healthy.store(true, Ordering::Relaxed);
        let (tx, rx) = channel();
        let syncer = Syncer::start().map_err(FlowLogError::Spawn)?;
        #[cfg(test)]
        let sync_probe = syncer.probe();
        let worker = Worker {
            path: cfg.path.clone(),
            limits: Limits {
                max_bytes: cfg.max_bytes,
                max_age: cfg.max_age,
            },
            key: cfg.hmac_key,
            instance: cfg.instance,
            sink: Some(sink),
            chain,
            pending: Default::default(),
            max_held: cfg.queue.min(FlowLogConfig::MAX_HELD),
            shared: shared.clone(),
            retry_at: None,
            dirty_since: None,
            prune_at: cfg.delete_after.map(|_| Instant::now()),
            delete_after: cfg.delete_after,
            syncer,
            buf: Vec::new(),
            heads: FieldHeads::default(),
        };
        let thread = std::thread::Builder::new()
            .name("tarnkappe-flowlog".into())
            .spawn(move || worker.run(rx))
            .map_err(FlowLogError::Spawn)?;
        Ok(FlowLog {
            inner: Arc::new(Inner {
                tx,
                cap: cfg.queue,
                shared,
                thread: Mutex::new(Some(thread)),
                on_failure: cfg.on_failure,
                next_ticket: AtomicU64::new(0),
                path: cfg.path,
                #[cfg(test)]
                sync_probe,
            }),
        })
    }

    /// Hands one event to the writer. Never blocks: if the queue is full or the writer is
    /// gone, the event is counted as lost and the log reports unhealthy.
    pub fn emit(&self, event: FlowEvent) {
        let inner = &*self.inner;
        let queued = &inner.shared.queued;
        if queued.fetch_add(1, Ordering::Relaxed) >= inner.cap {
            queued.fetch_sub(1, Ordering::Relaxed);
            inner.shared.count_lost(1);
            return;
        }
        let msg = Msg::Event(Stamped {
            at: SystemTime::now(),
            event,
        });
        if inner.tx.send(msg).is_err() {
            queued.fetch_sub(1, Ordering::Relaxed);
            inner.shared.count_lost(1);
        }
    }

    /// An empty list for an event's fields: one of written events when there is one,
    /// so that a busy proxy does not allocate one per exchange.
    pub fn field_list(&self) -> Vec<FieldEvent> {
        self.inner.shared.field_list()
    }

    /// False while the last write failed or since events were lost; true again after the
    /// next successful write.
    pub fn healthy(&self) -> bool {
        self.inner.shared.healthy.load(Ordering::Relaxed)
    }

    /// True when the config says to refuse (503) rule routes while the log is unhealthy.
    pub fn reject_when_unhealthy(&self) -> bool {
        self.inner.on_failure == OnFailure::Reject
    }

    /// `reject_when_unhealthy() && !healthy()`: whether the proxy must refuse now.
    pub fn must_refuse(&self) -> bool {
        self.reject_when_unhealthy() && !self.healthy()
    }

    /// Events written (for `tarnkappe_flow_log_events_total`).
    pub fn events_written(&self) -> u64 {
        self.inner.shared.written.load(Ordering::Relaxed)
    }

    /// Events lost: queue full, writer gone, or held too long by a failing target
    /// (for `tarnkappe_flow_log_errors_total`).
    pub fn errors(&self) -> u64 {
        self.inner.shared.lost.load(Ordering::Relaxed)
    }

    /// Rotated files deleted because their events were older than `delete_after`
    /// (for `tarnkappe_flow_log_files_deleted_total`).
    pub fn files_deleted(&self) -> u64 {
        self.inner.shared.files_deleted.load(Ordering::Relaxed)
    }

    /// Failed attempts to open, write, rotate or fsync the target. Events of a failed
    /// attempt are held and retried, so this can grow while `errors()` stays 0.
    pub fn write_failures(&self) -> u64 {
        self.inner.shared.write_failures.load(Ordering::Relaxed)
    }

    /// Waits until every event emitted before this call is written and fsync'd. False on
    /// timeout, or if the target is failing (events are then still held and retried).
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let ticket = self.inner.next_ticket.fetch_add(1, Ordering::Relaxed) + 1;
        // Control messages do not count against the queue's bound: they always fit.
        if self.inner.tx.send(Msg::Flush(ticket)).is_err() {
            return false;
        }
        let shared = &self.inner.shared;
        let mut st = shared.flush.lock().unwrap_or_else(|p| p.into_inner());
        while st.handled < ticket && !st.stopped {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = match shared.flushed.wait_timeout(st, left) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
        st.ok_upto >= ticket
    }

    /// Writes what is queued, fsyncs and stops the writer thread, waiting at most
    /// `timeout`. Events emitted later (through other clones) are counted as lost.
    pub fn shutdown(self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        if self.inner.tx.send(Msg::Shutdown).is_err() {
            tracing::error!(path = %self.inner.path.display(), "flow log writer was already gone at shutdown");
            return;
        }
        let shared = &self.inner.shared;
        let mut st = shared.flush.lock().unwrap_or_else(|p| p.into_inner());
        while !st.stopped {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::error!(path = %self.inner.path.display(), "flow log writer did not stop in time");
                return;
            }
            st = match shared.flushed.wait_timeout(st, left) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
        drop(st);
        let handle = self.inner.thread.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    #[cfg(test)]
    pub(crate) fn sync_probe(&self) -> &super::syncer::Probe {
        &self.inner.sync_probe
    }
}

/// The chain position to continue from: the last event of the newest file that has one.
fn resume_chain(path: &Path) -> Result<Link, FlowLogError> {
    for file in files_in_order(path).iter().rev() {
        let read_err = |source| FlowLogError::ReadTail {
            path: file.clone(),
            source,
        };
        // Only regular files hold a chain (a device such as /dev/null does not).
        if !std::fs::metadata(file).map_err(read_err)?.is_file() {
            continue;
        }
        let mut f = File::open(file).map_err(read_err)?;
        let Some(line) = last_complete_line(&mut f).map_err(read_err)? else {
            continue;
        };
        let info =
            line_info(&line).ok_or_else(|| FlowLogError::CorruptTail { path: file.clone() })?;
        return Ok(Link {
            seq: info.seq,
            prev: info.hash,
        });
    }
    Ok(Link::genesis())
}
