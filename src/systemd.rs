//! systemd integration, without libsystemd: socket activation (`LISTEN_PID`,
//! `LISTEN_FDS`) and readiness notification (`NOTIFY_SOCKET`), as sd_listen_fds(3) and
//! sd_notify(3) describe them.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
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
/// unset, as when not socket-activated. [`choose`] turns them into a listener.
///
/// Must run before the process opens any file of its own, so that descriptors 3 and up
/// are still the ones systemd passed. A descriptor that is not a socket is an error
/// naming it.
pub fn inherited_sockets() -> Result<Vec<OwnedFd>, String> {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count = match std::env::var("LISTEN_FDS") {
        Ok(n) if ours => n
            .parse::<RawFd>()
            .map_err(|_| format!("LISTEN_FDS={n}: expected a number of descriptors"))?,
        _ => return Ok(Vec::new()),
    };
    if TAKEN.swap(true, Ordering::AcqRel) {
        return Ok(Vec::new());
    }
    (SD_LISTEN_FDS_START..SD_LISTEN_FDS_START.saturating_add(count))
        .map(|fd| {
            if !is_socket(fd) {
                return Err(format!(
                    "descriptor {fd} passed by systemd: not an open socket"
                ));
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

/// Picks the listener to serve from the sockets systemd passed: the one listening on
/// `source` (`-s`), or with no `-s` the only one. `None` when nothing was passed. Each
/// must be a listening TCP or UNIX stream socket.
pub fn choose(
    inherited: Vec<OwnedFd>,
    source: Option<&[Endpoint]>,
) -> Result<Option<Listener>, String> {
    if inherited.is_empty() {
        return Ok(None);
    }
    let mut inherited = inherited
        .into_iter()
        .map(|fd| {
            let n = fd.as_raw_fd();
            Listener::from_inherited(fd).map_err(|e| {
                format!(
                    "descriptor {n} passed by systemd: {}",
                    crate::errors::describe(&e)
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let n = inherited.len();
    match source {
        None if n == 1 => Ok(inherited.pop()),
        None => Err(format!(
            "systemd passed {n} sockets: name the one to serve with -s/--source"
        )),
        Some(wanted) => inherited
            .into_iter()
            .find(|l| wanted.contains(l.endpoint()))
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "none of the {n} sockets passed by systemd listens on the -s/--source address"
                )
            }),
    }
}

/// Tells the service manager about our state (`READY=1`, `STOPPING=1`) when
/// `NOTIFY_SOCKET` is set (a `Type=notify` unit); does nothing otherwise. The socket
/// may be a path or, starting with `@`, an abstract name.
pub fn notify(state: &str) -> io::Result<()> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let target = target.into_encoded_bytes();
    let addr = match target.split_first() {
        Some((b'@', name)) => SocketAddr::from_abstract_name(name)?,
        _ => SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(&target))?,
    };
    UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}
