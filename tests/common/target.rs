//! [`Target`]: an in-process server standing for the service behind `spiped -d`. Each
//! connection is served as its [`Mode`] says (echo, send, reply after EOF, reset) and
//! recorded by the hash of what it received, so tests can wait for "the target got
//! exactly these bytes".

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{Addr, EXCHANGE_DEADLINE, Stream, Transport, join_deadline, sha};

/// What the target does with each connection.
#[derive(Clone, Debug)]
pub(crate) enum Mode {
    /// Echo everything back as it arrives; half-close after EOF.
    Echo,
    /// Send this payload (then half-close) while concurrently recording everything received.
    Duplex(Arc<Vec<u8>>),
    /// Read until EOF, then send this payload and close.
    ReplyAfterEof(Arc<Vec<u8>>),
    /// Read `after` bytes (or to EOF), optionally send `reply` and half-close (a FIN),
    /// then reset the connection (RST), so FIN and RST arrive together.
    Reset {
        after: usize,
        reply: Option<Arc<Vec<u8>>>,
    },
}

/// One finished target connection.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    /// How many bytes it received.
    pub received_len: usize,
    /// The hex SHA-256 of what it received.
    pub received_sha: String,
    /// What went wrong in serving it, if anything.
    pub error: Option<String>,
}

#[derive(Default)]
struct TargetState {
    records: Vec<Record>,
    accepted: usize,
    peers: Vec<SocketAddr>,
    active: usize,
}

/// An in-process target server (the plaintext side behind `spiped -d`).
pub(crate) struct Target {
    /// Where it listens: what `spiped -t` is given.
    pub addr: Addr,
    mode: Arc<Mutex<Mode>>,
    state: Arc<(Mutex<TargetState>, Condvar)>,
    stop: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// The next connection and, for TCP, the peer's address.
    fn accept(&self) -> io::Result<(Stream, Option<SocketAddr>)> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, a)| (Stream::Tcp(s), Some(a))),
            Listener::Unix(l) => l.accept().map(|(s, _)| (Stream::Unix(s), None)),
        }
    }
}

static TARGET_IDS: AtomicUsize = AtomicUsize::new(0);

impl Target {
    /// Starts a target listening on a fresh address of `kind` (UNIX sockets in `dir`).
    pub(crate) fn start(kind: Transport, dir: &Path, mode: Mode) -> Target {
        match kind {
            Transport::Tcp => Target::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), mode),
            Transport::Unix => {
                let n = TARGET_IDS.fetch_add(1, Ordering::SeqCst);
                let p = dir.join(format!("target{n}.sock"));
                let l = UnixListener::bind(&p).expect("bind unix target");
                Target::run(Listener::Unix(l), Addr::Unix(p), mode)
            }
        }
    }

    /// Starts a TCP target on `at` (port 0: any free port).
    pub(crate) fn start_at(at: SocketAddr, mode: Mode) -> Target {
        let l = TcpListener::bind(at).unwrap_or_else(|e| panic!("bind target {at}: {e}"));
        let a = l.local_addr().expect("local addr");
        Target::run(Listener::Tcp(l), Addr::Tcp(a), mode)
    }

    fn run(listener: Listener, addr: Addr, mode: Mode) -> Target {
        let state = Arc::new((Mutex::new(TargetState::default()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mode = Arc::new(Mutex::new(mode));
        let (st, sp, md) = (state.clone(), stop.clone(), mode.clone());
        let accept_thread = thread::spawn(move || {
            loop {
                let conn = listener.accept();
                if sp.load(Ordering::SeqCst) {
                    return;
                }
                let Ok((conn, peer)) = conn else { continue };
                {
                    let mut g = st.0.lock().unwrap();
                    g.peers.extend(peer);
                    g.accepted += 1;
                    g.active += 1;
                }
                let (st2, mode2) = (st.clone(), md.lock().unwrap().clone());
                thread::spawn(move || {
                    let rec = serve(conn, &mode2);
                    let mut g = st2.0.lock().unwrap();
                    g.records.push(rec);
                    g.active -= 1;
                    st2.1.notify_all();
                });
            }
        });
        Target {
            addr,
            mode,
            state,
            stop,
            accept_thread: Some(accept_thread),
        }
    }

    /// Changes what the target does with connections accepted from now on.
    pub(crate) fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// All finished connections so far.
    pub(crate) fn records(&self) -> Vec<Record> {
        self.state.0.lock().unwrap().records.clone()
    }

    /// The peer address of every TCP connection accepted so far, in order.
    pub(crate) fn peers(&self) -> Vec<SocketAddr> {
        self.state.0.lock().unwrap().peers.clone()
    }

    /// Number of accepted connections so far (finished or not).
    pub(crate) fn accepted(&self) -> usize {
        self.state.0.lock().unwrap().accepted
    }

    /// Waits until a finished connection received exactly `expected` (by hash).
    pub(crate) fn wait_received(&self, expected: &[u8], deadline: Duration) -> Result<(), String> {
        let want = sha(expected);
        let end = Instant::now() + deadline;
        let (m, cv) = &*self.state;
        let mut g = m.lock().unwrap();
        loop {
            if g.records.iter().any(|r| r.received_sha == want) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= end {
                return Err(format!(
                    "target never finished a connection that received {} bytes sha {want}; \
                     finished connections: {:?}",
                    expected.len(),
                    g.records
                ));
            }
            g = cv.wait_timeout(g, end - now).unwrap().0;
        }
    }

    /// [`Target::wait_received`] within [`EXCHANGE_DEADLINE`], panicking with `case` and
    /// what the target did get if no connection received exactly `expected`.
    pub(crate) fn assert_received(&self, case: &str, expected: &[u8]) {
        self.wait_received(expected, EXCHANGE_DEADLINE)
            .unwrap_or_else(|err| panic!("{case}: {err}"));
    }

    /// Waits until no connection is in progress.
    pub(crate) fn wait_idle(&self, deadline: Duration) -> Result<(), String> {
        let end = Instant::now() + deadline;
        let (m, cv) = &*self.state;
        let mut g = m.lock().unwrap();
        while g.active > 0 {
            let now = Instant::now();
            if now >= end {
                return Err(format!("{} target connections still open", g.active));
            }
            g = cv.wait_timeout(g, end - now).unwrap().0;
        }
        Ok(())
    }

    /// Total bytes received over all finished connections.
    pub(crate) fn total_received(&self) -> usize {
        self.records().iter().map(|r| r.received_len).sum()
    }

    /// Waits up to 10 s until no connection is in progress, then asserts that not a byte
    /// reached the target: what a rejected client must leave behind. `case` names the
    /// case in the panic.
    pub(crate) fn assert_received_nothing(&self, case: &str) {
        self.wait_idle(Duration::from_secs(10))
            .unwrap_or_else(|err| panic!("{case}: {err}"));
        assert_eq!(
            self.total_received(),
            0,
            "{case}: data reached the target: {:?}",
            self.records()
        );
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = self.addr.connect();
        if let Some(h) = self.accept_thread.take() {
            let _ = join_deadline(h, Duration::from_secs(5));
        }
    }
}

/// Handles one target connection according to `mode`.
fn serve(conn: Stream, mode: &Mode) -> Record {
    if let Mode::Reset { after, reply } = mode {
        return reset_after(conn, *after, reply.as_deref().map(Vec::as_slice));
    }
    let idle = Some(EXCHANGE_DEADLINE);
    let _ = conn.set_read_timeout(idle);
    let _ = conn.set_write_timeout(idle);
    let mut hasher = Sha256::new();
    let mut len = 0usize;
    let mut error = None;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut reader = match conn.try_clone() {
        Ok(r) => r,
        Err(e) => {
            return Record {
                received_len: 0,
                received_sha: sha(b""),
                error: Some(e.to_string()),
            };
        }
    };
    let mut writer = conn;
    let sender = match mode {
        Mode::Duplex(p) => {
            let p = p.clone();
            let mut w = writer.try_clone().expect("clone");
            Some(thread::spawn(move || {
                let r = w.write_all(&p);
                let _ = w.shutdown(Shutdown::Write);
                r.err().map(|e| format!("send: {e}"))
            }))
        }
        _ => None,
    };
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&chunk[..n]);
                len += n;
                if let Mode::Echo = mode
                    && let Err(e) = writer.write_all(&chunk[..n])
                {
                    error = Some(format!("echo: {e}"));
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                error = Some(format!("recv: {e}"));
                break;
            }
        }
    }
    match mode {
        Mode::Echo => {
            let _ = writer.shutdown(Shutdown::Write);
        }
        Mode::ReplyAfterEof(p) => {
            if error.is_none()
                && let Err(e) = writer.write_all(p)
            {
                error = Some(format!("reply: {e}"));
            }
            let _ = writer.shutdown(Shutdown::Write);
        }
        // Reset was handled before anything else.
        Mode::Duplex(_) | Mode::Reset { .. } => {}
    }
    if let Some(h) = sender
        && let Some(Some(e)) = join_deadline(h, EXCHANGE_DEADLINE)
    {
        error.get_or_insert(e);
    }
    Record {
        received_len: len,
        received_sha: hex::encode(hasher.finalize()),
        error,
    }
}

/// [`Mode::Reset`]: no clone of `conn` exists, so dropping it really sends the RST.
fn reset_after(mut conn: Stream, after: usize, reply: Option<&[u8]>) -> Record {
    let _ = conn.set_read_timeout(Some(EXCHANGE_DEADLINE));
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while got.len() < after {
        match conn.read(&mut chunk[..(after - got.len()).min(64 * 1024)]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    if let Some(r) = reply {
        let _ = conn.write_all(r);
        let _ = conn.shutdown(Shutdown::Write);
    }
    let record = Record {
        received_len: got.len(),
        received_sha: sha(&got),
        error: None,
    };
    conn.reset();
    record
}
