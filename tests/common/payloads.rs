//! The bytes tests send: deterministic pseudo-random payloads, their hashes (what tests
//! compare, so a failure prints two short strings, not megabytes), and the scale of the
//! soak tests.

use sha2::{Digest, Sha256};

/// Hex SHA-256 of `bytes`.
pub(crate) fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic pseudo-random bytes (xorshift64*), different for each seed.
pub(crate) fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The scale factor for the size of soak, flood and memory tests: env
/// `SPIPED_SOAK_SCALE` (default 1, the CI size; see SECURITY.md for manual runs).
pub(crate) fn soak_scale() -> usize {
    std::env::var("SPIPED_SOAK_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}
