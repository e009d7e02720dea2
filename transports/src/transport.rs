//! The [`Transport`] trait: a connected, bidirectional byte stream that the pumps of a
//! connection drive, one direction each, at the same time.

use std::io::{self, IoSlice};
use std::task::{Context, Poll};

use async_trait::async_trait;

/// A connected byte stream (TCP, UNIX socket, or the process's stdin/stdout).
///
/// Methods take `&self` so that the two directions of a connection can run concurrently
/// on one value: one task only reads, the other only writes. Implementations must allow
/// exactly that (one reader and one writer at a time).
#[async_trait]
pub trait Transport: Send + Sync {
    /// Reads some bytes; `Ok(0)` means the peer finished sending (end of stream).
    async fn read(&self, buf: &mut [u8]) -> io::Result<usize>;

    /// Ready once a [`Transport::read`] would not block (data, end of stream or an
    /// error is pending); until then, arranges for `cx` to be woken when that changes.
    /// Lets a reader hold no buffer while its peer is idle; the default is always
    /// ready, for transports that cannot tell.
    ///
    /// A poll method rather than an `async fn`, because an idle connection waits here
    /// for as long as it lives: polled, it needs no boxed future and no waiter entry
    /// per direction (about 0.3 KiB per connection), only the registration's own
    /// waker slot.
    fn poll_readable(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Writes some of `bufs` in one system call where possible; returns how much.
    async fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;

    /// Signals end of stream to the peer while leaving the reading direction open
    /// (`shutdown(SHUT_WR)` on sockets). Everything written before is delivered first.
    async fn shutdown_write(&self) -> io::Result<()>;

    /// A short description of the peer for log messages (an address or "stdio").
    fn peer(&self) -> String;

    /// Writes all of `buf`, failing with `WriteZero` if the peer stops taking bytes.
    async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.write_vectored(&[IoSlice::new(buf)]).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            buf = &buf[n..];
        }
        Ok(())
    }
}
