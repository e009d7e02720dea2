//! [`Registered`]: a non-blocking descriptor registered with this thread's reactor, and
//! the loop that retries an operation until the descriptor is ready for it.

use std::future::poll_fn;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

use super::reactor::{READ, Reactor, Source, WRITE};

/// A non-blocking descriptor registered (once, edge-triggered) with the reactor of the
/// thread that created it; deregistered and closed together on drop.
pub(crate) struct Registered<T: AsFd> {
    io: T,
    source: Arc<Source>,
    reactor: Arc<Reactor>,
}

/// What the first operation may assume about a fresh registration.
#[derive(Clone, Copy)]
pub(crate) enum Initially {
    /// Try reading and writing at once (an accepted or listening socket): the first
    /// attempt is cheaper than the wait it may save.
    Ready,
    /// Wait for an event first (a socket whose `connect` is in progress).
    Waiting,
}

impl<T: AsFd> Registered<T> {
    /// Registers `io`, which must already be in non-blocking mode.
    pub(crate) fn new(io: T, initially: Initially) -> io::Result<Registered<T>> {
        let reactor = Reactor::current()?;
        let ready = match initially {
            Initially::Ready => READ | WRITE,
            Initially::Waiting => 0,
        };
        let source = reactor.register(io.as_fd(), ready)?;
        Ok(Registered {
            io,
            source,
            reactor,
        })
    }

    /// The descriptor, for operations that never block.
    pub(crate) fn get_ref(&self) -> &T {
        &self.io
    }

    /// Runs `op` once the descriptor is readable, again after each `WouldBlock`.
    /// `drained` says whether a result proves the socket has nothing more to read for
    /// now (a short read on a stream socket), which saves the `WouldBlock` attempt the
    /// edge-triggered registration would otherwise need.
    pub(crate) async fn read_with<R>(
        &self,
        op: impl FnMut(&T) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        self.attempt(READ, op, drained).await
    }

    /// Like [`Registered::read_with`] for writing; `full` says whether a result proves
    /// the send buffer full (a short write).
    pub(crate) async fn write_with<R>(
        &self,
        op: impl FnMut(&T) -> io::Result<R>,
        full: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        self.attempt(WRITE, op, full).await
    }

    /// Waits until the descriptor reports readiness to read, without reading.
    pub(crate) async fn readable(&self) {
        poll_fn(|cx| self.source.poll_ready(READ, cx)).await;
    }

    /// Waits until the descriptor reports readiness to write (a connect finished).
    pub(crate) async fn writable(&self) {
        poll_fn(|cx| self.source.poll_ready(WRITE, cx)).await;
    }

    async fn attempt<R>(
        &self,
        dir: u32,
        mut op: impl FnMut(&T) -> io::Result<R>,
        exhausted: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        loop {
            let seen = poll_fn(|cx| self.source.poll_ready(dir, cx)).await;
            match op(&self.io) {
                Ok(r) => {
                    if exhausted(&r) {
                        self.source.clear(seen, dir);
                    }
                    return Ok(r);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.source.clear(seen, dir),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl<T: AsFd> Drop for Registered<T> {
    fn drop(&mut self) {
        // `io` is dropped (closed) right after this, which is what takes it out of the
        // epoll set.
        self.reactor.deregister(&self.source);
    }
}
