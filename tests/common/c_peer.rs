//! Debian's C spiped, the judge of compatibility: proving that what runs at
//! [`C_SPIPED`] and [`C_SPIPE`] is Debian's 1.6 build (dpkg owns it, unchanged, and it
//! says 1.6.x), so a spiped installed over it cannot stand in for the judge.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use super::{C_SPIPE, C_SPIPED, Impl};

/// True when Debian's C spiped 1.6 is what runs at [`C_SPIPED`] and [`C_SPIPE`]: dpkg's
/// package `spiped` owns both, their contents are the package's, and `spiped -v` says
/// 1.6.x; so a spiped installed over Debian's (ours, by `make BINDIR=/usr/bin install`)
/// cannot stand in for the judge. Otherwise: panics under CI (env `CI` set), or prints
/// a note and returns false so the caller can skip.
pub(crate) fn c_available() -> bool {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    match CHECK.get_or_init(debian_c_peer) {
        Ok(()) => true,
        Err(why) if std::env::var_os("CI").is_some() => panic!("{why}"),
        Err(why) => {
            eprintln!("NOTE: skipping: {why}");
            false
        }
    }
}

/// Why [`C_SPIPED`] and [`C_SPIPE`] are not Debian's C spiped 1.6, if they are not.
fn debian_c_peer() -> Result<(), String> {
    let reinstall = "apt-get install --reinstall spiped";
    for path in [C_SPIPED, C_SPIPE] {
        if !Path::new(path).exists() {
            return Err(format!("{path} missing: apt-get install spiped"));
        }
        let out = Command::new("dpkg")
            .args(["-S", path])
            .output()
            .map_err(|e| format!("dpkg -S {path}: {e}"))?;
        let said = String::from_utf8_lossy(&out.stdout);
        // "spiped: /usr/bin/spiped", or "spiped:amd64: ..." with an architecture.
        let owner = said
            .lines()
            .find_map(|l| l.strip_suffix(&format!(": {path}")))
            .map(|pkgs| pkgs.split(':').next().unwrap_or(pkgs));
        if owner != Some("spiped") {
            return Err(format!(
                "{path} is not from Debian's spiped package (dpkg -S: {:?}): {reinstall}",
                said.trim()
            ));
        }
    }
    // dpkg -V lists the package's files whose contents changed since it was installed.
    let out = Command::new("dpkg")
        .args(["-V", "spiped"])
        .output()
        .map_err(|e| format!("dpkg -V spiped: {e}"))?;
    let changed = String::from_utf8_lossy(&out.stdout);
    if let Some(line) = changed
        .lines()
        .find(|l| l.ends_with(C_SPIPED) || l.ends_with(C_SPIPE))
    {
        return Err(format!(
            "{C_SPIPED} or {C_SPIPE} was replaced after Debian's spiped installed it \
             (dpkg -V: {line:?}): {reinstall}"
        ));
    }
    let out = Command::new(C_SPIPED)
        .arg("-v")
        .output()
        .map_err(|e| format!("{C_SPIPED} -v: {e}"))?;
    // The C build prints its version on standard error.
    let version = String::from_utf8_lossy(&out.stderr);
    if !version.starts_with("spiped 1.6.") {
        return Err(format!(
            "{C_SPIPED} -v says {:?}, not spiped 1.6.x: {reinstall}",
            version.trim()
        ));
    }
    Ok(())
}

/// True when every implementation in `impls` can be run (see [`c_available`]).
pub(crate) fn available(impls: &[Impl]) -> bool {
    !impls.contains(&Impl::C) || c_available()
}
