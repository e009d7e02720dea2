//! Data packets: sealing plaintext into fixed-size 1060-byte packets and opening them.
//!
//! ```text
//! padded = M || zeros(1024 - len(M)) || be32(len(M))      (1028 bytes)
//! ct     = AES-256-CTR(E, counter block = be64(n) || be64(block#), padded)
//! packet = ct || HMAC-SHA256(H, ct || be64(n))            (1060 bytes)
//! ```
//!
//! Each direction keeps its own packet number `n`, so a replayed, dropped or reordered
//! packet fails authentication.
//!
//! Key material: the AES-256 key schedule is expanded once per direction and the HMAC key
//! is absorbed once (inner and outer pad states, see the `mac` module); per packet we only
//! reset the CTR counter block and copy the pre-keyed states. The batch calls
//! ([`Sealer::seal_into`], [`Opener::open_batch`]) MAC packets two at a time, which runs
//! the two-lane SHA kernel where the CPU has one. With the `zeroize` features this crate
//! enables on `aes` and `ctr`, the AES round keys and the CTR counter state are wiped when
//! dropped, as are the HMAC states. The caller's plaintext buffers are the caller's to
//! wipe.

use core::fmt;

use aes::Aes256;
use aes::cipher::array::Array;
use aes::cipher::consts::{U16, U32, U64};
use aes::cipher::{Block, InOutBuf, InnerIvInit, Iv, KeyInit, SetIvState, StreamCipherCore};
use ctr::CtrCore;
use ctr::flavors::Ctr64BE;
use hmac::Hmac;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::mac::MacKey;

/// Largest plaintext a single packet carries.
pub const PAYLOAD_MAX: usize = 1024;

/// Length of the encrypted part: payload area plus the 4-byte length field.
const PADDED_LEN: usize = PAYLOAD_MAX + 4;

/// Length of every packet on the wire: 1028 bytes of ciphertext and a 32-byte MAC.
pub const PACKET_LEN: usize = PADDED_LEN + 32;

/// AES-256 in CTR mode with a 64-bit big-endian block counter in the low half of the
/// counter block; the high half carries the packet number.
type PacketCtr = CtrCore<Aes256, Ctr64BE>;

/// An HMAC-SHA256 state with `key` already absorbed.
///
/// HMAC zero-pads keys shorter than the 64-byte SHA-256 block, so keying with the padded
/// block is the same function and goes through the infallible `KeyInit::new`.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn hmac_sha256(key: &[u8; 32]) -> Hmac<Sha256> {
    // Built in place, not via `Array::from([u8; 64])`, whose by-value temporary copy of
    // the key would be left on the stack unwiped.
    let mut block = Array::<u8, U64>::default();
    block[..32].copy_from_slice(key);
    let mac = <Hmac<Sha256> as KeyInit>::new(&block);
    block.zeroize();
    mac
}

/// Builds the CTR state for one direction, expanding the AES key schedule.
fn packet_ctr(enc: &[u8; 32]) -> PacketCtr {
    // Built in place, as in hmac_sha256: `Array::from(*enc)` would leave a by-value
    // temporary copy of the key on the stack.
    let mut key = Array::<u8, U32>::default();
    key.copy_from_slice(enc);
    let ctr = PacketCtr::inner_iv_init(Aes256::new(&key), &Iv::<PacketCtr>::default());
    key.zeroize();
    ctr
}

/// XORs the keystream of packet `pnum` into `buf` (at most 2^64 blocks; we use 65).
fn apply_keystream(ctr: &mut PacketCtr, pnum: u64, buf: &mut [u8]) {
    set_packet_number(ctr, pnum);
    apply_keystream_rest(ctr, buf);
}

/// Starts the keystream of packet `pnum` (block 0).
fn set_packet_number(ctr: &mut PacketCtr, pnum: u64) {
    let mut iv = Iv::<PacketCtr>::default();
    iv[..8].copy_from_slice(&pnum.to_be_bytes());
    // Reusing the expanded key schedule: only the counter block changes per packet.
    ctr.set_iv(&iv);
}

/// XORs the keystream from the counter's current block on into `buf`.
fn apply_keystream_rest(ctr: &mut PacketCtr, buf: &mut [u8]) {
    let (blocks, tail) = Array::<u8, U16>::slice_as_chunks_mut(buf);
    ctr.apply_keystream_blocks(blocks);
    if !tail.is_empty() {
        let mut ks = Block::<Aes256>::default();
        ctr.write_keystream_block(&mut ks);
        tail.iter_mut().zip(ks.iter()).for_each(|(b, k)| *b ^= k);
        ks.zeroize();
    }
}

/// Lays out `payload` (1..=1024 bytes; see [`Sealer::seal`]) as the 1028-byte `body` of
/// packet `pnum` and encrypts it.
fn encrypt(ctr: &mut PacketCtr, pnum: u64, payload: &[u8], body: &mut [u8]) {
    debug_assert!(
        (1..=PAYLOAD_MAX).contains(&payload.len()),
        "payload length {} not in 1..=1024",
        payload.len()
    );
    let len = payload.len().min(PAYLOAD_MAX);
    // Whole blocks of the payload are encrypted on their way into the packet (one pass
    // instead of a copy and an in-place pass); the rest is laid out first.
    let (blocks, _) = Array::<u8, U16>::slice_as_chunks(&payload[..len]);
    let direct = blocks.len() * 16;
    body[direct..len].copy_from_slice(&payload[direct..len]);
    body[len..PAYLOAD_MAX].fill(0);
    // len <= 1024, so the cast is lossless.
    body[PAYLOAD_MAX..].copy_from_slice(&(len as u32).to_be_bytes());
    set_packet_number(ctr, pnum);
    let (into, _) = Array::<u8, U16>::slice_as_chunks_mut(&mut body[..direct]);
    // Equal lengths by construction: `direct` bytes on both sides.
    if let Ok(blocks) = InOutBuf::new(blocks, into) {
        ctr.apply_keystream_blocks_inout(blocks);
    }
    apply_keystream_rest(ctr, &mut body[direct..]);
}

/// The keys of one direction: the expanded AES key and the pre-keyed HMAC state. Boxed
/// by [`Sealer`] and [`Opener`], so that moving those (into a task, to another thread and
/// back with every batch) moves a pointer: the key material stays in one place, where it
/// is wiped on drop, instead of leaving copies wherever it was moved from.
struct DirectionKeys {
    ctr: PacketCtr,
    mac: MacKey,
}

impl DirectionKeys {
    fn new(enc: &[u8; 32], mac: &[u8; 32]) -> Box<DirectionKeys> {
        Box::new(DirectionKeys {
            ctr: packet_ctr(enc),
            mac: MacKey::new(mac),
        })
    }
}

/// Bytes on the wire for `len` bytes of plaintext sent in full packets.
pub const fn sealed_len(len: usize) -> usize {
    len.div_ceil(PAYLOAD_MAX) * PACKET_LEN
}

/// Seals plaintext into packets for one direction of a connection.
///
/// Holds the expanded AES key, the pre-keyed HMAC state and the next packet number
/// (starting at 0). All key material is wiped when dropped (see the module docs).
pub struct Sealer {
    keys: Box<DirectionKeys>,
    pnum: u64,
}

impl Sealer {
    /// A sealer for the direction keyed by AES key `enc` and HMAC key `mac`, whose first
    /// packet is number 0.
    pub fn new(enc: &[u8; 32], mac: &[u8; 32]) -> Sealer {
        Sealer {
            keys: DirectionKeys::new(enc, mac),
            pnum: 0,
        }
    }

    /// Seals 1..=1024 bytes of `payload` as the next packet into `out`.
    ///
    /// Callers must never pass an empty payload (spiped never sends empty packets) nor
    /// more than [`PAYLOAD_MAX`] bytes: debug builds panic; release builds seal the first
    /// 1024 bytes only. Use [`Sealer::seal_all`] for data of any length.
    pub fn seal(&mut self, payload: &[u8], out: &mut [u8; PACKET_LEN]) {
        let (body, tag) = out.split_at_mut(PADDED_LEN);
        encrypt(&mut self.keys.ctr, self.pnum, payload, body);
        tag.copy_from_slice(&self.keys.mac.mac(body, self.pnum));
        self.advance(1);
    }

    /// Seals the next two packets at once: both MACs in one pass (see the module docs).
    /// Same contract as [`Sealer::seal`] for each payload, and the same packets as two
    /// calls of it would make; [`Sealer::seal_into`] uses it for full packets.
    #[cfg_attr(feature = "test-util", visibility::make(pub))]
    pub(crate) fn seal_pair(&mut self, payloads: [&[u8]; 2], out: [&mut [u8; PACKET_LEN]; 2]) {
        let [(body0, tag0), (body1, tag1)] = out.map(|p| p.split_at_mut(PADDED_LEN));
        let pnums = [self.pnum, self.pnum.wrapping_add(1)];
        encrypt(&mut self.keys.ctr, pnums[0], payloads[0], body0);
        encrypt(&mut self.keys.ctr, pnums[1], payloads[1], body1);
        let [t0, t1] = self
            .keys
            .mac
            .mac_pair([(body0, pnums[0]), (body1, pnums[1])]);
        tag0.copy_from_slice(&t0);
        tag1.copy_from_slice(&t1);
        self.advance(2);
    }

    /// Moves the packet number past `sealed` packets.
    fn advance(&mut self, sealed: u64) {
        // 2^64 packets would take 2^74 bytes of traffic; wrapping is unreachable.
        self.pnum = self.pnum.wrapping_add(sealed);
    }

    /// Seals all of `data` as ceil(len / 1024) full-size packets appended to `out`
    /// (nothing for empty data). Every packet but the last carries 1024 bytes.
    pub fn seal_all(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + sealed_len(data.len()), 0);
        self.seal_into(data, &mut out[start..]);
    }

    /// Seals all of `data` into the first [`sealed_len`]`(data.len())` bytes of `out`,
    /// straight into place (no packet is built elsewhere and copied in). Whatever `out`
    /// held there is overwritten, so a reused buffer needs no clearing. `out` must be
    /// long enough; a shorter one gets only the packets that fit.
    ///
    /// Packets are MACed two at a time (the module docs say why); the bytes are the same
    /// as [`Sealer::seal`] would make one by one.
    pub fn seal_into(&mut self, data: &[u8], out: &mut [u8]) {
        let slots = out.as_chunks_mut::<PACKET_LEN>().0;
        let mut packets = data.chunks(PAYLOAD_MAX).zip(slots);
        while let Some((chunk0, slot0)) = packets.next() {
            match packets.next() {
                Some((chunk1, slot1)) => self.seal_pair([chunk0, chunk1], [slot0, slot1]),
                None => self.seal(chunk0, slot0),
            }
        }
    }

    /// The number the next sealed packet will carry (packets sealed so far).
    #[cfg(feature = "test-util")]
    pub fn packet_number(&self) -> u64 {
        self.pnum
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("pnum", &self.pnum)
            .finish_non_exhaustive()
    }
}

/// Every secret field of [`Sealer`] and [`Opener`] (boxed in `DirectionKeys`) wipes
/// itself on drop.
impl ZeroizeOnDrop for Sealer {}

/// Opens packets for one direction of a connection.
///
/// Holds the expanded AES key, the pre-keyed HMAC state and the packet number it
/// expects next (starting at 0). All key material is wiped when dropped.
pub struct Opener {
    keys: Box<DirectionKeys>,
    pnum: u64,
}

impl Opener {
    /// An opener for the direction keyed by AES key `enc` and HMAC key `mac`, expecting
    /// packet number 0 first.
    pub fn new(enc: &[u8; 32], mac: &[u8; 32]) -> Opener {
        Opener {
            keys: DirectionKeys::new(enc, mac),
            pnum: 0,
        }
    }

    /// Authenticates and decrypts `packet` in place; on success the plaintext is
    /// `packet[..n]` for the returned `n` (1..=1024) and the expected packet number
    /// advances.
    ///
    /// The MAC is checked in constant time before anything is decrypted; a packet that
    /// was tampered with, keyed differently, replayed or reordered fails with
    /// [`PacketError::BadMac`] and leaves `packet` untouched. A length field of 0 or above
    /// 1024 fails with [`PacketError::BadLength`] and zeroes the decrypted bytes. Either error
    /// means the connection must be dropped; the counter does not advance.
    pub fn open_in_place(&mut self, packet: &mut [u8; PACKET_LEN]) -> Result<usize, PacketError> {
        let expected = self.keys.mac.mac(&packet[..PADDED_LEN], self.pnum);
        self.open_verified(packet, &expected)
    }

    /// Opens `packets` in order as [`Opener::open_in_place`] would one by one, appending
    /// each payload length to `lens`, and stops at the first bad packet with its error.
    /// The packets before it are opened; the bad one is left as
    /// [`Opener::open_in_place`] leaves it (untouched after a bad MAC) and the ones after
    /// it untouched.
    ///
    /// MACs are computed two packets at a time (see the module docs); each is still
    /// checked in constant time before its packet is decrypted.
    pub fn open_batch(
        &mut self,
        packets: &mut [[u8; PACKET_LEN]],
        lens: &mut Vec<usize>,
    ) -> Result<(), PacketError> {
        let (pairs, single) = packets.as_chunks_mut::<2>();
        for [p0, p1] in pairs {
            let pnums = [self.pnum, self.pnum.wrapping_add(1)];
            let [t0, t1] = self
                .keys
                .mac
                .mac_pair([(&p0[..PADDED_LEN], pnums[0]), (&p1[..PADDED_LEN], pnums[1])]);
            lens.push(self.open_verified(p0, &t0)?);
            lens.push(self.open_verified(p1, &t1)?);
        }
        for p in single {
            lens.push(self.open_in_place(p)?);
        }
        Ok(())
    }

    /// Checks `packet`'s MAC against `expected` (the MAC of its body under the packet
    /// number expected next) in constant time, then decrypts it: the rest of
    /// [`Opener::open_in_place`].
    fn open_verified(
        &mut self,
        packet: &mut [u8; PACKET_LEN],
        expected: &[u8; 32],
    ) -> Result<usize, PacketError> {
        let (body, tag) = packet.split_at_mut(PADDED_LEN);
        if !bool::from(tag.ct_eq(expected)) {
            return Err(PacketError::BadMac);
        }
        apply_keystream(&mut self.keys.ctr, self.pnum, body);
        let mut len_field = [0u8; 4];
        len_field.copy_from_slice(&body[PAYLOAD_MAX..]);
        let len = u32::from_be_bytes(len_field);
        // As the C spiped (`proto_crypt_dec`): no sender makes an empty packet, so one
        // that says it is empty is as corrupt as one that says it is too long.
        if len == 0 || len as usize > PAYLOAD_MAX {
            body.zeroize();
            return Err(PacketError::BadLength(len));
        }
        self.pnum = self.pnum.wrapping_add(1);
        Ok(len as usize)
    }

    /// The number the next packet must carry (packets opened so far).
    #[cfg(feature = "test-util")]
    pub fn packet_number(&self) -> u64 {
        self.pnum
    }
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("pnum", &self.pnum)
            .finish_non_exhaustive()
    }
}

impl ZeroizeOnDrop for Opener {}

/// Compile-time proof that the key material we hold really wipes itself.
const _: () = {
    fn assert_zod<T: ZeroizeOnDrop>() {}
    fn check() {
        assert_zod::<PacketCtr>();
        assert_zod::<MacKey>();
    }
    let _ = check;
};

/// Why a received packet was rejected. Either way the connection must be dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PacketError {
    /// The MAC did not verify: wrong key, corrupted or forged data, or a packet out of
    /// sequence (replayed, dropped or reordered).
    BadMac,
    /// The authenticated, decrypted length field is 0 or exceeds 1024 (carried here).
    BadLength(u32),
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketError::BadMac => {
                f.write_str("packet authentication failed (wrong key or tampered data)")
            }
            PacketError::BadLength(n) => write!(
                f,
                "packet length field {n} is outside 1..={PAYLOAD_MAX} (corrupt or incompatible peer)"
            ),
        }
    }
}

impl std::error::Error for PacketError {}
