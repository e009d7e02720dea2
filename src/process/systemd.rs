//! systemd integration, without libsystemd: socket activation (`LISTEN_PID`,
//! `LISTEN_FDS`) and readiness notification (`NOTIFY_SOCKET`), as sd_listen_fds(3) and
//! sd_notify(3) describe them.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};

use spiped_transports::{Endpoint, Listener};

/// The first descriptor systemd passes; the others follow it.
const SD_LISTEN_FDS_START: RawFd = 3;

/// Set once the passed descriptors have been taken, so they are owned only once.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The sockets systemd passed to this process, taken over (at most once per process;
/// later calls return none). Empty when `LISTEN_PID` is not our pid or `LISTEN_FDS` is
/// unset, as when not socket-activated. [`listeners`] turns them into listeners, of
/// which [`take`] gives each pipe its own.
///
/// Must run before the process opens any file of its own, so that descriptors 3 and up
/// are still the ones systemd passed. A descriptor that is not a socket is an error
/// naming it.
pub(crate) fn inherited_sockets() -> Result<Vec<OwnedFd>, SystemdError> {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count = match std::env::var("LISTEN_FDS") {
        Ok(n) if ours => n.parse::<RawFd>().map_err(|_| SystemdError::ListenFds(n))?,
        _ => return Ok(Vec::new()),
    };
    if TAKEN.swap(true, Ordering::AcqRel) {
        return Ok(Vec::new());
    }
    (SD_LISTEN_FDS_START..SD_LISTEN_FDS_START.saturating_add(count))
        .map(|fd| {
            if !is_socket(fd) {
                return Err(SystemdError::NotSocket(fd));
            }
            // SAFETY: the socket-activation protocol hands descriptors 3 .. 3+LISTEN_FDS
            // to the process whose pid is LISTEN_PID, which we checked is us; fstat just
            // confirmed it is an open socket; TAKEN guarantees each is wrapped once in
            // this process; and this runs before we open anything of our own, so no
            // other owner of the number exists here.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .collect()
}

/// Whether `fd` is an open socket.
fn is_socket(fd: RawFd) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole `struct stat` to the valid pointer it is given and
    // touches nothing else; an invalid descriptor only makes it fail.
    let ok = unsafe { libc::fstat(fd, st.as_mut_ptr()) } == 0;
    // SAFETY: on success fstat initialised the structure.
    ok && (unsafe { st.assume_init() }.st_mode & libc::S_IFMT) == libc::S_IFSOCK
}

/// The sockets systemd passed, as listeners; each must be a listening TCP or UNIX
/// stream socket.
pub(crate) fn listeners(inherited: Vec<OwnedFd>) -> Result<Vec<Listener>, SystemdError> {
    inherited
        .into_iter()
        .map(|fd| {
            let n = fd.as_raw_fd();
            Listener::from_inherited(fd)
                .map_err(|source| SystemdError::NotListener { fd: n, source })
        })
        .collect()
}

/// Takes the listener to serve a pipe from those systemd passed (see [`listeners`]):
/// the one listening on `source` (`-s`), or with no `-s` the only one. `None` when
/// none is left, or when none listens on `source` and the pipe may bind its own
/// (`required` false: a configuration file's pipes need not all be socket-activated).
pub(crate) fn take(
    passed: &mut Vec<Listener>,
    source: Option<&[Endpoint]>,
    required: bool,
) -> Result<Option<Listener>, SystemdError> {
    let n = passed.len();
    if n == 0 {
        return Ok(None);
    }
    match source {
        None if n == 1 => Ok(passed.pop()),
        None => Err(SystemdError::WhichSocket(n)),
        Some(wanted) => match passed.iter().position(|l| wanted.contains(l.endpoint())) {
            Some(i) => Ok(Some(passed.swap_remove(i))),
            None if !required => Ok(None),
            None => Err(SystemdError::NoneOnSource(n)),
        },
    }
}

/// What is wrong with the sockets systemd passed, or with how they are to be used.
#[derive(Debug)]
pub(crate) enum SystemdError {
    /// `LISTEN_FDS` (its value here) is not a number.
    ListenFds(String),
    /// This descriptor is not an open socket.
    NotSocket(RawFd),
    /// This descriptor is a socket that cannot serve: not a listening stream socket.
    NotListener {
        /// The descriptor.
        fd: RawFd,
        /// What was wrong with it.
        source: io::Error,
    },
    /// Several sockets came (this many) and no `-s` says which one to serve.
    WhichSocket(usize),
    /// None of the sockets (this many) listens on the `-s` address.
    NoneOnSource(usize),
}

impl fmt::Display for SystemdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SystemdError::ListenFds(n) => {
                write!(f, "LISTEN_FDS={n}: expected a number of descriptors")
            }
            SystemdError::NotSocket(fd) => {
                write!(f, "descriptor {fd} passed by systemd: not an open socket")
            }
            SystemdError::NotListener { fd, source } => write!(
                f,
                "descriptor {fd} passed by systemd: {}",
                crate::errors::describe(source)
            ),
            SystemdError::WhichSocket(n) => write!(
                f,
                "systemd passed {n} sockets: name the one to serve with -s/--source"
            ),
            SystemdError::NoneOnSource(n) => write!(
                f,
                "none of the {n} sockets passed by systemd listens on the -s/--source address"
            ),
        }
    }
}

impl std::error::Error for SystemdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SystemdError::NotListener { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `RELOADING=1` with the `MONOTONIC_USEC` that `Type=notify-reload` requires: the
/// time of the reload's start on the monotonic clock, in microseconds.
pub(crate) fn reloading_message() -> String {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the valid pointer it is given; the
    // monotonic clock always exists on Linux, so it cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let usec = (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000;
    format!("RELOADING=1\nMONOTONIC_USEC={usec}")
}

/// How often to send `WATCHDOG=1`: half the `WATCHDOG_USEC` that systemd set for this
/// process (`WatchdogSec=`), as sd_watchdog_enabled(3) advises; `None` when no
/// watchdog watches us (unset, zero, or meant for another pid).
pub(crate) fn watchdog_interval() -> Option<std::time::Duration> {
    let ours = std::env::var("WATCHDOG_PID")
        .map(|p| p.parse::<u32>().ok() == Some(std::process::id()))
        .unwrap_or(true);
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (ours && usec > 0).then(|| std::time::Duration::from_micros(usec / 2))
}

/// Tells the service manager about our state (`READY=1`, `STOPPING=1`) when
/// `NOTIFY_SOCKET` is set (a `Type=notify` unit); does nothing otherwise. The socket
/// may be a path or, starting with `@`, an abstract name.
pub(crate) fn notify(state: &str) -> io::Result<()> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let addr = notify_address(&target.into_encoded_bytes())?;
    UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

/// The address `NOTIFY_SOCKET` names: a path, or after `@` an abstract name, which
/// only Linux has (elsewhere such a name is refused as invalid).
fn notify_address(target: &[u8]) -> io::Result<SocketAddr> {
    #[cfg(target_os = "linux")]
    if let Some((b'@', name)) = target.split_first() {
        use std::os::linux::net::SocketAddrExt;
        return SocketAddr::from_abstract_name(name);
    }
    SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(target))
}
