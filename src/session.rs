//! Drives the sans-IO handshake over a [`Transport`], then runs the two pumps of an
//! established session.

use std::fmt;
use std::io;

use spiped_transports::Transport;

use crate::proto::handshake::{Handshake, HandshakeError, Next, Role};
use crate::proto::packet::{Opener, Sealer};
use crate::pump::{self, PumpError};

/// Why an X25519 client's handshake stalls or is cut off: a server without the extension
/// (such as the C spiped) waits for the rest of a group-14 message that never comes, and
/// so does one of ours whose key differs. Added to those errors.
pub const X25519_HINT: &str =
    "the server may not support --x25519 (the C spiped does not), or its key differs";

/// Why a handshake did not complete.
#[derive(Debug)]
pub enum HandshakeFailure {
    /// The peer closed the connection before the handshake finished.
    Closed,
    /// We asked for X25519 and the server closed the connection before answering.
    X25519Unanswered,
    /// Reading or writing the encrypted side failed.
    Io(io::Error),
    /// The peer's handshake messages were refused.
    Protocol(HandshakeError),
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeFailure::Closed => f.write_str(
                "handshake failed: the peer closed the connection (wrong key, or it requires PFS?)",
            ),
            HandshakeFailure::X25519Unanswered => write!(
                f,
                "handshake failed: the server closed the connection; {X25519_HINT}"
            ),
            HandshakeFailure::Io(e) => {
                write!(f, "handshake failed: {}", crate::errors::describe(e))
            }
            HandshakeFailure::Protocol(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for HandshakeFailure {}

/// Runs `hs` to completion over `t` and returns the packet keys for this side.
pub async fn handshake(
    t: &dyn Transport,
    mut hs: Handshake,
) -> Result<(Sealer, Opener), HandshakeFailure> {
    let x25519 = hs.role() == Role::Client && hs.mode().x25519;
    let mut buf = [0u8; 512];
    loop {
        match hs.next() {
            Next::Send(bytes) => {
                t.write_all(bytes).await.map_err(HandshakeFailure::Io)?;
                hs.sent();
            }
            Next::Recv(n) => {
                let want = buf.get_mut(..n).ok_or(HandshakeFailure::Closed)?;
                read_exact(t, want).await.map_err(|e| match e {
                    HandshakeFailure::Closed if x25519 => HandshakeFailure::X25519Unanswered,
                    e => e,
                })?;
                hs.received(want).map_err(HandshakeFailure::Protocol)?;
            }
            Next::Done => break,
        }
    }
    hs.finish().ok_or(HandshakeFailure::Closed)
}

async fn read_exact(t: &dyn Transport, mut buf: &mut [u8]) -> Result<(), HandshakeFailure> {
    while !buf.is_empty() {
        match t.read(buf).await {
            Ok(0) => return Err(HandshakeFailure::Closed),
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return Err(HandshakeFailure::Closed);
            }
            Err(e) => return Err(HandshakeFailure::Io(e)),
        }
    }
    Ok(())
}

/// Bytes moved by a finished session, per direction.
#[derive(Clone, Copy, Debug, Default)]
pub struct Traffic {
    /// Plaintext bytes sealed and sent to the encrypted side.
    pub sent: u64,
    /// Plaintext bytes opened and delivered to the plaintext side.
    pub received: u64,
}

/// Moves data both ways between a plaintext transport and an encrypted one until both
/// directions have ended; the first failure in either direction ends both at once.
pub async fn pipe(
    plain: &dyn Transport,
    encrypted: &dyn Transport,
    sealer: Sealer,
    opener: Opener,
) -> Result<Traffic, PumpError> {
    let (sent, received) = futures_lite::future::try_zip(
        pump::encrypt(plain, encrypted, sealer),
        pump::decrypt(encrypted, plain, opener),
    )
    .await?;
    Ok(Traffic { sent, received })
}
