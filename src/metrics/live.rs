//! One open connection as the status page and SIGUSR1 show it: who, since when, how
//! far it got, and the bytes it has moved so far.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::config::Direction;
use crate::session::pump::Traffic;
use spiped_proto::handshake::Exchange;

/// A connection between accept and close. Shared between its task, which updates the
/// traffic counters per batch, and whoever reads the status.
pub(crate) struct LiveConn {
    /// The number its log lines carry (`connection #N`).
    pub id: u64,
    /// The accepted peer's address.
    pub peer: String,
    start: Instant,
    direction: Direction,
    /// Plaintext moved so far, updated by the pumps once per batch.
    pub traffic: Traffic,
    agreed: OnceLock<Agreed>,
}

/// What the handshake settled.
struct Agreed {
    target: String,
    exchange: Exchange,
    key_index: usize,
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Connecting to the target and/or handshaking.
    Handshake,
    /// Established, data may flow both ways.
    Open,
    /// One direction has ended (its source half-closed); the other still flows.
    HalfClosed,
}

impl State {
    /// The word the status page and log lines use.
    pub(crate) fn label(self) -> &'static str {
        match self {
            State::Handshake => "handshake",
            State::Open => "open",
            State::HalfClosed => "half-closed",
        }
    }
}

/// A snapshot of a [`LiveConn`], for one status line or JSON object.
#[derive(Debug)]
pub(crate) struct Snapshot<'a> {
    /// [`LiveConn::id`].
    pub id: u64,
    /// [`LiveConn::peer`].
    pub peer: &'a str,
    /// The target connected to, once established.
    pub target: Option<&'a str>,
    /// Time since accept.
    pub age: Duration,
    /// Plaintext bytes from the accepted peer towards the target.
    pub from_peer: u64,
    /// Plaintext bytes towards the accepted peer.
    pub to_peer: u64,
    /// Where the connection is.
    pub state: State,
    /// Key agreement and key number (from 1, in `-k` order), once established.
    pub handshake: Option<(Exchange, usize)>,
}

impl LiveConn {
    /// A connection accepted now from `peer`, logged as number `id`, on a pipe that
    /// plays `direction`.
    pub(crate) fn new(id: u64, peer: String, direction: Direction) -> LiveConn {
        LiveConn {
            id,
            peer,
            start: Instant::now(),
            direction,
            traffic: Traffic::default(),
            agreed: OnceLock::new(),
        }
    }

    /// Records that the handshake finished with `target` connected.
    pub(crate) fn established(&self, target: String, exchange: Exchange, key_index: usize) {
        let _ = self.agreed.set(Agreed {
            target,
            exchange,
            key_index,
        });
    }

    /// Plaintext bytes (from the peer, to the peer) so far.
    pub(crate) fn bytes(&self) -> (u64, u64) {
        peer_bytes(self.direction, &self.traffic)
    }

    /// The connection as it is now.
    pub(crate) fn snapshot(&self) -> Snapshot<'_> {
        let agreed = self.agreed.get();
        let state = match (agreed, self.traffic.finished.load(Ordering::Relaxed)) {
            (None, _) => State::Handshake,
            (Some(_), 0) => State::Open,
            (Some(_), _) => State::HalfClosed,
        };
        let (from_peer, to_peer) = self.bytes();
        Snapshot {
            id: self.id,
            peer: &self.peer,
            target: agreed.map(|a| a.target.as_str()),
            age: self.start.elapsed(),
            from_peer,
            to_peer,
            state,
            handshake: agreed.map(|a| (a.exchange, a.key_index + 1)),
        }
    }
}

/// Plaintext bytes (from the accepted peer, to it) that `traffic` counts on a pipe
/// playing `direction`: what the accepted peer sent is what we sealed (`-e`) or
/// opened (`-d`).
fn peer_bytes(direction: Direction, traffic: &Traffic) -> (u64, u64) {
    let (sent, received) = (
        traffic.sent.load(Ordering::Relaxed),
        traffic.received.load(Ordering::Relaxed),
    );
    match direction {
        Direction::Encrypt => (sent, received),
        Direction::Decrypt => (received, sent),
    }
}
