//! One direction of a connection: read from one transport, seal or open packets, write
//! to the other; on end of stream, half-close the destination.
//!
//! Each read moves many packets' worth of bytes and each batch goes out in one write
//! call, so the per-packet cost is the cryptography and little else.

use std::fmt;
use std::io::{self, IoSlice};

use spiped_transports::Transport;

use crate::proto::framing::Deframer;
use crate::proto::packet::{Opener, PACKET_LEN, PAYLOAD_MAX, PacketError, Sealer};

/// Packets sealed or opened per batch.
const BATCH_PACKETS: usize = 64;

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

/// Copies plaintext from `src` to `dst` as sealed packets until `src` ends, then
/// half-closes `dst`. Returns the plaintext byte count.
pub async fn encrypt(
    src: &dyn Transport,
    dst: &dyn Transport,
    mut sealer: Sealer,
) -> Result<u64, PumpError> {
    let mut plain = vec![0u8; BATCH_PACKETS * PAYLOAD_MAX];
    let mut sealed = Vec::with_capacity(BATCH_PACKETS * PACKET_LEN);
    let mut total = 0u64;
    loop {
        let n = src.read(&mut plain).await.map_err(PumpError::Read)?;
        if n == 0 {
            dst.shutdown_write().await.map_err(PumpError::Write)?;
            return Ok(total);
        }
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
    opener: Opener,
) -> Result<u64, PumpError> {
    let mut deframer = Deframer::new(opener, BATCH_PACKETS);
    let mut total = 0u64;
    loop {
        let n = src.read(deframer.spare()).await.map_err(PumpError::Read)?;
        if n == 0 {
            if deframer.mid_packet() {
                return Err(PumpError::Truncated);
            }
            dst.shutdown_write().await.map_err(PumpError::Write)?;
            return Ok(total);
        }
        let opened = deframer.filled(n);
        // Deliver the packets that authenticated before reporting a bad one.
        let mut slices: Vec<IoSlice<'_>> = opened.payloads().map(IoSlice::new).collect();
        total += opened.len() as u64;
        write_all_vectored(dst, &mut slices)
            .await
            .map_err(PumpError::Write)?;
        if let Some(e) = opened.error {
            return Err(PumpError::Packet(e));
        }
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
