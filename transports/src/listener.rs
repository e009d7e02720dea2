//! [`Listener`]: a listening socket (TCP or UNIX) that yields [`SocketStream`]s.

use std::io;
use std::path::PathBuf;

use async_io::Async;
use socket2::Socket;

use crate::endpoint::{Endpoint, StreamOptions, configure_stream};
use crate::stream::SocketStream;

/// A listening socket registered with the async reactor.
pub struct Listener {
    io: Async<Socket>,
    endpoint: Endpoint,
}

/// How many not-yet-accepted connections the kernel queues for us; connections over
/// spiped's `-n` limit wait here rather than being refused.
const BACKLOG: i32 = 1024;

impl Listener {
    /// Binds and listens on `ep` (SO_REUSEADDR on TCP, so a restart does not wait for
    /// TIME_WAIT). For TCP port 0 the kernel picks a port: see [`Listener::endpoint`].
    pub fn bind(ep: &Endpoint) -> io::Result<Listener> {
        let socket = ep.new_socket()?;
        if let Endpoint::Tcp(a) = ep {
            socket.set_reuse_address(true)?;
            if a.is_ipv6() {
                // Like spiped: an IPv6 listener serves IPv6 only, so that [::]:p and
                // [0.0.0.0]:p can be two separate daemons.
                socket.set_only_v6(true)?;
            }
        }
        socket.bind(&ep.sockaddr()?)?;
        socket.listen(BACKLOG)?;
        socket.set_nonblocking(true)?;
        let endpoint = match ep {
            Endpoint::Tcp(_) => Endpoint::Tcp(
                socket
                    .local_addr()?
                    .as_socket()
                    .ok_or_else(|| io::Error::other("TCP listener has no IP address"))?,
            ),
            Endpoint::Unix(p) => Endpoint::Unix(p.clone()),
        };
        Ok(Listener {
            io: Async::new(socket)?,
            endpoint,
        })
    }

    /// The address actually listened on (with the kernel's port for TCP port 0).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The path of a UNIX-socket listener, for removal at exit.
    pub fn unix_path(&self) -> Option<&PathBuf> {
        match &self.endpoint {
            Endpoint::Unix(p) => Some(p),
            Endpoint::Tcp(_) => None,
        }
    }

    /// Waits for the next connection and applies `opts` to it.
    pub async fn accept(&self, opts: StreamOptions) -> io::Result<SocketStream> {
        let (socket, addr): (Socket, _) = self.io.read_with(|l| l.accept()).await?;
        let tcp = matches!(self.endpoint, Endpoint::Tcp(_));
        configure_stream(&socket, tcp, opts)?;
        let peer = match addr.as_socket() {
            Some(a) => a.to_string(),
            None => self.endpoint.to_string(),
        };
        SocketStream::new(socket, peer)
    }
}
