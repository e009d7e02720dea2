//! Self-confinement before serving: after the addresses are resolved, the sockets bound
//! and `-u` applied, and before the first connection is accepted or any other thread
//! started, the process gives up what it no longer needs, so that whoever takes
//! control of it (through a bug in code that parses network bytes) gains as little as
//! possible.
//!
//! Four layers, each best effort by what the kernel supports, applied by [`confine`]:
//! - `PR_SET_NO_NEW_PRIVS`: no `execve` can ever gain privileges again;
//! - every capability dropped, root included ([`capabilities`]);
//! - Landlock ([`landlock`]): reads of the key files and the configuration file (and,
//!   for reloads, of their directories when those are spiped's own, see
//!   `directories`), of what re-resolution and syslog read, no other file
//!   access; connections to the UNIX targets; TCP bind and connect only to the ports
//!   in use;
//! - seccomp ([`seccomp`]): only the system calls the running daemon makes
//!   ([`syscalls`]), every other failing with `EPERM` (or killing the process with
//!   `--sandbox strict`).
//!
//! A Landlock domain can only narrow. What a configuration reload may need later is
//! therefore allowed from the start, through directories of spiped's own, and a reload
//! is checked against it first (see [`Confinement::admits`]).

#[cfg(target_os = "linux")]
mod capabilities;
#[cfg(target_os = "linux")]
pub(crate) mod directories;
#[cfg(target_os = "linux")]
mod landlock;
#[cfg(debug_assertions)]
mod probe;
#[cfg(target_os = "linux")]
mod seccomp;
#[cfg(target_os = "linux")]
mod syscalls;
// Elsewhere every layer reports that it is not available on this system.
#[cfg(not(target_os = "linux"))]
mod unavailable;
#[cfg(not(target_os = "linux"))]
use unavailable::{self as capabilities, self as landlock, self as seccomp};

pub(crate) use landlock::Refused;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::OnceLock;

/// How the process confines itself (`--sandbox`, `--no-sandbox`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// `--no-sandbox`: nothing is restricted.
    Off,
    /// The default: every layer the kernel supports; a system call outside the list
    /// fails with `EPERM`.
    #[default]
    On,
    /// `--sandbox strict`: as `On`, but a system call outside the list kills the
    /// process, and a layer the kernel cannot enforce stops the start-up.
    Strict,
}

impl FromStr for Mode {
    type Err = UnknownMode;

    /// Parses the value of `--sandbox`: `on` or `strict` (`--no-sandbox` turns it off).
    fn from_str(s: &str) -> Result<Mode, UnknownMode> {
        match s {
            "on" => Ok(Mode::On),
            "strict" => Ok(Mode::Strict),
            _ => Err(UnknownMode(s.to_owned())),
        }
    }
}

/// A `--sandbox` value that is neither `on` nor `strict` (the value).
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownMode(String);

impl fmt::Display for UnknownMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid value '{}' for --sandbox: expected on or strict (--no-sandbox turns \
             it off)",
            self.0
        )
    }
}

impl std::error::Error for UnknownMode {}

/// What the process still needs once confined: the sum over every pipe it serves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Needs {
    /// Files read again on reload: key files and the configuration file.
    pub read_files: Vec<PathBuf>,
    /// UNIX sockets connected to (targets).
    pub unix_targets: Vec<PathBuf>,
    /// UNIX sockets this process created and removes at exit (sources).
    pub unix_sources: Vec<PathBuf>,
    /// The pidfile, removed at exit.
    pub pidfile: Option<PathBuf>,
    /// Local TCP ports bound: sources, and `-b` (0 for any port).
    pub bind_ports: Vec<u16>,
    /// Remote TCP ports connected to: targets, and 53 for DNS over TCP.
    pub connect_ports: Vec<u16>,
    /// TCP bind and connect stay unrestricted: a reload may add pipes on ports no one
    /// knows at start (a configuration file), and a Landlock domain cannot widen.
    pub any_tcp_port: bool,
    /// Host names are resolved again while serving (`-r`): `/etc/hosts` and
    /// `/etc/resolv.conf` are read.
    pub dns: bool,
    /// Warnings go to syslog: `/dev/log` and `/etc/localtime` are used.
    pub syslog: bool,
}

/// What [`confine`] put in force, for the start-up log line and for checking reloads.
#[derive(Debug)]
pub(crate) struct Confinement {
    mode: Mode,
    landlock: Result<landlock::Enforced, LayerError>,
    seccomp: Result<usize, LayerError>,
    capabilities: Result<(), LayerError>,
    /// Threads that existed before and that a Landlock ABI below 8 could not reach.
    unconfined_threads: usize,
}

/// Why a layer of the sandbox is not in force.
#[derive(Debug)]
pub(crate) enum LayerError {
    /// `--no-sandbox` asked for none.
    Off,
    /// The layer does not exist on this system (it is Linux's).
    #[cfg(not(target_os = "linux"))]
    Unavailable,
    /// Landlock could not be put in force.
    #[cfg(target_os = "linux")]
    Landlock(landlock::LandlockError),
    /// The seccomp filter could not be compiled or installed.
    #[cfg(target_os = "linux")]
    Seccomp(seccomp::SeccompError),
    /// A capability set could not be emptied.
    #[cfg(target_os = "linux")]
    Capabilities(capabilities::CapsError),
}

impl fmt::Display for LayerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerError::Off => f.write_str("off"),
            #[cfg(not(target_os = "linux"))]
            LayerError::Unavailable => f.write_str("not available on this system"),
            #[cfg(target_os = "linux")]
            LayerError::Landlock(e) => write!(f, "{e}"),
            #[cfg(target_os = "linux")]
            LayerError::Seccomp(e) => write!(f, "{e}"),
            #[cfg(target_os = "linux")]
            LayerError::Capabilities(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LayerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LayerError::Off => None,
            #[cfg(not(target_os = "linux"))]
            LayerError::Unavailable => None,
            #[cfg(target_os = "linux")]
            LayerError::Landlock(e) => Some(e),
            #[cfg(target_os = "linux")]
            LayerError::Seccomp(e) => Some(e),
            #[cfg(target_os = "linux")]
            LayerError::Capabilities(e) => Some(e),
        }
    }
}

/// `--sandbox strict` and a layer that could not be put in force: the start-up stops.
/// It holds what was put in force, to name the first layer that was not.
#[derive(Debug)]
pub(crate) struct NotEnforced(Box<Confinement>);

impl fmt::Display for NotEnforced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Made only when a layer is missing (see `apply`): there is one to name.
        let (what, why) = self.0.first_missing().ok_or(fmt::Error)?;
        write!(
            f,
            "--sandbox strict: {what} cannot be enforced: {why} (use --sandbox on to \
             run with what the kernel supports)"
        )
    }
}

impl std::error::Error for NotEnforced {}

/// Why a layer that was asked for is not in force, as [`NotEnforced`] says it.
enum Missing<'a> {
    /// It could not be put in force at all.
    Layer(&'a LayerError),
    /// Landlock is in force, but the kernel's ABI cannot restrict what was asked.
    Abi(i32),
}

impl fmt::Display for Missing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Layer(e) => write!(f, "{e}"),
            Missing::Abi(abi) => write!(f, "the kernel has only ABI {abi}"),
        }
    }
}

/// The confinement in force, once [`confine`] has run.
static IN_FORCE: OnceLock<Confinement> = OnceLock::new();

/// Confines the calling process as `mode` says, allowing what `needs` lists, once per
/// process (a second call changes nothing and returns the first's result). Threads
/// started later inherit every layer; seccomp also covers threads started earlier.
/// Returns an error only in [`Mode::Strict`] when a layer could not be put in force;
/// otherwise what could not be done is in the [`Confinement`]'s summary.
pub(crate) fn confine(needs: &Needs, mode: Mode) -> Result<&'static Confinement, NotEnforced> {
    if let Some(c) = IN_FORCE.get() {
        return Ok(c);
    }
    let c = apply(needs, mode)?;
    Ok(IN_FORCE.get_or_init(|| c))
}

/// The confinement in force, once [`confine`] has run (for the metrics endpoint).
pub(crate) fn in_force() -> Option<&'static Confinement> {
    IN_FORCE.get()
}

/// Checks what a reload asks for against the confinement in force (see
/// [`Confinement::admits`]); anything goes when none is.
pub(crate) fn admits(needs: &Needs) -> Result<(), Refused> {
    IN_FORCE.get().map_or(Ok(()), |c| c.admits(needs))
}

/// Puts the layers in force; see [`confine`].
fn apply(needs: &Needs, mode: Mode) -> Result<Confinement, NotEnforced> {
    if mode == Mode::Off {
        return Ok(Confinement {
            mode,
            landlock: Err(LayerError::Off),
            seccomp: Err(LayerError::Off),
            capabilities: Err(LayerError::Off),
            unconfined_threads: 0,
        });
    }
    let threads_before = thread_count();
    // Landlock first: its rules open paths, which seccomp's list need not allow for
    // ever. Both set no_new_privs (seccomp requires it without CAP_SYS_ADMIN), so it is
    // in force even where Landlock is not.
    // Each layer's own error on Linux; off Linux the stubs return a LayerError already.
    #[cfg_attr(not(target_os = "linux"), allow(clippy::useless_conversion))]
    let landlock = landlock::restrict(needs).map_err(LayerError::from);
    #[cfg_attr(not(target_os = "linux"), allow(clippy::useless_conversion))]
    let capabilities = capabilities::drop_all().map_err(LayerError::from);
    #[cfg_attr(not(target_os = "linux"), allow(clippy::useless_conversion))]
    let seccomp = seccomp::install(mode == Mode::Strict).map_err(LayerError::from);
    let unconfined_threads = match &landlock {
        Ok(l) if !l.all_threads => threads_before.saturating_sub(1),
        _ => 0,
    };
    let c = Confinement {
        mode,
        landlock,
        seccomp,
        capabilities,
        unconfined_threads,
    };
    if mode == Mode::Strict && c.first_missing().is_some() {
        return Err(NotEnforced(Box::new(c)));
    }
    #[cfg(debug_assertions)]
    probe::run_if_asked();
    Ok(c)
}

impl Confinement {
    /// Each layer by name, and whether it is in force: `landlock`, `seccomp`,
    /// `no_capabilities`.
    pub(crate) fn layers(&self) -> [(&'static str, bool); 3] {
        [
            ("landlock", self.landlock.is_ok()),
            ("seccomp", self.seccomp.is_ok()),
            ("no_capabilities", self.capabilities.is_ok()),
        ]
    }

    /// Whether every layer that was asked for is in force: all of them, on every
    /// thread, unless `--no-sandbox` asked for none.
    pub(crate) fn as_asked(&self) -> bool {
        self.mode == Mode::Off || (self.first_missing().is_none() && self.unconfined_threads == 0)
    }

    /// Says at start-up what is in force: one warning line when a layer that was asked
    /// for is not. Otherwise nothing, as C says nothing on a good start (scripts take
    /// words on standard error for trouble), unless `verbose` (a log the operator reads:
    /// `--syslog`, `--log-connections`) wants it as an informational line. `/status`
    /// and the metrics say it always.
    pub(crate) fn log_startup(&self, verbose: bool) {
        match (self.as_asked(), verbose) {
            (false, _) => crate::log::warn(&format!("warning: sandbox: {self}")),
            (true, true) => crate::log::info(&format!("sandbox: {self}")),
            (true, false) => {}
        }
    }

    /// The first layer not in force, by name, and why.
    fn first_missing(&self) -> Option<(&'static str, Missing<'_>)> {
        match &self.landlock {
            Err(e) => return Some(("Landlock", Missing::Layer(e))),
            Ok(l) if !l.fs || (!l.net && !l.any_tcp_port) => {
                return Some(("Landlock", Missing::Abi(l.abi)));
            }
            Ok(_) => {}
        }
        if let Err(e) = &self.seccomp {
            return Some(("seccomp", Missing::Layer(e)));
        }
        let e = self.capabilities.as_ref().err()?;
        Some(("dropping capabilities", Missing::Layer(e)))
    }

    /// Checks that what a reload asks for (`needs`) is within what was allowed at start,
    /// since a Landlock domain cannot be widened: every file to read must be one allowed
    /// then (and still the same file), or lie in a directory allowed then; every UNIX
    /// target one targeted then or in such a target's directory of spiped's own (below
    /// Landlock ABI 9 this check is all that holds it); every TCP port one in use then.
    /// The error says what is refused and what to do.
    pub(crate) fn admits(&self, needs: &Needs) -> Result<(), Refused> {
        let Ok(l) = &self.landlock else {
            return Ok(());
        };
        l.admits(needs)
    }
}

impl fmt::Display for Confinement {
    /// The start-up log line's text after `sandbox: `, for example
    /// `landlock ABI 7 (fs, net), seccomp 54 syscalls, no capabilities`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mode == Mode::Off {
            return write!(f, "off");
        }
        match &self.landlock {
            Ok(l) => write!(f, "{l}")?,
            Err(e) => write!(f, "no landlock ({e})")?,
        }
        match &self.seccomp {
            Ok(n) if self.mode == Mode::Strict => write!(f, ", seccomp {n} syscalls (strict)")?,
            Ok(n) => write!(f, ", seccomp {n} syscalls")?,
            Err(e) => write!(f, ", no seccomp ({e})")?,
        }
        match &self.capabilities {
            Ok(()) => write!(f, ", no capabilities")?,
            Err(e) => write!(f, ", capabilities kept ({e})")?,
        }
        if self.unconfined_threads > 0 {
            write!(
                f,
                "; {} thread(s) started earlier are outside Landlock and keep their \
                 capabilities (Landlock ABI 8 would reach them)",
                self.unconfined_threads
            )?;
        }
        Ok(())
    }
}

/// The number of threads of this process, from `/proc/self/status` (1 if unreadable).
fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_parses_on_and_strict_only() {
        assert_eq!("on".parse::<Mode>(), Ok(Mode::On));
        assert_eq!("strict".parse::<Mode>(), Ok(Mode::Strict));
        let e = "off".parse::<Mode>().unwrap_err().to_string();
        assert!(e.contains("--sandbox") && e.contains("--no-sandbox"), "{e}");
    }
}
