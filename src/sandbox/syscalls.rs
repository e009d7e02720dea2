//! The system calls the running daemon (and `spipe`, once connected) makes, per
//! architecture: what `strace -f` of the whole test suite recorded after the filter's
//! installation (`contrib/sandbox/allowlist-from-strace`), plus the few that the tests
//! cannot provoke but the daemon needs, each said why below. aarch64 has no legacy
//! calls (`poll`, `epoll_wait`, `dup2`, `unlink`): the C library uses the generic ones
//! there (`ppoll`, `epoll_pwait`, `dup3`, `unlinkat`), which its list holds instead.

/// `(name, number)` of every system call allowed with any arguments.
pub(super) static ALLOWED: &[(&str, i64)] = ALLOWED_HERE;

/// What one argument of a narrowed call must be.
pub(super) enum Only {
    /// The argument (by index) is one of these values.
    OneOf(u8, &'static [u64]),
    /// The argument has none of these bits set.
    BitsClear(u8, u64),
    /// The argument is this process's id.
    ThisProcess(u8),
}

/// `(name, number, condition)`: calls allowed only when one argument says so, because
/// other values reach much more of the kernel or of the system.
// FIONBIO's type depends on the C library (c_ulong with glibc, c_int with musl).
#[allow(clippy::unnecessary_cast)]
pub(super) static NARROWED: &[(&str, i64, Only)] = &[
    // Only switching a descriptor's blocking mode; never TIOCSTI on a terminal, which
    // would type commands into the shell that started a foreground daemon.
    (
        "ioctl",
        libc::SYS_ioctl,
        Only::OneOf(1, &[libc::FIONBIO as u64]),
    ),
    // Only naming threads (new worker threads do); no other process attribute.
    (
        "prctl",
        libc::SYS_prctl,
        Only::OneOf(0, &[libc::PR_SET_NAME as u64]),
    ),
    // Only the families spiped speaks: no netlink, packet or other socket.
    (
        "socket",
        libc::SYS_socket,
        Only::OneOf(
            0,
            &[
                libc::AF_UNIX as u64,
                libc::AF_INET as u64,
                libc::AF_INET6 as u64,
            ],
        ),
    ),
    // Memory is never made executable once serving: injected code cannot be run.
    (
        "mmap",
        libc::SYS_mmap,
        Only::BitsClear(2, libc::PROT_EXEC as u64),
    ),
    (
        "mprotect",
        libc::SYS_mprotect,
        Only::BitsClear(2, libc::PROT_EXEC as u64),
    ),
    // A panic's abort (release builds) signals this process only.
    ("tgkill", libc::SYS_tgkill, Only::ThisProcess(0)),
];

/// Builds the `(name, number)` list from `libc`'s `SYS_*` constants, so a name that
/// does not exist on the architecture fails to compile.
macro_rules! syscalls {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), libc::$name as i64)),*]
    };
}

/// The calls of both architectures, then the architecture's own.
macro_rules! allowed {
    ($($own:ident),* $(,)?) => {
        syscalls![
            // Sockets (socket: see NARROWED): accepting, connecting, moving bytes,
            // options, DNS over UDP.
            SYS_accept4, SYS_bind, SYS_close, SYS_connect, SYS_getpeername,
            SYS_getsockname, SYS_getsockopt, SYS_recvfrom, SYS_sendmsg, SYS_sendto,
            SYS_setsockopt, SYS_shutdown,
            // A reload that starts a pipe listens on a new socket.
            SYS_listen,
            // The event loop, its timers, and waking it from worker threads.
            SYS_epoll_ctl, SYS_fcntl, SYS_futex, SYS_read, SYS_write,
            // The metrics endpoint's HTTP responses (hyper writes header and body at once).
            SYS_writev,
            // Time (the vDSO answers without a call, except as a fallback); yielding in
            // contended spin loops.
            SYS_clock_gettime, SYS_sched_yield,
            // Memory (mmap and mprotect: see NARROWED).
            SYS_brk, SYS_madvise, SYS_mremap, SYS_munmap,
            // Worker threads: starting (clone when clone3 is unavailable), their signal
            // stacks and masks, ending when idle.
            SYS_clone, SYS_clone3, SYS_exit, SYS_gettid, SYS_rseq, SYS_rt_sigaction,
            SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_sched_getaffinity,
            SYS_set_robust_list, SYS_sigaltstack,
            // Handshake nonces and Diffie-Hellman secrets.
            SYS_getrandom,
            // Files allowed by Landlock: key files and resolver configuration
            // (re-read on reload and re-resolution), stat of standard streams; uname
            // for the resolver's default domain.
            SYS_lseek, SYS_newfstatat, SYS_openat, SYS_statx, SYS_uname,
            // Exiting; a panic's abort asks for the process id.
            SYS_exit_group, SYS_getpid,
            $($own),*
        ]
    };
}

// Of each: standard streams to /dev/null once the daemon is ready (dup2), removing the
// pidfile and a UNIX socket at exit (unlink), the event loop's wait (epoll_wait), and
// resolving the paths a reload names (readlink, for the sandbox's own check).
#[cfg(all(target_arch = "x86_64", not(target_env = "musl")))]
static ALLOWED_HERE: &[(&str, i64)] = allowed![SYS_dup2, SYS_unlink, SYS_epoll_wait, SYS_readlink];

// musl (`make static`) makes other calls than glibc for the same functions: its
// epoll_wait is epoll_pwait, and it opens and stats files with the older open, stat and
// fstat where glibc uses openat and newfstatat (`strace -f` of the static binary).
#[cfg(all(target_arch = "x86_64", target_env = "musl"))]
static ALLOWED_HERE: &[(&str, i64)] = allowed![
    SYS_dup2,
    SYS_unlink,
    SYS_epoll_pwait,
    SYS_readlink,
    SYS_open,
    SYS_stat,
    SYS_fstat
];

#[cfg(target_arch = "aarch64")]
static ALLOWED_HERE: &[(&str, i64)] =
    allowed![SYS_dup3, SYS_unlinkat, SYS_epoll_pwait, SYS_readlinkat];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_call_twice() {
        let mut numbers: Vec<i64> = ALLOWED.iter().map(|(_, nr)| *nr).collect();
        numbers.extend(NARROWED.iter().map(|(_, nr, _)| *nr));
        numbers.sort_unstable();
        let before = numbers.len();
        numbers.dedup();
        assert_eq!(numbers.len(), before);
    }
}
