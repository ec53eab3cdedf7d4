//! A coarse timer for the deadlines every exchange sets and almost never reaches: the
//! wait for a request head, the wait for the upstream's answer, a rule route's body read.
//!
//! Each listener has one [`Wheel`]: a tick counter, a slab of armed deadlines behind a
//! mutex that only that listener's thread takes, and one task that counts a tick every
//! [`TICK`] and fires what is due. Arming is a read of the counter and a slab push,
//! disarming a slab pop, where tokio's timer reads the clock, takes the driver's lock,
//! links an entry into its wheel and unlinks it again: with two deadlines per exchange
//! that was about 6 % of the instructions of an exchange on a route without rules.
//! The price is precision: a deadline fires up to three ticks late, never early.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

/// How often a wheel counts a tick: deadlines are kept to within three of them.
pub const TICK: Duration = Duration::from_millis(50);

/// One listener's armed deadlines.
pub struct Wheel {
    /// When the wheel started.
    base: Instant,
    /// Ticks counted so far. A deadline armed between ticks `t` and `t + 1` for `n`
    /// ticks fires at tick `t + n + 2`: tokio schedules the ticks a [`TICK`] apart but
    /// may hand one to the task a few milliseconds late and the next on time, so the
    /// first interval after arming can be short; the ones after it add up to at least
    /// `n` ticks.
    ticks: AtomicU64,
    /// Nanoseconds from `base` to the latest tick: the clock hyper reads.
    ticked_at: AtomicU64,
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    entries: Vec<Entry>,
    /// Indexes of unarmed entries, for reuse.
    free: Vec<u32>,
}

struct Entry {
    /// Bumped whenever the entry is fired or disarmed, so that a key from before
    /// never reaches the entry's next use.
    generation: u32,
    /// The tick it is due at, and whom to wake then.
    armed: Option<(u64, Waker)>,
}

/// Names one arming of one entry.
#[derive(Clone, Copy)]
struct Key {
    index: u32,
    generation: u32,
}

impl Slots {
    fn arm(&mut self, due: u64, waker: Waker) -> Key {
        let index = self.free.pop().unwrap_or_else(|| {
            self.entries.push(Entry {
                generation: 0,
                armed: None,
            });
            // A listener never holds anywhere near 2^32 deadlines at once.
            u32::try_from(self.entries.len() - 1).unwrap_or(u32::MAX)
        });
        let entry = &mut self.entries[index as usize];
        entry.armed = Some((due, waker));
        Key {
            index,
            generation: entry.generation,
        }
    }

    /// The waker of `key`'s arming, while it is armed (neither fired nor disarmed).
    fn armed(&mut self, key: Key) -> Option<&mut Waker> {
        let entry = self.entries.get_mut(key.index as usize)?;
        if entry.generation != key.generation {
            return None;
        }
        entry.armed.as_mut().map(|(_, waker)| waker)
    }

    fn free(&mut self, index: usize) -> Option<Waker> {
        let entry = &mut self.entries[index];
        let (_, waker) = entry.armed.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        // `index` came from a u32.
        self.free.push(index as u32);
        Some(waker)
    }

    fn disarm(&mut self, key: Key) {
        if self.armed(key).is_some() {
            self.free(key.index as usize);
        }
    }

    /// Frees every entry due at tick `now` and hands out their wakers.
    fn fire(&mut self, now: u64, due: &mut Vec<Waker>) {
        for index in 0..self.entries.len() {
            if matches!(self.entries[index].armed, Some((at, _)) if at <= now) {
                due.extend(self.free(index));
            }
        }
    }
}

impl Wheel {
    /// A wheel, and the task that counts its ticks (spawned on the current runtime; it
    /// ends once the wheel and every sleep on it are gone).
    pub fn start() -> Arc<Wheel> {
        let wheel = Arc::new(Wheel {
            base: Instant::now(),
            ticks: AtomicU64::new(0),
            ticked_at: AtomicU64::new(0),
            slots: Mutex::new(Slots::default()),
        });
        tokio::spawn(tick(Arc::downgrade(&wheel)));
        wheel
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A deadline `limit` from now.
    fn deadline(&self, limit: Duration) -> Deadline {
        let ticks = limit.as_nanos().div_ceil(TICK.as_nanos());
        let ticks = u64::try_from(ticks).unwrap_or(u64::MAX / 2);
        Deadline {
            due: self.ticks.load(Ordering::Acquire).saturating_add(ticks + 2),
            state: State::Unarmed,
        }
    }

    /// The time of the latest tick.
    fn ticked_at(&self) -> Instant {
        self.base + Duration::from_nanos(self.ticked_at.load(Ordering::Relaxed))
    }

    fn fire(&self) {
        let nanos = self.base.elapsed().as_nanos();
        self.ticked_at
            .store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Relaxed);
        let now = self.ticks.fetch_add(1, Ordering::AcqRel) + 1;
        let mut due = Vec::new();
        self.lock().fire(now, &mut due);
        // Woken outside the lock: a woken task may arm again at once.
        for waker in due {
            waker.wake();
        }
    }

    /// `fut`, or None if it has not finished within `limit`.
    pub fn within<F: Future>(&self, limit: Duration, fut: F) -> Within<'_, F> {
        Within {
            wheel: self,
            deadline: self.deadline(limit),
            fut,
        }
    }
}

async fn tick(wheel: Weak<Wheel>) {
    let mut ticks = tokio::time::interval(TICK);
    // Late ticks push the next ones back, so that ticks stay at least TICK apart.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(wheel) = wheel.upgrade() else { return };
        wheel.fire();
    }
}

/// One deadline on a wheel.
struct Deadline {
    due: u64,
    state: State,
}

/// Where a deadline stands.
enum State {
    /// Not polled yet.
    Unarmed,
    /// Waiting in the wheel's entry named by the key.
    Armed(Key),
    /// Fired.
    Passed,
}

impl Deadline {
    fn poll(&mut self, wheel: &Wheel, cx: &mut Context<'_>) -> Poll<()> {
        let key = match self.state {
            State::Passed => return Poll::Ready(()),
            State::Unarmed => {
                let key = wheel.lock().arm(self.due, cx.waker().clone());
                self.state = State::Armed(key);
                return Poll::Pending;
            }
            State::Armed(key) => key,
        };
        match wheel.lock().armed(key) {
            Some(waker) => {
                if !waker.will_wake(cx.waker()) {
                    waker.clone_from(cx.waker());
                }
                Poll::Pending
            }
            // Only the wheel frees an entry while its key is held: it fired.
            None => {
                self.state = State::Passed;
                Poll::Ready(())
            }
        }
    }

    fn disarm(&mut self, wheel: &Wheel) {
        if let State::Armed(key) = self.state {
            self.state = State::Unarmed;
            wheel.lock().disarm(key);
        }
    }
}

pin_project_lite::pin_project! {
    /// A future with a deadline on a wheel; see [`Wheel::within`].
    pub struct Within<'a, F> {
        wheel: &'a Wheel,
        deadline: Deadline,
        #[pin]
        fut: F,
    }

    impl<F> PinnedDrop for Within<'_, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.deadline.disarm(this.wheel);
        }
    }
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Some(out));
        }
        this.deadline.poll(this.wheel, cx).map(|()| None)
    }
}

/// The wheel as hyper's timer (for the HTTP/1 header read timeout). Its clock is the
/// time of the wheel's latest tick, which hyper only uses to say when a sleep ends.
#[derive(Clone)]
pub struct HyperTimer(pub Arc<Wheel>);

impl HyperTimer {
    fn sleep_for(&self, limit: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Sleep {
            deadline: self.0.deadline(limit),
            wheel: self.0.clone(),
        })
    }
}

impl hyper::rt::Timer for HyperTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_for(duration)
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        // Measured from the latest tick, which is no later than now: never early.
        self.sleep_for(Instant::from_std(deadline).saturating_duration_since(self.0.ticked_at()))
    }

    fn now(&self) -> std::time::Instant {
        self.0.ticked_at().into_std()
    }
}

/// A sleep on a wheel, for hyper.
struct Sleep {
    wheel: Arc<Wheel>,
    deadline: Deadline,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.deadline.poll(&this.wheel, cx)
    }
}

impl hyper::rt::Sleep for Sleep {}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.deadline.disarm(&self.wheel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_after_the_deadline_within_three_ticks() {
        let wheel = Wheel::start();
        let started = Instant::now();
        let out = wheel
            .within(Duration::from_millis(120), std::future::pending::<()>())
            .await;
        assert!(out.is_none());
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(120), "{waited:?}");
        assert!(
            waited <= Duration::from_millis(120) + 3 * TICK,
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_future_done_in_time_wins_and_frees_its_entry() {
        let wheel = Wheel::start();
        let out = wheel
            .within(Duration::from_secs(5), async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                7
            })
            .await;
        assert_eq!(out, Some(7));
        let slots = wheel.lock();
        assert!(slots.entries.iter().all(|e| e.armed.is_none()));
        assert_eq!(slots.free.len(), slots.entries.len());
    }

    #[tokio::test(start_paused = true)]
    async fn entries_are_reused_and_stale_keys_ignored() {
        let wheel = Wheel::start();
        for _ in 0..100 {
            let out = wheel.within(Duration::from_secs(1), async {
                tokio::task::yield_now().await;
            });
            assert_eq!(out.await, Some(()));
        }
        assert_eq!(wheel.lock().entries.len(), 1);
        // A key of an earlier arming does not disarm the entry's next one.
        let waker = Waker::noop().clone();
        let old = wheel.lock().arm(1, waker.clone());
        wheel.lock().disarm(old);
        let new = wheel.lock().arm(9, waker);
        wheel.lock().disarm(old);
        assert!(wheel.lock().armed(new).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn hyper_sleeps_fire_and_reset() {
        use hyper::rt::Timer;
        let timer = HyperTimer(Wheel::start());
        let started = Instant::now();
        let mut sleep = timer.sleep(Duration::from_millis(300));
        let deadline = timer.now() + Duration::from_millis(100);
        timer.reset(&mut sleep, deadline);
        sleep.await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(
            waited <= Duration::from_millis(100) + 3 * TICK,
            "{waited:?}"
        );
    }
}
