//! Two SHA-256 compressions interleaved on the x86 SHA extensions.
//!
//! `sha256rnds2` has a latency of several cycles but can issue more often than that, so
//! one message's strictly dependent rounds leave the unit idle most of the time. Two
//! independent messages' rounds, issued alternately, fill those gaps: the same idea as
//! Linux's `sha256_ni_finup2x`. Register layout and message schedule are the standard
//! ones of Intel's SHA extensions white paper (and of the `sha2` crate's backend).
//!
//! Nothing here branches on or indexes by data: the block count is public.

use core::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_loadu_si128, _mm_set_epi32,
    _mm_set_epi64x, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32,
    _mm_shuffle_epi8, _mm_shuffle_epi32, _mm_storeu_si128,
};

/// SHA-256's round constants (FIPS 180-4, 4.2.2).
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// One lane's working state in the SHA extensions' order: `(ABEF, CDGH)`.
type Lane = (__m128i, __m128i);

/// Loads a standard `[a, b, ..., h]` state into the `(ABEF, CDGH)` layout.
#[target_feature(enable = "sse2,ssse3,sse4.1")]
fn load_state(state: &[u32; 8]) -> Lane {
    let ptr: *const __m128i = state.as_ptr().cast();
    // SAFETY: `state` is 32 readable bytes, the two unaligned 16-byte loads read exactly
    // them; `sse2` (which `_mm_loadu_si128` needs) is enabled on this function.
    let (dcba, hgfe) = unsafe { (_mm_loadu_si128(ptr), _mm_loadu_si128(ptr.add(1))) };
    let cdab = _mm_shuffle_epi32(dcba, 0xB1);
    let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    (
        _mm_alignr_epi8(cdab, efgh, 8),
        _mm_blend_epi16(efgh, cdab, 0xF0),
    )
}

/// Stores an `(ABEF, CDGH)` lane back as a standard `[a, b, ..., h]` state.
#[target_feature(enable = "sse2,ssse3,sse4.1")]
fn store_state(state: &mut [u32; 8], (abef, cdgh): Lane) {
    let feba = _mm_shuffle_epi32(abef, 0x1B);
    let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
    let hgef = _mm_alignr_epi8(dchg, feba, 8);
    let ptr: *mut __m128i = state.as_mut_ptr().cast();
    // SAFETY: `state` is 32 writable bytes, exclusively borrowed; the two unaligned
    // 16-byte stores write exactly them; `sse2` is enabled on this function.
    unsafe {
        _mm_storeu_si128(ptr, dcba);
        _mm_storeu_si128(ptr.add(1), hgef);
    }
}

/// The block's sixteen big-endian message words, four per vector.
#[target_feature(enable = "sse2,ssse3")]
fn load_block(block: &[u8; 64]) -> [__m128i; 4] {
    let ptr: *const __m128i = block.as_ptr().cast();
    let bswap = _mm_set_epi64x(0x0C0D_0E0F_0809_0A0B, 0x0405_0607_0001_0203);
    // SAFETY: `block` is 64 readable bytes and `i < 4`, so each unaligned 16-byte load
    // reads inside it; `sse2` is enabled on this function.
    core::array::from_fn(|i| _mm_shuffle_epi8(unsafe { _mm_loadu_si128(ptr.add(i)) }, bswap))
}

/// Rounds `4R..4R+4` of both lanes, scheduling their message words first from round
/// group 4 on. `R` is a constant so that every index is, and `w` stays in registers.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3")]
fn rounds4<const R: usize>(lanes: &mut [Lane; 2], w: &mut [[__m128i; 4]; 2]) {
    let k = _mm_set_epi32(
        K[4 * R + 3] as i32,
        K[4 * R + 2] as i32,
        K[4 * R + 1] as i32,
        K[4 * R] as i32,
    );
    // Alternating the lanes round group by round group is the whole point: each lane's
    // rounds fill the other's latency.
    for ((abef, cdgh), w) in lanes.iter_mut().zip(w) {
        if R >= 4 {
            let (w0, w1, w2, w3) = (w[R % 4], w[(R + 1) % 4], w[(R + 2) % 4], w[(R + 3) % 4]);
            let t = _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4));
            w[R % 4] = _mm_sha256msg2_epu32(t, w3);
        }
        let wk = _mm_add_epi32(w[R % 4], k);
        *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);
        *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32(wk, 0x0E));
    }
}

/// Compresses `a` into `states[0]` and `b` into `states[1]`, pairing `a[i]` with `b[i]`;
/// blocks past the shorter list are left alone (the caller passes equal lengths).
///
/// Callers must make sure the CPU has the four features this is compiled for.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(super) fn compress_pair(states: &mut [[u32; 8]; 2], a: &[[u8; 64]], b: &[[u8; 64]]) {
    let mut lanes = [load_state(&states[0]), load_state(&states[1])];
    for (ba, bb) in a.iter().zip(b) {
        let saved = lanes;
        let mut w = [load_block(ba), load_block(bb)];
        rounds4::<0>(&mut lanes, &mut w);
        rounds4::<1>(&mut lanes, &mut w);
        rounds4::<2>(&mut lanes, &mut w);
        rounds4::<3>(&mut lanes, &mut w);
        rounds4::<4>(&mut lanes, &mut w);
        rounds4::<5>(&mut lanes, &mut w);
        rounds4::<6>(&mut lanes, &mut w);
        rounds4::<7>(&mut lanes, &mut w);
        rounds4::<8>(&mut lanes, &mut w);
        rounds4::<9>(&mut lanes, &mut w);
        rounds4::<10>(&mut lanes, &mut w);
        rounds4::<11>(&mut lanes, &mut w);
        rounds4::<12>(&mut lanes, &mut w);
        rounds4::<13>(&mut lanes, &mut w);
        rounds4::<14>(&mut lanes, &mut w);
        rounds4::<15>(&mut lanes, &mut w);
        for (lane, (abef, cdgh)) in lanes.iter_mut().zip(saved) {
            lane.0 = _mm_add_epi32(lane.0, abef);
            lane.1 = _mm_add_epi32(lane.1, cdgh);
        }
    }
    let [s0, s1] = states;
    store_state(s0, lanes[0]);
    store_state(s1, lanes[1]);
}

/// The kernel against `sha2`'s compression function, block for block: it is `unsafe`
/// and private, so its test stays beside it.
#[cfg(test)]
mod tests {
    use sha2::block_api::compress256;

    /// `n` bytes from the OS random number generator.
    fn random<const N: usize>() -> [u8; N] {
        let mut bytes = [0u8; N];
        getrandom::fill(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn kernel_matches_sha2() {
        if !super::super::sha_x2::get() {
            return;
        }
        for blocks in 0..6 {
            let data: Vec<u8> = (0..2 * blocks).flat_map(|_| random::<64>()).collect();
            let (a, b) = data.as_chunks::<64>().0.split_at(blocks);
            let start: [[u32; 8]; 2] =
                [0, 1].map(|_| core::array::from_fn(|_| u32::from_le_bytes(random())));
            let mut want = start;
            compress256(&mut want[0], a);
            compress256(&mut want[1], b);
            let mut got = start;
            // SAFETY: `sha_x2::get()` confirmed above that the CPU has every feature the
            // kernel is compiled for.
            unsafe { super::compress_pair(&mut got, a, b) };
            assert_eq!(got, want, "{blocks} blocks");
        }
    }
}
