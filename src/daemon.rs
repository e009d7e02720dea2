//! Becoming a daemon: forking with a readiness handshake, the pidfile, and dropping
//! privileges (`-u`). Everything here is a thin, checked wrapper over libc.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::errors::describe;

/// The daemon's end of the pipe its parent waits on: [`Readiness::ready`] lets the
/// parent exit 0; dropping it unsent makes the parent exit with the daemon's status.
pub struct Readiness {
    pipe: File,
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
pub fn daemonize() -> Result<Readiness, String> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill in.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!(
            "cannot daemonize: pipe: {}",
            describe(&io::Error::last_os_error())
        ));
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the caller guarantees the process is single-threaded, so the child gets
    // consistent copies of every lock and allocator state; it returns to ordinary Rust.
    match unsafe { libc::fork() } {
        -1 => Err(format!(
            "cannot daemonize: fork: {}",
            describe(&io::Error::last_os_error())
        )),
        0 => {
            drop(rd);
            // SAFETY: setsid has no memory-safety preconditions; a fresh child is never
            // a process-group leader, so it cannot fail.
            unsafe { libc::setsid() };
            let null = File::options()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map_err(|e| format!("cannot open /dev/null: {}", describe(&e)))?;
            Ok(Readiness {
                pipe: File::from(wr),
                null,
            })
        }
        child => {
            drop(wr);
            let mut byte = [0u8; 1];
            let mut rd = File::from(rd);
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
    pub fn ready(mut self, quiet_stderr: bool) -> Result<(), String> {
        let null = &self.null;
        let mut targets = vec![libc::STDIN_FILENO, libc::STDOUT_FILENO];
        if quiet_stderr {
            targets.push(libc::STDERR_FILENO);
        }
        for fd in targets {
            // SAFETY: both are open descriptors; dup2 atomically replaces `fd`, which the
            // standard library only ever uses by number, never as an owned object.
            if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
                return Err(format!(
                    "cannot redirect standard streams to /dev/null: {}",
                    describe(&io::Error::last_os_error())
                ));
            }
        }
        self.pipe
            .write_all(&[0])
            .map_err(|e| format!("cannot signal readiness to the parent: {}", describe(&e)))
    }
}

/// A file this process created, removed (best effort) when dropped, but only if it is
/// still ours: another instance may have replaced it meanwhile (started while this one
/// drained its connections), and its socket or pidfile must survive our exit. After `-u`
/// the file may belong to root and stay; that is expected.
pub struct RemoveOnDrop {
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
    pub fn socket(path: &Path, (dev, ino): (u64, u64)) -> RemoveOnDrop {
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
pub fn write_pidfile(path: &Path) -> Result<RemoveOnDrop, String> {
    let pid = std::process::id().to_string();
    let fail = |why: String| {
        format!(
            "cannot write pidfile {}: {why} (choose another with -p)",
            path.display()
        )
    };
    let mut options = File::options();
    options.write(true).create(true);
    let mut f = open_nofollow(path, &mut options).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => {
            fail("it is a symbolic link, which spiped does not write through".to_owned())
        }
        _ => fail(describe(&e)),
    })?;
    match f.metadata() {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(fail("it is not a regular file".to_owned())),
        Err(e) => return Err(fail(describe(&e))),
    }
    f.set_len(0)
        .and_then(|()| f.write_all(pid.as_bytes()))
        .map_err(|e| fail(describe(&e)))?;
    Ok(RemoveOnDrop {
        path: path.to_owned(),
        ours: Ours::Holding(pid),
    })
}

/// The `-u` argument: whom to become after binding the source socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserSpec {
    /// `-u user`: that user, and that user's primary group.
    User(String),
    /// `-u :group`: only the group.
    Group(String),
    /// `-u user:group`: both.
    UserGroup(String, String),
}

impl FromStr for UserSpec {
    type Err = String;

    /// Parses `user`, `:group` or `user:group`. Empty names (`:`, `user:`) are errors
    /// rather than "no change", because a script that writes `-u "$U:$G"` with an unset
    /// variable means something, and silently running as root is the wrong guess.
    fn from_str(s: &str) -> Result<UserSpec, String> {
        let bad = |why: &str| format!("invalid value '{s}' for -u/--user: {why}");
        let spec = match s.split_once(':') {
            None if s.is_empty() => return Err(bad("empty user name")),
            None => UserSpec::User(s.to_owned()),
            Some(("", "")) => return Err(bad("expected user, :group or user:group")),
            Some((_, "")) => return Err(bad("empty group name after ':'")),
            Some((_, g)) if g.contains(':') => return Err(bad("more than one ':'")),
            Some(("", g)) => UserSpec::Group(g.to_owned()),
            Some((u, g)) => UserSpec::UserGroup(u.to_owned(), g.to_owned()),
        };
        Ok(spec)
    }
}

/// Switches to the user and/or group of `-u`: supplementary groups cleared, then the
/// group id, then the user id (the only order in which each step is still permitted).
/// `-u user` takes the user's primary group. Fails, naming the step, if any step fails.
pub fn drop_privileges(spec: &UserSpec) -> Result<(), String> {
    let (user, group) = look_up(spec, "-u")?;
    let gid = group.or(user.map(|(_, gid)| gid));
    let fail = |what: &str| {
        format!(
            "cannot drop privileges (-u): {what}: {}",
            describe(&io::Error::last_os_error())
        )
    };
    if let Some(gid) = gid {
        // SAFETY: a null list with length 0 is the documented way to clear the groups.
        if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
            return Err(fail("setgroups"));
        }
        // SAFETY: plain system call on an integer; glibc applies it to every thread.
        if unsafe { libc::setgid(gid) } != 0 {
            return Err(fail(&format!("setgid({gid})")));
        }
    }
    if let Some((uid, _)) = user {
        // SAFETY: as above.
        if unsafe { libc::setuid(uid) } != 0 {
            return Err(fail(&format!("setuid({uid})")));
        }
    }
    Ok(())
}

/// The owner and group `--socket-owner` gives the source socket's file, as chown(1)
/// reads `user`, `:group` and `user:group` (a lone user leaves the group as it is).
pub fn socket_owner(spec: &UserSpec) -> Result<(Option<u32>, Option<u32>), String> {
    let (user, group) = look_up(spec, "--socket-owner")?;
    Ok((user.map(|(uid, _)| uid), group))
}

/// A user's uid and primary gid.
type UserIds = (libc::uid_t, libc::gid_t);

/// The user (uid and primary gid) and the group (gid) that `spec` names, from the system
/// databases; errors name `option`.
fn look_up(
    spec: &UserSpec,
    option: &str,
) -> Result<(Option<UserIds>, Option<libc::gid_t>), String> {
    let (user, group) = match spec {
        UserSpec::User(u) => (Some(u.as_str()), None),
        UserSpec::Group(g) => (None, Some(g.as_str())),
        UserSpec::UserGroup(u, g) => (Some(u.as_str()), Some(g.as_str())),
    };
    Ok((
        user.map(|u| lookup_user(u, option)).transpose()?,
        group.map(|g| lookup_group(g, option)).transpose()?,
    ))
}

/// Size of the scratch buffer for the reentrant passwd/group look-ups; ERANGE doubles it.
const LOOKUP_BUF: usize = 4096;

/// The uid and primary gid of `name`.
fn lookup_user(name: &str, option: &str) -> Result<UserIds, String> {
    let cname =
        CString::new(name).map_err(|_| format!("invalid user name '{name}' for {option}"))?;
    let mut buf = vec![0u8; LOOKUP_BUF];
    loop {
        // SAFETY: an all-zero passwd is a valid value (integers and null pointers).
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call, and `buf.len()` is the true size
        // of the buffer the string fields of `pw` will point into.
        let r = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pw,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        match r {
            0 if found.is_null() => return Err(format!("unknown user '{name}' ({option})")),
            0 => return Ok((pw.pw_uid, pw.pw_gid)),
            libc::ERANGE => buf.resize(buf.len() * 2, 0),
            e => {
                return Err(format!(
                    "cannot look up user '{name}' ({option}): {}",
                    describe(&io::Error::from_raw_os_error(e))
                ));
            }
        }
    }
}

/// The gid of group `name`.
fn lookup_group(name: &str, option: &str) -> Result<libc::gid_t, String> {
    let cname =
        CString::new(name).map_err(|_| format!("invalid group name '{name}' for {option}"))?;
    let mut buf = vec![0u8; LOOKUP_BUF];
    loop {
        // SAFETY: an all-zero group is a valid value (integers and null pointers).
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in lookup_user.
        let r = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut gr,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        match r {
            0 if found.is_null() => return Err(format!("unknown group '{name}' ({option})")),
            0 => return Ok(gr.gr_gid),
            libc::ERANGE => buf.resize(buf.len() * 2, 0),
            e => {
                return Err(format!(
                    "cannot look up group '{name}' ({option}): {}",
                    describe(&io::Error::from_raw_os_error(e))
                ));
            }
        }
    }
}
