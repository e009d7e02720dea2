//! Becoming a daemon: forking with a readiness handshake, the pidfile, and dropping
//! privileges (`-u`) to a user and group that [`super::account`] looks up. Everything here is
//! a thin, checked wrapper over libc.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use super::account::look_up;
pub(crate) use super::account::{AccountError, UserSpec, UserSpecError};
use crate::errors::describe;

/// The daemon's end of the pipe its parent waits on: [`Readiness::ready`] lets the
/// parent exit 0; dropping it unsent makes the parent exit with the daemon's status.
pub(crate) struct Readiness {
    pipe: io::PipeWriter,
    /// Opened at once: by the time the daemon is ready, its sandbox forbids opening it.
    null: File,
}

/// Forks into the background.
///
/// Must be called while the process has a single thread (before any runtime, resolver
/// or worker thread starts): only the calling thread survives in the child. The parent
/// never returns from this function: it waits until the child calls
/// [`Readiness::ready`] (then exits 0) or ends without doing so (then exits with the
/// child's status, 1 if the child was killed). The child starts a new session, so it
/// has no controlling terminal, and carries on.
pub(crate) fn daemonize() -> Result<Readiness, DaemonError> {
    // Close-on-exec on every system (pipe2 where there is one).
    let (mut rd, wr) = io::pipe().map_err(|source| DaemonError::Daemonize {
        step: "pipe",
        source,
    })?;
    // SAFETY: the caller guarantees the process is single-threaded, so the child gets
    // consistent copies of every lock and allocator state; it returns to ordinary Rust.
    match unsafe { libc::fork() } {
        -1 => Err(DaemonError::Daemonize {
            step: "fork",
            source: io::Error::last_os_error(),
        }),
        0 => {
            drop(rd);
            // SAFETY: setsid has no memory-safety preconditions; a fresh child is never
            // a process-group leader, so it cannot fail.
            unsafe { libc::setsid() };
            let null = File::options()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map_err(DaemonError::DevNull)?;
            Ok(Readiness { pipe: wr, null })
        }
        child => {
            drop(wr);
            let mut byte = [0u8; 1];
            let ready = loop {
                match rd.read(&mut byte) {
                    Ok(n) => break n == 1,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break false,
                }
            };
            if ready {
                std::process::exit(0);
            }
            std::process::exit(wait_status(child));
        }
    }
}

/// The exit status of `child` (which has ended or is about to), or 1 if it was killed.
fn wait_status(child: libc::pid_t) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid int to store the child's status in.
        let r = unsafe { libc::waitpid(child, &mut status, 0) };
        if r == child {
            return if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                1
            };
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return 1;
        }
    }
}

impl Readiness {
    /// Tells the waiting parent that the daemon is serving, so it exits 0, and points
    /// standard input and output at /dev/null (nothing is read or printed from now on;
    /// keeping a caller's pipe open would make `$(spiped ...)` hang). Standard error is
    /// kept, as the C spiped does, so warnings still reach wherever the caller sent them,
    /// unless `quiet_stderr` (warnings go to syslog) points it at /dev/null too.
    pub(crate) fn ready(mut self, quiet_stderr: bool) -> Result<(), DaemonError> {
        let null = &self.null;
        let mut targets = vec![libc::STDIN_FILENO, libc::STDOUT_FILENO];
        if quiet_stderr {
            targets.push(libc::STDERR_FILENO);
        }
        for fd in targets {
            // SAFETY: both are open descriptors; dup2 atomically replaces `fd`, which the
            // standard library only ever uses by number, never as an owned object.
            if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
                return Err(DaemonError::Redirect(io::Error::last_os_error()));
            }
        }
        self.pipe.write_all(&[0]).map_err(DaemonError::Signal)
    }
}

/// A file this process created, removed (best effort) when dropped, but only if it is
/// still ours: another instance may have replaced it meanwhile (started while this one
/// drained its connections), and its socket or pidfile must survive our exit. After `-u`
/// the file may belong to root and stay; that is expected.
pub(crate) struct RemoveOnDrop {
    path: PathBuf,
    ours: Ours,
}

/// How to tell that the file at the path is still the one this process made.
enum Ours {
    /// The UNIX socket file we bound: same device and inode.
    File { dev: u64, ino: u64 },
    /// The pidfile: it still holds these contents (our pid).
    Holding(String),
}

impl RemoveOnDrop {
    /// Takes charge of removing the socket file at `path`, whose (device, inode) was
    /// `id` when bound.
    pub(crate) fn socket(path: &Path, (dev, ino): (u64, u64)) -> RemoveOnDrop {
        RemoveOnDrop {
            path: path.to_owned(),
            ours: Ours::File { dev, ino },
        }
    }

    /// Whether the path still names what we made (never following a symlink).
    fn still_ours(&self) -> bool {
        match &self.ours {
            Ours::File { dev, ino } => std::fs::symlink_metadata(&self.path)
                .is_ok_and(|m| (m.dev(), m.ino()) == (*dev, *ino)),
            Ours::Holding(contents) => {
                let mut found = String::new();
                open_nofollow(&self.path, File::options().read(true))
                    .and_then(|mut f| f.read_to_string(&mut found))
                    .is_ok_and(|_| found == *contents)
            }
        }
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if self.still_ours() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Opens `path` with `options`, refusing a symlink in its last component (ELOOP) and
/// without blocking on a FIFO.
fn open_nofollow(path: &Path, options: &mut std::fs::OpenOptions) -> io::Result<File> {
    options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Writes this process's id to `path` as C spiped does (decimal, no newline); the file
/// is removed when the result is dropped, if it still holds our id then.
///
/// Unlike C, never through a symlink, and only into a regular file: a root daemon's
/// pidfile often sits in a directory others may write to, and following a planted link
/// would let them overwrite any file.
pub(crate) fn write_pidfile(path: &Path) -> Result<RemoveOnDrop, DaemonError> {
    let pid = std::process::id().to_string();
    let fail = |why| DaemonError::Pidfile {
        path: path.to_owned(),
        why,
    };
    let mut options = File::options();
    options.write(true).create(true);
    let mut f = open_nofollow(path, &mut options).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => fail(PidfileProblem::Symlink),
        _ => fail(PidfileProblem::Io(e)),
    })?;
    match f.metadata() {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(fail(PidfileProblem::NotRegular)),
        Err(e) => return Err(fail(PidfileProblem::Io(e))),
    }
    f.set_len(0)
        .and_then(|()| f.write_all(pid.as_bytes()))
        .map_err(|e| fail(PidfileProblem::Io(e)))?;
    Ok(RemoveOnDrop {
        path: path.to_owned(),
        ours: Ours::Holding(pid),
    })
}

/// Switches to the user and/or group of `-u`: supplementary groups cleared, then the
/// group id, then the user id (the only order in which each step is still permitted).
/// `-u user` takes the user's primary group. Fails, naming the step, if any step fails.
pub(crate) fn drop_privileges(spec: &UserSpec) -> Result<(), DaemonError> {
    let (user, group) = look_up(spec, "-u").map_err(DaemonError::Account)?;
    let gid = group.or(user.map(|(_, gid)| gid));
    let fail = |step: String| DaemonError::DropPrivileges {
        step,
        source: io::Error::last_os_error(),
    };
    if let Some(gid) = gid {
        // SAFETY: a null list with length 0 is the documented way to clear the groups.
        if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
            return Err(fail("setgroups".to_owned()));
        }
        // SAFETY: plain system call on an integer; glibc applies it to every thread.
        if unsafe { libc::setgid(gid) } != 0 {
            return Err(fail(format!("setgid({gid})")));
        }
    }
    if let Some((uid, _)) = user {
        // SAFETY: as above.
        if unsafe { libc::setuid(uid) } != 0 {
            return Err(fail(format!("setuid({uid})")));
        }
    }
    Ok(())
}

/// The owner and group `--socket-owner` gives the source socket's file, as chown(1)
/// reads `user`, `:group` and `user:group` (a lone user leaves the group as it is).
pub(crate) fn socket_owner(spec: &UserSpec) -> Result<(Option<u32>, Option<u32>), AccountError> {
    let (user, group) = look_up(spec, "--socket-owner")?;
    Ok((user.map(|(uid, _)| uid), group))
}

/// Why the pidfile was not written.
#[derive(Debug)]
pub(crate) enum PidfileProblem {
    /// Its path is a symbolic link, which is never written through.
    Symlink,
    /// Its path is something other than a regular file.
    NotRegular,
    /// Opening or writing it failed.
    Io(io::Error),
}

/// What failed while becoming a daemon; the message says what to do where it can.
#[derive(Debug)]
pub(crate) enum DaemonError {
    /// A step of forking into the background (`pipe`, `fork`) failed.
    Daemonize {
        /// The system call that failed.
        step: &'static str,
        /// What the system said.
        source: io::Error,
    },
    /// `/dev/null` could not be opened for the standard streams.
    DevNull(io::Error),
    /// The standard streams could not be pointed at `/dev/null`.
    Redirect(io::Error),
    /// The waiting parent could not be told that the daemon is ready.
    Signal(io::Error),
    /// The pidfile (`-p`) could not be written.
    Pidfile {
        /// Its path.
        path: PathBuf,
        /// Why.
        why: PidfileProblem,
    },
    /// A step of dropping privileges (`-u`) failed.
    DropPrivileges {
        /// The system call that failed, with its argument.
        step: String,
        /// What the system said.
        source: io::Error,
    },
    /// A user or group of `-u` cannot be used.
    Account(AccountError),
}

impl fmt::Display for PidfileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PidfileProblem::Symlink => {
                f.write_str("it is a symbolic link, which spiped does not write through")
            }
            PidfileProblem::NotRegular => f.write_str("it is not a regular file"),
            PidfileProblem::Io(e) => f.write_str(&describe(e)),
        }
    }
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonError::Daemonize { step, source } => {
                write!(f, "cannot daemonize: {step}: {}", describe(source))
            }
            DaemonError::DevNull(e) => write!(f, "cannot open /dev/null: {}", describe(e)),
            DaemonError::Redirect(e) => write!(
                f,
                "cannot redirect standard streams to /dev/null: {}",
                describe(e)
            ),
            DaemonError::Signal(e) => {
                write!(f, "cannot signal readiness to the parent: {}", describe(e))
            }
            DaemonError::Pidfile { path, why } => write!(
                f,
                "cannot write pidfile {}: {why} (choose another with -p)",
                path.display()
            ),
            DaemonError::DropPrivileges { step, source } => write!(
                f,
                "cannot drop privileges (-u): {step}: {}",
                describe(source)
            ),
            DaemonError::Account(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DaemonError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DaemonError::Daemonize { source, .. } | DaemonError::DropPrivileges { source, .. } => {
                Some(source)
            }
            DaemonError::DevNull(e) | DaemonError::Redirect(e) | DaemonError::Signal(e) => Some(e),
            DaemonError::Pidfile {
                why: PidfileProblem::Io(e),
                ..
            } => Some(e),
            DaemonError::Pidfile { .. } => None,
            // Its message is the account error's own: that error's source is ours.
            DaemonError::Account(e) => e.source(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfile_through_a_symlink_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("p.pid");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
        let e = write_pidfile(&link).err().expect("refused");
        assert!(matches!(
            e,
            DaemonError::Pidfile {
                why: PidfileProblem::Symlink,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            format!(
                "cannot write pidfile {}: it is a symbolic link, which spiped does not write \
                 through (choose another with -p)",
                link.display()
            )
        );
        assert!(!dir.path().join("elsewhere").exists());
    }
}
