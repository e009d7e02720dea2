//! The two implementations a test can cast in a role, ours and Debian's C spiped, and
//! the `spiped`/`spipe` executables of each.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Path of Debian's C spiped.
pub const C_SPIPED: &str = "/usr/bin/spiped";
/// Path of Debian's C spipe.
pub const C_SPIPE: &str = "/usr/bin/spipe";

/// Which implementation plays a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    /// This crate's binary.
    Ours,
    /// Debian's C spiped 1.6.x.
    C,
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Impl::Ours => write!(f, "ours"),
            Impl::C => write!(f, "C"),
        }
    }
}

/// The `spiped` binary of an implementation.
pub fn spiped_bin(which: Impl) -> PathBuf {
    match which {
        Impl::Ours => PathBuf::from(env!("CARGO_BIN_EXE_spiped")),
        Impl::C => PathBuf::from(C_SPIPED),
    }
}

/// The `spipe` executable of an implementation. Ours is a symlink named `spipe` to our
/// binary (so argv[0] dispatch is what gets tested), made once per test process.
pub fn spipe_bin(which: Impl) -> PathBuf {
    match which {
        Impl::C => PathBuf::from(C_SPIPE),
        Impl::Ours => {
            static LINK: OnceLock<PathBuf> = OnceLock::new();
            LINK.get_or_init(|| {
                let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .join(format!("spipe-link-{}", std::process::id()));
                let _ = fs::remove_dir_all(&dir);
                fs::create_dir_all(&dir).expect("create spipe symlink dir");
                let link = dir.join("spipe");
                std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_spiped"), &link)
                    .expect("symlink spipe -> spiped");
                link
            })
            .clone()
        }
    }
}

/// A `Command` for `spipe` of an implementation.
pub fn spipe_cmd(which: Impl) -> Command {
    Command::new(spipe_bin(which))
}

/// A `Command` for `spiped` of an implementation.
pub fn spiped_cmd(which: Impl) -> Command {
    Command::new(spiped_bin(which))
}
