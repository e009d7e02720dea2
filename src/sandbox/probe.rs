//! Debug builds only: shows that the sandbox bites. With `SPIPED_SANDBOX_PROBE` set in
//! the environment, right after confining itself the process tries what an attacker
//! would (read `/etc/shadow`, run a program) and logs what the kernel answered. The
//! tests read that line; release builds do not contain this code.

use std::os::unix::process::CommandExt;

/// Tries the forbidden operations when asked to, logging one line with the outcomes.
pub fn run_if_asked() {
    if std::env::var_os("SPIPED_SANDBOX_PROBE").is_none() {
        return;
    }
    let open = match std::fs::File::open("/etc/shadow") {
        Ok(_) => "opened".to_owned(),
        Err(e) => e.to_string(),
    };
    // `exec` only returns if execve failed; had it succeeded, the daemon would be gone.
    let exec = std::process::Command::new("/bin/true").exec();
    crate::log::info(&format!(
        "sandbox probe: open /etc/shadow: {open}; execve /bin/true: {exec}"
    ));
}
