//! Daemons under test: [`Daemon`], a `spiped -F` of either implementation, started and
//! waited for until it accepts, with its stderr, descriptors and memory at hand; and
//! [`Daemonized`], a `spiped` that forked into the background, known by its pidfile.
//! Both are killed on drop (a `Daemon` with its process group).

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{
    Addr, Impl, READY_DEADLINE, alive, poll, poll_every, signal, spiped_argv, spiped_cmd,
    wait_deadline, wait_file_contains,
};

/// A running `spiped -F` daemon; killed and reaped on drop.
pub(crate) struct Daemon {
    /// Whose spiped it is.
    pub which: Impl,
    /// Its name in the test's output and its stderr file's name.
    pub label: String,
    /// Where it accepts connections.
    pub source: Addr,
    child: Child,
    stderr_path: PathBuf,
}

impl Daemon {
    /// Spawns `spiped -F ARGS` (ARGS must include `-s source`), stderr to a file in `dir`,
    /// and waits until `source` accepts connections. Panics (with the daemon's stderr) if
    /// it exits or does not become ready within [`READY_DEADLINE`].
    pub(crate) fn spawn(
        which: Impl,
        label: &str,
        dir: &Path,
        source: &Addr,
        args: &[&str],
    ) -> Daemon {
        Daemon::spawn_cmd(which, label, dir, source, spiped_cmd(which), args)
    }

    /// Spawns a pipe daemon, `spiped -F ARGS -s SOURCE -t TARGET -k KEY`, as
    /// [`Daemon::spawn`] does; `args` holds `-e` or `-d` and any other options.
    pub(crate) fn pipe(
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
    pub(crate) fn spawn_limited(
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
            .args(spiped_argv(which));
        Daemon::spawn_cmd(which, label, dir, source, cmd, args)
    }

    /// Like [`Daemon::spawn`], with `cmd` as the command to add `-F ARGS` to (for
    /// example one from [`in_mount_ns`]).
    pub(crate) fn spawn_cmd(
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
            .stderr(errf)
            // A group of its own, killed whole on drop: a wrapper that does not exec
            // (strace) goes with its daemon.
            .process_group(0);
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
        let ready = poll(READY_DEADLINE, || {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "[{}] {} spiped exited before accepting on {} ({st}); stderr: {}",
                    self.label,
                    self.which,
                    self.source,
                    self.stderr()
                );
            }
            self.source.connect().ok()
        });
        if ready.is_none() {
            panic!(
                "[{}] {} spiped not accepting on {} after {:?}; stderr: {}",
                self.label,
                self.which,
                self.source,
                READY_DEADLINE,
                self.stderr()
            );
        }
    }

    /// Everything the daemon wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Polls the daemon's stderr every 10 ms until it contains `needle`, up to
    /// `deadline`; returns all of it, or an error quoting it.
    pub(crate) fn wait_stderr(&self, needle: &str, deadline: Duration) -> Result<String, String> {
        wait_file_contains(&self.stderr_path, needle, deadline)
            .map_err(|err| format!("[{}] {err}", self.label))
    }

    /// The daemon's process id.
    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `sig` to the daemon.
    pub(crate) fn signal(&self, sig: i32) {
        signal(self.pid(), sig);
    }

    /// Waits up to `deadline` for the daemon to exit; `None` (and killed) on timeout.
    pub(crate) fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        wait_deadline(&mut self.child, deadline)
    }

    /// Waits until the daemon has confined itself (`NoNewPrivs: 1`, set with the first
    /// layer), as it does between binding its sources and accepting: what a test puts
    /// beside its key files from then on is not in the directories it saw at start.
    pub(crate) fn wait_confined(&self) {
        let status = format!("/proc/{}/status", self.pid());
        let confined = poll(READY_DEADLINE, || {
            let s = fs::read_to_string(&status).ok()?;
            s.lines()
                .any(|l| l.strip_prefix("NoNewPrivs:").map(str::trim) == Some("1"))
                .then_some(())
        });
        assert!(
            confined.is_some(),
            "[{}] not confined: {}",
            self.label,
            self.stderr()
        );
    }

    /// The daemon's resident set size in KiB (VmRSS in /proc/PID/status).
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// The daemon's open descriptors (targets of the /proc/PID/fd links).
    pub(crate) fn fds(&self) -> Vec<PathBuf> {
        fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc/PID/fd")
            .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
            .collect()
    }

    /// How many sockets the daemon has open: its listener and the socket pair that
    /// carries signals to its event loop when idle, plus those of each connection. (The
    /// event loop's own descriptors, epoll's and its wake-up eventfd, are not sockets,
    /// so this count moves with connections alone.)
    pub(crate) fn socket_count(&self) -> usize {
        self.fds()
            .iter()
            .filter(|p| p.to_string_lossy().starts_with("socket:"))
            .count()
    }

    /// The daemon's idle socket count: polls until the count has not changed for
    /// 200 ms (the readiness probe's connection is gone), up to 5 s.
    pub(crate) fn idle_sockets(&self) -> usize {
        self.settled(Daemon::socket_count)
    }

    /// The daemon's count of open descriptors, once settled as [`Daemon::idle_sockets`]
    /// waits for its sockets.
    pub(crate) fn idle_fds(&self) -> usize {
        self.settled(|d| d.fds().len())
    }

    /// `count` of the daemon once it has not changed for 200 ms, polled up to 5 s.
    fn settled(&self, count: impl Fn(&Daemon) -> usize) -> usize {
        let mut last = (count(self), Instant::now());
        poll_every(Duration::from_secs(5), Duration::from_millis(20), || {
            let n = count(self);
            if n != last.0 {
                last = (n, Instant::now());
            }
            (last.1.elapsed() >= Duration::from_millis(200)).then_some(())
        });
        last.0
    }

    /// Polls until the daemon has at most `want` sockets open; returns the last count
    /// seen (which exceeds `want` only if `deadline` passed first).
    pub(crate) fn wait_sockets_at_most(&self, want: usize, deadline: Duration) -> usize {
        let mut n = 0;
        poll(deadline, || {
            n = self.socket_count();
            (n <= want).then_some(())
        });
        n
    }

    /// Panics if the daemon has exited.
    pub(crate) fn assert_running(&mut self) {
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
        // SAFETY: kill takes plain integers; the negative pid names the process group
        // spawn_cmd made for this daemon, holding only what it started.
        unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
        let err = self.stderr();
        if !err.is_empty() {
            println!("[{}] {} spiped stderr:\n{err}", self.label, self.which);
        }
    }
}

/// A `spiped` that daemonized itself (started without `-F`): known by its pidfile,
/// killed on drop if still running.
pub(crate) struct Daemonized {
    /// The daemon's process id, from its pidfile.
    pub pid: i32,
    /// The file its stderr goes to.
    pub stderr_path: PathBuf,
}

impl Daemonized {
    /// Runs `cmd` (a complete `spiped` command line without `-F`) with stderr to
    /// `stderr_path`, and waits for the foreground process to exit. Returns its status
    /// and, when it exited 0, the daemon named by `pidfile`.
    pub(crate) fn start(
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
    pub(crate) fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Polls the daemon's stderr every 10 ms until it contains `needle`, up to
    /// `deadline`; returns all of it, or an error quoting it.
    pub(crate) fn wait_stderr(&self, needle: &str, deadline: Duration) -> Result<String, String> {
        wait_file_contains(&self.stderr_path, needle, deadline)
    }

    /// Waits up to `deadline` for the daemon to be gone; true if it is.
    pub(crate) fn wait_gone(&self, deadline: Duration) -> bool {
        poll(deadline, || (!alive(self.pid)).then_some(())).is_some()
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
