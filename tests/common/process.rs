//! Child processes that are not daemons: run one with given standard input and collect
//! what it did, signal a process, ask whether it is still alive, and run one in a
//! private mount namespace; a process group killed whole (a traced daemon with its
//! tracer).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use super::{join_deadline, wait_deadline};

/// What a finished (non-daemon) process did.
#[derive(Debug)]
pub(crate) struct RunOutput {
    /// `None` when it was killed at the deadline.
    pub status: Option<ExitStatus>,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr (lossy UTF-8).
    pub stderr: String,
}

impl RunOutput {
    /// Its exit code; `None` when killed (at the deadline or by a signal).
    pub(crate) fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
    /// Its stdout as (lossy UTF-8) text.
    pub(crate) fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `cmd` with `stdin` as its standard input, capturing stdout and stderr, killing it
/// after `deadline`.
pub(crate) fn run_with_stdin(mut cmd: Command, stdin: &[u8], deadline: Duration) -> RunOutput {
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
pub(crate) fn run(cmd: Command) -> RunOutput {
    run_with_stdin(cmd, b"", Duration::from_secs(10))
}

/// Sends signal `sig` to process `pid`.
pub(crate) fn signal(pid: i32, sig: i32) {
    // SAFETY: kill takes plain integers; a stale pid at worst signals nothing.
    let r = unsafe { libc::kill(pid, sig) };
    assert!(r == 0 || sig == libc::SIGKILL, "kill({pid}, {sig}) failed");
}

/// True while process `pid` exists and is not a zombie (a daemon's parent is init, which
/// may reap it late, so a zombie counts as gone).
pub(crate) fn alive(pid: i32) -> bool {
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
pub(crate) fn in_mount_ns(binds: &[(&Path, &str)], program: &Path) -> Command {
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

/// A child started in a process group of its own, killed with every process of that
/// group when dropped, also when the test fails: what the child starts without leaving
/// its group (strace's tracee, a shell's commands) goes with it. Killing only the child
/// would leave a traced daemon running on its own once strace is gone.
pub(crate) struct Group {
    child: Child,
}

impl Group {
    /// Spawns `cmd` as the leader of a new process group.
    pub(crate) fn spawn(mut cmd: Command) -> Group {
        cmd.process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Group { child }
    }

    /// The group's leader, the process spawned.
    pub(crate) fn leader(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The processes of the group still alive, the leader included.
    pub(crate) fn members(&self) -> Vec<i32> {
        let pgid = self.child.id() as i32;
        let Ok(dir) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| process_group_of(pid) == Some(pgid) && alive(pid))
            .collect()
    }

    /// Kills every process of the group and reaps the leader; true when none is left
    /// alive within `deadline`.
    pub(crate) fn kill(&mut self, deadline: Duration) -> bool {
        // SAFETY: kill takes plain integers; a negative pid names the process group this
        // test created, which holds only processes this test started.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
        super::poll(deadline, || self.members().is_empty().then_some(())).is_some()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill(Duration::from_secs(5));
    }
}

/// The process group of `pid` (field 5 of /proc/PID/stat), if it exists.
fn process_group_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(2)?.parse().ok()
}
