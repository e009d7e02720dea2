//! The handshake driven in memory, both sides in one thread: for `spiped bench`, tests
//! and fuzzing.

use super::{Handshake, HandshakeError, Next, Role};

/// Runs a client and a server handshake against each other over in-memory buffers until
/// both are done; returns the first error and the side that reported it. No sockets,
/// so it times the handshake's computation alone (`spiped bench`) and lets tests
/// tamper with nothing but the state machines.
///
/// Two correct state machines never wait for each other; if they ever did, this returns
/// `(Role::Client, HandshakeError::Unexpected)` rather than loop.
pub fn drive(client: &mut Handshake, server: &mut Handshake) -> Result<(), (Role, HandshakeError)> {
    let mut to_client = Vec::new();
    let mut to_server = Vec::new();
    loop {
        let c = step(client, &mut to_client, &mut to_server).map_err(|e| (Role::Client, e))?;
        let s = step(server, &mut to_server, &mut to_client).map_err(|e| (Role::Server, e))?;
        if matches!((client.next(), server.next()), (Next::Done, Next::Done)) {
            return Ok(());
        }
        if !c && !s {
            return Err((Role::Client, HandshakeError::Unexpected));
        }
    }
}

/// One step of one side of an in-memory handshake ([`drive`], tests, fuzzing): appends
/// what it sends to `outbox`, or consumes what it waits for from `inbox` if that has
/// arrived. Returns whether anything happened, or the error if it refused the bytes.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn step(
    hs: &mut Handshake,
    inbox: &mut Vec<u8>,
    outbox: &mut Vec<u8>,
) -> Result<bool, HandshakeError> {
    match hs.next() {
        Next::Send(out) => {
            outbox.extend_from_slice(out.bytes);
            hs.sent();
            Ok(true)
        }
        Next::Recv(r) if inbox.len() >= r.len => {
            let bytes: Vec<u8> = inbox.drain(..r.len).collect();
            hs.received(&bytes)?;
            Ok(true)
        }
        Next::Recv(_) | Next::Done => Ok(false),
    }
}
