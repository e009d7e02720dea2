//! [`Timer`]: a future that completes at a deadline, driven by this thread's reactor.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::reactor::Reactor;

/// Completes once its deadline has passed (at most about a millisecond late while the
/// loop is idle). It must be polled on a thread inside [`super::block_on`]: the reactor
/// of that thread wakes it. Dropping it disarms it.
pub struct Timer {
    deadline: Instant,
    armed: Option<(Arc<Reactor>, u64)>,
}

impl Timer {
    /// A timer that completes `duration` from now.
    pub fn after(duration: Duration) -> Timer {
        // A duration too long to represent is as good as never: a century.
        let now = Instant::now();
        let deadline = now
            .checked_add(duration)
            .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
            .unwrap_or(now);
        Timer {
            deadline,
            armed: None,
        }
    }

    fn disarm(&mut self) {
        if let Some((reactor, id)) = self.armed.take() {
            reactor.cancel(self.deadline, id);
        }
    }
}

impl Future for Timer {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.disarm();
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        match &self.armed {
            Some((reactor, id)) => reactor.rearm(deadline, *id, cx.waker()),
            None => match Reactor::current() {
                Ok(reactor) => {
                    let id = reactor.arm(deadline, cx.waker());
                    self.armed = Some((reactor, id));
                }
                // Only without any event loop on this thread and no descriptor left
                // to make one: firing early is a failure a caller can see, never
                // firing would be a hang.
                Err(_) => return Poll::Ready(()),
            },
        }
        Poll::Pending
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.disarm();
    }
}
