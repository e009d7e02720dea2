//! The few socket calls whose portable form differs by system. Linux and the BSDs set
//! close-on-exec and non-blocking in the call that makes the socket (`SOCK_CLOEXEC |
//! SOCK_NONBLOCK`, `accept4`) and read `SO_ACCEPTCONN`; macOS has neither flag nor
//! `accept4`, so there the flags follow in separate calls, before any other thread can
//! see the descriptor (the daemon forks and execs nothing once serving).

use std::io;

use socket2::{Domain, SockAddr, Socket, Type};

/// A new stream socket, close-on-exec and non-blocking.
pub(crate) fn stream_socket(domain: Domain) -> io::Result<Socket> {
    #[cfg(not(target_vendor = "apple"))]
    {
        // socket2 sets close-on-exec on new sockets, so children never inherit them;
        // non-blocking from the start saves a system call per connection.
        Socket::new(domain, Type::STREAM.nonblocking(), None)
    }
    #[cfg(target_vendor = "apple")]
    {
        // socket2 sets close-on-exec (and SO_NOSIGPIPE) here.
        let socket = Socket::new(domain, Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    }
}

/// Accepts a connection on `listener` as a close-on-exec, non-blocking socket.
pub(crate) fn accept(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
    #[cfg(not(target_vendor = "apple"))]
    {
        listener.accept4(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
    }
    #[cfg(target_vendor = "apple")]
    {
        // socket2 sets close-on-exec (and SO_NOSIGPIPE) on what it accepts.
        let (socket, addr) = listener.accept()?;
        socket.set_nonblocking(true)?;
        Ok((socket, addr))
    }
}

/// Whether `socket` is listening (`SO_ACCEPTCONN`).
pub(crate) fn is_listener(socket: &Socket) -> io::Result<bool> {
    #[cfg(not(target_vendor = "apple"))]
    {
        socket.is_listener()
    }
    #[cfg(target_vendor = "apple")]
    {
        use std::os::fd::AsRawFd;
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are live, writable and exactly as large as `len`
        // says; getsockopt writes at most `len` bytes into `value` and updates `len`.
        let r = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ACCEPTCONN,
                (&raw mut value).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(value != 0)
    }
}

/// The user id of the process at the other end of the connected UNIX socket `socket`,
/// as the kernel recorded it at connect time (`SO_PEERCRED`; `getpeereid` elsewhere).
pub(crate) fn peer_uid(socket: &Socket) -> io::Result<u32> {
    use std::os::fd::AsRawFd;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: `cred` and `len` are live, writable and exactly as large as `len`
        // says; getsockopt writes at most `len` bytes into `cred` and updates `len`.
        let r = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&raw mut cred).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(cred.uid)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let (mut uid, mut gid) = (0, 0);
        // SAFETY: `uid` and `gid` are live and writable; getpeereid writes one id into
        // each and reads nothing else.
        let r = unsafe { libc::getpeereid(socket.as_raw_fd(), &mut uid, &mut gid) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(uid)
    }
}
