//! Why a handshake failed.

use core::fmt;

/// Why a handshake failed. The connection must be dropped.
#[derive(Debug)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer's DH message MAC did not verify: the peer uses a different key, or the
    /// data was modified in transit.
    BadMac,
    /// We require PFS (`-g`) and the peer sent `y = 1` (it runs with `-f`).
    PeerNotPfs,
    /// The peer's DH value is not below the group prime `p`, or is 0 or `p - 1` (which
    /// would make the shared secret one anyone holding the key knows).
    BadDhValue,
    /// The peer's X25519 public key is a point of small order, which would make the
    /// shared secret all zeros whatever our secret.
    LowOrder,
    /// [`Handshake::received`](super::Handshake::received) got a different number of
    /// bytes than the `Recv` step asked for.
    WrongLength {
        /// What the `Recv` step asked for.
        expected: usize,
        /// What was passed.
        got: usize,
    },
    /// [`Handshake::received`](super::Handshake::received) was called while no read was pending, or after the
    /// handshake had already failed: a driver bug.
    Unexpected,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::BadMac => f.write_str(
                "handshake failed: the peer's key differs from ours (or the data was tampered with)",
            ),
            HandshakeError::PeerNotPfs => f.write_str(
                "handshake failed: peer did not use perfect forward secrecy (it runs with -f) and we require it (-g)",
            ),
            HandshakeError::BadDhValue => {
                f.write_str("handshake failed: peer's Diffie-Hellman value is out of range")
            }
            HandshakeError::LowOrder => {
                f.write_str("handshake failed: peer's X25519 public key is a low-order point")
            }
            HandshakeError::WrongLength { expected, got } => write!(
                f,
                "handshake failed: internal error: expected {expected} bytes from the peer, got {got}"
            ),
            HandshakeError::Unexpected => f.write_str(
                "handshake failed: internal error: data received when none was expected",
            ),
        }
    }
}

impl std::error::Error for HandshakeError {}
