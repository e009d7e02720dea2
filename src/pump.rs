//! One direction of a connection: read from one transport, seal or open packets, write
//! to the other; on end of stream, half-close the destination.
//!
//! Buffers exist only while data flows. A direction whose source is idle holds none, so
//! an idle connection costs a few hundred bytes of state; a busy one grows its batch
//! (up to [`MAX_BATCH`] packets per read and per write call), so bulk transfers cost the
//! cryptography and few system calls.

use std::fmt;
use std::io::{self, IoSlice};
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

/// Copies plaintext from `src` to `dst` as sealed packets until `src` ends, then
/// half-closes `dst`. Returns the plaintext byte count.
pub async fn encrypt(
    src: &dyn Transport,
    dst: &dyn Transport,
    mut sealer: Sealer,
) -> Result<u64, PumpError> {
    let mut plain = Vec::new();
    let mut sealed = Vec::new();
    let mut batch = Batch::new();
    let mut total = 0u64;
    loop {
        wait_readable(src, &mut batch, || {
            plain = Vec::new();
            sealed = Vec::new();
        })
        .await
        .map_err(PumpError::Read)?;
        let room = batch.packets * PAYLOAD_MAX;
        plain.resize(room, 0);
        let n = src.read(&mut plain).await.map_err(PumpError::Read)?;
        if n == 0 {
            dst.shutdown_write().await.map_err(PumpError::Write)?;
            return Ok(total);
        }
        batch.after_read(n, room);
        sealed.clear();
        sealer.seal_all(&plain[..n], &mut sealed);
        dst.write_all(&sealed).await.map_err(PumpError::Write)?;
        total += n as u64;
    }
}

/// Copies packets from `src` to `dst` as plaintext until `src` ends, then half-closes
/// `dst`. Every packet is authenticated before any of its bytes are written; the first
/// bad one stops the pump, so nothing after it is delivered. Returns the plaintext
/// byte count.
pub async fn decrypt(
    src: &dyn Transport,
    dst: &dyn Transport,
    mut opener: Opener,
) -> Result<u64, PumpError> {
    let mut buf = Vec::new();
    let mut filled = 0;
    let mut batch = Batch::new();
    let mut total = 0u64;
    let mut lens = Vec::new();
    loop {
        if filled == 0 {
            wait_readable(src, &mut batch, || {
                buf = Vec::new();
                lens = Vec::new();
            })
            .await
            .map_err(PumpError::Read)?;
        }
        let room = batch.packets * PACKET_LEN;
        buf.resize(room.max(filled + PACKET_LEN), 0);
        let n = src
            .read(&mut buf[filled..])
            .await
            .map_err(PumpError::Read)?;
        if n == 0 {
            if filled != 0 {
                return Err(PumpError::Truncated);
            }
            dst.shutdown_write().await.map_err(PumpError::Write)?;
            return Ok(total);
        }
        batch.after_read(filled + n, buf.len());
        filled += n;
        let whole = filled / PACKET_LEN * PACKET_LEN;
        lens.clear();
        let mut failure = None;
        for packet in buf[..whole].as_chunks_mut::<PACKET_LEN>().0 {
            match opener.open_in_place(packet) {
                Ok(len) => lens.push(len),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // Deliver the packets that authenticated before reporting a bad one.
        let opened = lens.len() * PACKET_LEN;
        let mut slices: Vec<IoSlice<'_>> = buf[..opened]
            .chunks_exact(PACKET_LEN)
            .zip(&lens)
            .filter(|(_, len)| **len > 0)
            .map(|(p, len)| IoSlice::new(&p[..*len]))
            .collect();
        total += lens.iter().sum::<usize>() as u64;
        write_all_vectored(dst, &mut slices)
            .await
            .map_err(PumpError::Write)?;
        if let Some(e) = failure {
            return Err(PumpError::Packet(e));
        }
        buf.copy_within(whole..filled, 0);
        filled -= whole;
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
