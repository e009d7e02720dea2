//! The packet MAC, `HMAC-SHA256(H, data || be64(n))`, for one packet or two at a time.
//!
//! A packet's MAC is about two thirds of its cost, and one SHA-256 stream cannot keep
//! the CPU's SHA unit busy: each round waits for the previous one. Two packets' MACs are
//! independent, so [`MacKey::mac_pair`] hashes them interleaved in one loop. On x86_64
//! CPUs with the SHA extensions that runs a two-lane kernel (chosen at run time);
//! everywhere else, and in builds with the test-only `test-sha-fallback` feature, it
//! hashes the two messages one after the other with `sha2`'s compression function, which
//! on arm64 runs the ARMv8 SHA-2 instructions when the CPU has them (`sha2`'s own
//! run-time detection). A two-lane arm64 kernel, as Linux's `sha256_ce_finup2x`, would
//! be unsafe code whose gain no machine here can measure (qemu-user's timings mean
//! nothing); it waits for arm64 hardware to time it on.
//!
//! HMAC itself is built on the raw compression function from the pre-keyed inner and
//! outer states, so per packet nothing is copied but two 32-byte states. Every step
//! depends only on the public message lengths, never on key or data; the working states
//! are wiped after use and the key states on drop.

#[cfg(all(target_arch = "x86_64", not(feature = "test-sha-fallback")))]
mod x86;

use sha2::block_api::compress256;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A SHA-256 block.
type Block = [u8; 64];

/// A SHA-256 chaining state.
type State = [u32; 8];

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const IV: State = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

#[cfg(all(target_arch = "x86_64", not(feature = "test-sha-fallback")))]
cpufeatures::new!(sha_x2, "sha", "sse2", "ssse3", "sse4.1");

/// Compresses `a` into `states[0]` and `b` into `states[1]`; equal lengths.
fn compress_pair(states: &mut [State; 2], a: &[Block], b: &[Block]) {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(all(target_arch = "x86_64", not(feature = "test-sha-fallback")))]
    if sha_x2::get() {
        // SAFETY: the kernel needs the `sha`, `sse2`, `ssse3` and `sse4.1` features it is
        // compiled with; `sha_x2::get()` just confirmed this CPU has every one of them.
        unsafe { x86::compress_pair(states, a, b) };
        return;
    }
    let [s0, s1] = states;
    compress256(s0, a);
    compress256(s1, b);
}

/// The blocks that end a message after its whole blocks: the last partial block, the
/// 8-byte packet number, the `0x80` marker, zeros and the bit length (one or two blocks).
struct Tail {
    blocks: [Block; 2],
    count: usize,
}

impl Tail {
    /// The end of `data || be64(n)` hashed after one block (the HMAC key pad).
    fn new(data: &[u8], n: u64) -> Tail {
        let rest = data.as_chunks::<64>().1;
        let mut buf = [0u8; 128];
        buf[..rest.len()].copy_from_slice(rest);
        let end = rest.len() + 8;
        buf[rest.len()..end].copy_from_slice(&n.to_be_bytes());
        buf[end] = 0x80;
        let count = if end + 9 <= 64 { 1 } else { 2 };
        // Message bits: the key pad block, `data` and `n`. A usize always fits a u64 here.
        let bits = (64 + data.len() as u64 + 8) * 8;
        buf[count * 64 - 8..count * 64].copy_from_slice(&bits.to_be_bytes());
        let (blocks, _) = buf.as_chunks::<64>();
        Tail {
            blocks: [blocks[0], blocks[1]],
            count,
        }
    }

    fn blocks(&self) -> &[Block] {
        &self.blocks[..self.count]
    }
}

/// The outer hash's only block: the inner digest, then SHA-256 padding for 96 bytes.
fn outer_block(inner: &State) -> Block {
    let mut block = [0u8; 64];
    for (bytes, word) in block.as_chunks_mut::<4>().0.iter_mut().zip(inner) {
        *bytes = word.to_be_bytes();
    }
    block[32] = 0x80;
    block[56..].copy_from_slice(&(96u64 * 8).to_be_bytes());
    block
}

/// The big-endian bytes of a final state: the digest.
fn digest(state: &State) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (bytes, word) in out.as_chunks_mut::<4>().0.iter_mut().zip(state) {
        *bytes = word.to_be_bytes();
    }
    out
}

/// An HMAC-SHA256 key, absorbed: the states after its inner and outer pad blocks.
///
/// Wiped from memory when dropped; its `Debug` output never shows the secret.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MacKey {
    inner: State,
    outer: State,
}

impl MacKey {
    /// Absorbs `key` (any length; HMAC hashes one longer than a block first).
    pub fn new(key: &[u8]) -> MacKey {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let keyed = |pad: u8| {
            let mut padded = block.map(|b| b ^ pad);
            let mut state = IV;
            compress256(&mut state, &[padded]);
            padded.zeroize();
            state
        };
        let key = MacKey {
            inner: keyed(0x36),
            outer: keyed(0x5c),
        };
        block.zeroize();
        key
    }

    /// `HMAC-SHA256(key, data || be64(n))`.
    pub fn mac(&self, data: &[u8], n: u64) -> [u8; 32] {
        let mut state = self.inner;
        compress256(&mut state, data.as_chunks::<64>().0);
        compress256(&mut state, Tail::new(data, n).blocks());
        let mut block = outer_block(&state);
        state = self.outer;
        compress256(&mut state, &[block]);
        let tag = digest(&state);
        block.zeroize();
        state.zeroize();
        tag
    }

    /// The MACs of two messages, each `data || be64(n)`, as [`MacKey::mac`] computes
    /// them one at a time; the messages may differ in length.
    pub fn mac_pair(&self, msgs: [(&[u8], u64); 2]) -> [[u8; 32]; 2] {
        let tails = msgs.map(|(data, n)| Tail::new(data, n));
        let mut states = [self.inner; 2];
        let [a, b] = [0, 1].map(|i| [msgs[i].0.as_chunks::<64>().0, tails[i].blocks()]);
        compress_lists(&mut states, a, b);
        let mut blocks = states.each_ref().map(outer_block);
        states = [self.outer; 2];
        compress_pair(&mut states, &blocks[..1], &blocks[1..]);
        let tags = states.each_ref().map(digest);
        blocks.zeroize();
        states.zeroize();
        tags
    }
}

impl core::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MacKey(<redacted>)")
    }
}

/// Compresses the blocks of `a` (its slices in order) into `states[0]` and those of `b`
/// into `states[1]`, two at a time as long as both lanes have blocks left.
fn compress_lists(states: &mut [State; 2], a: [&[Block]; 2], b: [&[Block]; 2]) {
    let mut parts_a = a.into_iter().filter(|p| !p.is_empty());
    let mut parts_b = b.into_iter().filter(|p| !p.is_empty());
    let (mut sa, mut sb) = (parts_a.next(), parts_b.next());
    while let (Some(xa), Some(xb)) = (sa, sb) {
        let n = xa.len().min(xb.len());
        compress_pair(states, &xa[..n], &xb[..n]);
        sa = remaining(&xa[n..], &mut parts_a);
        sb = remaining(&xb[n..], &mut parts_b);
    }
    // At most one lane has blocks left: it finishes alone.
    let [s0, s1] = states;
    sa.into_iter()
        .chain(parts_a)
        .for_each(|p| compress256(s0, p));
    sb.into_iter()
        .chain(parts_b)
        .for_each(|p| compress256(s1, p));
}

/// What a lane has left: `rest` unless it is empty, else its next part.
fn remaining<'a>(
    rest: &'a [Block],
    parts: &mut impl Iterator<Item = &'a [Block]>,
) -> Option<&'a [Block]> {
    if rest.is_empty() {
        parts.next()
    } else {
        Some(rest)
    }
}
