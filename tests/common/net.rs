//! Loopback sockets of either kind: free TCP ports, [`Addr`] (TCP on 127.0.0.1 or a
//! UNIX socket path, as spiped's `-s`/`-t` take it) and [`Stream`], a connection of
//! either kind with the reads tests need (to EOF, exactly n bytes, silence for a while).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use super::{poll, wait_until};

/// A 127.0.0.1 port that was free a moment ago: a per-process counter from a random base,
/// skipping ports that cannot be bound right now.
pub(crate) fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mixed = (nanos ^ std::process::id().wrapping_mul(2_654_435_761)) % 20_000;
        NEXT.store(20_000 + mixed as u16, Ordering::SeqCst);
    });
    for _ in 0..1000 {
        let mut port = NEXT.fetch_add(1, Ordering::SeqCst);
        if !(20_000..=60_000).contains(&port) {
            NEXT.store(20_001, Ordering::SeqCst);
            port = 20_000;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free 127.0.0.1 port found");
}

/// A socket address: TCP on 127.0.0.1 or a UNIX socket path.
#[derive(Clone, Debug)]
pub(crate) enum Addr {
    /// TCP at this address.
    Tcp(SocketAddr),
    /// A UNIX socket at this path.
    Unix(PathBuf),
}

/// Which kind of socket to use for a hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// TCP on 127.0.0.1.
    Tcp,
    /// A UNIX socket in the test's directory.
    Unix,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Tcp => write!(f, "tcp"),
            Transport::Unix => write!(f, "unix"),
        }
    }
}

impl Addr {
    /// A fresh address of the given kind (UNIX sockets go in `dir`, named after `name`).
    pub(crate) fn fresh(kind: Transport, dir: &Path, name: &str) -> Addr {
        match kind {
            Transport::Tcp => Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], free_port()))),
            Transport::Unix => Addr::Unix(dir.join(format!("{name}.sock"))),
        }
    }

    /// The address as spiped's `-s`/`-t` argument.
    pub(crate) fn arg(&self) -> String {
        match self {
            Addr::Tcp(sa) => format!("[{}]:{}", sa.ip(), sa.port()),
            Addr::Unix(p) => p.to_str().expect("utf-8 socket path").to_owned(),
        }
    }

    /// Connects (once, no retry).
    pub(crate) fn connect(&self) -> io::Result<Stream> {
        match self {
            Addr::Tcp(sa) => {
                TcpStream::connect_timeout(sa, Duration::from_secs(5)).map(Stream::Tcp)
            }
            Addr::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
        }
    }

    /// Polls every 10 ms until something accepts connections here, up to `deadline`;
    /// the last connect's error if nothing did.
    pub(crate) fn wait_accepting(&self, deadline: Duration) -> io::Result<()> {
        let mut last = Ok(());
        let accepted = poll(deadline, || {
            last = self.connect().map(drop);
            last.is_ok().then_some(())
        });
        accepted.map_or(last, Ok)
    }

    /// Polls every 10 ms until nothing accepts connections here any more (a daemon
    /// closed its listener, as it does when it starts to drain); panics naming `what`
    /// if something still does after `deadline`.
    pub(crate) fn wait_refusing(&self, what: &str, deadline: Duration) {
        wait_until(what, deadline, || self.connect().is_err());
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arg())
    }
}

/// A connected stream socket of either kind.
#[derive(Debug)]
pub(crate) enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A UNIX socket connection.
    Unix(UnixStream),
}

impl Stream {
    /// A second handle on the same connection (for a reader and a writer thread).
    pub(crate) fn try_clone(&self) -> io::Result<Stream> {
        match self {
            Stream::Tcp(s) => s.try_clone().map(Stream::Tcp),
            Stream::Unix(s) => s.try_clone().map(Stream::Unix),
        }
    }

    /// Closes the socket with a TCP RST instead of a FIN (SO_LINGER 0, then close); on a
    /// UNIX socket, a plain close.
    pub(crate) fn reset(self) {
        if let Stream::Tcp(s) = &self {
            socket2::SockRef::from(s)
                .set_linger(Some(Duration::ZERO))
                .expect("SO_LINGER 0");
        }
    }

    /// Shuts down reading, writing or both (`Shutdown::Write` sends a FIN).
    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }

    /// How long a read may block (`None`: for ever).
    pub(crate) fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(t),
            Stream::Unix(s) => s.set_read_timeout(t),
        }
    }

    /// How long a write may block (`None`: for ever).
    pub(crate) fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(t),
            Stream::Unix(s) => s.set_write_timeout(t),
        }
    }

    /// Reads until EOF or error; returns what arrived and the error, if any.
    pub(crate) fn read_to_eof(&mut self) -> (Vec<u8>, Option<io::Error>) {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match self.read(&mut chunk) {
                Ok(0) => return (buf, None),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (buf, Some(e)),
            }
        }
    }

    /// Reads exactly `n` bytes, failing after `deadline` (read timeout) or on EOF.
    pub(crate) fn read_exact_within(
        &mut self,
        n: usize,
        deadline: Duration,
    ) -> io::Result<Vec<u8>> {
        self.set_read_timeout(Some(deadline))?;
        let mut buf = vec![0u8; n];
        let r = self.read_exact(&mut buf);
        self.set_read_timeout(None)?;
        r.map(|()| buf)
    }

    /// True when nothing (no data, no EOF) arrives within `window`.
    pub(crate) fn silent_for(&mut self, window: Duration) -> Result<(), String> {
        let end = std::time::Instant::now() + window;
        let mut b = [0u8; 1];
        // A signal to the test process (another test's child exiting) interrupts the
        // read: that is not the peer speaking, so wait out the rest of the window.
        let r = loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break Err(io::ErrorKind::TimedOut.into());
            }
            self.set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            match self.read(&mut b) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        self.set_read_timeout(None).map_err(|e| e.to_string())?;
        match r {
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                Ok(())
            }
            Ok(0) => Err("got EOF".into()),
            Ok(_) => Err(format!("got data byte {:#04x}", b[0])),
            Err(e) => Err(format!("got error {e}")),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
