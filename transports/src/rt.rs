//! The event loop that drives this crate's sockets: [`block_on`] runs a future on the
//! calling thread and waits for socket readiness and [`Timer`]s on that same thread.
//!
//! Why not async-io (smol's reactor): it re-arms a one-shot epoll registration for
//! every wait, re-programs a timerfd and re-arms its notifier on every `epoll_wait`, and
//! its helper thread takes the reactor over whenever the loop is busy, so that events
//! arrive on another thread and come back through futex hand-offs. Measured on the
//! `-f` connection path that was ~90 system calls per connection where the C spiped
//! makes ~34. This loop registers each socket once, edge-triggered, uses the
//! `epoll_wait` timeout for timers, and only signals its eventfd when a wake-up comes
//! from another thread (the blocking pool) while the loop sleeps.
//!
//! Sockets and timers belong to the thread that created them: they make progress only
//! while that thread is inside [`block_on`]; so do the tasks of an [`Executor`] run
//! there. Everything else of smol (the blocking pool, channels, async-io's own timers
//! and sockets) works unchanged inside it; async-io's sources are then driven by
//! async-io's helper thread.

mod executor;
mod reactor;
mod registered;
mod timer;

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

pub use executor::Executor;
pub(crate) use registered::{Initially, Registered};
pub use timer::Timer;

use reactor::Reactor;

/// Runs `future` to completion on this thread, driving this thread's sockets and timers
/// meanwhile. Fails only if the event loop cannot be set up or `epoll_wait` fails (out
/// of descriptors or memory), never because of one socket's errors.
pub fn block_on<T>(future: impl Future<Output = T>) -> io::Result<T> {
    let reactor = Reactor::current()?;
    let wake = Arc::new(LoopWake {
        woken: AtomicBool::new(true),
        reactor: reactor.clone(),
    });
    let waker = Waker::from(wake.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let mut turn = reactor::Turn::default();
    loop {
        if wake.woken.swap(false, Ordering::SeqCst)
            && let Poll::Ready(v) = future.as_mut().poll(&mut cx)
        {
            return Ok(v);
        }
        // Also when the future woke itself: events are collected (without waiting)
        // between two polls, so busy tasks cannot starve the sockets.
        reactor.turn(&wake.woken, &mut turn)?;
    }
}

/// The waker of [`block_on`]'s future: marks it for polling and, when the loop is
/// asleep in `epoll_wait` (only possible for a wake-up from another thread), rouses it.
struct LoopWake {
    woken: AtomicBool,
    reactor: Arc<Reactor>,
}

impl Wake for LoopWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::SeqCst) {
            self.reactor.rouse();
        }
    }
}

#[cfg(test)]
mod tests;
