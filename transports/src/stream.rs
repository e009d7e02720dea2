//! [`SocketStream`]: the [`Transport`] over any connected stream socket (TCP or UNIX).

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

use async_io::Async;
use async_trait::async_trait;
use socket2::Socket;

use crate::Transport;

/// A connected, non-blocking stream socket registered with the async reactor.
pub struct SocketStream {
    io: Async<Socket>,
    peer: String,
}

impl SocketStream {
    /// Wraps a connected socket; `peer` names the other end in log messages.
    pub fn new(socket: Socket, peer: String) -> io::Result<SocketStream> {
        Ok(SocketStream::from_async(Async::new(socket)?, peer))
    }

    /// Wraps a socket already registered with the reactor.
    pub(crate) fn from_async(io: Async<Socket>, peer: String) -> SocketStream {
        SocketStream { io, peer }
    }
}

#[async_trait]
impl Transport for SocketStream {
    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read_with(|mut s| s.read(buf)).await
    }

    async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    async fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.io.write_with(|mut s| s.write_vectored(bufs)).await
    }

    async fn shutdown_write(&self) -> io::Result<()> {
        match self.io.get_ref().shutdown(Shutdown::Write) {
            // The peer already went away: there is no one left to tell about EOF, and
            // the reading direction will report what happened.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        }
    }

    fn peer(&self) -> String {
        self.peer.clone()
    }
}
