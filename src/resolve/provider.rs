//! [`ConnectedUdp`]: hickory's tokio runtime provider, with UDP sockets connected to
//! their name server as the C library's resolver does.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hickory_resolver::net::runtime::iocompat::AsyncIoTokioAsStd;
use hickory_resolver::net::runtime::{
    DnsUdpSocket, RuntimeProvider, TokioHandle, TokioRuntimeProvider, TokioTime,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// hickory's tokio runtime (its tasks, timers and TCP connections on our event loop),
/// except that a UDP socket is connected to its name server: only that server's answers
/// are taken, and a server that is down (ICMP port unreachable) fails the query at once
/// instead of after every retry has timed out.
#[derive(Clone, Default)]
pub(super) struct ConnectedUdp(TokioRuntimeProvider);

impl RuntimeProvider for ConnectedUdp {
    type Handle = TokioHandle;
    type Timer = TokioTime;
    type Udp = ConnectedSocket;
    type Tcp = AsyncIoTokioAsStd<tokio::net::TcpStream>;

    fn create_handle(&self) -> TokioHandle {
        self.0.create_handle()
    }

    fn connect_tcp(
        &self,
        server_addr: SocketAddr,
        bind_addr: Option<SocketAddr>,
        timeout: Option<Duration>,
    ) -> Pin<Box<dyn Send + Future<Output = io::Result<Self::Tcp>>>> {
        self.0.connect_tcp(server_addr, bind_addr, timeout)
    }

    fn bind_udp(
        &self,
        local_addr: SocketAddr,
        server_addr: SocketAddr,
    ) -> Pin<Box<dyn Send + Future<Output = io::Result<ConnectedSocket>>>> {
        Box::pin(async move {
            let socket = UdpSocket::bind(local_addr)?;
            socket.set_nonblocking(true)?;
            socket.connect(server_addr)?;
            let both = Interest::READABLE | Interest::WRITABLE;
            // SAFETY: a `UdpSocket` owns its descriptor, open until the socket is
            // dropped, which only the `AsyncFd` (its sole owner) does, after
            // deregistering; `as_raw_fd` always returns that descriptor, and nothing
            // hands out `&mut UdpSocket` to swap it.
            let io = unsafe { AsyncFd::register_with_interest(socket, both) }
                .map_err(|e| e.into_parts().1)?;
            Ok(ConnectedSocket {
                io: Arc::new(io),
                waiting: Mutex::new(None),
            })
        })
    }
}

/// The wait for an answer or an error on a [`ConnectedSocket`].
type Wait = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// A non-blocking UDP socket connected to one name server.
///
/// A refused query shows as an error on the socket (`EPOLLERR`, not readable), which
/// tokio's own `UdpSocket` does not wake a reader for; this one waits for either.
pub(super) struct ConnectedSocket {
    io: Arc<AsyncFd<UdpSocket>>,
    /// The wait in progress, kept from one poll to the next.
    waiting: Mutex<Option<Wait>>,
}

impl DnsUdpSocket for ConnectedSocket {
    type Time = TokioTime;

    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(wait) = waiting.as_mut() {
                let r = ready!(wait.as_mut().poll(cx));
                *waiting = None;
                r?;
            }
            // Returns the pending error (ECONNREFUSED) too.
            match self.io.get_ref().recv_from(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return Poll::Ready(r),
            }
            let io = self.io.clone();
            *waiting = Some(Box::pin(async move {
                // Forgotten before the next attempt, which sees anything that came
                // before; an event after it raises readiness again.
                io.ready(Interest::READABLE | Interest::ERROR)
                    .await?
                    .clear_ready();
                Ok(())
            }));
        }
    }

    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut ready = ready!(self.io.poll_write_ready(cx))?;
            if let Ok(r) = ready.try_io(|io| io.get_ref().send_to(buf, target)) {
                return Poll::Ready(r);
            }
        }
    }
}
