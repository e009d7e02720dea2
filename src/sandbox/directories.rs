//! Which directories are spiped's own, and so may be allowed whole by Landlock (whose
//! rules follow the inodes that exist when they are made): a file read again at a
//! reload, or a socket made again, is then still reachable. Shared directories never
//! are, so confinement grants no file the operator did not give spiped.

use std::path::{Path, PathBuf};

/// Directories too widely shared to allow as a whole: allowing removals (or reads)
/// beneath `/etc` or `/run` would allow them for the whole system's files there, even
/// while they hold nothing else (a file put there later would be exposed).
pub(crate) const SHARED_DIRECTORIES: &[&str] = &[
    "/",
    "/etc",
    "/run",
    "/var/run",
    "/tmp",
    "/var/tmp",
    "/var",
    "/var/lib",
    "/usr",
    "/usr/local",
    "/home",
    "/root",
    "/dev",
    "/dev/shm",
    "/proc",
    "/sys",
    "/boot",
    "/opt",
    "/srv",
    "/mnt",
    "/media",
];

/// The directory holding `file` (an absolute path; symbolic links resolved) unless it
/// is one of [`SHARED_DIRECTORIES`] or cannot be found.
pub(super) fn own_directory(file: &Path) -> Option<PathBuf> {
    let dir = std::fs::canonicalize(file.parent()?).ok()?;
    (!SHARED_DIRECTORIES.iter().any(|s| dir == Path::new(s))).then_some(dir)
}

/// The directory holding `file` (an absolute path) when it is spiped's own, so that
/// allowing it whole allows nothing the operator did not give spiped: systemd's
/// credentials directory (`$CREDENTIALS_DIRECTORY`, the service's alone), or a
/// directory not in [`SHARED_DIRECTORIES`] each of whose entries, now, is one of
/// `named` (the canonical paths of what the configuration names). A key beside other
/// files (`/etc/ssl`, a home directory) is allowed by itself only.
pub(super) fn dedicated_directory(file: &Path, named: &[PathBuf]) -> Option<PathBuf> {
    let dir = own_directory(file)?;
    let credentials =
        std::env::var_os("CREDENTIALS_DIRECTORY").and_then(|c| std::fs::canonicalize(c).ok());
    if credentials.is_some_and(|c| c == dir) {
        return Some(dir);
    }
    for entry in std::fs::read_dir(&dir).ok()? {
        if !named.contains(&dir.join(entry.ok()?.file_name())) {
            return None;
        }
    }
    Some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_directories_are_never_allowed_whole() {
        assert_eq!(own_directory(Path::new("/etc/hosts")), None);
        assert_eq!(own_directory(Path::new("/etc/../tmp/x.sock")), None);
        assert_eq!(own_directory(Path::new("/nonexistent-dir/k")), None);
        let dir = tempfile::tempdir().unwrap();
        let canonical = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(own_directory(&dir.path().join("k")), Some(canonical));
    }

    /// A directory is spiped's own while it holds only what the configuration names;
    /// one more file, or a subdirectory, makes it shared.
    #[test]
    fn dedicated_directories_hold_only_named_files() {
        let dir = tempfile::tempdir().unwrap();
        let canonical = std::fs::canonicalize(dir.path()).unwrap();
        let key = canonical.join("k");
        std::fs::write(&key, "k").unwrap();
        let named = [key.clone(), canonical.join("spiped.toml")];
        assert_eq!(dedicated_directory(&key, &named), Some(canonical.clone()));
        std::fs::create_dir(canonical.join("sub")).unwrap();
        assert_eq!(dedicated_directory(&key, &named), None);
        std::fs::remove_dir(canonical.join("sub")).unwrap();
        std::fs::write(canonical.join("other"), "o").unwrap();
        assert_eq!(dedicated_directory(&key, &named), None);
        assert_eq!(dedicated_directory(Path::new("/etc/hosts"), &[]), None);
    }
}
