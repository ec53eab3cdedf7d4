//! Graceful drain of one listener's connections. Each connection reads one flag when
//! its task is polled and is woken once when the drain starts; the listener then waits
//! until the last connection has ended. hyper-util's `GracefulShutdown` does the same
//! with a watch channel that every poll of every connection polls again, which cost
//! about 600 instructions per exchange.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::Notify;

/// A listener's connections, for draining them.
#[derive(Default)]
pub struct Drain {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    started: AtomicBool,
    /// The tasks of live connections, by slot; a freed slot is None and reused.
    wakers: Mutex<Vec<Option<Waker>>>,
    live: AtomicUsize,
    /// Told when the last connection ends after the drain started.
    all_ended: Notify,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<Waker>>> {
        self.wakers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drain {
    /// Counts a connection from its accept on: the drain waits for it even while it is
    /// still deciding its protocol, and until the ticket (or what it became) is dropped.
    pub fn ticket(&self) -> Ticket {
        self.inner.live.fetch_add(1, Ordering::AcqRel);
        Ticket {
            drain: self.inner.clone(),
        }
    }

    /// Starts the drain and resolves when every ticket has been dropped.
    pub async fn shutdown(&self) {
        self.inner.started.store(true, Ordering::Release);
        let wakers: Vec<Waker> = self
            .inner
            .lock()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for waker in wakers {
            waker.wake();
        }
        loop {
            let ended = self.inner.all_ended.notified();
            tokio::pin!(ended);
            // Registered before the count is read: a last connection ending in between
            // still wakes us.
            ended.as_mut().enable();
            if self.inner.live.load(Ordering::Acquire) == 0 {
                return;
            }
            ended.await;
        }
    }
}

/// A connection counted by a [`Drain`].
pub struct Ticket {
    drain: Arc<Inner>,
}

impl Ticket {
    /// Watches `conn`: once the drain starts it is asked to shut down gracefully.
    pub fn watch<C: GracefulConnection>(self, conn: C) -> Watched<C> {
        Watched {
            conn,
            ticket: self,
            slot: None,
            asked: false,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.drain.live.fetch_sub(1, Ordering::AcqRel) == 1
            && self.drain.started.load(Ordering::Acquire)
        {
            self.drain.all_ended.notify_waiters();
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection under a [`Drain`].
    pub struct Watched<C> {
        #[pin]
        conn: C,
        ticket: Ticket,
        // Where its task's waker sits in the drain's list, once registered.
        slot: Option<usize>,
        // Whether the connection was asked to shut down.
        asked: bool,
    }

    impl<C> PinnedDrop for Watched<C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(slot) = this.slot.take() {
                if let Some(entry) = this.ticket.drain.lock().get_mut(slot) {
                    *entry = None;
                }
            }
        }
    }
}

impl<C: GracefulConnection> Future for Watched<C> {
    type Output = Result<(), C::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !*this.asked {
            if this.slot.is_none() {
                // Once per connection: its task (and so its waker) stays the same.
                let mut wakers = this.ticket.drain.lock();
                let free = wakers.iter().position(Option::is_none);
                let slot = free.unwrap_or(wakers.len());
                if slot == wakers.len() {
                    wakers.push(None);
                }
                wakers[slot] = Some(cx.waker().clone());
                *this.slot = Some(slot);
            }
            // Read after registering: a drain starting in between is seen here.
            if this.ticket.drain.started.load(Ordering::Acquire) {
                *this.asked = true;
                this.conn.as_mut().graceful_shutdown();
            }
        }
        this.conn.poll(cx)
    }
}
