//! The Landlock layer: which files may be read, which UNIX sockets created, removed or
//! connected to, and which TCP ports bound or connected to, once serving.
//!
//! Rules are tied to the files and directories that exist when they are made (Landlock
//! follows inodes, not names), which is why a file read again later is allowed through
//! its directory when that directory is spiped's own (see `dedicated_directory`): a
//! file replaced by renaming another over it is then still readable.

use std::fmt;
use std::path::{Path, PathBuf};

use ::landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, LandlockStatus, NetPort, PathBeneath, PathFd,
    RestrictSelfAttr, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus,
    Scope,
};

mod reload;

use super::directories::{dedicated_directory, own_directory};
use super::{LayerError, Needs};
pub(crate) use reload::Refused;

/// The newest ABI whose rights are used here (pathname UNIX socket connections came
/// with 9); on an older kernel the crate enforces what that kernel knows.
const TARGET_ABI: ABI = ABI::V9;

/// What re-resolution reads (hickory reads both for every look-up).
const DNS_FILES: &[&str] = &["/etc/hosts", "/etc/resolv.conf"];

/// DNS over TCP, for answers too large for UDP.
const DNS_PORT: u16 = 53;

/// What the C library's `syslog` uses: the log socket, and the time zone for the
/// timestamp, read at the first message.
const SYSLOG_SOCKET: &str = "/dev/log";
const LOCALTIME: &str = "/etc/localtime";

/// A Landlock domain in force, and what it allows (for [`Enforced::admits`]).
#[derive(Debug)]
pub(super) struct Enforced {
    /// The kernel's Landlock ABI version.
    pub abi: i32,
    /// File access is restricted (ABI 1 and up).
    pub fs: bool,
    /// TCP bind and connect are restricted (ABI 4 and up).
    pub net: bool,
    /// Every thread is restricted, not only this one and those it starts (ABI 8).
    pub all_threads: bool,
    /// TCP ports were left open on purpose (see [`Needs::any_tcp_port`]).
    pub any_tcp_port: bool,
    dns: bool,
    /// The working directory at start, which relative paths are taken from (the
    /// process may not ask for it once confined).
    base: PathBuf,
    /// Files allowed by themselves: canonical path, and (device, inode) at start.
    files: Vec<(PathBuf, Option<(u64, u64)>)>,
    /// Directories whose every file may be read (spiped's own).
    directories: Vec<PathBuf>,
    /// UNIX sockets that may be connected to (canonical paths of the targets at start).
    targets: Vec<PathBuf>,
    /// Directories in which any UNIX socket may be connected to (the targets' own).
    target_directories: Vec<PathBuf>,
    /// Directories in which a reload may create UNIX sockets, and sockets are removed
    /// at exit: the sources' when spiped's own (see `dedicated_directory`). Elsewhere
    /// sockets, and a pidfile, stay behind at exit.
    socket_directories: Vec<PathBuf>,
    /// The UNIX sockets created at start (absolute): a reload keeping one creates nothing.
    sources: Vec<PathBuf>,
    bind_ports: Vec<u16>,
    connect_ports: Vec<u16>,
}

/// Why Landlock is not in force at all.
#[derive(Debug)]
pub(crate) enum LandlockError {
    /// The ruleset could not be made or put in force.
    Ruleset(::landlock::RulesetError),
    /// The kernel has Landlock, turned off.
    NotEnabled,
    /// The kernel has no Landlock.
    NotBuiltIn,
    /// The kernel, of this ABI, enforced none of the rules.
    NotEnforced(i32),
}

impl fmt::Display for LandlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LandlockError::Ruleset(e) => write!(f, "{e}"),
            LandlockError::NotEnabled => f.write_str("not enabled in this kernel"),
            LandlockError::NotBuiltIn => f.write_str("not built into this kernel"),
            LandlockError::NotEnforced(abi) => write!(f, "not enforced by this kernel (ABI {abi})"),
        }
    }
}

impl std::error::Error for LandlockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LandlockError::Ruleset(e) => Some(e),
            _ => None,
        }
    }
}

impl From<LandlockError> for LayerError {
    fn from(e: LandlockError) -> LayerError {
        LayerError::Landlock(e)
    }
}

/// Restricts the calling thread (and all threads, on ABI 8) to `needs`, and sets
/// `no_new_privs`. `Err` says why Landlock is not in force at all.
pub(super) fn restrict(needs: &Needs) -> Result<Enforced, LandlockError> {
    let (ruleset, allowed) = build(needs).map_err(LandlockError::Ruleset)?;
    let status = ruleset
        .all_threads(true)
        .and_then(RulesetCreated::restrict_self)
        .map_err(LandlockError::Ruleset)?;
    let abi = match status.landlock {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => kernel_abi.unwrap_or(effective_abi as i32),
        LandlockStatus::NotEnabled => return Err(LandlockError::NotEnabled),
        LandlockStatus::NotImplemented => return Err(LandlockError::NotBuiltIn),
    };
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err(LandlockError::NotEnforced(abi));
    }
    Ok(Enforced {
        abi,
        fs: true,
        net: abi >= ABI::V4 as i32 && !needs.any_tcp_port,
        all_threads: status.all_threads,
        ..allowed
    })
}

/// The ruleset for `needs`, and a record of what it allows.
fn build(needs: &Needs) -> Result<(RulesetCreated, Enforced), ::landlock::RulesetError> {
    let scopes = match notify_socket_is_abstract() {
        // systemd's notification socket may be abstract; it must stay reachable.
        true => BitFlags::from(Scope::Signal),
        false => Scope::Signal | Scope::AbstractUnixSocket,
    };
    let ruleset = Ruleset::default().handle_access(AccessFs::from_all(TARGET_ABI))?;
    let ruleset = match needs.any_tcp_port {
        true => ruleset,
        false => ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?,
    };
    let mut ruleset = ruleset.scope(scopes)?.create()?;
    let base = std::env::current_dir().unwrap_or_default();
    let mut allowed = Enforced {
        abi: 0,
        fs: false,
        net: false,
        all_threads: false,
        any_tcp_port: needs.any_tcp_port,
        dns: needs.dns,
        files: Vec::new(),
        directories: Vec::new(),
        targets: Vec::new(),
        target_directories: Vec::new(),
        socket_directories: Vec::new(),
        sources: needs.unix_sources.iter().map(|s| base.join(s)).collect(),
        bind_ports: needs.bind_ports.clone(),
        connect_ports: needs.connect_ports.clone(),
        base,
    };
    let named = allowed.named(needs);
    let absolute = |p: &PathBuf| allowed.base.join(p);
    let mut files: Vec<PathBuf> = needs.read_files.iter().map(absolute).collect();
    if needs.dns {
        files.extend(DNS_FILES.iter().map(PathBuf::from));
        allowed.connect_ports.push(DNS_PORT);
    }
    if needs.syslog {
        files.push(LOCALTIME.into());
    }
    for f in &files {
        ruleset = allow(ruleset, f, AccessFs::ReadFile.into())?;
        if let Ok(path) = std::fs::canonicalize(f) {
            let id = file_id(&path);
            allowed.files.push((path, id));
        }
    }
    // A reload may read new key files put beside the old ones, or the old ones
    // replaced, when their directory is spiped's own.
    let rereads = needs.read_files.iter().map(absolute);
    for dir in rereads.filter_map(|f| dedicated_directory(&f, &named)) {
        ruleset = allow(ruleset, &dir, AccessFs::ReadFile | AccessFs::ReadDir)?;
        allowed.directories.push(dir);
    }
    // resolvconf, systemd-resolved and NetworkManager replace resolv.conf's target by
    // renaming a new file over it, in a directory of the resolver's, which holds
    // nothing secret.
    let dns_targets = DNS_FILES.iter().filter(|_| needs.dns);
    let replaced = dns_targets.filter_map(|f| std::fs::canonicalize(f).ok());
    for dir in replaced.filter_map(|f| own_directory(&f)) {
        ruleset = allow(ruleset, &dir, AccessFs::ReadFile | AccessFs::ReadDir)?;
    }
    let mut sockets: Vec<PathBuf> = needs.unix_targets.iter().map(absolute).collect();
    for s in &sockets {
        allowed
            .targets
            .push(allowed.canonical(s).unwrap_or_else(|_| s.clone()));
    }
    if needs.syslog {
        sockets.push(SYSLOG_SOCKET.into());
    }
    sockets.extend(notify_socket_path());
    for s in &sockets {
        ruleset = allow(ruleset, s, AccessFs::ResolveUnix.into())?;
        // A target that restarts makes a new socket file (a new inode).
        if let Some(dir) = dedicated_directory(s, &named) {
            ruleset = allow(ruleset, &dir, AccessFs::ResolveUnix.into())?;
            allowed.target_directories.push(dir);
        }
    }
    // Removal at exit (and by a reload that stops a pipe); creation by a reload that
    // starts one in the same directory. Only in a directory of spiped's own: removal
    // beneath one that holds anything else (a home directory) would allow deleting it.
    let sources = needs.unix_sources.iter().map(absolute);
    for dir in sources.filter_map(|s| dedicated_directory(&s, &named)) {
        ruleset = allow(ruleset, &dir, AccessFs::MakeSock | AccessFs::RemoveFile)?;
        allowed.socket_directories.push(dir);
    }
    if let Some(pidfile) = needs.pidfile.as_ref().map(absolute) {
        // Read back before removal, to leave alone one that another instance replaced.
        ruleset = allow(ruleset, &pidfile, AccessFs::ReadFile.into())?;
        if let Some(dir) = dedicated_directory(&pidfile, &named) {
            ruleset = allow(ruleset, &dir, AccessFs::RemoveFile.into())?;
        }
    }
    if needs.any_tcp_port {
        return Ok((ruleset, allowed));
    }
    for &port in &allowed.bind_ports {
        ruleset = ruleset.add_rule(NetPort::new(port, AccessNet::BindTcp))?;
    }
    for &port in &allowed.connect_ports {
        ruleset = ruleset.add_rule(NetPort::new(port, AccessNet::ConnectTcp))?;
    }
    Ok((ruleset, allowed))
}

/// Adds a rule allowing `access` beneath `path`; a path that does not exist (an
/// optional file such as `/etc/hosts`, a target socket not created yet) is skipped.
fn allow(
    ruleset: RulesetCreated,
    path: &Path,
    access: BitFlags<AccessFs>,
) -> Result<RulesetCreated, ::landlock::RulesetError> {
    match PathFd::new(path) {
        Ok(fd) => ruleset.add_rule(PathBeneath::new(fd, access)),
        Err(_) => Ok(ruleset),
    }
}

/// `NOTIFY_SOCKET` names an abstract socket (`@...`).
fn notify_socket_is_abstract() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| s.as_encoded_bytes().first() == Some(&b'@'))
}

/// `NOTIFY_SOCKET` when it names a socket file.
fn notify_socket_path() -> Option<PathBuf> {
    let s = std::env::var_os("NOTIFY_SOCKET")?;
    (s.as_encoded_bytes().first() == Some(&b'/')).then(|| PathBuf::from(s))
}

impl Enforced {
    /// Every path `needs` names, canonical, and also with only its directory resolved
    /// (a symbolic link named by the configuration is named as itself, too): what may
    /// be in a directory that is spiped's own.
    fn named(&self, needs: &Needs) -> Vec<PathBuf> {
        let all = (needs.read_files.iter())
            .chain(&needs.unix_targets)
            .chain(&needs.unix_sources)
            .chain(&needs.pidfile);
        let mut named = Vec::new();
        for p in all.map(|p| self.base.join(p)) {
            named.extend(std::fs::canonicalize(&p).ok());
            let dir = p.parent().and_then(|d| std::fs::canonicalize(d).ok());
            if let (Some(dir), Some(name)) = (dir, p.file_name()) {
                named.push(dir.join(name));
            }
        }
        named
    }

    /// `path` absolute (against the working directory at start) with symbolic links
    /// resolved, as far as it exists: a file a reload names may not exist yet, its
    /// directory must. `Err` names what could not be found, and why.
    fn canonical(&self, path: &Path) -> Result<PathBuf, Refused> {
        let path = self.base.join(path);
        let fail = |p: &Path, error| Refused::NotFound {
            path: p.to_path_buf(),
            error,
        };
        match std::fs::canonicalize(&path) {
            Ok(p) => Ok(p),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(fail(&path, e)),
            Err(e) => match (path.parent(), path.file_name()) {
                (Some(dir), Some(name)) => std::fs::canonicalize(dir)
                    .map(|d| d.join(name))
                    .map_err(|e| fail(dir, e)),
                _ => Err(fail(&path, e)),
            },
        }
    }
}

/// The (device, inode) of the file at `path`, which Landlock's rules follow.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl fmt::Display for Enforced {
    /// `landlock ABI 7 (fs, net)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layers = match (self.net, self.any_tcp_port) {
            (true, _) => "fs, net",
            (false, true) => "fs; any TCP port, for reloads",
            (false, false) => "fs",
        };
        write!(f, "landlock ABI {} ({layers})", self.abi)
    }
}
