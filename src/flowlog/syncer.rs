//! Makes written flow-log lines durable on a thread of its own, so that the writer goes
//! on sealing and writing while the disk catches up.
//!
//! Part of the writer stage. The writer hands over a duplicate of the file's handle (an
//! `fdatasync` through it covers every byte written through any handle of the file) and
//! collects the outcome later: a failed sync counts like a failed write. Jobs run in the
//! order given, so a rotated file is durable before any sync of its successor reports.
//! Flush tickets and shutdown first wait for the jobs in flight ([`Syncer::settle`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// What the thread makes durable.
pub(crate) enum Job {
    /// Data written so far to the current file (its pages are dropped afterwards).
    Data(File),
    /// A file just renamed by rotation: its data and size, then the directory entry of
    /// the rename and of its successor.
    Rotated { file: File, dir: Option<PathBuf> },
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// A job has been taken and is not finished.
    running: bool,
    /// The first failure since the writer last collected one.
    failure: Option<io::Error>,
    stop: bool,
    /// Jobs started, for tests to see that a sync is under way.
    #[cfg(test)]
    started: u64,
    /// A test's order: the next job fails as a disk error would.
    #[cfg(test)]
    fail_next: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signals a new job or stop (to the thread) and an idle thread (to the writer).
    changed: Condvar,
    /// Lets a test hold a sync in flight, like a disk that stalls.
    #[cfg(test)]
    gate: Mutex<()>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The writer's end: submit jobs, collect failures, wait for quiet.
pub(crate) struct Syncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    pub(crate) fn start() -> io::Result<Syncer> {
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            changed: Condvar::new(),
            #[cfg(test)]
            gate: Mutex::new(()),
        });
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tarnkappe-flowsync".into())
            .spawn(move || run(&theirs))?;
        Ok(Syncer {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues a job; never waits for the disk.
    pub(crate) fn submit(&self, job: Job) {
        let mut st = self.shared.lock();
        st.jobs.push_back(job);
        drop(st);
        self.shared.changed.notify_all();
    }

    /// Whether a job is queued or running.
    pub(crate) fn busy(&self) -> bool {
        let st = self.shared.lock();
        st.running || !st.jobs.is_empty()
    }

    /// The first failure since the last call, if any.
    pub(crate) fn take_failure(&self) -> Option<io::Error> {
        self.shared.lock().failure.take()
    }

    /// Waits until every submitted job has finished; then as [`Syncer::take_failure`].
    pub(crate) fn settle(&self) -> Option<io::Error> {
        let mut st = self.shared.lock();
        while st.running || !st.jobs.is_empty() {
            st = self
                .shared
                .changed
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
        }
        st.failure.take()
    }

    /// For tests, to hold and watch the thread after the syncer moved to the writer.
    #[cfg(test)]
    pub(crate) fn probe(&self) -> Probe {
        Probe(self.shared.clone())
    }
}

/// A test's view of the sync thread.
#[cfg(test)]
pub(crate) struct Probe(Arc<Shared>);

#[cfg(test)]
impl Probe {
    /// While the guard lives, a sync that starts waits before touching the disk.
    pub(crate) fn hold(&self) -> MutexGuard<'_, ()> {
        self.0.gate.lock().unwrap()
    }

    /// Jobs started so far.
    pub(crate) fn started(&self) -> u64 {
        self.0.lock().started
    }

    /// The next job reports a failure (after doing its work).
    pub(crate) fn fail_next(&self) {
        self.0.lock().fail_next = true;
    }
}

impl Drop for Syncer {
    /// Finishes the queued jobs, then stops the thread.
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(shared: &Shared) {
    let mut st = shared.lock();
    loop {
        let Some(job) = st.jobs.pop_front() else {
            if st.stop {
                return;
            }
            st = shared.changed.wait(st).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        st.running = true;
        #[cfg(test)]
        let injected = {
            st.started += 1;
            std::mem::take(&mut st.fail_next)
        };
        drop(st);
        #[cfg(test)]
        drop(shared.gate.lock());
        let outcome = perform(job);
        #[cfg(test)]
        let outcome = match injected {
            true => Err(io::Error::other("injected sync failure")),
            false => outcome,
        };
        st = shared.lock();
        st.running = false;
        if let Err(e) = outcome {
            st.failure.get_or_insert(e);
        }
        shared.changed.notify_all();
    }
}

fn perform(job: Job) -> io::Result<()> {
    match job {
        Job::Data(file) => {
            file.sync_data()?;
            forget_pages(&file);
        }
        Job::Rotated { file, dir } => {
            file.sync_all()?;
            forget_pages(&file);
            if let Some(dir) = dir {
                // Makes the rename and the new file's entry durable; no event depends
                // on it (both files hold their lines either way), so failure is ignored.
                let _ = File::open(dir).and_then(|d| d.sync_all());
            }
        }
    }
    Ok(())
}

/// The lines are on disk: their pages need not stay cached. A flow log is written once
/// and read rarely; dropping them keeps it from crowding out the host's useful cache, and
/// the next writes reuse the freed pages instead of claiming new memory (costly on
/// virtual machines).
pub(crate) fn forget_pages(file: &File) {
    #[cfg(target_os = "linux")]
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}
