//! The protocol's client side, which `-e` runs for each accepted connection and spipe
//! for its one: connecting to a target within the `-o` bound, then the handshake; and
//! how a connection's setup or life can fail.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use spiped_proto::handshake::Handshake;
use spiped_transports::{Address, Endpoint, SocketStream, StreamOptions, connect};

use super::handshake::{self, Established, HandshakeFailure};
use super::offload::Offload;
use super::pump::PumpError;

/// Why a connection ended early; the daemon logs it and carries on.
#[derive(Debug)]
pub(crate) enum ConnError {
    /// No target address accepted a connection.
    Connect(ConnectError),
    /// The handshake failed; running out of time is [`ConnError::Timeout`].
    Handshake(HandshakeFailure),
    /// Connect plus handshake took longer than `-o`; `x25519` when we were an X25519
    /// client, whose server may not know the extension.
    Timeout {
        /// We asked the server for X25519.
        x25519: bool,
    },
    /// Random numbers could not be drawn from the OS.
    Random(getrandom::Error),
    /// The client's addresses for the PROXY header could not be read (it left already).
    Proxy(io::Error),
    /// A direction of the established session failed.
    Broken(PumpError),
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
                    write!(f, "; {}", handshake::X25519_HINT)?;
                }
                Ok(())
            }
            ConnError::Random(e) => write!(f, "cannot get random bytes from the OS: {e}"),
            ConnError::Proxy(e) => write!(
                f,
                "cannot read the client's addresses for the PROXY header: {}",
                crate::errors::describe(e)
            ),
            ConnError::Broken(e) => write!(f, "connection broken: {e}"),
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

impl std::error::Error for ConnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnError::Connect(e) => Some(e),
            ConnError::Handshake(e) => Some(e),
            ConnError::Proxy(e) => Some(e),
            ConnError::Broken(e) => Some(e),
            // getrandom's error is a std error only with its `std` feature.
            ConnError::Random(_) => None,
            ConnError::Timeout { .. } | ConnError::Idle(_) | ConnError::Retired => None,
        }
    }
}

/// Why no target address accepted a connection: the last one tried, and why.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// There was no address to try.
    NoTargets,
    /// The last address tried refused, or could not be reached.
    Failed {
        /// The address.
        endpoint: Endpoint,
        /// Why.
        error: io::Error,
    },
    /// Each of several targets, as configured, refused or could not be reached.
    Each(Vec<(Address, io::Error)>),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::NoTargets => f.write_str("no target addresses"),
            ConnectError::Failed { endpoint, error } => {
                write!(f, "{endpoint}: {}", crate::errors::describe(error))
            }
            ConnectError::Each(failures) => {
                for (i, (target, error)) in failures.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "; " };
                    write!(f, "{sep}{target}: {}", crate::errors::describe(error))?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::NoTargets => None,
            ConnectError::Failed { error, .. } => Some(error),
            ConnectError::Each(failures) => failures.last().map(|(_, e)| e as _),
        }
    }
}

/// How a connection to a target is opened: from which local address (`-b`), with which
/// socket options (`-j`), and within how long for connect plus handshake (`-o`); alike
/// for a daemon's outgoing connections and spipe's.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dial {
    /// Local address to bind before connecting (`-b`).
    pub bind: Option<SocketAddr>,
    /// Socket options (`-j`).
    pub stream: StreamOptions,
    /// Bound on connect plus handshake (`-o`).
    pub timeout: Duration,
}

/// Connects to the first of `targets` that accepts, as `dial` says. The caller bounds
/// the whole attempt; with several addresses each also gets `dial.timeout` of its own,
/// so that one that never answers does not use up the time the others need.
pub(crate) async fn connect_any(
    targets: &[Endpoint],
    dial: Dial,
) -> Result<SocketStream, ConnectError> {
    let mut last = ConnectError::NoTargets;
    let each = (targets.len() > 1).then_some(dial.timeout);
    for ep in targets {
        match connect(ep, dial.bind, dial.stream, each).await {
            Ok(s) => return Ok(s),
            Err(error) => {
                last = ConnectError::Failed {
                    endpoint: ep.clone(),
                    error,
                }
            }
        }
    }
    Err(last)
}

/// Opens a connection as the protocol's client, as `-e` does for each accepted
/// connection and spipe for its one: connects to the first of `targets` that accepts
/// (as `dial` says), runs `connected` (where spipe confines itself), then handshakes
/// (its costly steps as `offload` decides), sending `early` with the handshake where it
/// can. The caller bounds it all by `-o` with [`within`].
pub(crate) async fn open_client<E: From<ConnError>>(
    targets: &[Endpoint],
    dial: Dial,
    offload: &Offload,
    hs: Box<Handshake>,
    early: Option<handshake::Early<'_>>,
    connected: impl FnOnce() -> Result<(), E>,
) -> Result<(SocketStream, Established), E> {
    let target = connect_any(targets, dial)
        .await
        .map_err(ConnError::Connect)?;
    connected()?;
    let keys = client_handshake(&target, offload, hs, early).await?;
    Ok((target, keys))
}

/// The client's handshake over `target`, once connected (see [`open_client`]): what a
/// daemon's `-e` runs after connecting through its targets.
pub(crate) async fn client_handshake(
    target: &SocketStream,
    offload: &Offload,
    hs: Box<Handshake>,
    early: Option<handshake::Early<'_>>,
) -> Result<Established, ConnError> {
    handshake::handshake(offload, target, hs, early)
        .await
        .map_err(handshake_failed)
}

/// Bounds a connection's setup (connect plus handshake) by `timeout` (`-o`), failing
/// with [`ConnError::Timeout`]; `x25519` when we asked a server for X25519, which the
/// message then mentions.
pub(crate) async fn within<T, E: From<ConnError>>(
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
pub(crate) fn handshake_failed(e: HandshakeFailure) -> ConnError {
    match e {
        HandshakeFailure::Source(e) => ConnError::Broken(PumpError::Read(e)),
        e => ConnError::Handshake(e),
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use spiped_transports::event_loop::block_on;

    use super::*;

    /// A refused connection stays an I/O error the caller can inspect (its kind), and
    /// reads as the last address tried and why; no address at all says so.
    #[test]
    fn connect_errors_keep_the_io_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = Endpoint::Tcp(listener.local_addr().unwrap());
        drop(listener);
        let dial = Dial {
            bind: None,
            stream: StreamOptions::default(),
            timeout: Duration::from_secs(5),
        };
        let failed = |targets: &[Endpoint]| {
            let r = block_on(connect_any(targets, dial)).unwrap();
            r.err().expect("nothing listens there")
        };
        let e = failed(std::slice::from_ref(&closed));
        let io = e.source().and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(
            io.map(io::Error::kind),
            Some(io::ErrorKind::ConnectionRefused)
        );
        assert_eq!(e.to_string(), format!("{closed}: Connection refused"));
        let e = ConnError::Connect(failed(&[]));
        assert_eq!(
            e.to_string(),
            "cannot connect to target: no target addresses"
        );
    }
}
