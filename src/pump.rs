//! One direction of a connection: read from one transport, seal or open packets, write
//! to the other; on end of stream, half-close the destination.
//!
//! Buffers exist only while data flows. A direction whose source is idle holds none, so
//! an idle connection costs a few hundred bytes of state; a busy one grows its batch
//! (up to [`MAX_BATCH`] packets per read and per write call), so bulk transfers cost the
//! cryptography and few system calls.

use std::fmt;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_lite::future;
use spiped_transports::Transport;

use crate::proto::packet::{Opener, PACKET_LEN, PAYLOAD_MAX, PacketError, Sealer};

/// Packets per batch when a direction wakes up: enough for any interactive exchange.
const MIN_BATCH: usize = 8;
/// Packets per batch at most (about 256 KiB): past this, bigger batches save nothing.
const MAX_BATCH: usize = 256;

/// Why a direction stopped early. Any of these ends the whole connection.
#[derive(Debug)]
pub enum PumpError {
    /// Reading the source failed.
    Read(io::Error),
    /// Writing the destination failed.
    Write(io::Error),
    /// A packet from the peer failed authentication or was malformed.
    Packet(PacketError),
    /// The encrypted stream ended in the middle of a packet.
    Truncated,
}

impl fmt::Display for PumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PumpError::Read(e) => write!(f, "read failed: {}", crate::errors::describe(e)),
            PumpError::Write(e) => write!(f, "write failed: {}", crate::errors::describe(e)),
            PumpError::Packet(e) => write!(f, "{e}"),
            PumpError::Truncated => f.write_str("encrypted stream ended in the middle of a packet"),
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
async fn wait_readable(
    src: &dyn Transport,
    batch: &mut Batch,
    release: impl FnOnce(),
) -> io::Result<()> {
    let mut ready = src.readable();
    if let Some(r) = future::poll_once(&mut ready).await {
        return r;
    }
    if batch.packets > MIN_BATCH {
        let grace = async {
            smol::Timer::after(IDLE_GRACE).await;
            None
        };
        if let Some(r) = future::or(async { Some((&mut ready).await) }, grace).await {
            return r;
        }
    }
    release();
    *batch = Batch::new();
    ready.await
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

/// Runs `work` on `state`, on the blocking pool when the batch is large.
async fn crunch<T: Crunch>(mut state: T, work: fn(&mut T)) -> T {
    if state.size() < OFFLOAD_BYTES {
        work(&mut state);
        return state;
    }
    smol::unblock(move || {
        work(&mut state);
        state
    })
    .await
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
        self.sealed.clear();
        self.sealer
            .seal_all(&self.plain[..self.len], &mut self.sealed);
    }
}

impl Crunch for Outbound {
    fn size(&self) -> usize {
        self.len
    }
}

/// The receiving direction's state: packets read, opened in place.
struct Inbound {
    opener: Opener,
    buf: Vec<u8>,
    /// Bytes of `buf` that are whole packets, to open.
    whole: usize,
    /// Payload length of each packet opened.
    lens: Vec<usize>,
    /// Why opening stopped before `whole`, if it did.
    failure: Option<PacketError>,
}

impl Inbound {
    fn open(&mut self) {
        self.lens.clear();
        self.failure = None;
        for packet in self.buf[..self.whole].as_chunks_mut::<PACKET_LEN>().0 {
            match self.opener.open_in_place(packet) {
                Ok(len) => self.lens.push(len),
                Err(e) => {
                    self.failure = Some(e);
                    break;
                }
            }
        }
    }
}

impl Crunch for Inbound {
    fn size(&self) -> usize {
        self.whole
    }
}

/// Copies plaintext from `src` to `dst` as sealed packets until `src` ends, then
/// half-closes `dst`. Adds each batch's plaintext byte count to `moved` once written,
/// so the count is right even when the pump fails.
pub async fn encrypt(
    src: &dyn Transport,
    dst: &dyn Transport,
    sealer: Sealer,
    moved: &AtomicU64,
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
            dst.shutdown_write().await.map_err(PumpError::Write)?;
            return Ok(());
        }
        batch.after_read(n, room);
        out.len = n;
        out = crunch(out, Outbound::seal).await;
        dst.write_all(&out.sealed).await.map_err(PumpError::Write)?;
        moved.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Copies packets from `src` to `dst` as plaintext until `src` ends, then half-closes
/// `dst`. Every packet is authenticated before any of its bytes are written; the first
/// bad one stops the pump, so nothing after it is delivered. Adds the plaintext bytes
/// delivered to `moved` as they are written.
pub async fn decrypt(
    src: &dyn Transport,
    dst: &dyn Transport,
    opener: Opener,
    moved: &AtomicU64,
) -> Result<(), PumpError> {
    let mut inb = Inbound {
        opener,
        buf: Vec::new(),
        whole: 0,
        lens: Vec::new(),
        failure: None,
    };
    let mut filled = 0;
    let mut batch = Batch::new();
    loop {
        if filled == 0 {
            wait_readable(src, &mut batch, || {
                inb.buf = Vec::new();
                inb.lens = Vec::new();
            })
            .await
            .map_err(PumpError::Read)?;
        }
        let room = batch.packets * PACKET_LEN;
        inb.buf.resize(room.max(filled + PACKET_LEN), 0);
        let n = src
            .read(&mut inb.buf[filled..])
            .await
            .map_err(PumpError::Read)?;
        if n == 0 {
            if filled != 0 {
                return Err(PumpError::Truncated);
            }
            dst.shutdown_write().await.map_err(PumpError::Write)?;
            return Ok(());
        }
        batch.after_read(filled + n, inb.buf.len());
        filled += n;
        inb.whole = filled / PACKET_LEN * PACKET_LEN;
        inb = crunch(inb, Inbound::open).await;
        // Deliver the packets that authenticated before reporting a bad one.
        let opened = inb.lens.len() * PACKET_LEN;
        let mut slices: Vec<IoSlice<'_>> = inb.buf[..opened]
            .chunks_exact(PACKET_LEN)
            .zip(&inb.lens)
            .filter(|(_, len)| **len > 0)
            .map(|(p, len)| IoSlice::new(&p[..*len]))
            .collect();
        write_all_vectored(dst, &mut slices)
            .await
            .map_err(PumpError::Write)?;
        moved.fetch_add(inb.lens.iter().sum::<usize>() as u64, Ordering::Relaxed);
        if let Some(e) = inb.failure {
            return Err(PumpError::Packet(e));
        }
        inb.buf.copy_within(inb.whole..filled, 0);
        filled -= inb.whole;
    }
}

/// Writes every byte of `slices`, in as few calls as the destination allows.
async fn write_all_vectored(dst: &dyn Transport, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !slices.is_empty() {
        let n = dst.write_vectored(slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}
