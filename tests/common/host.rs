//! What a test needs of the machine beyond the build: root, or a program from a Debian
//! package. Each check fails loudly under CI (env `CI` set, where `.ci/run` provides
//! everything) and elsewhere prints a note and lets the caller skip.

use std::path::Path;

/// True when running as root; panics under CI otherwise (tests that need root, for
/// mount namespaces, -u or file ownership, must run there).
pub(crate) fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the tests as root"
    );
    eprintln!("NOTE: skipping: needs root (mount namespaces, -u, file ownership)");
    false
}

/// True when the program at `path` exists. When it is missing: panics under CI (env `CI`
/// set, where `.ci/run` installs Debian `package`), otherwise prints a note and returns
/// false so the caller can skip.
pub(crate) fn program_available(path: &str, package: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{path} missing: apt-get install {package}");
    }
    eprintln!("NOTE: skipping: {path} missing; apt-get install {package}");
    false
}

/// True when our binary runs under an emulator (see [`super::emulator`]), after
/// printing why a test of `what` is skipped: qemu-user implements neither seccomp nor
/// Landlock, so nothing of the kernel's sandbox can be observed there.
pub(crate) fn skip_under_emulation(what: &str) -> bool {
    let Some(emulator) = super::emulator() else {
        return false;
    };
    eprintln!(
        "NOTE: skipping {what}: our binary runs under {emulator}, which implements neither \
         seccomp nor Landlock"
    );
    true
}

/// The uid and primary gid of `user` from /etc/passwd.
pub(crate) fn passwd_ids(user: &str) -> (String, String) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .unwrap_or_else(|| panic!("no user {user}"));
    let f: Vec<&str> = line.split(':').collect();
    (f[2].to_owned(), f[3].to_owned())
}
