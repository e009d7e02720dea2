//! The two implementations a test can cast in a role, ours and Debian's C spiped, and
//! the `spiped`/`spipe` executables of each.
//!
//! Ours is the binary cargo built, or the one `SPIPED_TEST_BIN` names: a cross-built
//! binary for another architecture (arm64 on an x86_64 machine) runs under qemu-user,
//! so the tests drive it against Debian's native C spiped.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Path of Debian's C spiped.
pub(crate) const C_SPIPED: &str = "/usr/bin/spiped";
/// Path of Debian's C spipe.
pub(crate) const C_SPIPE: &str = "/usr/bin/spipe";

/// Which implementation plays a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Impl {
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
pub(crate) fn spiped_bin(which: Impl) -> PathBuf {
    match which {
        Impl::Ours => ours().to_path_buf(),
        Impl::C => PathBuf::from(C_SPIPED),
    }
}

/// Our binary: `SPIPED_TEST_BIN` when set, else the one cargo built.
fn ours() -> &'static Path {
    static OURS: OnceLock<PathBuf> = OnceLock::new();
    OURS.get_or_init(|| {
        std::env::var_os("SPIPED_TEST_BIN").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_spiped")),
            PathBuf::from,
        )
    })
}

/// The qemu-user emulator that runs our binary (`qemu-aarch64`), when the binary is
/// built for another architecture than this machine's; `None` when it runs natively.
/// Read from the binary's ELF header, so a test knows for certain that the kernel's
/// layers (seccomp, Landlock), which qemu-user does not pass through, are out of reach.
pub(crate) fn emulator() -> Option<&'static str> {
    static EMULATOR: OnceLock<Option<String>> = OnceLock::new();
    EMULATOR
        .get_or_init(|| {
            let mut header = [0u8; 20];
            fs::File::open(ours())
                .and_then(|mut f| f.read_exact(&mut header))
                .expect("read our binary's ELF header");
            // e_machine: two little-endian bytes at offset 18 of an ELF header.
            let arch = match header[18..] {
                [62, 0] => "x86_64",
                [183, 0] => "aarch64",
                ref other => panic!("{}: unknown ELF machine {other:?}", ours().display()),
            };
            (arch != std::env::consts::ARCH).then(|| format!("qemu-{arch}"))
        })
        .as_deref()
}

/// The program and leading arguments that run our binary as `argv0`: the binary
/// itself, or the emulator with Debian's cross C library for that architecture
/// (`/usr/aarch64-linux-gnu`, from the `libc6-arm64-cross` package).
fn ours_argv(argv0: &str) -> Vec<OsString> {
    let Some(emulator) = emulator() else {
        return vec![ours().into()];
    };
    let arch = emulator.trim_start_matches("qemu-");
    let sysroot = format!("/usr/{arch}-linux-gnu");
    vec![
        emulator.into(),
        "-L".into(),
        sysroot.into(),
        "-0".into(),
        argv0.into(),
        ours().into(),
    ]
}

/// The program and leading arguments that run `spiped` of an implementation (for a
/// wrapper such as `prlimit` to exec).
pub(crate) fn spiped_argv(which: Impl) -> Vec<OsString> {
    match which {
        Impl::Ours => ours_argv("spiped"),
        Impl::C => vec![C_SPIPED.into()],
    }
}

/// A `Command` running `argv`.
fn command(argv: &[OsString]) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    cmd
}

/// The `spipe` executable of an implementation. Ours is a symlink named `spipe` to our
/// binary (so argv[0] dispatch is what gets tested), made once per test process.
pub(crate) fn spipe_bin(which: Impl) -> PathBuf {
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
                std::os::unix::fs::symlink(ours(), &link).expect("symlink spipe -> spiped");
                link
            })
            .clone()
        }
    }
}

/// A `Command` for `spipe` of an implementation (ours emulated gets its name from
/// the emulator's `-0`, as the symlink gives it natively).
pub(crate) fn spipe_cmd(which: Impl) -> Command {
    match (which, emulator()) {
        (Impl::Ours, Some(_)) => command(&ours_argv("spipe")),
        _ => Command::new(spipe_bin(which)),
    }
}

/// A `Command` for `spiped` of an implementation.
pub(crate) fn spiped_cmd(which: Impl) -> Command {
    command(&spiped_argv(which))
}
