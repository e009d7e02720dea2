//! The static binary `make static` builds (x86_64-unknown-linux-musl), named by
//! `SPIPED_STATIC_BIN` (`.ci/run` sets it after building it): it has no dynamic
//! dependencies, and from an empty root holding only itself and a key file it serves
//! Debian's C spipe.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use common::*;

const KEY: &[u8] = b"a key file for the static binary, longer than 32 bytes";

/// The static binary under test, or `None` (after a note) when none was named.
fn static_bin() -> Option<PathBuf> {
    let bin = std::env::var_os("SPIPED_STATIC_BIN").map(PathBuf::from);
    if bin.is_none() {
        eprintln!("NOTE: skipping: SPIPED_STATIC_BIN names no binary (make static builds one)");
    }
    bin
}

/// `ldd` finds nothing to load: the binary runs on any Linux, whatever its C library.
#[test]
fn static_binary_has_no_dynamic_dependencies() {
    let Some(bin) = static_bin() else { return };
    let mut ldd = Command::new("ldd");
    ldd.arg(&bin);
    let out = run(ldd);
    let said = format!("{}{}", out.stdout_str(), out.stderr);
    assert!(
        said.contains("statically linked") || said.contains("not a dynamic executable"),
        "ldd {}: {said}",
        bin.display()
    );
}

/// Chrooted into a directory holding only the binary and the key (no /etc, /dev, /proc
/// or C library), `spiped -d` serves a C spipe: the bytes go through both ways.
#[test]
fn static_binary_serves_c_spipe_from_an_empty_root() {
    let Some(bin) = static_bin() else { return };
    if !root() || !program_available(C_SPIPE, "spiped") {
        return;
    }
    let dir = temp_dir();
    let jail = dir.path().join("root");
    fs::create_dir(&jail).unwrap();
    fs::copy(&bin, jail.join("spiped")).unwrap();
    key_file(&jail, "key", KEY);
    let mut entries: Vec<_> = fs::read_dir(&jail)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    entries.sort();
    assert_eq!(entries, ["key", "spiped"], "the root holds only these");

    let target = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let mut cmd = Command::new("chroot");
    cmd.arg(&jail).arg("/spiped");
    let t = target.addr.arg();
    let args = ["-d", "-s", &src.arg(), "-t", &t, "-k", "/key"];
    let _d = Daemon::spawn_cmd(Impl::Ours, "static", dir.path(), &src, cmd, &args);
    let key = key_arg(dir.path(), "key", KEY);
    let data = payload(1_000_000, 24);
    let args = ["-t", &src.arg(), "-k", &key];
    spipe_round_trip(
        Impl::C,
        "C spipe to the static binary",
        &args,
        &data,
        &data,
        &target,
    );
}
