//! The sandbox's layers where they do not exist: Landlock, seccomp and capabilities are
//! Linux's. On other systems (FreeBSD, macOS) this module stands in for the `landlock`,
//! `seccomp` and `capabilities` modules, and every layer reports that it is not
//! available, so the start-up line says so, `--sandbox on` goes on without them and
//! `--sandbox strict` refuses to start.

use std::fmt;

use super::Needs;

/// Why no layer is in force.
const UNAVAILABLE: &str = "not available on this system";

/// A Landlock domain in force: never, here. The fields are those the shared code reads.
#[derive(Debug)]
pub struct Enforced {
    /// The kernel's Landlock ABI version.
    pub abi: i32,
    /// File access is restricted.
    pub fs: bool,
    /// TCP bind and connect are restricted.
    pub net: bool,
    /// Every thread is restricted.
    pub all_threads: bool,
    /// TCP ports were left open on purpose.
    pub any_tcp_port: bool,
}

/// Landlock: not available.
pub fn restrict(_needs: &Needs) -> Result<Enforced, String> {
    Err(UNAVAILABLE.to_owned())
}

/// seccomp: not available.
pub fn install(_strict: bool) -> Result<usize, String> {
    Err(UNAVAILABLE.to_owned())
}

/// Capabilities: not available (root keeps what it has; `-u` gives it up).
pub fn drop_all() -> Result<(), String> {
    Err(UNAVAILABLE.to_owned())
}

impl Enforced {
    /// Admits everything: there is no domain to stay within.
    pub fn admits(&self, _needs: &Needs) -> Result<(), String> {
        Ok(())
    }
}

impl fmt::Display for Enforced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "landlock ABI {}", self.abi)
    }
}
