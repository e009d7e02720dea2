//! Drives the sans-IO handshake over a [`Transport`] and hands back the packet keys of
//! the established session.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use spiped_transports::Transport;

use crate::session::offload::Offload;
use spiped_proto::handshake::{
    Exchange, Handshake, HandshakeError, MAX_READ_WINDOW, Mode, Next, Role,
};
use spiped_proto::key::Key;
use spiped_proto::packet::{Opener, Sealer};

/// Why an X25519 client's handshake stalls or is cut off: a server without the extension
/// (such as the C spiped) waits for the rest of a group-14 message that never comes, and
/// so does one of ours whose key differs. Added to those errors.
pub(crate) const X25519_HINT: &str = "the server may not support --x25519 (the C spiped does not), its key differs, or it \
     could not reach its target";

/// Why a handshake did not complete.
#[derive(Debug)]
pub(crate) enum HandshakeFailure {
    /// The peer closed the connection before the handshake finished.
    Closed,
    /// Our server closed the connection before the handshake finished (we are the
    /// client, and did not ask for X25519).
    ServerClosed,
    /// We asked for X25519 and the server closed the connection before answering.
    X25519Unanswered,
    /// The peer sent data before the handshake finished, which no spiped peer does.
    EarlyData,
    /// Reading or writing the encrypted side failed.
    Io(io::Error),
    /// Reading the plaintext to send with our DH message failed ([`Early`]).
    Source(io::Error),
    /// The peer's handshake messages were refused.
    Protocol(HandshakeError),
    /// The driver and the state machine disagree (a read window past the buffer, a
    /// handshake that says it is done without keys): a bug here, never the peer's doing.
    Internal(&'static str),
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeFailure::Closed => f.write_str(
                "handshake failed: the peer closed the connection (wrong key, or a -g/-f mismatch?)",
            ),
            // C's -d connects to its target before it answers, and drops the client when
            // it cannot: that looks the same from here as a refused handshake.
            HandshakeFailure::ServerClosed => f.write_str(
                "handshake failed: the server closed the connection: wrong key, a -g/-f \
                 mismatch, or the server could not reach its target",
            ),
            HandshakeFailure::X25519Unanswered => write!(
                f,
                "handshake failed: the server closed the connection; {X25519_HINT}"
            ),
            HandshakeFailure::EarlyData => {
                f.write_str("handshake failed: the peer sent data before the handshake finished")
            }
            HandshakeFailure::Io(e) => {
                write!(f, "handshake failed: {}", crate::errors::describe(e))
            }
            HandshakeFailure::Source(e) => {
                write!(f, "read failed: {}", crate::errors::describe(e))
            }
            HandshakeFailure::Protocol(e) => write!(f, "{e}"),
            HandshakeFailure::Internal(what) => write!(
                f,
                "handshake failed: internal error: {what}; this is a bug, please report it"
            ),
        }
    }
}

impl std::error::Error for HandshakeFailure {}

/// Whether a write or read error means the peer closed the connection on us.
fn was_dropped(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

/// A finished handshake: the packet keys for this side, and what was agreed.
#[derive(Debug)]
pub(crate) struct Established {
    /// Seals the packets we send.
    pub sealer: Sealer,
    /// Opens the packets the peer sends.
    pub opener: Opener,
    /// Which of our keys the connection uses (0: the first `-k`).
    pub key_index: usize,
    /// The key agreement used.
    pub exchange: Exchange,
    /// What went out with our DH message ([`Early`]): `None` if nothing did (the
    /// handshake could not carry data), else how many bytes of the source (after the
    /// whole prefix).
    pub early: Option<usize>,
    /// How long the handshake took, from its first message to the packet keys.
    pub took: Duration,
}

impl Established {
    /// Sends `prefix` (the [`Early`] prefix) sealed, ahead of everything the pumps will
    /// send, unless it went out with our DH message already; returns how many bytes of
    /// the early source went out with it, to count as sent.
    pub(crate) async fn send_prefix(
        &mut self,
        encrypted: &dyn Transport,
        prefix: &[u8],
    ) -> io::Result<usize> {
        match self.early {
            Some(n) => Ok(n),
            None if prefix.is_empty() => Ok(0),
            None => {
                let mut sealed = Vec::new();
                self.sealer.seal_all(prefix, &mut sealed);
                encrypted.write_all(&sealed).await.map(|()| 0)
            }
        }
    }
}

/// Plaintext that a fast client sends along with its DH message when it can (see
/// [`Handshake::seal_early`]): all of `prefix`, then whatever `source` has ready at that
/// moment, without waiting for it.
pub(crate) struct Early<'a> {
    /// Bytes that must reach the server first (a PROXY protocol header).
    pub prefix: &'a [u8],
    /// The connection whose data the session carries (the accepted client of `-e`).
    pub source: &'a dyn Transport,
}

/// At most this much of the source goes with the DH message: the first batch of a pump,
/// more than most requests that open a conversation.
const EARLY_MAX: usize = 8 * spiped_proto::packet::PAYLOAD_MAX;

impl Early<'_> {
    /// Seals the prefix and what the source has ready into `hs`'s DH message; returns
    /// how many bytes of the source that was.
    async fn seal_into(self, hs: &mut Handshake) -> Result<usize, HandshakeFailure> {
        let start = self.prefix.len();
        let mut buf = vec![0; start + EARLY_MAX];
        buf[..start].copy_from_slice(self.prefix);
        // A read that would wait is dropped unstarted: nothing is taken from the source.
        let n = tokio::select! {
            biased;
            r = self.source.read(&mut buf[start..]) => r.map_err(HandshakeFailure::Source)?,
            () = std::future::ready(()) => 0,
        };
        if start + n > 0 {
            hs.seal_early(&buf[..start + n]);
        }
        Ok(n)
    }
}

/// Runs `hs` to completion over `t` and returns the packet keys for this side; sends
/// `early` data with our DH message if the handshake allows (see [`Early`]). Costly
/// steps go off the loop, and key pairs come from the spare, as `offload` says.
pub(crate) async fn handshake(
    offload: &Offload,
    t: &dyn Transport,
    mut hs: Box<Handshake>,
    mut early: Option<Early<'_>>,
) -> Result<Established, HandshakeFailure> {
    let client = hs.role() == Role::Client;
    let x25519 = client && hs.mode().x25519;
    let start = Instant::now();
    let mut inbox = Inbox::new();
    let mut sent_early = None;
    // A server that drops us shows as an end of stream, or, racing our write, as a
    // broken pipe or reset: the same event, named with its possible causes.
    let dropped = |e: HandshakeFailure| match e {
        HandshakeFailure::Io(e) if !client || !was_dropped(&e) => HandshakeFailure::Io(e),
        HandshakeFailure::Closed | HandshakeFailure::Io(_) if x25519 => {
            HandshakeFailure::X25519Unanswered
        }
        HandshakeFailure::Closed | HandshakeFailure::Io(_) if client => {
            HandshakeFailure::ServerClosed
        }
        e => e,
    };
    // The costly steps (group-14 exponentiations) run on the blocking pool when other
    // connections are open; the step says which they are.
    loop {
        match hs.next() {
            Next::Send(out) => {
                if out.may_seal_early
                    && let Some(e) = early.take()
                {
                    sent_early = Some(e.seal_into(&mut hs).await?);
                    continue;
                }
                t.write_all(out.bytes)
                    .await
                    .map_err(|e| dropped(HandshakeFailure::Io(e)))?;
                hs = offload
                    .run(out.agrees, move || {
                        hs.sent();
                        hs
                    })
                    .await;
            }
            Next::Recv(r) => {
                let bytes = inbox.take(t, r.len, r.window).await.map_err(dropped)?;
                let bytes = bytes.to_vec();
                // Taken once the message is here: the spare goes to whichever handshake
                // needs it first, not to one still waiting for its peer.
                let pair = r.wants_keypair.then(|| offload.take_keypair()).flatten();
                let keypair_given = pair.is_some_and(|p| hs.use_keypair(p).is_none());
                hs = offload
                    .run(r.exponentiates(keypair_given), move || {
                        hs.received(&bytes).map(|()| hs)
                    })
                    .await
                    .map_err(HandshakeFailure::Protocol)?;
            }
            Next::Done => break,
        }
    }
    if !inbox.is_empty() {
        return Err(HandshakeFailure::EarlyData);
    }
    let no_keys = || HandshakeFailure::Internal("the handshake finished without packet keys");
    let (key_index, exchange) = (hs.key_index(), hs.exchange().ok_or_else(no_keys)?);
    let (sealer, opener) = hs.finish().ok_or_else(no_keys)?;
    Ok(Established {
        sealer,
        opener,
        key_index,
        exchange,
        early: sent_early,
        took: start.elapsed(),
    })
}

/// Handshake bytes read from the peer and not yet consumed: a server reads a client's
/// messages with as few reads as they arrive in (see
/// [`Incoming::window`](spiped_proto::handshake::Incoming::window)).
struct Inbox {
    buf: [u8; MAX_READ_WINDOW],
    start: usize,
    end: usize,
}

impl Inbox {
    fn new() -> Inbox {
        Inbox {
            buf: [0; MAX_READ_WINDOW],
            start: 0,
            end: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The next `n` bytes, reading until they are all here; a read takes at most up to
    /// `window` bytes from the start of these `n`. More than the buffer holds is a bug
    /// of the state machine (no step asks for that much), reported as one.
    async fn take(
        &mut self,
        t: &dyn Transport,
        n: usize,
        window: usize,
    ) -> Result<&[u8], HandshakeFailure> {
        if n > self.buf.len() {
            return Err(HandshakeFailure::Internal(
                "a handshake message longer than the read buffer",
            ));
        }
        if self.end - self.start < n {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
            // Never below `n`, never past the buffer.
            let limit = window.clamp(n, self.buf.len());
            while self.end < n {
                match t.read(&mut self.buf[self.end..limit]).await {
                    Ok(0) => return Err(HandshakeFailure::Closed),
                    Ok(k) => self.end += k,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                        return Err(HandshakeFailure::Closed);
                    }
                    Err(e) => return Err(HandshakeFailure::Io(e)),
                }
            }
        }
        let got = &self.buf[self.start..self.start + n];
        self.start += n;
        Ok(got)
    }
}

/// Starts a handshake with `key`; a server also accepts clients using any of `others`
/// (see [`Handshake::accepting_also`]). Cheap: it only draws random numbers; the
/// exponentiations come later, with the messages that need them. Boxed, so that handing
/// it to the blocking pool and back moves a pointer, not its secrets.
pub(crate) fn start(
    role: Role,
    mode: Mode,
    key: &Key,
    others: &[Key],
) -> Result<Box<Handshake>, getrandom::Error> {
    Ok(Box::new(
        Handshake::new(role, mode, key)?.accepting_also(others),
    ))
}

#[cfg(test)]
mod tests;
