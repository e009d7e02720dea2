//! [`SocketStream`]: the [`Transport`] over any connected stream socket (TCP or UNIX).

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use socket2::Socket;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::registered::Registered;
use crate::{Endpoint, Transport, sys};

/// A connected, non-blocking stream socket registered with the event loop
/// ([`crate::event_loop`]).
pub struct SocketStream {
    io: Registered,
    peer: String,
    /// A short read proves a TCP socket drained (the kernel copies all it has); on
    /// UNIX sockets a read also stops early at passed credentials or descriptors, so
    /// only a `WouldBlock` proves it there.
    short_read_drains: bool,
}

impl SocketStream {
    /// Wraps a connected TCP (`tcp`) or UNIX stream socket, made non-blocking here;
    /// `peer` names the other end in log messages. Must be called inside the event loop.
    pub fn new(socket: Socket, tcp: bool, peer: String) -> io::Result<SocketStream> {
        socket.set_nonblocking(true)?;
        let io = Registered::new(socket)?;
        Ok(SocketStream::from_registered(io, tcp, peer))
    }

    /// Both ends of the connection as the kernel reports them: `(peer, local)`. A UNIX
    /// socket end without a name (a client that did not bind, as most do) has an empty
    /// path; an end that is neither TCP nor a named or unnamed UNIX socket is an error.
    pub fn ends(&self) -> io::Result<(Endpoint, Endpoint)> {
        let socket = self.io.get_ref();
        Ok((
            endpoint_of(socket.peer_addr()?)?,
            endpoint_of(socket.local_addr()?)?,
        ))
    }

    /// The user id of the process at the other end of a UNIX socket, as the kernel
    /// vouches for it (`SO_PEERCRED`, `getpeereid`); meaningless on TCP.
    pub fn peer_uid(&self) -> io::Result<u32> {
        sys::peer_uid(self.io.get_ref())
    }

    /// `shutdown(SHUT_WR)`, a peer already gone aside.
    fn shut_write(&self) -> io::Result<()> {
        match self.io.get_ref().shutdown(Shutdown::Write) {
            // The peer reset the connection as our end of stream went out (its RST
            // meeting the FIN from the other side of the pipe, as spiped 1.6.4 fixed):
            // there is no one left to tell about EOF, and the reading direction reports
            // what happened. Linux says ENOTCONN; other kernels say ECONNRESET.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotConnected | io::ErrorKind::ConnectionReset
                ) =>
            {
                Ok(())
            }
            r => r,
        }
    }

    /// The socket, for tests of its options.
    #[cfg(test)]
    pub(crate) fn socket(&self) -> &Socket {
        self.io.get_ref()
    }

    /// Wraps a socket already registered with the event loop.
    pub(crate) fn from_registered(io: Registered, tcp: bool, peer: String) -> SocketStream {
        SocketStream {
            io,
            peer,
            short_read_drains: tcp,
        }
    }
}

#[async_trait]
impl Transport for SocketStream {
    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        let drains = self.short_read_drains;
        (self.io)
            .read_with(|mut s| s.read(buf), |&n| drains && n > 0 && n < len)
            .await
    }

    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_readable(cx)
    }

    async fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        // A short write means the send buffer is full; the kernel reports an edge when
        // it has room again.
        (self.io)
            .write_with(|mut s| s.write_vectored(bufs), |&n| n < len)
            .await
    }

    async fn shutdown_write(&self) -> io::Result<()> {
        self.shut_write()
    }

    fn peer(&self) -> String {
        self.peer.clone()
    }
}

/// For servers built on tokio's traits (the metrics endpoint's HTTP server); the data
/// path uses [`Transport`], whose reads and writes skip the wait for readiness where
/// they can.
impl AsyncRead for SocketStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let unfilled = buf.initialize_unfilled();
        let n = std::task::ready!(self.io.poll_with(cx, false, |mut s| s.read(unfilled)))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// See the [`AsyncRead`] implementation.
impl AsyncWrite for SocketStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_with(cx, true, |mut s| s.write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here: a write is in the kernel when it returns.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shut_write())
    }
}

/// The [`Endpoint`] a kernel socket address stands for.
fn endpoint_of(addr: socket2::SockAddr) -> io::Result<Endpoint> {
    if let Some(a) = addr.as_socket() {
        return Ok(Endpoint::Tcp(a));
    }
    if addr.is_unix() {
        return Ok(Endpoint::Unix(
            addr.as_pathname()
                .map(|p| p.to_path_buf())
                .unwrap_or_default(),
        ));
    }
    Err(io::Error::other("socket address is neither TCP nor UNIX"))
}
