//! The sandbox's layers where they do not exist: Landlock, seccomp and capabilities are
//! Linux's. On other systems (FreeBSD, macOS) this module stands in for the `landlock`,
//! `seccomp` and `capabilities` modules, and every layer reports that it is not
//! available, so the start-up line says so, `--sandbox on` goes on without them and
//! `--sandbox strict` refuses to start.

use std::fmt;

use super::{LayerError, Needs};

/// What a reload asks beyond the sandbox: never, here (there is none).
#[derive(Debug)]
pub(crate) enum Refused {}

impl fmt::Display for Refused {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

impl std::error::Error for Refused {}

/// A Landlock domain in force: never, here. The fields are those the shared code reads.
#[derive(Debug)]
pub(super) struct Enforced {
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
pub(super) fn restrict(_needs: &Needs) -> Result<Enforced, LayerError> {
    Err(LayerError::Unavailable)
}

/// seccomp: not available.
pub(super) fn install(_strict: bool) -> Result<usize, LayerError> {
    Err(LayerError::Unavailable)
}

/// Capabilities: not available (root keeps what it has; `-u` gives it up).
pub(super) fn drop_all() -> Result<(), LayerError> {
    Err(LayerError::Unavailable)
}

impl Enforced {
    /// Admits everything: there is no domain to stay within.
    pub(super) fn admits(&self, _needs: &Needs) -> Result<(), Refused> {
        Ok(())
    }
}

impl fmt::Display for Enforced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "landlock ABI {}", self.abi)
    }
}
