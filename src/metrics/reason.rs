//! Why a connection ended and why a handshake failed, in the words of the metrics
//! labels: a fixed vocabulary, so dashboards and alerts can rely on it.

use std::io;

use crate::session::client::ConnError;
use crate::session::handshake::HandshakeFailure;
use crate::session::pump::PumpError;
use spiped_proto::handshake::{Exchange, HandshakeError};

/// Why a connection closed: the `reason` label of `spiped_connections_closed_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Closed {
    /// Both directions reached their end of stream.
    Eof,
    /// A socket was reset or broken by the other end after the handshake.
    Reset,
    /// Connect plus handshake took longer than `-o`.
    Timeout,
    /// No byte moved either way for `idle-timeout`.
    IdleTimeout,
    /// A packet from the peer failed authentication, or the stream ended mid-packet.
    BadPacket,
    /// The handshake failed (see [`Cause`]).
    HandshakeFailed,
    /// No target address accepted a connection.
    TargetUnreachable,
    /// Anything else: a socket error other than a reset, no randomness, a client gone
    /// before its PROXY header could be written.
    Error,
}

impl Closed {
    /// Every reason, in label order: all are exported from the start (at 0), so a rate
    /// over any of them exists before the first such close.
    pub(super) const ALL: [Closed; 8] = [
        Closed::Eof,
        Closed::Reset,
        Closed::Timeout,
        Closed::IdleTimeout,
        Closed::BadPacket,
        Closed::HandshakeFailed,
        Closed::TargetUnreachable,
        Closed::Error,
    ];

    /// Its place in [`Closed::ALL`] (which lists the reasons in declaration order).
    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// The label value.
    pub(super) fn label(self) -> &'static str {
        match self {
            Closed::Eof => "eof",
            Closed::Reset => "reset",
            Closed::Timeout => "timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::BadPacket => "bad_packet",
            Closed::HandshakeFailed => "handshake_failed",
            Closed::TargetUnreachable => "target_unreachable",
            Closed::Error => "error",
        }
    }
}

/// Why a handshake failed: the `cause` label of `spiped_handshake_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cause {
    /// The peer's DH message did not authenticate: it holds another key.
    WrongKey,
    /// We require PFS (`-g`) and the peer runs with `-f`.
    PfsRequired,
    /// The peer's messages were not spiped handshake messages (out of range, low
    /// order, data before the handshake finished).
    Malformed,
    /// Connect plus handshake took longer than `-o`.
    Timeout,
    /// The peer closed the connection mid-handshake. A client (`-e`) sees this when the
    /// server holds another key or requires PFS: the server just hangs up.
    PeerClosed,
    /// Reading or writing the encrypted side failed.
    Io,
}

impl Cause {
    /// Every cause, in label order (exported from the start, at 0).
    pub(super) const ALL: [Cause; 6] = [
        Cause::WrongKey,
        Cause::PfsRequired,
        Cause::Malformed,
        Cause::Timeout,
        Cause::PeerClosed,
        Cause::Io,
    ];

    /// Its place in [`Cause::ALL`] (which lists the causes in declaration order).
    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// The label value.
    pub(super) fn label(self) -> &'static str {
        match self {
            Cause::WrongKey => "wrong_key",
            Cause::PfsRequired => "pfs_required",
            Cause::Malformed => "malformed",
            Cause::Timeout => "timeout",
            Cause::PeerClosed => "peer_closed",
            Cause::Io => "io",
        }
    }
}

/// The handshake kinds: the `kind` label of `spiped_handshakes_total`.
pub(super) const KINDS: [Exchange; 3] = [Exchange::Group14, Exchange::Fast, Exchange::X25519];

/// The label value of a handshake kind: `pfs` (group 14), `fast` (`-f`), `x25519`.
pub(super) fn kind_label(e: Exchange) -> &'static str {
    match e {
        Exchange::Group14 => "pfs",
        Exchange::Fast => "fast",
        Exchange::X25519 => "x25519",
    }
}

/// Why a connection with `outcome` ended, and why its handshake failed if it did.
pub(super) fn classify(outcome: Result<(), &ConnError>) -> (Closed, Option<Cause>) {
    let e = match outcome {
        Ok(()) => return (Closed::Eof, None),
        Err(e) => e,
    };
    match e {
        ConnError::Connect(_) => (Closed::TargetUnreachable, None),
        ConnError::Timeout { .. } => (Closed::Timeout, Some(Cause::Timeout)),
        ConnError::Idle(_) => (Closed::IdleTimeout, None),
        ConnError::Handshake(f) => (Closed::HandshakeFailed, Some(cause(f))),
        // The peer's key is no longer one of ours.
        ConnError::Retired => (Closed::HandshakeFailed, Some(Cause::WrongKey)),
        ConnError::Broken(PumpError::Packet(_) | PumpError::Truncated) => (Closed::BadPacket, None),
        ConnError::Broken(PumpError::Read(e) | PumpError::Write(e) | PumpError::HalfClose(e))
            if is_reset(e) =>
        {
            (Closed::Reset, None)
        }
        ConnError::Broken(_) | ConnError::Random(_) | ConnError::Proxy(_) => (Closed::Error, None),
    }
}

/// The cause of a failed handshake.
fn cause(f: &HandshakeFailure) -> Cause {
    match f {
        HandshakeFailure::Protocol(HandshakeError::BadMac) => Cause::WrongKey,
        HandshakeFailure::Protocol(HandshakeError::PeerNotPfs) => Cause::PfsRequired,
        HandshakeFailure::Protocol(_) | HandshakeFailure::EarlyData => Cause::Malformed,
        HandshakeFailure::Closed
        | HandshakeFailure::ServerClosed
        | HandshakeFailure::X25519Unanswered => Cause::PeerClosed,
        HandshakeFailure::Io(_) | HandshakeFailure::Source(_) | HandshakeFailure::Internal(_) => {
            Cause::Io
        }
    }
}

/// Whether `e` means the other end went away abruptly (rather than a local problem).
fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_their_labels() {
        let handshake = |f| classify(Err(&ConnError::Handshake(f)));
        assert_eq!(
            handshake(HandshakeFailure::Protocol(HandshakeError::BadMac)),
            (Closed::HandshakeFailed, Some(Cause::WrongKey))
        );
        assert_eq!(
            handshake(HandshakeFailure::Protocol(HandshakeError::PeerNotPfs)),
            (Closed::HandshakeFailed, Some(Cause::PfsRequired))
        );
        assert_eq!(
            handshake(HandshakeFailure::Protocol(HandshakeError::LowOrder)),
            (Closed::HandshakeFailed, Some(Cause::Malformed))
        );
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(
            classify(Err(&ConnError::Broken(PumpError::Read(reset)))),
            (Closed::Reset, None)
        );
        assert_eq!(
            classify(Err(&ConnError::Broken(PumpError::Truncated))),
            (Closed::BadPacket, None)
        );
        assert_eq!(
            classify(Err(&ConnError::Timeout { x25519: false })),
            (Closed::Timeout, Some(Cause::Timeout))
        );
        assert_eq!(classify(Ok(())), (Closed::Eof, None));
        // Within each label, every value is distinct: they become separate series.
        let distinct = |mut v: Vec<&str>| {
            let n = v.len();
            v.sort();
            v.dedup();
            v.len() == n
        };
        assert!(distinct(Closed::ALL.iter().map(|c| c.label()).collect()));
        assert!(distinct(Cause::ALL.iter().map(|c| c.label()).collect()));
        // Each counts in its own place of the arrays `ALL` sizes.
        assert!(Closed::ALL.iter().enumerate().all(|(i, c)| c.index() == i));
        assert!(Cause::ALL.iter().enumerate().all(|(i, c)| c.index() == i));
    }
}
