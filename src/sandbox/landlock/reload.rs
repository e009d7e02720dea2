//! Checking a reload against the Landlock domain set up at start, which cannot be
//! widened: what a reload may ask for, and how a refusal is said.

use std::fmt;
use std::path::PathBuf;

use super::{Enforced, Needs, file_id};
use crate::sandbox::directories::own_directory;

/// What a reload asks for beyond what the sandbox set up at start allows; each says
/// what is refused and what to do.
#[derive(Debug)]
pub(crate) enum Refused {
    /// A path a reload names, or its directory, could not be found.
    NotFound {
        /// What could not be found.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A file allowed by itself was replaced since start.
    Replaced(PathBuf),
    /// A file neither named at start nor in a directory allowed then.
    Read {
        /// The file.
        file: PathBuf,
        /// The directories whose files may all be read.
        directories: Vec<PathBuf>,
    },
    /// Host names are to be resolved again, which no one asked for at start.
    Dns,
    /// A UNIX socket neither targeted at start nor in a target's directory allowed then.
    Target {
        /// The socket.
        target: PathBuf,
        /// The sockets targeted at start.
        targets: Vec<PathBuf>,
        /// The directories whose sockets may all be connected to.
        directories: Vec<PathBuf>,
    },
    /// A UNIX socket to create outside the directories allowed at start.
    Source {
        /// The socket.
        socket: PathBuf,
        /// The directories in which sockets may be created.
        directories: Vec<PathBuf>,
    },
    /// A TCP port to listen on that was not in use at start.
    BindPort(u16),
    /// A TCP port to connect to that was not in use at start.
    ConnectPort(u16),
}

/// What every refusal of the domain ends with.
const RESTART: &str = "restart spiped to allow it, or turn the sandbox off (--no-sandbox, or \
                       sandbox = false in the file)";

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::NotFound { path, error } => {
                return write!(
                    f,
                    "cannot find {}: {}",
                    path.display(),
                    crate::errors::describe(error)
                );
            }
            Refused::Replaced(file) => write!(
                f,
                "{} has been replaced since start (a file renamed over it, as editors \
                 and key rotation do), and the sandbox set up at start (Landlock) \
                 allows reading it only as the file that existed then, because its \
                 directory holds files the configuration does not name: keep key files \
                 and the configuration file in a directory of their own (such as \
                 /etc/spiped/), whose files may all be read again",
                file.display()
            )?,
            Refused::Read { file, directories } => write!(
                f,
                "the sandbox set up at start (Landlock) does not allow reading {}: \
                 only the files named then, and any file of a directory that held \
                 nothing else{}",
                file.display(),
                List(directories)
            )?,
            Refused::Dns => f.write_str(
                "the sandbox set up at start (Landlock) does not allow reading /etc/hosts \
                 and /etc/resolv.conf (no host name was resolved then)",
            )?,
            Refused::Target {
                target,
                targets,
                directories,
            } => write!(
                f,
                "the sandbox set up at start allows connecting only to the UNIX sockets \
                 targeted then{}, and to any socket of a directory that held nothing \
                 else{}: not to {}",
                List(targets),
                List(directories),
                target.display()
            )?,
            Refused::Source {
                socket,
                directories,
            } => write!(
                f,
                "the sandbox set up at start (Landlock) does not allow creating the \
                 UNIX socket {}: only in the directories of the sockets created then \
                 that held nothing else{}",
                socket.display(),
                List(directories)
            )?,
            Refused::BindPort(p) => port(f, "listening on", *p)?,
            Refused::ConnectPort(p) => port(f, "connecting to", *p)?,
        }
        write!(f, "; {RESTART}")
    }
}

impl std::error::Error for Refused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Refused::NotFound { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Writes a port refusal's text, before [`RESTART`].
fn port(f: &mut fmt::Formatter<'_>, what: &str, p: u16) -> fmt::Result {
    write!(
        f,
        "the sandbox set up at start (Landlock) does not allow {what} TCP \
         port {p}: only the ports in use then"
    )
}

impl Enforced {
    /// See [`super::Confinement::admits`].
    pub(crate) fn admits(&self, needs: &Needs) -> Result<(), Refused> {
        for f in &needs.read_files {
            let path = self.canonical(f)?;
            // A file that is not there is for the reading to name as missing: the
            // sandbox would not be why.
            let missing = std::fs::symlink_metadata(&path).is_err();
            if missing || self.directories.iter().any(|d| path.starts_with(d)) {
                continue;
            }
            let same = self.files.iter().find(|(p, _)| *p == path);
            if same.is_some_and(|(_, id)| *id != file_id(&path)) {
                return Err(Refused::Replaced(f.clone()));
            }
            if same.is_none() {
                return Err(Refused::Read {
                    file: f.clone(),
                    directories: self.directories.clone(),
                });
            }
        }
        if needs.dns && !self.dns {
            return Err(Refused::Dns);
        }
        for t in &needs.unix_targets {
            let path = self.canonical(t)?;
            let within = |d: &PathBuf| path.parent() == Some(d.as_path());
            if !self.targets.contains(&path) && !self.target_directories.iter().any(within) {
                return Err(Refused::Target {
                    target: t.clone(),
                    targets: self.targets.clone(),
                    directories: self.target_directories.clone(),
                });
            }
        }
        for s in &needs.unix_sources {
            if self.sources.contains(&self.base.join(s)) {
                continue;
            }
            let dir = own_directory(&self.base.join(s));
            if !dir.is_some_and(|d| self.socket_directories.contains(&d)) {
                return Err(Refused::Source {
                    socket: s.clone(),
                    directories: self.socket_directories.clone(),
                });
            }
        }
        if self.net {
            let ports = [
                (
                    Refused::BindPort as fn(u16) -> Refused,
                    &needs.bind_ports,
                    &self.bind_ports,
                ),
                (
                    Refused::ConnectPort,
                    &needs.connect_ports,
                    &self.connect_ports,
                ),
            ];
            for (refused, wanted, allowed) in ports {
                if let Some(&p) = wanted.iter().find(|p| !allowed.contains(p)) {
                    return Err(refused(p));
                }
            }
        }
        Ok(())
    }
}

/// ` (a, b)`, or nothing for an empty list.
struct List<'a>(&'a [PathBuf]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            let sep = if i == 0 { " (" } else { ", " };
            write!(f, "{sep}{}", d.display())?;
        }
        if !self.0.is_empty() {
            f.write_str(")")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::build;
    use super::*;

    /// What a reload may add: files beside the key files read at start, and nothing
    /// else; the ports in use at start, and no other. Refusals name the sandbox.
    #[test]
    fn reloads_may_read_beside_the_old_keys_only() {
        let keys = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let old = keys.path().join("old.key");
        std::fs::write(&old, "k").unwrap();
        let at_start = Needs {
            read_files: vec![old.clone()],
            bind_ports: vec![8025],
            connect_ports: vec![25],
            ..Needs::default()
        };
        let (_ruleset, mut allowed) = build(&at_start).unwrap();
        allowed.net = true;
        let reading = |f: PathBuf| Needs {
            read_files: vec![f],
            ..Needs::default()
        };
        allowed.admits(&at_start).unwrap();
        std::fs::write(keys.path().join("new.key"), "k").unwrap();
        allowed
            .admits(&reading(keys.path().join("new.key")))
            .unwrap();
        // A file allowed by itself (not by its directory) must still be the same file.
        let alone = Needs {
            read_files: vec![elsewhere.path().join("alone.key")],
            ..Needs::default()
        };
        std::fs::write(&alone.read_files[0], "k").unwrap();
        let (_ruleset, mut only) = build(&alone).unwrap();
        only.directories.clear();
        only.admits(&alone).unwrap();
        let replacement = elsewhere.path().join("replacement");
        std::fs::write(&replacement, "k2").unwrap();
        std::fs::rename(&replacement, &alone.read_files[0]).unwrap();
        let e = only.admits(&alone).unwrap_err().to_string();
        assert!(
            e.contains("sandbox") && e.contains("has been replaced"),
            "{e}"
        );
        std::fs::remove_file(&alone.read_files[0]).unwrap();
        // A file that is not there is left for the reading to report as missing.
        allowed
            .admits(&reading(elsewhere.path().join("new.key")))
            .unwrap();
        std::fs::write(elsewhere.path().join("new.key"), "k").unwrap();
        for refused in [elsewhere.path().join("new.key"), "/etc/shadow".into()] {
            let e = allowed
                .admits(&reading(refused.clone()))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("sandbox") && e.contains(refused.to_str().unwrap()),
                "{e}"
            );
        }
        let e = allowed
            .admits(&Needs {
                bind_ports: vec![9000],
                ..Needs::default()
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("sandbox") && e.contains("TCP port 9000"), "{e}");
        let (_ruleset, open) = build(&Needs {
            any_tcp_port: true,
            ..at_start.clone()
        })
        .unwrap();
        open.admits(&Needs {
            bind_ports: vec![9000],
            ..Needs::default()
        })
        .unwrap();
        let e = allowed
            .admits(&Needs {
                dns: true,
                ..Needs::default()
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/resolv.conf"), "{e}");
    }

    /// A reload may target the UNIX sockets targeted at start, and any socket of a
    /// directory that held only what the configuration names; no other socket.
    #[test]
    fn reloads_may_connect_to_the_old_unix_targets_only() {
        let own = tempfile::tempdir().unwrap();
        let shared = tempfile::tempdir().unwrap();
        let in_own = own.path().join("app.sock");
        let in_shared = shared.path().join("app.sock");
        std::fs::write(shared.path().join("app.pid"), "1").unwrap();
        let at_start = Needs {
            unix_targets: vec![in_own.clone(), in_shared.clone()],
            ..Needs::default()
        };
        let (_ruleset, allowed) = build(&at_start).unwrap();
        let targeting = |t: PathBuf| Needs {
            unix_targets: vec![t],
            ..Needs::default()
        };
        allowed.admits(&at_start).unwrap();
        allowed
            .admits(&targeting(own.path().join("other.sock")))
            .unwrap();
        for refused in [shared.path().join("other.sock"), "/run/x.sock".into()] {
            let e = allowed
                .admits(&targeting(refused.clone()))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("UNIX sockets targeted then") && e.contains(refused.to_str().unwrap()),
                "{e}"
            );
        }
    }

    /// Removal of sockets at exit and their creation by a reload are granted beneath a
    /// directory of spiped's own only: beside an unrelated file (a home directory)
    /// nothing is granted, so that file cannot be removed (the pidfile's directory,
    /// by the same rule: `a_pidfile_beside_other_files_grants_no_removal`).
    #[test]
    fn removal_only_in_a_directory_of_its_own() {
        let own = tempfile::tempdir().unwrap();
        let shared = tempfile::tempdir().unwrap();
        std::fs::write(shared.path().join("unrelated"), "u").unwrap();
        let needs_in = |dir: &Path| {
            let (pidfile, socket) = (dir.join("spiped.pid"), dir.join("s.sock"));
            std::fs::write(&pidfile, "1").unwrap();
            Needs {
                pidfile: Some(pidfile),
                unix_sources: vec![socket],
                ..Needs::default()
            }
        };
        let (_ruleset, allowed) = build(&needs_in(shared.path())).unwrap();
        assert_eq!(allowed.socket_directories, Vec::<PathBuf>::new());
        // A reload keeping the source creates nothing; a new socket there is refused.
        allowed.admits(&needs_in(shared.path())).unwrap();
        let e = allowed
            .admits(&Needs {
                unix_sources: vec![shared.path().join("new.sock")],
                ..Needs::default()
            })
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("new.sock") && e.contains("held nothing else"),
            "{e}"
        );
        let (_ruleset, allowed) = build(&needs_in(own.path())).unwrap();
        let canonical = std::fs::canonicalize(own.path()).unwrap();
        assert_eq!(allowed.socket_directories, [canonical]);
        allowed
            .admits(&Needs {
                unix_sources: vec![own.path().join("new.sock")],
                ..Needs::default()
            })
            .unwrap();
    }
}
