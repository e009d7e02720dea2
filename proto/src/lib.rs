//! The sans-IO spiped protocol core: key schedule, Diffie-Hellman, handshake state machine
//! and packet seal/open.
//!
//! Nothing here touches a socket, a clock or an async runtime; the only side effect is
//! drawing randomness from the OS (nonces and DH secrets). Drivers feed bytes in and
//! write bytes out as the [`handshake::Handshake`] state machine asks, then move the
//! resulting [`packet::Sealer`] / [`packet::Opener`] onto the data path, where
//! [`framing::Deframer`] cuts the received byte stream into packets.

pub mod dh;
pub mod framing;
pub mod handshake;
pub mod key;
pub mod mac;
pub mod packet;
pub mod x25519;

pub use framing::{Deframer, Opened};
pub use handshake::{
    Exchange, Handshake, HandshakeError, Incoming, Mode, Next, Outgoing, Role, drive, step,
};
pub use key::{Key, Nonce};
pub use packet::{Opener, PACKET_LEN, PAYLOAD_MAX, PacketError, Sealer};
