//! The data path of an established session: two directions, each reading from one
//! transport, sealing or opening packets, writing to the other, and on end of stream
//! half-closing the destination.
//!
//! Buffers exist only while data flows. A direction whose source is idle holds none, so
//! an idle connection costs a few hundred bytes of state; a busy one grows its batch
//! (up to [`MAX_BATCH`] packets per read and per write call), so bulk transfers cost the
//! cryptography and few system calls.

use std::fmt;
use std::future::{Ready, poll_fn};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use spiped_transports::Transport;

use crate::session::offload::Offload;

use spiped_proto::framing::Deframer;
use spiped_proto::packet::{Opener, PAYLOAD_MAX, PacketError, Sealer, sealed_len};

/// Packets per batch when a direction wakes up: enough for any interactive exchange.
const MIN_BATCH: usize = 8;
/// Packets per batch at most (about 256 KiB): past this, bigger batches save nothing.
const MAX_BATCH: usize = 256;

/// Plaintext bytes a session has moved so far, per direction; kept up to date while it
/// runs, so a failed session still tells how far it got.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    /// Plaintext bytes sealed and sent to the encrypted side.
    pub sent: AtomicU64,
    /// Plaintext bytes opened and delivered to the plaintext side.
    pub received: AtomicU64,
    /// Directions that have reached their end of stream (0 to 2): one means the
    /// connection is half-closed.
    pub finished: AtomicU8,
}

/// Moves data both ways between a plaintext transport and an encrypted one until both
/// directions have ended; the first failure in either direction ends both at once.
/// Counts what it moves in `traffic`; large batches go off the loop as `offload` says.
pub(crate) async fn run(
    plain: &dyn Transport,
    encrypted: &dyn Transport,
    sealer: Sealer,
    opener: Opener,
    traffic: &Traffic,
    offload: &Offload,
) -> Result<(), PumpError> {
    // The directions' futures straight, with no wrapper each: this future lives as
    // long as the connection, and every layer would keep room of its own.
    let finished = &traffic.finished;
    tokio::try_join!(
        encrypt(plain, encrypted, sealer, &traffic.sent, finished, offload),
        decrypt(
            encrypted,
            plain,
            opener,
            &traffic.received,
            finished,
            offload
        ),
    )?;
    Ok(())
}

/// Why a direction stopped early. Any of these ends the whole connection.
#[derive(Debug)]
pub(crate) enum PumpError {
    /// Reading the source failed.
    Read(io::Error),
    /// Writing the destination failed.
    Write(io::Error),
    /// A packet from the peer failed authentication or was malformed.
    Packet(PacketError),
    /// The encrypted stream ended in the middle of a packet.
    Truncated,
    /// Passing an end of stream on (half-closing the destination) failed. A peer that
    /// went away is no failure (the transport says so); what is left either drops
    /// this connection (any error the network can cause) or is a bug ([`is_bug`]).
    HalfClose(io::Error),
}

/// Whether a half-close failed in a way only a bug can cause: the descriptor is not an
/// open socket of ours (EBADF, ENOTSOCK) or the call was malformed (EINVAL). C spiped
/// 1.6.4 aborts on these; a daemon here drops only the connection and says it is a
/// bug: aborting would drop every other connection and the listener for the fault of
/// one, while dropping the connection frees all of its state (socket, buffers, keys).
fn is_bug(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK)
    )
}

impl fmt::Display for PumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PumpError::Read(e) => write!(f, "read failed: {}", crate::errors::describe(e)),
            PumpError::Write(e) => write!(f, "write failed: {}", crate::errors::describe(e)),
            PumpError::Packet(e) => write!(f, "{e}"),
            PumpError::Truncated => f.write_str("encrypted stream ended in the middle of a packet"),
            PumpError::HalfClose(e) if is_bug(e) => write!(
                f,
                "half-close failed: internal error: {}; this is a bug, please report it",
                crate::errors::describe(e)
            ),
            PumpError::HalfClose(e) => {
                write!(f, "half-close failed: {}", crate::errors::describe(e))
            }
        }
    }
}

impl std::error::Error for PumpError {}

/// The batch size of one direction: grows while reads fill the buffer, and starts
/// small again after the source goes idle.
struct Batch {
    packets: usize,
}

impl Batch {
    fn new() -> Batch {
        Batch { packets: MIN_BATCH }
    }

    /// Adjusts the size after a read of `got` bytes into a buffer of `room`.
    fn after_read(&mut self, got: usize, room: usize) {
        if got == room {
            self.packets = (self.packets * 4).min(MAX_BATCH);
        }
    }
}

/// How long a direction with grown buffers keeps them while its source is quiet. A bulk
/// transfer often drains its socket for a moment; giving the memory back each time
/// would cost an allocation per batch and shrink the batch.
const IDLE_GRACE: Duration = Duration::from_millis(200);

/// Waits until `src` has something to read. A direction that stays quiet gives its
/// buffers back first (at once when they are small, after [`IDLE_GRACE`] when they
/// have grown), so an idle connection holds no buffers.
///
/// The grace timer is boxed: it exists only after a bulk transfer, while this future
/// lives as long as its connection and would otherwise keep room for it throughout.
async fn wait_readable(
    src: &dyn Transport,
    batch: &mut Batch,
    release: impl FnOnce(),
) -> io::Result<()> {
    // Readable already: no wait, and the buffers stay.
    if let Poll::Ready(r) = poll_fn(|cx| Poll::Ready(src.poll_readable(cx))).await {
        return r;
    }
    if batch.packets > MIN_BATCH {
        let mut grace = Box::pin(tokio::time::sleep(IDLE_GRACE));
        let early = poll_fn(|cx| match src.poll_readable(cx) {
            Poll::Ready(r) => Poll::Ready(Some(r)),
            Poll::Pending => grace.as_mut().poll(cx).map(|()| None),
        })
        .await;
        if let Some(r) = early {
            return r;
        }
    }
    release();
    *batch = Batch::new();
    poll_fn(|cx| src.poll_readable(cx)).await
}

/// Batches at least this large are sealed or opened on the blocking pool, so that bulk
/// transfers use every core while the event loop keeps serving other connections; a
/// smaller batch costs less than the hand-off and stays inline, keeping latency low.
const OFFLOAD_BYTES: usize = 32 * PAYLOAD_MAX;

/// Work on a batch that can move to another thread: it owns everything it touches.
trait Crunch: Send + 'static {
    /// Bytes of cryptography this batch needs.
    fn size(&self) -> usize;
}

/// [`crunch`]'s outcome, which yields the state with the work done: at once when it
/// was done here.
enum BatchWork<T> {
    Done(Ready<T>),
    /// Boxed: the pumps' futures live as long as their connection, idle or not, and an
    /// inline hand-off would keep room for it (and the state twice over) all that time.
    Pooled(Pin<Box<dyn Future<Output = T> + Send>>),
}

impl<T: Unpin> Future for BatchWork<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.get_mut() {
            BatchWork::Done(done) => Pin::new(done).poll(cx),
            BatchWork::Pooled(job) => job.as_mut().poll(cx),
        }
    }
}

/// Runs `work` on `state`: on the blocking pool when the batch is large and other
/// connections could use the event loop meanwhile; otherwise here and now, since alone
/// the hand-off would only add two thread wake-ups per batch.
fn crunch<T: Crunch>(offload: &Offload, mut state: T, work: fn(&mut T)) -> BatchWork<T> {
    let costly = state.size() >= OFFLOAD_BYTES;
    if !offload.pools(costly) {
        work(&mut state);
        return BatchWork::Done(std::future::ready(state));
    }
    BatchWork::Pooled(Box::pin(offload.run(costly, move || {
        work(&mut state);
        state
    })))
}

/// The sending direction's state: plaintext read, packets sealed from it.
struct Outbound {
    sealer: Sealer,
    plain: Vec<u8>,
    sealed: Vec<u8>,
    /// Bytes of `plain` to seal.
    len: usize,
}

impl Outbound {
    fn seal(&mut self) {
        // Resizing only zeroes bytes the buffer never had: the rest is overwritten.
        self.sealed.resize(sealed_len(self.len), 0);
        self.sealer
            .seal_into(&self.plain[..self.len], &mut self.sealed);
    }
}

impl Crunch for Outbound {
    fn size(&self) -> usize {
        self.len
    }
}

impl Crunch for Deframer {
    fn size(&self) -> usize {
        self.unopened()
    }
}

/// Copies plaintext from `src` to `dst` as sealed packets until `src` ends, then
/// half-closes `dst` and adds one to `finished`. Adds each batch's plaintext byte count
/// to `moved` once written, so the count is right even when the pump fails.
async fn encrypt(
    src: &dyn Transport,
    dst: &dyn Transport,
    sealer: Sealer,
    moved: &AtomicU64,
    finished: &AtomicU8,
    offload: &Offload,
) -> Result<(), PumpError> {
    let mut out = Outbound {
        sealer,
        plain: Vec::new(),
        sealed: Vec::new(),
        len: 0,
    };
    let mut batch = Batch::new();
    loop {
        wait_readable(src, &mut batch, || {
            out.plain = Vec::new();
            out.sealed = Vec::new();
        })
        .await
        .map_err(PumpError::Read)?;
        let room = batch.packets * PAYLOAD_MAX;
        out.plain.resize(room, 0);
        let n = src.read(&mut out.plain).await.map_err(PumpError::Read)?;
        if n == 0 {
            dst.shutdown_write().await.map_err(PumpError::HalfClose)?;
            finished.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        batch.after_read(n, room);
        out.len = n;
        out = crunch(offload, out, Outbound::seal).await;
        dst.write_all(&out.sealed).await.map_err(PumpError::Write)?;
        moved.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Copies packets from `src` to `dst` as plaintext until `src` ends, then half-closes
/// `dst` and adds one to `finished`. Every packet is authenticated before any of its
/// bytes are written; the first bad one stops the pump, so nothing after it is
/// delivered. Adds the plaintext bytes delivered to `moved` as they are written.
async fn decrypt(
    src: &dyn Transport,
    dst: &dyn Transport,
    opener: Opener,
    moved: &AtomicU64,
    finished: &AtomicU8,
    offload: &Offload,
) -> Result<(), PumpError> {
    let mut batch = Batch::new();
    let mut deframer = Deframer::new(opener, batch.packets);
    loop {
        if !deframer.mid_packet() {
            wait_readable(src, &mut batch, || deframer.release())
                .await
                .map_err(PumpError::Read)?;
        }
        deframer.set_batch(batch.packets);
        let spare = deframer.spare();
        let room = spare.len();
        let n = src.read(spare).await.map_err(PumpError::Read)?;
        if n == 0 {
            if deframer.mid_packet() {
                return Err(PumpError::Truncated);
            }
            dst.shutdown_write().await.map_err(PumpError::HalfClose)?;
            finished.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        batch.after_read(n, room);
        deframer.record(n);
        deframer = crunch(offload, deframer, Deframer::open).await;
        // Deliver the packets that authenticated before reporting a bad one. (`opened`
        // in a block: borrowed, it would otherwise keep room in this future for good.)
        let (delivered, error, mut slices) = {
            let opened = deframer.opened();
            let slices: Vec<IoSlice<'_>> = opened.payloads().map(IoSlice::new).collect();
            (opened.len(), opened.error, slices)
        };
        // Every byte, in as few calls as the destination allows. (Inline: a function's
        // future would keep room for its arguments twice over, for the connection's life.)
        let mut unwritten = &mut slices[..];
        while !unwritten.is_empty() {
            match dst.write_vectored(unwritten).await {
                Ok(0) => return Err(PumpError::Write(io::ErrorKind::WriteZero.into())),
                Ok(n) => IoSlice::advance_slices(&mut unwritten, n),
                Err(e) => return Err(PumpError::Write(e)),
            }
        }
        moved.fetch_add(delivered as u64, Ordering::Relaxed);
        if let Some(e) = error {
            return Err(PumpError::Packet(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use spiped_transports::event_loop::block_on;

    use super::*;

    /// A transport whose source has ended and whose half-close fails with `errno`.
    struct FailingHalfClose {
        errno: i32,
    }

    #[async_trait]
    impl Transport for FailingHalfClose {
        async fn read(&self, _buf: &mut [u8]) -> io::Result<usize> {
            Ok(0)
        }

        async fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            Ok(bufs.iter().map(|b| b.len()).sum())
        }

        async fn shutdown_write(&self) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(self.errno))
        }

        fn peer(&self) -> String {
            "test".to_owned()
        }
    }

    /// How a session between two such transports ends.
    fn ended_with(errno: i32) -> String {
        let t = FailingHalfClose { errno };
        let key = [7u8; 32];
        let traffic = Traffic::default();
        let outcome = block_on(async {
            let (sealer, opener) = (Sealer::new(&key, &key), Opener::new(&key, &key));
            run(&t, &t, sealer, opener, &traffic, &Offload::default()).await
        })
        .unwrap();
        match outcome {
            Err(e @ PumpError::HalfClose(_)) => e.to_string(),
            other => panic!("expected a failed half-close, got {other:?}"),
        }
    }

    /// As in spiped 1.6.4: a half-close that fails because the descriptor is no
    /// connected socket of ours is a bug, said so; any other failure is the network's.
    /// Either way the error ends only this session (the caller drops the connection).
    #[test]
    fn a_failed_half_close_ends_the_session_and_names_bugs() {
        for errno in [libc::EBADF, libc::EINVAL, libc::ENOTSOCK] {
            let msg = ended_with(errno);
            assert!(
                msg.starts_with("half-close failed: internal error: "),
                "{msg}"
            );
            assert!(msg.ends_with("; this is a bug, please report it"), "{msg}");
        }
        let msg = ended_with(libc::EPIPE);
        assert_eq!(msg, "half-close failed: Broken pipe");
    }
}
