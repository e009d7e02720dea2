//! The system calls the running daemon (and `spipe`, once connected) makes, per
//! architecture: what `strace -f` of the whole test suite recorded after the filter's
//! installation (see `contrib/sandbox/allowlist-from-strace`), and nothing else.
//! aarch64 has no legacy calls (`open`, `poll`, `epoll_wait`, ...): its list holds the
//! generic ones the C library uses there instead.

/// `(name, number)` of every system call allowed.
pub static ALLOWED: &[(&str, i64)] = ALLOWED_HERE;

/// Builds the `(name, number)` list from `libc`'s `SYS_*` constants, so a name that
/// does not exist on the architecture fails to compile.
macro_rules! syscalls {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), libc::$name as i64)),*]
    };
}

/// Calls common to both architectures.
macro_rules! common {
    ($($extra:ident),* $(,)?) => {
        syscalls![
            SYS_accept4, SYS_bind, SYS_brk, SYS_clock_gettime, SYS_clock_nanosleep, SYS_clone,
            SYS_clone3, SYS_close, SYS_connect, SYS_epoll_create1, SYS_epoll_ctl,
            SYS_epoll_pwait, SYS_eventfd2, SYS_exit, SYS_exit_group, SYS_fcntl, SYS_fstat,
            SYS_futex, SYS_getpeername, SYS_getpid, SYS_getrandom, SYS_getsockname,
            SYS_getsockopt, SYS_gettid, SYS_ioctl, SYS_listen, SYS_lseek, SYS_madvise,
            SYS_mmap, SYS_mprotect, SYS_mremap, SYS_munmap, SYS_nanosleep, SYS_newfstatat,
            SYS_openat, SYS_pipe2, SYS_ppoll, SYS_prctl, SYS_read, SYS_readv, SYS_recvfrom,
            SYS_recvmsg, SYS_rseq, SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_rt_sigreturn,
            SYS_sched_getaffinity, SYS_sched_yield, SYS_sendmsg, SYS_sendto,
            SYS_set_robust_list, SYS_setsockopt, SYS_shutdown, SYS_sigaltstack, SYS_socket,
            SYS_statx, SYS_tgkill, SYS_unlinkat, SYS_write, SYS_writev,
            $($extra),*
        ]
    };
}

#[cfg(target_arch = "x86_64")]
static ALLOWED_HERE: &[(&str, i64)] = common![SYS_epoll_wait, SYS_poll, SYS_unlink];

#[cfg(target_arch = "aarch64")]
static ALLOWED_HERE: &[(&str, i64)] = common![];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_name_twice() {
        let mut names: Vec<&str> = ALLOWED.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before);
    }
}
