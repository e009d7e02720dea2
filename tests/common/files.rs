//! Files a test writes: key files with a key's mode, and scratch directories removed
//! when the test ends.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes a key file `name` into `dir`, readable by its owner only (as a key should be;
/// a looser mode draws a warning).
pub(crate) fn key_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(bytes))
        .expect("write key file");
    path
}

/// Writes a key file as [`key_file`] does; its path as the string `-k` takes.
pub(crate) fn key_arg(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = key_file(dir, name, bytes);
    path.to_str().expect("utf-8 key path").to_owned()
}

/// A file or folder of the repository, by its path from the top (where Cargo.toml is;
/// `""` is the top itself).
pub(crate) fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A fresh temporary directory (removed on drop).
pub(crate) fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("spiped-test")
        .tempdir()
        .expect("create temp dir")
}

/// A directory of its own for a pidfile and UNIX source sockets, in `dir`: the sandbox
/// lets the daemon remove them at exit (and a reload make sockets there) only in a
/// directory holding nothing the configuration does not name (see SECURITY.md).
pub(crate) fn run_dir(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    fs::create_dir(&run).expect("create run dir");
    run
}
