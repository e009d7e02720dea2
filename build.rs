//! Records the git revision the binary is built from, for `spiped_build_info` (the
//! metrics endpoint): `SPIPED_GIT_REVISION` from the environment if set (a packager
//! building from a tarball), else `git rev-parse`, else `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=SPIPED_GIT_REVISION");
    // Rebuild when HEAD moves: a commit changes the branch's ref, a checkout HEAD itself.
    // Only files that exist: Cargo reruns the script on every build for a missing one.
    let head = git(&["symbolic-ref", "-q", "HEAD"]);
    for file in ["HEAD", "packed-refs"].into_iter().chain(head.as_deref()) {
        if let Some(p) = git(&["rev-parse", "--git-path", file])
            && std::path::Path::new(&p).exists()
        {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    let revision = std::env::var("SPIPED_GIT_REVISION")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SPIPED_GIT_REVISION={revision}");
}
