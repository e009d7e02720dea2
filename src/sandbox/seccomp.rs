//! The seccomp layer: an allow-list of system calls ([`super::syscalls`]) installed on
//! every thread of the process.

use std::collections::BTreeMap;

use std::fmt;

use seccompiler::{
    BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use super::LayerError;
use super::syscalls::{self, Only};

/// Why the filter is not in force.
#[derive(Debug)]
pub(crate) enum SeccompError {
    /// It could not be compiled for this architecture.
    Compile(BackendError),
    /// The kernel refused it.
    Install(seccompiler::Error),
}

impl fmt::Display for SeccompError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeccompError::Compile(e) => write!(f, "{e}"),
            SeccompError::Install(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SeccompError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SeccompError::Compile(e) => Some(e),
            SeccompError::Install(e) => Some(e),
        }
    }
}

impl From<SeccompError> for LayerError {
    fn from(e: SeccompError) -> LayerError {
        LayerError::Seccomp(e)
    }
}

/// Installs the filter on every thread (TSYNC); a call outside the list fails with
/// `EPERM`, or kills the process when `strict`. Sets `no_new_privs` first (the kernel
/// requires it, capabilities being gone). Returns the number of calls allowed.
pub(super) fn install(strict: bool) -> Result<usize, SeccompError> {
    let program = program(strict).map_err(SeccompError::Compile)?;
    seccompiler::apply_filter_all_threads(&program).map_err(SeccompError::Install)?;
    Ok(syscalls::ALLOWED.len() + syscalls::NARROWED.len())
}

/// The compiled filter for this architecture.
fn program(strict: bool) -> Result<BpfProgram, BackendError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = syscalls::ALLOWED
        .iter()
        .map(|&(_, nr)| (nr, Vec::new()))
        .collect();
    for (_, nr, only) in syscalls::NARROWED {
        rules.insert(*nr, narrowed(only)?);
    }
    let refused = match strict {
        true => SeccompAction::KillProcess,
        false => SeccompAction::Errno(libc::EPERM as u32),
    };
    // Debug builds only: to rebuild the list under strace without the missing calls
    // changing what the tests do (see contrib/sandbox/allowlist-from-strace).
    #[cfg(debug_assertions)]
    let refused = match std::env::var_os("SPIPED_SANDBOX_LEARN") {
        Some(_) => SeccompAction::Log,
        None => refused,
    };
    SeccompFilter::new(rules, refused, SeccompAction::Allow, arch)?.try_into()
}

/// The rules allowing a call only when its argument is as `only` says.
fn narrowed(only: &Only) -> Result<Vec<SeccompRule>, BackendError> {
    let rule = |arg: u8, op: SeccompCmpOp, value: u64| {
        let condition = SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value)?;
        SeccompRule::new(vec![condition])
    };
    match *only {
        Only::OneOf(arg, values) => values
            .iter()
            .map(|&v| rule(arg, SeccompCmpOp::Eq, v))
            .collect(),
        Only::BitsClear(arg, bits) => Ok(vec![rule(arg, SeccompCmpOp::MaskedEq(bits), 0)?]),
        Only::ThisProcess(arg) => Ok(vec![rule(
            arg,
            SeccompCmpOp::Eq,
            u64::from(std::process::id()),
        )?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_compiles_for_this_architecture() {
        assert!(!program(false).unwrap().is_empty());
        assert!(!program(true).unwrap().is_empty());
    }
}
