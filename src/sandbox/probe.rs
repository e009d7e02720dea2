//! Debug builds only: shows that the sandbox bites. With `SPIPED_SANDBOX_PROBE` set in
//! the environment, right after confining itself the process tries what an attacker
//! would (read `/etc/shadow`, run a program, map executable memory, and remove the file
//! the variable names when it is a path) and logs what the kernel answered. The tests
//! read that line; release builds do not contain this code.

use std::io;

/// Tries the forbidden operations when asked to, logging one line with the outcomes.
pub(super) fn run_if_asked() {
    let Some(asked) = std::env::var_os("SPIPED_SANDBOX_PROBE") else {
        return;
    };
    let victim = std::path::PathBuf::from(asked);
    if victim.is_absolute() {
        let removed = match std::fs::remove_file(&victim) {
            Ok(()) => "removed".to_owned(),
            Err(e) => e.to_string(),
        };
        crate::log::info(&format!(
            "sandbox probe: remove {}: {removed}",
            victim.display()
        ));
    }
    let open = match std::fs::File::open("/etc/shadow") {
        Ok(_) => "opened".to_owned(),
        Err(e) => e.to_string(),
    };
    // The bare system call: `Command::exec` first resets signal dispositions and masks
    // of the running daemon (SIGPIPE among them), which a refused execve would leave so.
    let path = c"/bin/true";
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: the path is a NUL-terminated string and argv and envp are null-terminated
    // arrays of such strings, all alive across the call. execve returns only when it
    // failed, having changed nothing; had it succeeded the daemon would be gone, which
    // is what the tests would see.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    let exec = io::Error::last_os_error();
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    let prot = libc::PROT_READ | libc::PROT_EXEC;
    // SAFETY: an anonymous private mapping chosen by the kernel touches no existing
    // memory; one that succeeds is unmapped at once, with its own address and length.
    let mapped = unsafe {
        let p = libc::mmap(std::ptr::null_mut(), 4096, prot, flags, -1, 0);
        match p == libc::MAP_FAILED {
            true => io::Error::last_os_error().to_string(),
            false => {
                libc::munmap(p, 4096);
                "mapped".to_owned()
            }
        }
    };
    crate::log::info(&format!(
        "sandbox probe: open /etc/shadow: {open}; execve /bin/true: {exec}; \
         executable mmap: {mapped}"
    ));
}
