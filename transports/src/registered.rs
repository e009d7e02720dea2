//! [`Registered`]: a non-blocking socket registered with the event loop's reactor, and
//! the loop that retries an operation until the socket is ready for it.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker, ready};

use socket2::Socket;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A non-blocking socket registered once, edge-triggered, with the reactor of the tokio
/// runtime it was created in; deregistered (`EPOLL_CTL_DEL`) before it is closed, so a
/// descriptor that lives on elsewhere (an inherited listener that systemd also holds)
/// can never report events into a later registration.
///
/// tokio's `TcpStream::try_read` forgets readiness only on `WouldBlock`; the loop here
/// also forgets it after a read or write that proves the socket drained or full, which
/// saves a system call per wait.
///
/// What tokio does not know yet is tried before waiting: the first read, and writes
/// until one finds the socket full. tokio learns of a new socket's readiness only at
/// the reactor's next turn, so waiting would hold a server's handshake messages (and
/// the read of a client's first message, usually there already) for a turn of the
/// loop each; and a socket's send buffer is rarely full.
pub(crate) struct Registered {
    io: AsyncFd<Socket>,
    /// Per direction (read, write): whether to try before tokio reports readiness.
    hopeful: [AtomicBool; 2],
}

impl Registered {
    /// Registers `socket`, which must already be in non-blocking mode. Panics outside
    /// the event loop ([`crate::event_loop::block_on`]): a socket no reactor drives
    /// would hang instead.
    pub(crate) fn new(socket: Socket) -> io::Result<Registered> {
        let both = Interest::READABLE | Interest::WRITABLE;
        // SAFETY: a `Socket` owns its descriptor: it is open from the socket's creation
        // until the socket is dropped, which happens only when the `AsyncFd` (the sole
        // owner here) drops it after deregistering, and `as_raw_fd` always returns that
        // same descriptor. Nothing here hands out `&mut Socket`, so it is never swapped.
        let io = unsafe { AsyncFd::register_with_interest(socket, both) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Registered {
            io,
            hopeful: [AtomicBool::new(true), AtomicBool::new(true)],
        })
    }

    /// The socket, for operations that never block.
    pub(crate) fn get_ref(&self) -> &Socket {
        self.io.get_ref()
    }

    /// Runs `op` once the socket is readable, again after each `WouldBlock`. `drained`
    /// says whether a result proves the socket has nothing more to read for now (a
    /// short read on a stream socket), which saves the `WouldBlock` attempt the
    /// edge-triggered registration would otherwise need.
    pub(crate) async fn read_with<R>(
        &self,
        op: impl FnMut(&Socket) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        self.attempt(Interest::READABLE, op, drained).await
    }

    /// Like [`Registered::read_with`] for writing; `full` says whether a result proves
    /// the send buffer full (a short write).
    pub(crate) async fn write_with<R>(
        &self,
        op: impl FnMut(&Socket) -> io::Result<R>,
        full: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        self.attempt(Interest::WRITABLE, op, full).await
    }

    async fn attempt<R>(
        &self,
        interest: Interest,
        mut op: impl FnMut(&Socket) -> io::Result<R>,
        exhausted: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        let write = interest == Interest::WRITABLE;
        let hopeful = &self.hopeful[usize::from(write)];
        loop {
            // Untried only while tokio holds no readiness of its own for this direction:
            // an attempt without a guard could not clear a readiness it used up.
            let mut ready = if hopeful.load(Ordering::Relaxed) && !self.reported(write) {
                None
            } else {
                Some(self.io.ready(interest).await?)
            };
            let result = op(self.io.get_ref());
            let spent = match &result {
                Ok(r) => exhausted(r),
                Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            };
            // A read is tried unasked once; writes until one finds the socket full.
            if spent || !write {
                hopeful.store(false, Ordering::Relaxed);
            }
            // Clearing forgets only the readiness this guard saw (and never an end of
            // stream or hang-up), so an event after the attempt is not lost.
            if let (true, Some(ready)) = (spent, ready.as_mut()) {
                ready.clear_ready();
            }
            match result {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                r => return r,
            }
        }
    }

    /// Whether tokio holds readiness to write (`write`) or to read, without waiting;
    /// the guard is dropped uncleared.
    fn reported(&self, write: bool) -> bool {
        // A waker that does nothing: if not ready, it takes the direction's slot only
        // until whoever waits next puts theirs there.
        let mut cx = Context::from_waker(Waker::noop());
        if write {
            self.io.poll_write_ready(&mut cx).is_ready()
        } else {
            self.io.poll_read_ready(&mut cx).is_ready()
        }
    }

    /// Ready once the socket reports readiness to read, without reading; until then
    /// `cx` is woken when it does (one waker slot per socket: one reader at a time).
    pub(crate) fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The guard is dropped without clearing: the next read still sees the readiness.
        self.io.poll_read_ready(cx).map_ok(drop)
    }

    /// Runs `op` once tokio reports the socket ready to write (`write`) or to read,
    /// again after each `WouldBlock`; until then `cx` is woken when it is. The poll form
    /// of [`Registered::read_with`] and [`Registered::write_with`], for code that drives
    /// a socket through tokio's `AsyncRead` and `AsyncWrite` (an HTTP server): it waits
    /// for readiness every time, which costs a turn of the loop per new socket, nothing
    /// that matters off the data path.
    pub(crate) fn poll_with<R>(
        &self,
        cx: &mut Context<'_>,
        write: bool,
        mut op: impl FnMut(&Socket) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            let mut guard = ready!(if write {
                self.io.poll_write_ready(cx)
            } else {
                self.io.poll_read_ready(cx)
            })?;
            // A `WouldBlock` clears the readiness this guard saw, and the loop waits anew.
            if let Ok(r) = guard.try_io(|fd| op(fd.get_ref())) {
                return Poll::Ready(r);
            }
        }
    }

    /// Waits until the socket reports readiness to write (a connect finished).
    pub(crate) async fn writable(&self) -> io::Result<()> {
        let _ready = self.io.writable().await?;
        Ok(())
    }
}
