//! Resolved socket addresses, and opening sockets to them with spiped's socket options.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket};

use crate::registered::Registered;
use crate::stream::SocketStream;

/// An address ready to connect to or listen on: no names left to resolve.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A UNIX-domain socket path.
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(a) => write!(f, "{a}"),
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

impl Endpoint {
    pub(crate) fn sockaddr(&self) -> io::Result<SockAddr> {
        match self {
            Endpoint::Tcp(a) => Ok(SockAddr::from(*a)),
            Endpoint::Unix(p) => SockAddr::unix(p),
        }
    }

    pub(crate) fn domain(&self) -> Domain {
        match self {
            Endpoint::Tcp(SocketAddr::V4(_)) => Domain::IPV4,
            Endpoint::Tcp(SocketAddr::V6(_)) => Domain::IPV6,
            Endpoint::Unix(_) => Domain::UNIX,
        }
    }

    pub(crate) fn new_socket(&self) -> io::Result<Socket> {
        crate::sys::stream_socket(self.domain())
    }
}

/// Per-connection socket options (spiped's `-j` turns keep-alives off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamOptions {
    /// Enable SO_KEEPALIVE on TCP connections.
    pub keepalive: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions { keepalive: true }
    }
}

/// Applies spiped's options to a TCP socket (a connected one, or a listener whose
/// connections inherit them): TCP_NODELAY always (the protocol already coalesces into
/// 1024-byte packets, Nagle only adds latency), SO_KEEPALIVE unless disabled. UNIX
/// sockets take neither.
pub(crate) fn configure_stream(socket: &Socket, tcp: bool, opts: StreamOptions) -> io::Result<()> {
    if tcp {
        socket.set_tcp_nodelay(true)?;
        socket.set_keepalive(opts.keepalive)?;
    }
    Ok(())
}

/// Opens a connection to `ep`, first binding to `bind` if given (spiped's `-b`).
///
/// With `timeout`, gives up with `TimedOut` after that long; without, the caller bounds
/// the attempt (one timer covering a whole connection set-up is cheaper than one per
/// step). The error names neither address; callers add
/// that context.
pub async fn connect(
    ep: &Endpoint,
    bind: Option<SocketAddr>,
    opts: StreamOptions,
    timeout: Option<Duration>,
) -> io::Result<SocketStream> {
    let socket = ep.new_socket()?;
    if let (Some(b), Endpoint::Tcp(_)) = (bind, ep) {
        // As C spiped's: with a fixed `-b` port, the previous connection's socket in
        // TIME_WAIT must not keep the next one from binding.
        socket.set_reuse_address(true)?;
        socket.bind(&SockAddr::from(b))?;
    }
    // Registered before connecting, so a failure to register leaves no half-open
    // connection behind, and the edge of the finished connect cannot be missed.
    let io = Registered::new(socket)?;
    let connecting = async {
        match io.get_ref().connect(&ep.sockaddr()?) {
            Ok(()) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::EINPROGRESS)
                    || e.kind() == io::ErrorKind::WouldBlock =>
            {
                io.writable().await?;
                if let Some(e) = io.get_ref().take_error()? {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
        Ok(())
    };
    match timeout {
        None => connecting.await?,
        Some(t) => tokio::time::timeout(t, connecting)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connection timed out"))??,
    }
    let tcp = matches!(ep, Endpoint::Tcp(_));
    configure_stream(io.get_ref(), tcp, opts)?;
    // Keep the reactor registration made for connecting: no second registration.
    Ok(SocketStream::from_registered(io, tcp, ep.to_string()))
}
