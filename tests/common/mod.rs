//! Test harness: starts `spiped`/`spipe` processes (ours or Debian's C build), runs
//! in-process target servers and clients, and moves bytes with deadlines.
//!
//! Nothing here sleeps to synchronise: readiness is polled (connect every 10 ms up to a
//! deadline), every wait has a deadline, and every child process is killed on drop.

#![allow(dead_code)]

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// True when running as root; panics under CI otherwise (tests that need root, for
/// mount namespaces, -u or file ownership, must run there).
pub fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the tests as root"
    );
    eprintln!("NOTE: skipping: needs root (mount namespaces, -u, file ownership)");
    false
}

/// Path of Debian's C spiped.
pub const C_SPIPED: &str = "/usr/bin/spiped";
/// Path of Debian's C spipe.
pub const C_SPIPE: &str = "/usr/bin/spipe";

/// How long a daemon may take to start accepting.
pub const READY_DEADLINE: Duration = Duration::from_secs(10);
/// Deadline for one data exchange (generous: our binary may run as a debug build).
pub const EXCHANGE_DEADLINE: Duration = Duration::from_secs(60);

/// Which implementation plays a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    /// This crate's binary.
    Ours,
    /// Debian's C spiped 1.6.x.
    C,
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Impl::Ours => write!(f, "ours"),
            Impl::C => write!(f, "C"),
        }
    }
}

/// True when Debian's C spiped 1.6 is what runs at [`C_SPIPED`] and [`C_SPIPE`]: dpkg's
/// package `spiped` owns both, their contents are the package's, and `spiped -v` says
/// 1.6.x; so a spiped installed over Debian's (ours, by `make BINDIR=/usr/bin install`)
/// cannot stand in for the judge. Otherwise: panics under CI (env `CI` set), or prints
/// a note and returns false so the caller can skip.
pub fn c_available() -> bool {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    match CHECK.get_or_init(debian_c_peer) {
        Ok(()) => true,
        Err(why) if std::env::var_os("CI").is_some() => panic!("{why}"),
        Err(why) => {
            eprintln!("NOTE: skipping: {why}");
            false
        }
    }
}

/// Why [`C_SPIPED`] and [`C_SPIPE`] are not Debian's C spiped 1.6, if they are not.
fn debian_c_peer() -> Result<(), String> {
    let reinstall = "apt-get install --reinstall spiped";
    for path in [C_SPIPED, C_SPIPE] {
        if !Path::new(path).exists() {
            return Err(format!("{path} missing: apt-get install spiped"));
        }
        let out = Command::new("dpkg")
            .args(["-S", path])
            .output()
            .map_err(|e| format!("dpkg -S {path}: {e}"))?;
        let said = String::from_utf8_lossy(&out.stdout);
        // "spiped: /usr/bin/spiped", or "spiped:amd64: ..." with an architecture.
        let owner = said
            .lines()
            .find_map(|l| l.strip_suffix(&format!(": {path}")))
            .map(|pkgs| pkgs.split(':').next().unwrap_or(pkgs));
        if owner != Some("spiped") {
            return Err(format!(
                "{path} is not from Debian's spiped package (dpkg -S: {:?}): {reinstall}",
                said.trim()
            ));
        }
    }
    // dpkg -V lists the package's files whose contents changed since it was installed.
    let out = Command::new("dpkg")
        .args(["-V", "spiped"])
        .output()
        .map_err(|e| format!("dpkg -V spiped: {e}"))?;
    let changed = String::from_utf8_lossy(&out.stdout);
    if let Some(line) = changed
        .lines()
        .find(|l| l.ends_with(C_SPIPED) || l.ends_with(C_SPIPE))
    {
        return Err(format!(
            "{C_SPIPED} or {C_SPIPE} was replaced after Debian's spiped installed it \
             (dpkg -V: {line:?}): {reinstall}"
        ));
    }
    let out = Command::new(C_SPIPED)
        .arg("-v")
        .output()
        .map_err(|e| format!("{C_SPIPED} -v: {e}"))?;
    // The C build prints its version on standard error.
    let version = String::from_utf8_lossy(&out.stderr);
    if !version.starts_with("spiped 1.6.") {
        return Err(format!(
            "{C_SPIPED} -v says {:?}, not spiped 1.6.x: {reinstall}",
            version.trim()
        ));
    }
    Ok(())
}

/// True when the program at `path` exists. When it is missing: panics under CI (env `CI`
/// set, where `.ci/run` installs Debian `package`), otherwise prints a note and returns
/// false so the caller can skip.
pub fn program_available(path: &str, package: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{path} missing: apt-get install {package}");
    }
    eprintln!("NOTE: skipping: {path} missing; apt-get install {package}");
    false
}

/// True when every implementation in `impls` can be run (see [`c_available`]).
pub fn available(impls: &[Impl]) -> bool {
    !impls.contains(&Impl::C) || c_available()
}

/// The `spiped` binary of an implementation.
pub fn spiped_bin(which: Impl) -> PathBuf {
    match which {
        Impl::Ours => PathBuf::from(env!("CARGO_BIN_EXE_spiped")),
        Impl::C => PathBuf::from(C_SPIPED),
    }
}

/// The `spipe` executable of an implementation. Ours is a symlink named `spipe` to our
/// binary (so argv[0] dispatch is what gets tested), made once per test process.
pub fn spipe_bin(which: Impl) -> PathBuf {
    match which {
        Impl::C => PathBuf::from(C_SPIPE),
        Impl::Ours => {
            static LINK: OnceLock<PathBuf> = OnceLock::new();
            LINK.get_or_init(|| {
                let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .join(format!("spipe-link-{}", std::process::id()));
                let _ = fs::remove_dir_all(&dir);
                fs::create_dir_all(&dir).expect("create spipe symlink dir");
                let link = dir.join("spipe");
                std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_spiped"), &link)
                    .expect("symlink spipe -> spiped");
                link
            })
            .clone()
        }
    }
}

/// A `Command` for `spipe` of an implementation.
pub fn spipe_cmd(which: Impl) -> Command {
    Command::new(spipe_bin(which))
}

/// A `Command` for `spiped` of an implementation.
pub fn spiped_cmd(which: Impl) -> Command {
    Command::new(spiped_bin(which))
}

/// Hex SHA-256 of `bytes`.
pub fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic pseudo-random bytes (xorshift64*), different for each seed.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes a key file `name` into `dir`, readable by its owner only (as a key should be;
/// a looser mode draws a warning).
pub fn key_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(bytes))
        .expect("write key file");
    path
}

/// A fresh temporary directory (removed on drop).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("spiped-test")
        .tempdir()
        .expect("create temp dir")
}

/// A 127.0.0.1 port that was free a moment ago: a per-process counter from a random base,
/// skipping ports that cannot be bound right now.
pub fn free_port() -> u16 {
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
pub enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// Which kind of socket to use for a hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
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
    pub fn fresh(kind: Transport, dir: &Path, name: &str) -> Addr {
        match kind {
            Transport::Tcp => Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], free_port()))),
            Transport::Unix => Addr::Unix(dir.join(format!("{name}.sock"))),
        }
    }

    /// The address as spiped's `-s`/`-t` argument.
    pub fn arg(&self) -> String {
        match self {
            Addr::Tcp(sa) => format!("[{}]:{}", sa.ip(), sa.port()),
            Addr::Unix(p) => p.to_str().expect("utf-8 socket path").to_owned(),
        }
    }

    /// Connects (once, no retry).
    pub fn connect(&self) -> io::Result<Stream> {
        match self {
            Addr::Tcp(sa) => {
                TcpStream::connect_timeout(sa, Duration::from_secs(5)).map(Stream::Tcp)
            }
            Addr::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
        }
    }

    /// Polls every 10 ms until something accepts connections here, up to `deadline`.
    pub fn wait_accepting(&self, deadline: Duration) -> io::Result<()> {
        let end = Instant::now() + deadline;
        loop {
            match self.connect() {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= end => return Err(e),
                Err(_) => thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arg())
    }
}

/// A connected stream socket of either kind.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub fn try_clone(&self) -> io::Result<Stream> {
        match self {
            Stream::Tcp(s) => s.try_clone().map(Stream::Tcp),
            Stream::Unix(s) => s.try_clone().map(Stream::Unix),
        }
    }

    /// Closes the socket with a TCP RST instead of a FIN (SO_LINGER 0, then close); on a
    /// UNIX socket, a plain close.
    pub fn reset(self) {
        if let Stream::Tcp(s) = &self {
            socket2::SockRef::from(s)
                .set_linger(Some(Duration::ZERO))
                .expect("SO_LINGER 0");
        }
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(t),
            Stream::Unix(s) => s.set_read_timeout(t),
        }
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(t),
            Stream::Unix(s) => s.set_write_timeout(t),
        }
    }

    /// Reads until EOF or error; returns what arrived and the error, if any.
    pub fn read_to_eof(&mut self) -> (Vec<u8>, Option<io::Error>) {
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
    pub fn read_exact_within(&mut self, n: usize, deadline: Duration) -> io::Result<Vec<u8>> {
        self.set_read_timeout(Some(deadline))?;
        let mut buf = vec![0u8; n];
        let r = self.read_exact(&mut buf);
        self.set_read_timeout(None)?;
        r.map(|()| buf)
    }

    /// True when nothing (no data, no EOF) arrives within `window`.
    pub fn silent_for(&mut self, window: Duration) -> Result<(), String> {
        self.set_read_timeout(Some(window))
            .map_err(|e| e.to_string())?;
        let mut b = [0u8; 1];
        let r = self.read(&mut b);
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

// ---------------------------------------------------------------------------------------
// Child processes

/// Waits for `child` up to `deadline`; kills it (and reaps it) when the deadline passes.
/// Returns `None` on timeout.
pub fn wait_deadline(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + deadline;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if Instant::now() >= end => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for child: {e}"),
        }
    }
}

/// What a finished (non-daemon) process did.
#[derive(Debug)]
pub struct RunOutput {
    /// `None` when it was killed at the deadline.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl RunOutput {
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `cmd` with `stdin` as its standard input, capturing stdout and stderr, killing it
/// after `deadline`.
pub fn run_with_stdin(mut cmd: Command, stdin: &[u8], deadline: Duration) -> RunOutput {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut sin = child.stdin.take().expect("stdin");
    let input = stdin.to_vec();
    let w = thread::spawn(move || {
        // The child may legitimately exit without reading everything.
        let _ = sin.write_all(&input);
    });
    let mut sout = child.stdout.take().expect("stdout");
    let o = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = sout.read_to_end(&mut v);
        v
    });
    let mut serr = child.stderr.take().expect("stderr");
    let e = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = serr.read_to_end(&mut v);
        v
    });
    let status = wait_deadline(&mut child, deadline);
    // After the child is gone (exited or killed), the pipes close and the threads end;
    // a grandchild holding the pipes would be a bug, so bound that wait too.
    let stdout = join_deadline(o, Duration::from_secs(5)).unwrap_or_default();
    let stderr = join_deadline(e, Duration::from_secs(5)).unwrap_or_default();
    let _ = join_deadline(w, Duration::from_secs(5));
    RunOutput {
        status,
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs `cmd` with empty stdin (see [`run_with_stdin`]), 10 s deadline.
pub fn run(cmd: Command) -> RunOutput {
    run_with_stdin(cmd, b"", Duration::from_secs(10))
}

/// Joins a thread, giving up (and leaking it) after `deadline`.
pub fn join_deadline<T: Send + 'static>(h: JoinHandle<T>, deadline: Duration) -> Option<T> {
    let end = Instant::now() + deadline;
    while !h.is_finished() {
        if Instant::now() >= end {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
    h.join().ok()
}

/// A running `spiped -F` daemon; killed and reaped on drop.
pub struct Daemon {
    pub which: Impl,
    pub label: String,
    pub source: Addr,
    child: Child,
    stderr_path: PathBuf,
}

impl Daemon {
    /// Spawns `spiped -F ARGS` (ARGS must include `-s source`), stderr to a file in `dir`,
    /// and waits until `source` accepts connections. Panics (with the daemon's stderr) if
    /// it exits or does not become ready within [`READY_DEADLINE`].
    pub fn spawn(which: Impl, label: &str, dir: &Path, source: &Addr, args: &[&str]) -> Daemon {
        Daemon::spawn_cmd(which, label, dir, source, spiped_cmd(which), args)
    }

    /// Spawns a pipe daemon, `spiped -F ARGS -s SOURCE -t TARGET -k KEY`, as
    /// [`Daemon::spawn`] does; `args` holds `-e` or `-d` and any other options.
    pub fn pipe(
        which: Impl,
        label: &str,
        dir: &Path,
        source: &Addr,
        target: &str,
        key: &str,
        args: &[&str],
    ) -> Daemon {
        let source_arg = source.arg();
        let mut all = args.to_vec();
        all.extend(["-s", &source_arg, "-t", target, "-k", key]);
        Daemon::spawn(which, label, dir, source, &all)
    }

    /// Like [`Daemon::spawn`], with the daemon's RLIMIT_NOFILE set to `nofile` (through
    /// `prlimit`, which execs the daemon, so the PID is the daemon's).
    pub fn spawn_limited(
        which: Impl,
        label: &str,
        dir: &Path,
        source: &Addr,
        args: &[&str],
        nofile: u64,
    ) -> Daemon {
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={nofile}"))
            .arg("--")
            .arg(spiped_bin(which));
        Daemon::spawn_cmd(which, label, dir, source, cmd, args)
    }

    /// Like [`Daemon::spawn`], with `cmd` as the command to add `-F ARGS` to (for
    /// example one from [`in_mount_ns`]).
    pub fn spawn_cmd(
        which: Impl,
        label: &str,
        dir: &Path,
        source: &Addr,
        mut cmd: Command,
        args: &[&str],
    ) -> Daemon {
        let stderr_path = dir.join(format!("{label}.stderr"));
        let errf = fs::File::create(&stderr_path).expect("create stderr file");
        cmd.arg("-F")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(errf);
        println!("[{label}] {which} spiped: {cmd:?}");
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("[{label}] spawn {cmd:?}: {e}"));
        let mut d = Daemon {
            which,
            label: label.to_owned(),
            source: source.clone(),
            child,
            stderr_path,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&mut self) {
        let end = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "[{}] {} spiped exited before accepting on {} ({st}); stderr: {}",
                    self.label,
                    self.which,
                    self.source,
                    self.stderr()
                );
            }
            if self.source.connect().is_ok() {
                return;
            }
            if Instant::now() >= end {
                panic!(
                    "[{}] {} spiped not accepting on {} after {:?}; stderr: {}",
                    self.label,
                    self.which,
                    self.source,
                    READY_DEADLINE,
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Polls the daemon's stderr every 10 ms until it contains `needle`, up to
    /// `deadline`; returns all of it, or an error quoting it.
    pub fn wait_stderr(&self, needle: &str, deadline: Duration) -> Result<String, String> {
        let end = Instant::now() + deadline;
        loop {
            let err = self.stderr();
            if err.contains(needle) {
                return Ok(err);
            }
            if Instant::now() >= end {
                return Err(format!(
                    "[{}] stderr lacks {needle:?} after {deadline:?}: {err:?}",
                    self.label
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: i32) {
        signal(self.pid(), sig);
    }

    /// Waits up to `deadline` for the daemon to exit; `None` (and killed) on timeout.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        wait_deadline(&mut self.child, deadline)
    }

    /// The daemon's resident set size in KiB (VmRSS in /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// The daemon's open descriptors (targets of the /proc/PID/fd links).
    pub fn fds(&self) -> Vec<PathBuf> {
        fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc/PID/fd")
            .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
            .collect()
    }

    /// How many sockets the daemon has open: its listener and its signal pipe (a
    /// socket pair) when idle, plus those of each connection. (Other descriptors, such as
    /// the event loop's, are created lazily on first use, so a total count would not
    /// have a fixed idle value.)
    pub fn socket_count(&self) -> usize {
        self.fds()
            .iter()
            .filter(|p| p.to_string_lossy().starts_with("socket:"))
            .count()
    }

    /// The daemon's idle socket count: polls until the count has not changed for
    /// 200 ms (the readiness probe's connection is gone), up to 5 s.
    pub fn idle_sockets(&self) -> usize {
        let end = Instant::now() + Duration::from_secs(5);
        let mut last = (self.socket_count(), Instant::now());
        while Instant::now() < end {
            thread::sleep(Duration::from_millis(20));
            let n = self.socket_count();
            if n != last.0 {
                last = (n, Instant::now());
            } else if last.1.elapsed() >= Duration::from_millis(200) {
                break;
            }
        }
        last.0
    }

    /// Polls until the daemon has at most `want` sockets open; returns the last count
    /// seen (which exceeds `want` only if `deadline` passed first).
    pub fn wait_sockets_at_most(&self, want: usize, deadline: Duration) -> usize {
        let end = Instant::now() + deadline;
        loop {
            let n = self.socket_count();
            if n <= want || Instant::now() >= end {
                return n;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Panics if the daemon has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(st)) = self.child.try_wait() {
            panic!(
                "[{}] {} spiped died ({st}); stderr: {}",
                self.label,
                self.which,
                self.stderr()
            );
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let err = self.stderr();
        if !err.is_empty() {
            println!("[{}] {} spiped stderr:\n{err}", self.label, self.which);
        }
    }
}

/// Sends signal `sig` to process `pid`.
pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill takes plain integers; a stale pid at worst signals nothing.
    let r = unsafe { libc::kill(pid, sig) };
    assert!(r == 0 || sig == libc::SIGKILL, "kill({pid}, {sig}) failed");
}

/// True while process `pid` exists and is not a zombie (a daemon's parent is init, which
/// may reap it late, so a zombie counts as gone).
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// A `Command` that runs `program` in a private mount namespace in which each
/// `(file, over)` is bind-mounted over the path `over` (needs root and util-linux's
/// `unshare`, both present in CI). Add the program's arguments to the result.
pub fn in_mount_ns(binds: &[(&Path, &str)], program: &Path) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(r#"while [ "$1" != -- ]; do mount --bind "$1" "$2" || exit 97; shift 2; done; shift; exec "$@""#)
        .arg("sh");
    for (file, over) in binds {
        cmd.arg(file).arg(over);
    }
    cmd.arg("--").arg(program);
    cmd
}

/// A `spiped` that daemonized itself (started without `-F`): known by its pidfile,
/// killed on drop if still running.
pub struct Daemonized {
    pub pid: i32,
    pub stderr_path: PathBuf,
}

impl Daemonized {
    /// Runs `cmd` (a complete `spiped` command line without `-F`) with stderr to
    /// `stderr_path`, and waits for the foreground process to exit. Returns its status
    /// and, when it exited 0, the daemon named by `pidfile`.
    pub fn start(
        mut cmd: Command,
        pidfile: &Path,
        stderr_path: &Path,
    ) -> (Option<ExitStatus>, Option<Daemonized>) {
        let errf = fs::File::create(stderr_path).expect("create stderr file");
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(errf);
        println!("daemonizing: {cmd:?}");
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let status = wait_deadline(&mut child, READY_DEADLINE);
        if status.is_none_or(|s| !s.success()) {
            return (status, None);
        }
        let text = fs::read_to_string(pidfile)
            .unwrap_or_else(|e| panic!("pidfile {} after exit 0: {e}", pidfile.display()));
        let pid = text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("pidfile {} holds {text:?}", pidfile.display()));
        let d = Daemonized {
            pid,
            stderr_path: stderr_path.to_owned(),
        };
        (status, Some(d))
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits up to `deadline` for the daemon to be gone; true if it is.
    pub fn wait_gone(&self, deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        while alive(self.pid) {
            if Instant::now() >= end {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

impl Drop for Daemonized {
    fn drop(&mut self) {
        if alive(self.pid) {
            signal(self.pid, libc::SIGKILL);
        }
        let err = self.stderr();
        if !err.is_empty() {
            println!("daemon {} stderr:\n{err}", self.pid);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Target server

/// What the target does with each connection.
#[derive(Clone, Debug)]
pub enum Mode {
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
pub struct Record {
    pub received_len: usize,
    pub received_sha: String,
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
pub struct Target {
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
    pub fn start(kind: Transport, dir: &Path, mode: Mode) -> Target {
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
    pub fn start_at(at: SocketAddr, mode: Mode) -> Target {
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
    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// All finished connections so far.
    pub fn records(&self) -> Vec<Record> {
        self.state.0.lock().unwrap().records.clone()
    }

    /// The peer address of every TCP connection accepted so far, in order.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.state.0.lock().unwrap().peers.clone()
    }

    /// Number of accepted connections so far (finished or not).
    pub fn accepted(&self) -> usize {
        self.state.0.lock().unwrap().accepted
    }

    /// Waits until a finished connection received exactly `expected` (by hash).
    pub fn wait_received(&self, expected: &[u8], deadline: Duration) -> Result<(), String> {
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

    /// Waits until no connection is in progress.
    pub fn wait_idle(&self, deadline: Duration) -> Result<(), String> {
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
    pub fn total_received(&self) -> usize {
        self.records().iter().map(|r| r.received_len).sum()
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

/// The scale factor for the size of soak, flood and memory tests: env
/// `SPIPED_SOAK_SCALE` (default 1, the CI size; see SECURITY.md for manual runs).
pub fn soak_scale() -> usize {
    std::env::var("SPIPED_SOAK_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}

// ---------------------------------------------------------------------------------------
// Client

/// What a client saw over one connection.
#[derive(Debug)]
pub struct Exchange {
    pub received: Vec<u8>,
    /// Error from connect, write or shutdown (a dropped connection may cause one).
    pub write_error: Option<String>,
    /// Error while reading (e.g. connection reset); `None` means a clean EOF.
    pub read_error: Option<String>,
}

impl Exchange {
    /// The peer dropped us: nothing received, and the read ended (EOF or error).
    pub fn was_dropped(&self) -> bool {
        self.received.is_empty()
    }
}

/// Connects to `addr`, sends `data` (then half-closes) in a writer thread while the
/// reader reads until EOF, both at once. Everything is bounded by `deadline`: on expiry
/// the socket is shut down and this returns an error.
pub fn exchange(addr: &Addr, data: &[u8], deadline: Duration) -> Result<Exchange, String> {
    let conn = addr
        .connect()
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    exchange_on(conn, data, deadline)
}

/// Like [`exchange`] on an already connected stream.
pub fn exchange_on(conn: Stream, data: &[u8], deadline: Duration) -> Result<Exchange, String> {
    let mut w = conn.try_clone().map_err(|e| e.to_string())?;
    let mut r = conn.try_clone().map_err(|e| e.to_string())?;
    let data = data.to_vec();
    let (tx, rx) = mpsc::channel();
    let txw = tx.clone();
    thread::spawn(move || {
        let mut res = w.write_all(&data);
        if res.is_ok() {
            res = w.shutdown(Shutdown::Write);
        }
        let _ = txw.send(Err(res.err().map(|e| e.to_string())));
    });
    thread::spawn(move || {
        let _ = tx.send(Ok(r.read_to_eof()));
    });
    let end = Instant::now() + deadline;
    let mut write_result = None;
    let mut read_result = None;
    while write_result.is_none() || read_result.is_none() {
        let now = Instant::now();
        let msg = if now < end {
            rx.recv_timeout(end - now).ok()
        } else {
            None
        };
        match msg {
            Some(Ok(r)) => read_result = Some(r),
            Some(Err(w)) => write_result = Some(w),
            None => {
                let _ = conn.shutdown(Shutdown::Both);
                return Err(format!(
                    "exchange did not finish within {deadline:?} (sent all: {}, got EOF: {})",
                    write_result.is_some(),
                    read_result.is_some()
                ));
            }
        }
    }
    let (received, read_error) = read_result.unwrap();
    Ok(Exchange {
        received,
        write_error: write_result.unwrap(),
        read_error: read_error.map(|e| e.to_string()),
    })
}

// ---------------------------------------------------------------------------------------
// Round trips

/// Runs `spipe ARGS` (of `which`) with `up` on stdin and asserts it exits 0 having
/// printed exactly `down`, and that `target` finished a connection that received `up`.
pub fn spipe_round_trip(
    which: Impl,
    case: &str,
    args: &[&str],
    up: &[u8],
    down: &[u8],
    target: &Target,
) {
    let mut cmd = spipe_cmd(which);
    cmd.args(args);
    let out = run_with_stdin(cmd, up, EXCHANGE_DEADLINE);
    assert_eq!(out.code(), Some(0), "{case}: stderr {}", out.stderr);
    assert_eq!(
        (out.stdout.len(), sha(&out.stdout)),
        (down.len(), sha(down)),
        "{case}: stdout"
    );
    target
        .wait_received(up, EXCHANGE_DEADLINE)
        .unwrap_or_else(|err| panic!("{case}: {err}"));
}

/// Sends `up` into a `spiped -e` listening on `source` and asserts the answer is exactly
/// `down` and that `target` finished a connection that received `up`.
pub fn e_round_trip(case: &str, source: &Addr, up: &[u8], down: &[u8], target: &Target) {
    let x = exchange(source, up, EXCHANGE_DEADLINE).unwrap_or_else(|err| panic!("{case}: {err}"));
    assert_eq!(x.write_error, None, "{case}: client write failed");
    assert_eq!(x.read_error, None, "{case}: client read failed");
    assert_eq!(
        (x.received.len(), sha(&x.received)),
        (down.len(), sha(down)),
        "{case}: client received wrong bytes"
    );
    target
        .wait_received(up, EXCHANGE_DEADLINE)
        .unwrap_or_else(|err| panic!("{case}: {err}"));
}

/// The key file contents of every [`Chain`], for tests that watch its packets.
pub const CHAIN_KEY: &[u8] = b"key file of a test chain of daemons";

/// A `spiped -d` in front of a target and a `spiped -e` in front of that, both in the
/// foreground on TCP, sharing one key: the usual pair for fault and load tests.
pub struct Chain {
    _dir: tempfile::TempDir,
    pub target: Target,
    pub dec: Daemon,
    pub enc: Daemon,
}

impl Chain {
    /// Starts the pair with `enc`/`dec` playing the two daemons and extra arguments for
    /// each. With `proxy`, the encrypted hop goes through it: `proxy(dec's address)`
    /// must return the address `-e` connects to.
    pub fn start(
        (enc, enc_extra): (Impl, &[&str]),
        (dec, dec_extra): (Impl, &[&str]),
        mode: Mode,
        proxy: Option<&dyn Fn(&Addr) -> Addr>,
    ) -> Chain {
        let dir = temp_dir();
        let key = key_file(dir.path(), "key", CHAIN_KEY);
        let key = key.to_str().unwrap();
        let target = Target::start(Transport::Tcp, dir.path(), mode);
        let dsrc = Addr::fresh(Transport::Tcp, dir.path(), "d");
        let (ds, dt) = (dsrc.arg(), target.addr.arg());
        let mut args = vec!["-d", "-s", &ds, "-t", &dt, "-k", key];
        args.extend_from_slice(dec_extra);
        let dec = Daemon::spawn(dec, "dec", dir.path(), &dsrc, &args);
        let hop = proxy.map_or(dsrc.clone(), |p| p(&dsrc));
        let esrc = Addr::fresh(Transport::Tcp, dir.path(), "e");
        let (es, et) = (esrc.arg(), hop.arg());
        let mut args = vec!["-e", "-s", &es, "-t", &et, "-k", key];
        args.extend_from_slice(enc_extra);
        let enc = Daemon::spawn(enc, "enc", dir.path(), &esrc, &args);
        Chain {
            _dir: dir,
            target,
            dec,
            enc,
        }
    }
}
