//! One connection's life in the daemon: open the other side, handshake, pipe, close;
//! and the client's way of opening a connection, which `spipe` shares.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use spiped_transports::{Endpoint, SocketStream, Transport, connect};

use crate::config::Direction;
use crate::config::conn::{ConnConfig, Dial};
use crate::connlog::ConnLog;
use crate::metrics::Tracked;
use crate::offload::Offload;
use crate::proxy;
use crate::pump::{self, PumpError, Traffic};
use crate::session::{self, Established, HandshakeFailure};
use spiped_proto::handshake::Handshake;
use spiped_proto::key::Key;

/// Why a connection ended early; the daemon logs it and carries on.
#[derive(Debug)]
pub enum ConnError {
    /// No target address accepted a connection.
    Connect(String),
    /// The handshake failed; running out of time is [`ConnError::Timeout`].
    Handshake(HandshakeFailure),
    /// Connect plus handshake took longer than `-o`; `x25519` when we were an X25519
    /// client, whose server may not know the extension.
    Timeout {
        /// We asked the server for X25519.
        x25519: bool,
    },
    /// Random numbers could not be drawn from the OS.
    Random(String),
    /// The client's addresses for the PROXY header could not be read (it left already).
    Proxy(io::Error),
    /// A direction of the established session failed.
    Pipe(PumpError),
    /// No byte moved either way for `idle-timeout`.
    Idle(Duration),
    /// The handshake completed with a key that a reload removed while it ran.
    Retired,
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Connect(e) => write!(f, "cannot connect to target: {e}"),
            ConnError::Handshake(e) => write!(f, "{e}"),
            ConnError::Timeout { x25519 } => {
                f.write_str("connection timed out before the handshake completed")?;
                if *x25519 {
                    write!(f, "; {}", session::X25519_HINT)?;
                }
                Ok(())
            }
            ConnError::Random(e) => write!(f, "cannot get random bytes from the OS: {e}"),
            ConnError::Proxy(e) => write!(
                f,
                "cannot read the client's addresses for the PROXY header: {}",
                crate::errors::describe(e)
            ),
            ConnError::Pipe(e) => write!(f, "connection broken: {e}"),
            ConnError::Idle(d) => write!(
                f,
                "closed after {} s without traffic (idle-timeout)",
                d.as_secs_f64()
            ),
            ConnError::Retired => f.write_str(
                "handshake failed: it completed with a key that a reload removed meanwhile",
            ),
        }
    }
}

impl std::error::Error for ConnError {}

/// Connects to the first of `targets` that accepts, as `dial` says. The caller bounds
/// the whole attempt; with several addresses each also gets `dial.timeout` of its own,
/// so that one that never answers does not use up the time the others need.
async fn connect_any(targets: &[Endpoint], dial: Dial) -> Result<SocketStream, String> {
    let mut last = String::from("no target addresses");
    let each = (targets.len() > 1).then_some(dial.timeout);
    for ep in targets {
        match connect(ep, dial.bind, dial.stream, each).await {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("{ep}: {}", crate::errors::describe(&e)),
        }
    }
    Err(last)
}

/// The target addresses of each key of a pipe, in key order, as they were when a
/// connection was accepted; without routing by key, one list for every key.
pub type Routes = [Arc<Vec<Endpoint>>];

/// Runs one accepted connection to its end, and logs how it went (see [`ConnLog`]).
/// Borrows the socket: a future that owned it would hold it twice for the connection's
/// life (rustc keeps an `async fn`'s argument beside the local it is moved into).
/// `current` tells whether a key is still the pipe's when the handshake completes: a
/// key that a reload removed meanwhile admits no session.
pub async fn run(
    accepted: &SocketStream,
    cfg: &ConnConfig,
    routes: &Routes,
    offload: &Offload,
    current: impl Fn(&Key) -> bool,
) {
    let verbose = cfg.log_connections;
    let peer = match &cfg.label {
        Some(name) => format!("{} on pipe {name}", accepted.peer()),
        None => accepted.peer(),
    };
    let mut log = ConnLog::accepted(peer, verbose, cfg.keys.len() > 1);
    let tracked = cfg.metrics.accepted(log.id(), accepted.peer());
    let outcome = serve(accepted, cfg, routes, offload, &current, &mut log, &tracked).await;
    if let Err(ConnError::Idle(_)) = outcome {
        cfg.counters.idle_closed.fetch_add(1, Ordering::Relaxed);
    }
    let (from_peer, to_peer) = tracked.conn().bytes();
    log.closed(
        from_peer,
        to_peer,
        outcome
            .as_ref()
            .map_err(|e| e as &dyn fmt::Display)
            .copied(),
    );
    tracked.closed(outcome.as_ref().map(|_| ()));
}

/// Plaintext bytes (from the accepted peer, to it) that `traffic` counts on a pipe
/// playing `direction`: what the accepted peer sent is what we sealed (`-e`) or
/// opened (`-d`).
pub fn peer_bytes(direction: Direction, traffic: &Traffic) -> (u64, u64) {
    let (sent, received) = (
        traffic.sent.load(Ordering::Relaxed),
        traffic.received.load(Ordering::Relaxed),
    );
    match direction {
        Direction::Encrypt => (sent, received),
        Direction::Decrypt => (received, sent),
    }
}

/// Connects, handshakes (admitting only a key that is still `current`) and pipes,
/// counting in `tracked`.
async fn serve(
    accepted: &SocketStream,
    cfg: &ConnConfig,
    routes: &Routes,
    offload: &Offload,
    current: &impl Fn(&Key) -> bool,
    log: &mut ConnLog,
    tracked: &Tracked,
) -> Result<(), ConnError> {
    let traffic = &tracked.conn().traffic;
    let targets = routes.first().map_or(&[][..], |r| &r[..]);
    let hs = session::start(cfg.direction.role(), cfg.mode, &cfg.keys[0], &cfg.keys[1..])
        .map_err(|e| ConnError::Random(e.to_string()))?;
    // Checked once the handshake has told which key the peer holds, before the target
    // hears of it where it waits for that.
    let admit = |keys: Established| match current(&cfg.keys[keys.key_index]) {
        true => Ok(keys),
        false => Err(ConnError::Retired),
    };
    // The PROXY header goes first: with the DH message when data can, else right after.
    let header = match cfg.proxy {
        Some(version) => {
            let (client, destination) = accepted.ends().map_err(ConnError::Proxy)?;
            proxy::header(version, &client, &destination)
        }
        None => Vec::new(),
    };
    // Boxed, so that its state (handshake, connects, the read buffer) is freed once it
    // is done: inline, the task of every connection would keep room for it, and twice
    // (rustc keeps a moved-from local beside the future it moved into) for its life.
    let setup = Box::pin(async {
        match cfg.direction {
            Direction::Encrypt => {
                let early = session::Early {
                    prefix: &header,
                    source: accepted,
                };
                let connected = || Ok::<_, ConnError>(());
                let (target, keys) =
                    open_client(targets, cfg.dial(), offload, hs, Some(early), connected).await?;
                Ok((target, admit(keys)?))
            }
            Direction::Decrypt if cfg.connect_after_handshake || cfg.routed => {
                // The target hears of nobody who has not proved to hold a key; with
                // routing, which target it is depends on that key.
                let keys = session::handshake(offload, accepted, hs, None)
                    .await
                    .map_err(handshake_failed)
                    .and_then(admit)?;
                let route = routes.get(keys.key_index).map_or(targets, |r| &r[..]);
                Ok((connect_target(route, cfg).await?, keys))
            }
            Direction::Decrypt => {
                // Like spiped: connect to the target while the handshake runs, so a slow
                // target does not add to the handshake's latency. The handshake goes
                // first, so our nonce is out before the connect's system calls; one that
                // fails at once yields before it returns, so that the connect starts
                // anyway, and every client reaches the target (as with spiped) however
                // soon it gives up.
                let (keys, target) = tokio::try_join!(
                    biased;
                    async {
                        let keys = session::handshake(offload, accepted, hs, None).await;
                        if keys.is_err() {
                            tokio::task::yield_now().await;
                        }
                        keys.map_err(handshake_failed).and_then(admit)
                    },
                    connect_target(targets, cfg),
                )?;
                Ok((target, keys))
            }
        }
    });
    let x25519 = cfg.direction == Direction::Encrypt && cfg.mode.x25519;
    let (other, keys) = within(cfg.timeout, x25519, setup).await?;
    let (plain, encrypted): (&dyn Transport, &dyn Transport) = match cfg.direction {
        Direction::Encrypt => (accepted, &other),
        Direction::Decrypt => (&other, accepted),
    };
    // A block of its own: what the session no longer needs once established (the
    // target's name, the rest of the handshake's result) takes no room in this future,
    // which lives as long as the connection.
    let (sealer, opener) = {
        let mut keys = keys;
        let target = other.peer();
        tracked.established(target.clone(), keys.exchange, keys.key_index, keys.took);
        log.established(target, keys.exchange, keys.key_index);
        let early = keys
            .send_prefix(encrypted, &header)
            .await
            .map_err(|e| ConnError::Pipe(PumpError::Write(e)))?;
        traffic.sent.fetch_add(early as u64, Ordering::Relaxed);
        (keys.sealer, keys.opener)
    };
    let piped = pump::pipe(plain, encrypted, sealer, opener, traffic, offload);
    match cfg.idle_timeout {
        None => piped.await.map_err(ConnError::Pipe),
        // Boxed, so that connections without an idle timeout keep no room for its timer.
        Some(idle) => tokio::select! {
            r = piped => r.map_err(ConnError::Pipe),
            r = Box::pin(idle_watch(traffic, idle)) => r,
        },
    }
}

/// Connects to the first of `targets` that accepts, as `cfg` says.
async fn connect_target(targets: &[Endpoint], cfg: &ConnConfig) -> Result<SocketStream, ConnError> {
    connect_any(targets, cfg.dial())
        .await
        .map_err(ConnError::Connect)
}

/// Opens a connection as the protocol's client, as `-e` does for each accepted
/// connection and spipe for its one: connects to the first of `targets` that accepts
/// (as `dial` says), runs `connected` (where spipe confines itself), then handshakes
/// (its costly steps as `offload` decides), sending `early` with the handshake where it
/// can. The caller bounds it all by `-o` with [`within`].
pub async fn open_client<E: From<ConnError>>(
    targets: &[Endpoint],
    dial: Dial,
    offload: &Offload,
    hs: Box<Handshake>,
    early: Option<session::Early<'_>>,
    connected: impl FnOnce() -> Result<(), E>,
) -> Result<(SocketStream, Established), E> {
    let target = connect_any(targets, dial)
        .await
        .map_err(ConnError::Connect)?;
    connected()?;
    let keys = session::handshake(offload, &target, hs, early)
        .await
        .map_err(handshake_failed)?;
    Ok((target, keys))
}

/// Bounds a connection's setup (connect plus handshake) by `timeout` (`-o`), failing
/// with [`ConnError::Timeout`]; `x25519` when we asked a server for X25519, which the
/// message then mentions.
pub async fn within<T, E: From<ConnError>>(
    timeout: Duration,
    x25519: bool,
    setup: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    tokio::time::timeout(timeout, setup)
        .await
        .map_err(|_| ConnError::Timeout { x25519 })?
}

/// A failed handshake as the connection's error: a source that failed while its data
/// went out early failed as the pipe would have.
fn handshake_failed(e: HandshakeFailure) -> ConnError {
    match e {
        HandshakeFailure::Source(e) => ConnError::Pipe(PumpError::Read(e)),
        e => ConnError::Handshake(e),
    }
}

/// Returns once `traffic` has not moved for `idle`. Looks a few times per period, so a
/// session is closed at most a quarter period late, and costs nothing per packet.
async fn idle_watch(traffic: &Traffic, idle: Duration) -> Result<(), ConnError> {
    let moved = || traffic.sent.load(Ordering::Relaxed) + traffic.received.load(Ordering::Relaxed);
    let tick = idle / 4;
    let (mut last, mut since) = (moved(), Instant::now());
    loop {
        tokio::time::sleep(tick).await;
        let now = moved();
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= idle {
            return Err(ConnError::Idle(idle));
        }
    }
}
