//! One connection's life in the daemon: open the other side, handshake, pipe, close.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use spiped_transports::{Endpoint, SocketStream, StreamOptions, Transport, connect};

use crate::connlog::ConnLog;
use crate::proto::handshake::{Mode, Role};
use crate::proto::key::Key;
use crate::proxy;
use crate::pump::PumpError;
use crate::session::{self, HandshakeFailure, Traffic};

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

/// Everything a connection needs that is fixed for the daemon's lifetime.
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

/// Runs one accepted connection to its end, and logs how it went (see [`ConnLog`]).
pub async fn run(accepted: SocketStream, cfg: &ConnConfig, targets: &[Endpoint]) {
    let verbose = cfg.log_connections;
    let mut log = ConnLog::accepted(accepted.peer(), verbose, !cfg.extra_keys.is_empty());
    let traffic = Traffic::default();
    let outcome = serve(&accepted, cfg, targets, &mut log, &traffic).await;
    let (sent, received) = (
        traffic.sent.load(Ordering::Relaxed),
        traffic.received.load(Ordering::Relaxed),
    );
    // What the accepted peer sent is what we sealed (-e) or opened (-d).
    let (from_peer, to_peer) = match cfg.direction {
        Direction::Encrypt => (sent, received),
        Direction::Decrypt => (received, sent),
    };
    log.closed(
        from_peer,
        to_peer,
        outcome
            .as_ref()
            .map_err(|e| e as &dyn fmt::Display)
            .copied(),
    );
}

/// Connects, handshakes and pipes, counting the plaintext moved in `traffic`.
async fn serve(
    accepted: &SocketStream,
    cfg: &ConnConfig,
    targets: &[Endpoint],
    log: &mut ConnLog,
    traffic: &Traffic,
) -> Result<(), ConnError> {
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
    let connect = || async {
        connect_any(targets, cfg.bind, cfg.stream, cfg.timeout)
            .await
            .map_err(ConnError::Connect)
    };
    let setup = async {
        match cfg.direction {
            Direction::Encrypt => {
                let target = connect().await?;
                let early = session::Early {
                    prefix: &header,
                    source: accepted,
                };
                let keys = session::handshake(&target, hs, Some(early))
                    .await
                    .map_err(handshake_failed)?;
                Ok((target, keys))
            }
            Direction::Decrypt if cfg.connect_after_handshake => {
                // The target hears of nobody who has not proved to hold a key.
                let keys = session::handshake(accepted, hs, None)
                    .await
                    .map_err(handshake_failed)?;
                Ok((connect().await?, keys))
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
                    connect(),
                )?;
                Ok((target, keys))
            }
        }
    };
    let (other, mut keys) = tokio::time::timeout(cfg.timeout, setup)
        .await
        .map_err(|_| ConnError::Timeout {
            x25519: cfg.direction == Direction::Encrypt && cfg.mode.x25519,
        })??;
    log.established(other.peer(), keys.exchange, keys.key_index);
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
    session::pipe(plain, encrypted, keys.sealer, keys.opener, traffic)
        .await
        .map_err(ConnError::Pipe)
}
