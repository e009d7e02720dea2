//! [`Listener`]: a listening socket (TCP or UNIX) that yields [`SocketStream`]s.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::endpoint::{Endpoint, StreamOptions, configure_stream};
use crate::registered::Registered;
use crate::stream::SocketStream;
use crate::sys;

/// A listening socket registered with the event loop ([`crate::event_loop`]). Dropping
/// it deregisters and closes the socket.
pub struct Listener {
    io: Registered,
    endpoint: Endpoint,
    /// The (device, inode) of the UNIX socket file bound here, read right after bind;
    /// `None` for TCP and for inherited listeners, whose file belongs to whoever
    /// created it.
    file_id: Option<(u64, u64)>,
    /// The options every accepted connection already has: set on a TCP listener bound
    /// here before it listened, which Linux copies to each connection it accepts (saving
    /// two system calls per connection). `None` for UNIX sockets, and for inherited
    /// listeners, whose queue may hold connections from before we could set anything.
    children_have: Option<StreamOptions>,
}

/// What to do with the file of a UNIX-socket listener we create.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketFile {
    /// Permission bits (`--socket-mode`, at most 0o777); `None` leaves those the umask
    /// gave.
    pub mode: Option<u32>,
    /// Owning user id (`--socket-owner`); `None` leaves it.
    pub uid: Option<u32>,
    /// Owning group id (`--socket-owner`); `None` leaves it.
    pub gid: Option<u32>,
}

/// How long [`Listener::accept_retrying`] waits after a failed accept before trying
/// again. Accept fails for lack of resources (EMFILE, ENFILE, ENOBUFS), which lasts
/// until something closes: long enough not to spin, short enough that service resumes
/// promptly.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A change in a listener's run of failed accepts, which [`Listener::accept_retrying`]
/// reports for the caller to tell the operator (this crate does not log): once when a
/// run starts, once when it ends, never at each retry.
#[derive(Debug)]
pub enum AcceptTrouble<'a> {
    /// Accept failed with this error after having worked (or at the first attempt);
    /// it is retried every [`ACCEPT_BACKOFF`] until it works.
    Failing(&'a io::Error),
    /// Accept works again, after this many failed attempts.
    Recovered(u64),
}

/// How many not-yet-accepted connections the kernel queues for us; connections over
/// spiped's `-n` limit wait here rather than being refused.
const BACKLOG: i32 = 1024;

impl Listener {
    /// Binds and listens on `ep` (SO_REUSEADDR on TCP, so a restart does not wait for
    /// TIME_WAIT), for connections accepted with the default [`StreamOptions`]. For TCP
    /// port 0 the kernel picks a port: see [`Listener::endpoint`].
    pub fn bind(ep: &Endpoint) -> io::Result<Listener> {
        Listener::bind_with(ep, SocketFile::default(), StreamOptions::default())
    }

    /// [`Listener::bind`], giving a UNIX socket's file the mode and owner of `file`
    /// (ignored for TCP) before it starts listening, so no client can connect while it
    /// still has the umask's permissions. `opts` are the options connections will be
    /// accepted with: a TCP listener gets them too, so that connections inherit them.
    /// Accepting with other options still works, at two system calls per connection.
    ///
    /// A UNIX socket file left behind by a process that died is replaced: it is removed
    /// only if it is a socket and connecting to it is refused (nothing listens). A live
    /// socket, or a path that is not a socket, is never touched; binding then fails with
    /// `AddrInUse`.
    pub fn bind_with(ep: &Endpoint, file: SocketFile, opts: StreamOptions) -> io::Result<Listener> {
        let (socket, file_id) = listening_socket(ep, file, opts)?;
        let endpoint = match ep {
            Endpoint::Tcp(_) => Endpoint::Tcp(
                socket
                    .local_addr()?
                    .as_socket()
                    .ok_or_else(|| io::Error::other("TCP listener has no IP address"))?,
            ),
            Endpoint::Unix(p) => Endpoint::Unix(p.clone()),
        };
        Ok(Listener {
            io: Registered::new(socket)?,
            endpoint,
            file_id,
            children_have: matches!(ep, Endpoint::Tcp(_)).then_some(opts),
        })
    }

    /// Takes over a listening socket passed by a parent process (systemd socket
    /// activation hands them over as descriptors 3 and up). Fails with `InvalidInput`
    /// unless `fd` is a listening TCP or UNIX stream socket. The socket file of an
    /// inherited UNIX socket is its creator's: [`Listener::unix_file`] does not offer it
    /// for removal.
    pub fn from_inherited(fd: OwnedFd) -> io::Result<Listener> {
        let socket = Socket::from(fd);
        let not_ours = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, why.to_owned());
        if socket.r#type()? != Type::STREAM || !sys::is_listener(&socket)? {
            return Err(not_ours("not a listening stream socket"));
        }
        let local = socket.local_addr()?;
        let endpoint = match (local.as_socket(), local.as_pathname()) {
            (Some(a), _) => Endpoint::Tcp(a),
            (None, Some(p)) => Endpoint::Unix(p.to_path_buf()),
            (None, None) => return Err(not_ours("neither a TCP nor a named UNIX socket")),
        };
        // Inherited descriptors lack close-on-exec as often as not.
        socket.set_cloexec(true)?;
        socket.set_nonblocking(true)?;
        Ok(Listener {
            io: Registered::new(socket)?,
            endpoint,
            file_id: None,
            children_have: None,
        })
    }

    /// The socket, for tests.
    #[cfg(test)]
    pub(crate) fn socket(&self) -> &Socket {
        self.io.get_ref()
    }

    /// The address actually listened on (with the kernel's port for TCP port 0).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The path of a UNIX-socket file this process created and its (device, inode) as
    /// bound, so that it can be removed at exit if, and only if, the path still names
    /// that file; `None` for TCP and for inherited sockets.
    pub fn unix_file(&self) -> Option<(&Path, (u64, u64))> {
        match (&self.endpoint, self.file_id) {
            (Endpoint::Unix(p), Some(id)) => Some((p, id)),
            _ => None,
        }
    }

    /// Waits for the next connection and applies `opts` to it.
    pub async fn accept(&self, opts: StreamOptions) -> io::Result<SocketStream> {
        let (socket, addr) = self.io.read_with(sys::accept, |_| false).await?;
        let tcp = matches!(self.endpoint, Endpoint::Tcp(_));
        if self.children_have != Some(opts) {
            configure_stream(&socket, tcp, opts)?;
        }
        let peer = match addr.as_socket() {
            Some(a) => a.to_string(),
            None => self.endpoint.to_string(),
        };
        let io = Registered::new(socket)?;
        Ok(SocketStream::from_registered(io, tcp, peer))
    }

    /// [`Listener::accept`] until it works, waiting [`ACCEPT_BACKOFF`] after each
    /// failure; `report` hears when failures start and when they end. A listener keeps
    /// serving through a shortage of descriptors or buffers (the connections it waits
    /// for stay in the kernel's queue meanwhile) rather than failing for good.
    pub async fn accept_retrying(
        &self,
        opts: StreamOptions,
        mut report: impl FnMut(AcceptTrouble<'_>),
    ) -> SocketStream {
        let mut failures = 0u64;
        loop {
            match self.accept(opts).await {
                Ok(s) => {
                    if failures > 0 {
                        report(AcceptTrouble::Recovered(failures));
                    }
                    return s;
                }
                Err(e) => {
                    if failures == 0 {
                        report(AcceptTrouble::Failing(&e));
                    }
                    failures += 1;
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
}

/// A socket listening on `ep` for [`Listener::bind_with`], non-blocking and
/// close-on-exec, and the (device, inode) of a UNIX socket's file as bound, for removal
/// at exit only while the path still names that file.
fn listening_socket(
    ep: &Endpoint,
    file: SocketFile,
    opts: StreamOptions,
) -> io::Result<(Socket, Option<(u64, u64)>)> {
    let socket = ep.new_socket()?;
    configure_stream(&socket, matches!(ep, Endpoint::Tcp(_)), opts)?;
    if let Endpoint::Tcp(a) = ep {
        socket.set_reuse_address(true)?;
        if a.is_ipv6() {
            // Like spiped: an IPv6 listener serves IPv6 only, so that [::]:p and
            // [0.0.0.0]:p can be two separate daemons.
            socket.set_only_v6(true)?;
        }
    }
    // The mode is the one bind gives the file (through the umask), and the owner is
    // set without following a symlink: the socket's directory may be writable by a
    // user who would swap a symlink in after bind to have a root daemon chmod or
    // chown a file of their choosing.
    let bind = || with_umask(file.mode, || socket.bind(&ep.sockaddr()?));
    match (bind(), ep) {
        (Err(e), Endpoint::Unix(path))
            if e.kind() == io::ErrorKind::AddrInUse && is_stale(path) =>
        {
            fs::remove_file(path)?;
            bind()?;
        }
        (r, _) => r?,
    }
    let file_id = match ep {
        Endpoint::Unix(path) => {
            if file.uid.is_some() || file.gid.is_some() {
                std::os::unix::fs::lchown(path, file.uid, file.gid)?;
            }
            let meta = fs::symlink_metadata(path)?;
            Some((meta.dev(), meta.ino()))
        }
        Endpoint::Tcp(_) => None,
    };
    socket.listen(BACKLOG)?;
    Ok((socket, file_id))
}

/// Runs `f` (a bind) with the umask that makes a new socket file's permission bits
/// exactly `mode`, then restores the umask; with no mode, runs `f` as it is.
///
/// The umask is the process's: the daemon binds before it starts any thread that
/// creates files, so nothing else is affected.
fn with_umask<T>(mode: Option<u32>, f: impl FnOnce() -> T) -> T {
    let Some(mode) = mode else { return f() };
    // SAFETY: umask only swaps an integer in the process's file-creation state.
    // The mask's nine bits fit every system's `mode_t` (16 bits on macOS).
    let old = unsafe { libc::umask((!mode & 0o777) as libc::mode_t) };
    let r = f();
    // SAFETY: as above, putting the previous value back.
    unsafe { libc::umask(old) };
    r
}

/// Whether `path` is a socket file that nothing listens on. Connects without blocking,
/// so a live listener with a full queue counts as live; any doubt means "not stale".
fn is_stale(path: &Path) -> bool {
    let is_socket = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    let refused = || -> io::Result<bool> {
        let probe = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        probe.set_nonblocking(true)?;
        Ok(match probe.connect(&SockAddr::unix(path)?) {
            Err(e) => e.kind() == io::ErrorKind::ConnectionRefused,
            Ok(()) => false,
        })
    };
    is_socket && refused().unwrap_or(false)
}
