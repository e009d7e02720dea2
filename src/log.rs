//! Warnings for the operator: to standard error, prefixed with the program's name, or
//! to syslog once [`use_syslog`] was called (`spiped --syslog`).

use std::ffi::CString;
use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Prints one warning line, `PROGRAM: MESSAGE`, to standard error, or sends `MESSAGE` to
/// syslog at priority warning after [`use_syslog`]. A closed or broken standard error is
/// ignored: losing a warning must never stop the daemon.
pub(crate) fn warn(msg: &str) {
    emit(libc::LOG_WARNING, msg);
}

/// Logs one informational line (`--log-connections`): where warnings go, at syslog
/// priority info.
pub(crate) fn info(msg: &str) {
    emit(libc::LOG_INFO, msg);
}

fn emit(priority: libc::c_int, msg: &str) {
    if SYSLOG.load(Ordering::Acquire) {
        // A NUL inside the message would cut it short in C; show it instead.
        let line = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
        // SAFETY: both pointers are valid NUL-terminated strings for the duration of the
        // call, and the "%s" format consumes exactly the one string argument passed.
        unsafe { libc::syslog(priority, c"%s".as_ptr(), line.as_ptr()) };
        return;
    }
    let _ = writeln!(std::io::stderr().lock(), "{}: {msg}", program());
}

/// Sends every later warning to syslog (facility daemon, ident `spiped`, with the pid)
/// instead of standard error.
pub(crate) fn use_syslog() {
    // SAFETY: openlog keeps the ident pointer; a C string literal lives for the whole
    // program, so it stays valid for every later syslog call.
    unsafe { libc::openlog(c"spiped".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
    SYSLOG.store(true, Ordering::Release);
}

static SYSLOG: AtomicBool = AtomicBool::new(false);

/// The name to prefix messages with: the tool that is running.
pub(crate) fn program() -> &'static str {
    PROGRAM.get().copied().unwrap_or("spiped")
}

static PROGRAM: OnceLock<&'static str> = OnceLock::new();

/// Sets the tool name used in messages; the first call wins.
pub(crate) fn set_program(name: &'static str) {
    let _ = PROGRAM.set(name);
}
