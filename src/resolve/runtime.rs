//! hickory's runtime interface implemented over smol (async-io sockets and timers,
//! smol's global executor), so DNS needs no tokio.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hickory_resolver::net::runtime::{DnsTcpStream, DnsUdpSocket, RuntimeProvider, Spawn, Time};
use smol::io::{AsyncRead, AsyncWrite};
use smol::{Async, Timer};

/// The [`RuntimeProvider`] the resolver runs on.
#[derive(Clone, Copy, Default)]
pub struct SmolRuntime;

/// Spawns hickory's background tasks (one per name-server exchange) on smol's executor.
#[derive(Clone, Copy, Default)]
pub struct SmolHandle;

impl Spawn for SmolHandle {
    fn spawn_bg(&mut self, future: impl Future<Output = ()> + Send + 'static) {
        smol::spawn(future).detach();
    }
}

/// Timers from async-io.
#[derive(Clone, Copy)]
pub struct SmolTime;

#[async_trait::async_trait]
impl Time for SmolTime {
    async fn delay_for(duration: Duration) {
        Timer::after(duration).await;
    }

    async fn timeout<F: 'static + Future + Send>(
        duration: Duration,
        future: F,
    ) -> Result<F::Output, io::Error> {
        futures_lite::future::or(async { Ok(future.await) }, async {
            Timer::after(duration).await;
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "DNS query timed out",
            ))
        })
        .await
    }
}

/// A UDP socket for queries.
pub struct SmolUdp(Async<UdpSocket>);

impl DnsUdpSocket for SmolUdp {
    type Time = SmolTime;

    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        loop {
            match self.0.get_ref().recv_from(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.0.poll_readable(cx))?
                }
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.0.get_ref().send_to(buf, target) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.0.poll_writable(cx))?
                }
                r => return Poll::Ready(r),
            }
        }
    }
}

/// A TCP connection for queries whose answers do not fit in UDP.
pub struct SmolTcp(Async<TcpStream>);

impl DnsTcpStream for SmolTcp {
    type Time = SmolTime;
}

impl AsyncRead for SmolTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SmolTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

/// hickory's own default when it passes no connect timeout.
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl RuntimeProvider for SmolRuntime {
    type Handle = SmolHandle;
    type Timer = SmolTime;
    type Udp = SmolUdp;
    type Tcp = SmolTcp;

    fn create_handle(&self) -> SmolHandle {
        SmolHandle
    }

    fn connect_tcp(
        &self,
        server_addr: SocketAddr,
        bind_addr: Option<SocketAddr>,
        timeout: Option<Duration>,
    ) -> Pin<Box<dyn Send + Future<Output = io::Result<SmolTcp>>>> {
        Box::pin(async move {
            if bind_addr.is_some() {
                // Only a hand-built resolver config sets this; /etc/resolv.conf cannot.
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "binding DNS-over-TCP connections is not supported",
                ));
            }
            let connect = async move {
                let stream = Async::<TcpStream>::connect(server_addr).await?;
                stream.get_ref().set_nodelay(true)?;
                Ok(SmolTcp(stream))
            };
            SmolTime::timeout(timeout.unwrap_or(TCP_CONNECT_TIMEOUT), connect).await?
        })
    }

    fn bind_udp(
        &self,
        local_addr: SocketAddr,
        server_addr: SocketAddr,
    ) -> Pin<Box<dyn Send + Future<Output = io::Result<SmolUdp>>>> {
        Box::pin(async move {
            let socket = Async::<UdpSocket>::bind(local_addr)?;
            // Connected, like the C library's resolver: only that server's answers are
            // taken, and a server that is down (ICMP port unreachable) fails the query
            // at once instead of after every retry has timed out.
            socket.get_ref().connect(server_addr)?;
            Ok(SmolUdp(socket))
        })
    }
}
