//! Framing of the received packet stream: bytes arrive from the network in arbitrary
//! pieces; [`Deframer`] accumulates them and opens every whole packet in place.
//!
//! The driver reads straight into [`Deframer::spare`], reports the count with
//! [`Deframer::filled`] (or [`Deframer::record`], [`Deframer::open`] and
//! [`Deframer::opened`], when the cryptography should run elsewhere) and writes out the
//! [`Opened`] payloads, which borrow the deframer's own buffer: no byte is copied between
//! the read and the write, except for the fraction of a packet left over at the end of a
//! read, which moves to the front.

use super::packet::{Opener, PACKET_LEN, PacketError};

/// Accumulates received bytes and opens whole packets for one direction.
///
/// After the first bad packet it opens nothing more: every later call reports the same
/// error, so bytes that follow a bad packet can never be delivered. Its buffer is
/// allocated on first use, sized by [`Deframer::set_batch`], and can be given back
/// between bursts with [`Deframer::release`].
pub struct Deframer {
    opener: Opener,
    buf: Vec<u8>,
    /// Whole packets the buffer holds per read.
    batch: usize,
    /// Bytes of `buf` holding received data (opened packets first, then the rest).
    filled: usize,
    /// Leading bytes of `buf` holding packets opened since the last
    /// [`Deframer::spare`]; they are discarded by the next one.
    consumed: usize,
    /// Payload length of each packet in `buf[..consumed]`.
    lens: Vec<usize>,
    failure: Option<PacketError>,
}

/// The packets opened since the last [`Deframer::spare`], and why opening stopped
/// early if it did.
#[derive(Debug)]
pub struct Opened<'a> {
    packets: &'a [u8],
    lens: &'a [usize],
    /// The first bad packet, if one was met. Every payload here came before it and is
    /// authentic; the connection must be dropped once they are delivered.
    pub error: Option<PacketError>,
}

impl<'a> Opened<'a> {
    /// The payloads opened, in stream order (each 1 to 1024 bytes: an empty packet is
    /// an error).
    pub fn payloads(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        self.packets
            .chunks_exact(PACKET_LEN)
            .zip(self.lens)
            .map(|(p, len)| &p[..*len])
    }

    /// Total plaintext bytes across [`Opened::payloads`].
    pub fn len(&self) -> usize {
        self.lens.iter().sum()
    }

    /// True when no plaintext was opened.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Deframer {
    /// A deframer that opens packets with `opener`, holding up to `batch_packets` whole
    /// packets (at least one) per read.
    pub fn new(opener: Opener, batch_packets: usize) -> Deframer {
        Deframer {
            opener,
            buf: Vec::new(),
            batch: batch_packets.max(1),
            filled: 0,
            consumed: 0,
            lens: Vec::new(),
            failure: None,
        }
    }

    /// Changes how many whole packets (at least one) the next [`Deframer::spare`]
    /// makes room for.
    pub fn set_batch(&mut self, packets: usize) {
        self.batch = packets.max(1);
    }

    /// Where to read the next bytes: never empty (there is always room for at least
    /// the rest of one packet). Discards the packets handed out by the previous
    /// [`Deframer::filled`], so their payloads must have been written by now.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.failure.is_some() {
            // Nothing will be opened again; keep accepting (and dropping) bytes.
            self.filled = 0;
            self.consumed = 0;
            self.lens.clear();
        } else if self.consumed > 0 {
            self.buf.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
            self.lens.clear();
        }
        // Every whole packet has been opened and discarded, so less than one packet is
        // held and a batch of at least one packet always leaves room.
        self.buf.resize(self.batch * PACKET_LEN, 0);
        &mut self.buf[self.filled..]
    }

    /// Gives the buffer back if it holds nothing still needed (no part of a packet);
    /// the next [`Deframer::spare`] allocates afresh. For idle connections.
    pub fn release(&mut self) {
        if self.filled == self.consumed {
            self.buf = Vec::new();
            self.lens = Vec::new();
            self.filled = 0;
            self.consumed = 0;
        }
    }

    /// Takes note that `n` bytes were read into [`Deframer::spare`] (`n` beyond the
    /// spare room is clamped to it), without opening anything yet.
    pub fn record(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.buf.len());
    }

    /// Bytes of whole packets recorded but not yet opened: the work [`Deframer::open`]
    /// has to do.
    pub fn unopened(&self) -> usize {
        match self.failure {
            Some(_) => 0,
            None => self.filled / PACKET_LEN * PACKET_LEN - self.consumed,
        }
    }

    /// Opens every whole packet recorded so far, stopping at the first bad one.
    pub fn open(&mut self) {
        if self.failure.is_some() {
            return;
        }
        let whole = self.filled / PACKET_LEN * PACKET_LEN;
        let packets = self.buf[self.consumed..whole].as_chunks_mut().0;
        if let Err(e) = self.opener.open_batch(packets, &mut self.lens) {
            self.failure = Some(e);
        }
        self.consumed = self.lens.len() * PACKET_LEN;
    }

    /// Every packet opened since the last [`Deframer::spare`].
    pub fn opened(&self) -> Opened<'_> {
        Opened {
            packets: &self.buf[..self.consumed],
            lens: &self.lens,
            error: self.failure,
        }
    }

    /// [`Deframer::record`], [`Deframer::open`] and [`Deframer::opened`] in one call.
    pub fn filled(&mut self, n: usize) -> Opened<'_> {
        self.record(n);
        self.open();
        self.opened()
    }

    /// True when the bytes received so far end inside a packet: end of stream now
    /// would truncate it.
    pub fn mid_packet(&self) -> bool {
        self.filled > self.consumed
    }
}

impl core::fmt::Debug for Deframer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Deframer")
            .field("opener", &self.opener)
            .field("filled", &self.filled)
            .field("consumed", &self.consumed)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}
