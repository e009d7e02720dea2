//! One connection's life in the daemon: open the other side, handshake, pipe, close.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use spiped_transports::{Endpoint, SocketStream, StreamOptions, Transport, connect};

use crate::connlog::ConnLog;
use crate::metrics::{PipeMetrics, Tracked};
use crate::proxy;
use crate::pump::PumpError;
use crate::session::{self, HandshakeFailure, Traffic};
use spiped_proto::handshake::{Mode, Role};
use spiped_proto::key::Key;

/// Which side of the protocol the daemon plays for its accepted connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `-e`: accept plaintext, connect encrypted (protocol client).
    Encrypt,
    /// `-d`: accept encrypted, connect plaintext (protocol server).
    Decrypt,
}

impl Direction {
    /// The protocol role of the daemon's connections.
    pub fn role(self) -> Role {
        match self {
            Direction::Encrypt => Role::Client,
            Direction::Decrypt => Role::Server,
        }
    }
}

/// Everything a connection needs, fixed from its accept to its close: a reload gives
/// the pipe a new one for later connections.
pub struct ConnConfig {
    /// `-e` or `-d`.
    pub direction: Direction,
    /// The hashed pre-shared key (the first `-k`): the one `-e` uses.
    pub key: Key,
    /// Further keys a `-d` accepts (repeated `-k`, for key rotation).
    pub extra_keys: Vec<Key>,
    /// `--proxy` (only with `-e`): send a PROXY protocol header first.
    pub proxy: Option<proxy::Version>,
    /// `--connect-after-handshake` (only with `-d`): open the target only once the
    /// client has proved it holds the key.
    pub connect_after_handshake: bool,
    /// `--log-connections`: a line per connection when established and when closed.
    pub log_connections: bool,
    /// `-f` / `-g` / `--x25519`.
    pub mode: Mode,
    /// Bound on target connect plus handshake (`-o`).
    pub timeout: Duration,
    /// Socket options for both sockets of a connection (`-j`).
    pub stream: StreamOptions,
    /// Local address for outgoing connections (`-b`).
    pub bind: Option<SocketAddr>,
    /// Whether keys lead to different targets (routing by key, `-d` only): the target
    /// is then connected once the handshake has told which key the client holds.
    pub routed: bool,
    /// `idle-timeout`: close an established session that moves nothing for this long.
    pub idle_timeout: Option<Duration>,
    /// The pipe's counters, which outlive this configuration.
    pub counters: Arc<crate::pipe::Counters>,
    /// The pipe's name for log lines, when the process serves several (`-c`).
    pub label: Option<String>,
    /// The pipe's metrics, which every connection updates and which outlive this
    /// configuration.
    pub metrics: Arc<PipeMetrics>,
}

/// Why a connection ended early; the daemon logs it and carries on.
#[derive(Debug)]
pub enum ConnError {
    /// No target address accepted a connection.
    Connect(String),
    /// The handshake failed or did not finish in time.
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
        }
    }
}

impl std::error::Error for ConnError {}

/// Connects to the first of `targets` that accepts. The caller bounds the whole
/// attempt; with several addresses each also gets `timeout` of its own, so that one
/// that never answers does not use up the time the others need.
pub async fn connect_any(
    targets: &[Endpoint],
    bind: Option<SocketAddr>,
    opts: StreamOptions,
    timeout: Duration,
) -> Result<SocketStream, String> {
    let mut last = String::from("no target addresses");
    let each = (targets.len() > 1).then_some(timeout);
    for ep in targets {
        match connect(ep, bind, opts, each).await {
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
pub async fn run(accepted: SocketStream, cfg: &ConnConfig, routes: &Routes) {
    let verbose = cfg.log_connections;
    let peer = match &cfg.label {
        Some(name) => format!("{} on pipe {name}", accepted.peer()),
        None => accepted.peer(),
    };
    let mut log = ConnLog::accepted(peer, verbose, !cfg.extra_keys.is_empty());
    let tracked = cfg.metrics.accepted(log.id(), accepted.peer());
    let outcome = serve(&accepted, cfg, routes, &mut log, &tracked).await;
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

/// Connects, handshakes and pipes, counting in `tracked`.
async fn serve(
    accepted: &SocketStream,
    cfg: &ConnConfig,
    routes: &Routes,
    log: &mut ConnLog,
    tracked: &Tracked,
) -> Result<(), ConnError> {
    let traffic = &tracked.conn().traffic;
    let targets = routes.first().map_or(&[][..], |r| &r[..]);
    let hs = session::start(cfg.direction.role(), cfg.mode, &cfg.key, &cfg.extra_keys)
        .map_err(|e| ConnError::Random(e.to_string()))?;
    // The PROXY header goes first: with the DH message when data can, else right after.
    let header = match cfg.proxy {
        Some(version) => {
            let (client, destination) = accepted.ends().map_err(ConnError::Proxy)?;
            proxy::header(version, &client, &destination)
        }
        None => Vec::new(),
    };
    let handshake_failed = |e| match e {
        HandshakeFailure::Source(e) => ConnError::Pipe(PumpError::Read(e)),
        e => ConnError::Handshake(e),
    };
    let connect = |targets| connect_target(targets, cfg);
    // Boxed, so that its state (handshake, connects, the read buffer) is freed once it
    // is done: inline, the task of every connection would keep room for it, and twice
    // (rustc keeps a moved-from local beside the future it moved into) for its life.
    let setup = Box::pin(async {
        match cfg.direction {
            Direction::Encrypt => {
                let target = connect(targets).await?;
                let early = session::Early {
                    prefix: &header,
                    source: accepted,
                };
                let keys = session::handshake(&target, hs, Some(early))
                    .await
                    .map_err(handshake_failed)?;
                Ok((target, keys))
            }
            Direction::Decrypt if cfg.connect_after_handshake || cfg.routed => {
                // The target hears of nobody who has not proved to hold a key; with
                // routing, which target it is depends on that key.
                let keys = session::handshake(accepted, hs, None)
                    .await
                    .map_err(handshake_failed)?;
                let route = routes.get(keys.key_index).map_or(targets, |r| &r[..]);
                Ok((connect(route).await?, keys))
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
                        let keys = session::handshake(accepted, hs, None).await;
                        if keys.is_err() {
                            tokio::task::yield_now().await;
                        }
                        keys.map_err(handshake_failed)
                    },
                    connect(targets),
                )?;
                Ok((target, keys))
            }
        }
    });
    let (other, mut keys) = tokio::time::timeout(cfg.timeout, setup)
        .await
        .map_err(|_| ConnError::Timeout {
            x25519: cfg.direction == Direction::Encrypt && cfg.mode.x25519,
        })??;
    let target = other.peer();
    tracked.established(target.clone(), keys.exchange, keys.key_index, keys.took);
    log.established(target, keys.exchange, keys.key_index);
    let (plain, encrypted): (&dyn Transport, &dyn Transport) = match cfg.direction {
        Direction::Encrypt => (accepted, &other),
        Direction::Decrypt => (&other, accepted),
    };
    if let Some(n) = keys.early {
        traffic.sent.fetch_add(n as u64, Ordering::Relaxed);
    } else if !header.is_empty() {
        session::send_first(encrypted, &mut keys.sealer, &header)
            .await
            .map_err(|e| ConnError::Pipe(PumpError::Write(e)))?;
    }
    let piped = async {
        session::pipe(plain, encrypted, keys.sealer, keys.opener, traffic)
            .await
            .map_err(ConnError::Pipe)
    };
    match cfg.idle_timeout {
        None => piped.await,
        Some(idle) => tokio::select! {
            r = piped => r,
            r = idle_watch(traffic, idle) => r,
        },
    }
}

/// Connects to the first of `targets` that accepts, as `cfg` says.
async fn connect_target(targets: &[Endpoint], cfg: &ConnConfig) -> Result<SocketStream, ConnError> {
    connect_any(targets, cfg.bind, cfg.stream, cfg.timeout)
        .await
        .map_err(ConnError::Connect)
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
