//! The flow log's dedicated writer thread: takes events from the bounded queue, seals them
//! into the hash chain, writes, rotates, has the sync thread fsync, and retries a failed
//! target.
//!
//! It must never block the proxy (it owns the receiving end only), never give a sequence
//! number or chain link to an event that did not reach the file, and never drop an event
//! without counting it.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use zeroize::Zeroizing;

use super::chain::{self, FieldHeads, Header, GENESIS_PREV};
use super::event::{ConfigStr, FieldEvent, FlowEvent};
use super::retention;
use super::sink::{Limits, Sink};
use super::syncer::Syncer;
use super::time::Clock;

/// How often a failed target is retried when no event arrives to trigger it.
const RETRY_EVERY: Duration = Duration::from_millis(250);
/// Longest time written events stay without fsync.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Write out after this many held events even if more are queued.
const BATCH: usize = 512;
/// After a busy batch, let events gather this long before the next wake-up: senders
/// then only enqueue instead of waking a parked thread for every event.
const COALESCE: Duration = Duration::from_millis(5);
/// Largest single write.
const MAX_WRITE: usize = 1 << 20;

/// An event with the time it was emitted.
pub(crate) struct Stamped {
    pub at: SystemTime,
    pub event: FlowEvent,
}

/// What goes through the queue.
// Events are nearly every message: boxing them would cost an allocation on a worker and
// a free on the writer for each one, to save queue slots the size of one event.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Msg {
    /// Unboxed: no allocation on the worker and free on the writer thread per event (the
    /// queue's slots take a few hundred bytes each).
    Event(Stamped),
    /// Write and fsync everything before this, then report under this ticket.
    Flush(u64),
    Shutdown,
}

/// State shared between the handle and the thread.
#[derive(Default)]
pub(crate) struct Shared {
    pub healthy: AtomicBool,
    /// Events emitted and not yet taken by the writer: the queue's length, which `emit`
    /// keeps at most `queue`.
    pub queued: AtomicUsize,
    pub written: AtomicU64,
    pub lost: AtomicU64,
    pub write_failures: AtomicU64,
    /// Rotated files deleted as past `delete_after`.
    pub files_deleted: AtomicU64,
    pub flush: Mutex<FlushState>,
    pub flushed: Condvar,
    /// Emptied field lists of written events, for the next events to fill: an event's
    /// list is then neither allocated on a listener thread nor freed on the writer's,
    /// which costs both sides far more than its size suggests (the allocator's slow
    /// path, its locks, and cache lines moving between cores).
    pub spare: Mutex<Vec<Vec<FieldEvent>>>,
    /// Lets a test hold the thread still so that the queue fills up.
    #[cfg(test)]
    pub gate: Mutex<()>,
    /// Rounds in which the thread woke to a message, for tests of its coalescing.
    #[cfg(test)]
    pub rounds: AtomicU64,
}

/// Progress of flush requests, guarded by `Shared::flush`.
#[derive(Default)]
pub(crate) struct FlushState {
    /// Highest ticket the thread has answered.
    pub handled: u64,
    /// Highest ticket answered with everything written and synced.
    pub ok_upto: u64,
    /// The thread has finished.
    pub stopped: bool,
}

/// Most spare field lists kept; more are freed.
const SPARE: usize = 4096;

impl Shared {
    pub(crate) fn count_lost(&self, n: u64) {
        self.lost.fetch_add(n, Ordering::Relaxed);
        self.healthy.store(false, Ordering::Relaxed);
    }

    /// An empty field list, a spare one when there is one.
    pub(crate) fn field_list(&self) -> Vec<FieldEvent> {
        let spare = self.spare.lock().ok().and_then(|mut s| s.pop());
        spare.unwrap_or_default()
    }

    /// Keeps the emptied field lists of written events for later ones.
    fn recycle(&self, lists: impl Iterator<Item = Vec<FieldEvent>>) {
        let Ok(mut spare) = self.spare.lock() else {
            return;
        };
        for mut list in lists {
            if spare.len() >= SPARE {
                break;
            }
            list.clear();
            spare.push(list);
        }
    }
}

/// The last event that reached the file: the next one continues from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub seq: u64,
    pub prev: String,
}

impl Link {
    pub(crate) fn genesis() -> Link {
        Link {
            seq: 0,
            prev: GENESIS_PREV.to_string(),
        }
    }
}

/// The writer thread's state.
pub(crate) struct Worker {
    pub path: PathBuf,
    pub limits: Limits,
    pub key: Option<Zeroizing<[u8; 32]>>,
    pub instance: ConfigStr,
    pub sink: Option<Sink>,
    pub chain: Link,
    /// Events taken from the queue but not yet written; at most `max_held`.
    pub pending: VecDeque<Stamped>,
    /// The queue's bound, or `FlowLogConfig::MAX_HELD` if lower.
    pub max_held: usize,
    pub shared: Arc<Shared>,
    /// Set while the target fails (the last write or sync failed): when the next attempt
    /// is due, one a `RETRY_EVERY`, not one per arriving event, each of which would seal
    /// and try the whole backlog again. Also logs the transitions once, not per event.
    pub retry_at: Option<Instant>,
    /// Written but not yet handed to a sync since then.
    pub dirty_since: Option<Instant>,
    /// fsyncs on a thread of its own, so that a slow disk does not stop the writing.
    pub syncer: Syncer,
    /// Rotated files whose last event is older than this are deleted.
    pub delete_after: Option<Duration>,
    /// When to look for such files next (at start, after a rotation, and periodically).
    pub prune_at: Option<Instant>,
    /// The lines of the batch being written; kept between batches.
    pub buf: Vec<u8>,
    /// Field entries written so far, for the next events.
    pub heads: FieldHeads,
}

impl Worker {
    /// The thread's body; returns when shut down or when every handle is gone.
    pub(crate) fn run(mut self, rx: Receiver<Msg>) {
        loop {
            if self.prune_at.is_some_and(|t| t <= Instant::now()) {
                self.prune();
            }
            let wait = if !self.pending.is_empty() || self.syncer.busy() {
                // Retry the target, or learn soon how a sync in flight ended.
                Some(RETRY_EVERY)
            } else {
                self.dirty_since.map(|_| SYNC_EVERY)
            };
            let until_prune = self
                .prune_at
                .map(|t| t.saturating_duration_since(Instant::now()));
            let wait = match (wait, until_prune) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let first = match wait {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(t) => rx.recv_timeout(t),
            };
            let took = first.is_ok();
            #[cfg(test)]
            if took {
                self.shared.rounds.fetch_add(1, Ordering::Relaxed);
            }
            let mut stop = match first {
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            while !stop {
                match rx.try_recv() {
                    Ok(msg) => stop = self.handle(msg),
                    Err(_) => break,
                }
            }
            if stop {
                // Whatever was queued before the shutdown request is still written.
                while let Ok(msg) = rx.try_recv() {
                    self.handle(msg);
                }
                self.write_pending();
                return self.finish();
            }
            let wrote = self.shared.written.load(Ordering::Relaxed);
            if self.retry_due() {
                self.write_pending();
            }
            if let Some(e) = self.syncer.take_failure() {
                self.failed(&e);
            }
            if self.dirty_since.is_some_and(|t| t.elapsed() >= SYNC_EVERY) {
                self.sync_later();
            }
            // After a round that had work, let the next events gather instead of being
            // woken for each: also while the target fails and nothing gets written, when
            // a wake-up per event cost the listener threads a quarter of their throughput.
            if took || self.shared.written.load(Ordering::Relaxed) != wrote {
                std::thread::sleep(COALESCE);
            }
        }
    }

    /// Handles one message; true means stop.
    fn handle(&mut self, msg: Msg) -> bool {
        if let Msg::Event(_) = msg {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
        }
        #[cfg(test)]
        drop(self.shared.gate.lock());
        match msg {
            Msg::Event(ev) => {
                if self.pending.len() >= self.max_held.min(BATCH) && self.retry_due() {
                    self.write_pending();
                }
                // Still full only while the target fails: the backlog is bounded.
                if self.pending.len() >= self.max_held {
                    self.shared.count_lost(1);
                } else {
                    self.pending.push_back(ev);
                }
                false
            }
            Msg::Flush(ticket) => {
                self.write_pending();
                let ok = self.pending.is_empty() && self.sync().is_ok();
                self.answer(ticket, ok);
                false
            }
            Msg::Shutdown => true,
        }
    }

    fn answer(&self, ticket: u64, ok: bool) {
        let mut st = self.shared.flush.lock().unwrap_or_else(|p| p.into_inner());
        st.handled = st.handled.max(ticket);
        if ok {
            st.ok_upto = st.ok_upto.max(ticket);
        }
        self.shared.flushed.notify_all();
    }

    fn finish(mut self) {
        let _ = self.sync();
        if !self.pending.is_empty() {
            tracing::error!(path = %self.path.display(), lost = self.pending.len(), "flow log stopped with unwritten events");
            self.shared.count_lost(self.pending.len() as u64);
        }
        let mut st = self.shared.flush.lock().unwrap_or_else(|p| p.into_inner());
        st.stopped = true;
        self.shared.flushed.notify_all();
    }

    fn retry_due(&self) -> bool {
        self.retry_at.is_none_or(|at| Instant::now() >= at)
    }

    /// Writes every held event, or none of those it could not; retries a failed target.
    fn write_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        match self.try_write() {
            Ok(()) => {
                self.shared.healthy.store(true, Ordering::Relaxed);
                if self.retry_at.take().is_some() {
                    tracing::info!(path = %self.path.display(), "flow log writable again");
                }
            }
            Err(e) => self.failed(&e),
        }
    }

    fn failed(&mut self, e: &std::io::Error) {
        self.shared.write_failures.fetch_add(1, Ordering::Relaxed);
        self.shared.healthy.store(false, Ordering::Relaxed);
        let first = self.retry_at.is_none();
        self.retry_at = Some(Instant::now() + RETRY_EVERY);
        if let Some(mut sink) = self.sink.take() {
            // Whatever did reach the file should become durable before the handle closes.
            let _ = sink.sync();
        }
        self.dirty_since = None;
        if first {
            tracing::error!(path = %self.path.display(), error = %e, held = self.pending.len(), "flow log write failed; holding events and retrying");
        }
    }

    fn try_write(&mut self) -> std::io::Result<()> {
        // Checked on every write: an event written into a deleted file would be lost.
        // Coalescing keeps writes (and so these checks) to a few hundred a second.
        if self.sink.as_ref().is_some_and(|s| !s.still_current()) {
            tracing::warn!(path = %self.path.display(), "flow log file was deleted or replaced; creating it again");
            self.sink = None;
        }
        let sink = match self.sink.take() {
            Some(sink) => sink,
            None => Sink::open(&self.path)?,
        };
        let sink = self.sink.insert(sink);
        let now = SystemTime::now();
        let key = self.key.as_deref();
        let mut clock = Clock::default();
        while !self.pending.is_empty() {
            // One buffer for the life of the writer: a batch never allocates.
            let buf = &mut self.buf;
            buf.clear();
            let mut link = self.chain.clone();
            let mut count = 0;
            let mut rotate = false;
            for held in &self.pending {
                let head = Header {
                    time: clock.format(held.at),
                    seq: link.seq + 1,
                    instance: &self.instance,
                    prev: &link.prev,
                };
                let start = buf.len();
                let hash = chain::seal_into(buf, &held.event, &head, key, &mut self.heads);
                if sink.should_rotate(start, buf.len() - start, now, self.limits) {
                    buf.truncate(start);
                    rotate = true;
                    break;
                }
                link.seq += 1;
                link.prev.clear();
                link.prev
                    .push_str(std::str::from_utf8(&hash).unwrap_or_default());
                count += 1;
                if buf.len() >= MAX_WRITE {
                    break;
                }
            }
            if count > 0 {
                sink.write(buf, (self.pending[0].at, self.chain.seq + 1))?;
                let written = self.pending.drain(..count).map(|held| held.event.fields);
                self.shared.recycle(written);
                self.chain = link;
                self.shared
                    .written
                    .fetch_add(count as u64, Ordering::Relaxed);
                self.dirty_since.get_or_insert_with(Instant::now);
            }
            if rotate {
                if let Some(job) = sink.rotate(now)? {
                    self.syncer.submit(job);
                }
                self.dirty_since = None;
                if self.delete_after.is_some() {
                    // A rotated file may now be past the limit: look at the next round.
                    self.prune_at = Some(Instant::now());
                }
            }
        }
        Ok(())
    }

    /// Deletes the rotated files past `delete_after` and schedules the next look. First
    /// rotates a current file past `rotate_every` that no event has come to rotate: its
    /// events would otherwise outlive the limit in a quiet log.
    fn prune(&mut self) {
        let Some(keep) = self.delete_after else {
            self.prune_at = None;
            return;
        };
        if self.pending.is_empty() && self.retry_at.is_none() {
            self.rotate_if_old();
        }
        let deleted = retention::prune(&self.path, keep, SystemTime::now());
        self.shared
            .files_deleted
            .fetch_add(deleted, Ordering::Relaxed);
        self.prune_at = Some(Instant::now() + retention::every(keep));
    }

    fn rotate_if_old(&mut self) {
        let Some(sink) = self.sink.as_mut() else {
            return;
        };
        let now = SystemTime::now();
        if !sink.should_rotate(0, 0, now, self.limits) {
            return;
        }
        match sink.rotate(now) {
            Ok(job) => {
                if let Some(job) = job {
                    self.syncer.submit(job);
                }
                self.dirty_since = None;
            }
            // The next write opens the path again (see `FileSink::rotate`) and reports.
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot rotate the idle flow log file; trying again later")
            }
        }
    }

    /// Has the sync thread fsync what was written, unless it is still busy with an
    /// earlier sync (then the next round tries again).
    fn sync_later(&mut self) {
        if self.syncer.busy() {
            return;
        }
        let Some(sink) = self.sink.as_ref() else {
            return;
        };
        match sink.sync_job() {
            Some(Ok(job)) => {
                self.syncer.submit(job);
                self.dirty_since = None;
            }
            Some(Err(e)) => self.failed(&e),
            None => {
                let _ = self.sync();
            }
        }
    }

    /// Waits for the syncs in flight, then fsyncs what was written since, in line; a
    /// failure of either counts like a failed write.
    fn sync(&mut self) -> std::io::Result<()> {
        if let Some(e) = self.syncer.settle() {
            self.failed(&e);
            return Err(e);
        }
        if self.dirty_since.is_none() {
            return Ok(());
        }
        let Some(sink) = self.sink.as_mut() else {
            return Ok(());
        };
        match sink.sync() {
            Ok(()) => {
                self.dirty_since = None;
                Ok(())
            }
            Err(e) => {
                self.failed(&e);
                Err(e)
            }
        }
    }
}
