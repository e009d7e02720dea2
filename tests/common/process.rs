//! Child processes that are not daemons: run one with given standard input and collect
//! what it did, signal a process, ask whether it is still alive, and run one in a
//! private mount namespace.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use super::{join_deadline, wait_deadline};

/// What a finished (non-daemon) process did.
#[derive(Debug)]
pub struct RunOutput {
    /// `None` when it was killed at the deadline.
    pub status: Option<ExitStatus>,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr (lossy UTF-8).
    pub stderr: String,
}

impl RunOutput {
    /// Its exit code; `None` when killed (at the deadline or by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
    /// Its stdout as (lossy UTF-8) text.
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
