//! The sans-IO spiped protocol core: key schedule, Diffie-Hellman, handshake state machine
//! and packet seal/open.
//!
//! Nothing here touches a socket, a clock or an async runtime; the only side effect is
//! drawing randomness from the OS (nonces and DH secrets). Drivers feed bytes in and
//! write bytes out as the [`handshake::Handshake`] state machine asks, then move the
//! resulting [`packet::Sealer`] / [`packet::Opener`] onto the data path, where
//! [`framing::Deframer`] cuts the received byte stream into packets.
//!
//! The public API is what a program speaking spiped needs. The `test-util` feature
//! makes the building blocks behind it public as well (fixed nonces and secrets, the raw
//! Diffie-Hellman, X25519, key-schedule and MAC functions, the in-memory handshake step),
//! for known-answer tests and fuzzing; nothing a program needs is behind it.

pub mod dh;
pub mod framing;
pub mod handshake;
pub mod key;
pub mod packet;

// The MAC and X25519 modules are internals: public only for the tests that check them.
// (The MAC's items are declared `pub`; without test-util nothing outside reaches them.)
#[cfg(feature = "test-util")]
pub mod mac;
#[cfg(not(feature = "test-util"))]
#[allow(unreachable_pub)]
mod mac;
#[cfg(feature = "test-util")]
pub mod x25519;
#[cfg(not(feature = "test-util"))]
mod x25519;

pub use framing::{Deframer, Opened};
pub use handshake::{
    Exchange, Handshake, HandshakeError, Incoming, Mode, Next, Outgoing, Role, drive,
};
pub use key::{Key, Nonce};
pub use packet::{Opener, PACKET_LEN, PAYLOAD_MAX, PacketError, Sealer};
