//! Warnings for the operator: to standard error, prefixed with the program's name.

use std::io::Write;
use std::sync::OnceLock;

/// Prints one warning line, `PROGRAM: MESSAGE`, to standard error. A closed or broken
/// standard error is ignored: losing a warning must never stop the daemon.
pub fn warn(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{}: {msg}", program());
}

/// The name to prefix messages with: the tool that is running.
pub fn program() -> &'static str {
    PROGRAM.get().copied().unwrap_or("spiped")
}

static PROGRAM: OnceLock<&'static str> = OnceLock::new();

/// Sets the tool name used in messages; the first call wins.
pub fn set_program(name: &'static str) {
    let _ = PROGRAM.set(name);
}

/// Logs one informational line (`--log-connections`): the same destination as
/// [`warn`], so standard error or wherever warnings are routed.
pub fn info(msg: &str) {
    warn(msg);
}
