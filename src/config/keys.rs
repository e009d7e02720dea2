//! Loading every key file a configuration names: at start-up, for `--check`, and again
//! on each reload (so a key file replaced on disk takes effect with SIGHUP).

use std::fmt;

use super::{Config, KeyRoute};
use crate::keyfile::{self, KeyFileError, Opening};
use crate::process::daemonize::UserSpec;
use spiped_proto::key::Key;

/// Loads key files, remembering a key read from standard input (`-k -`): standard
/// input can be read once only, so a reload keeps that key.
///
/// The first load (start-up, `--check`) reads any file, as C spiped does; later ones
/// (reloads, while serving) read regular files only, so that nothing put in a key's
/// place can stall the daemon (see [`Opening`]).
#[derive(Default)]
pub(crate) struct KeyLoader {
    stdin: Option<Key>,
    /// Whether a load was done already: later ones are reloads.
    loaded: bool,
    /// The `-u` the process switched to, for a reload's "Permission denied": files
    /// root could read at start may be closed to that user.
    user: Option<UserSpec>,
}

impl KeyLoader {
    /// Records that the process now runs as `user` (`-u`), so that a key file it may
    /// not read at a reload says why.
    pub(crate) fn running_as(&mut self, user: &UserSpec) {
        self.user = Some(user.clone());
    }

    /// The `-u` user the process runs as, once [`KeyLoader::running_as`] said so.
    pub(crate) fn user(&self) -> Option<&UserSpec> {
        self.user.as_ref()
    }

    /// The keys of each pipe of `config`, in its order and each pipe's key order.
    /// `Err` names every file that failed, one line each (with the place in the
    /// configuration file when it came from one), and every pair of keys of a pipe
    /// with the same contents but different targets: only the first could be reached.
    pub(crate) fn load(&mut self, config: &Config) -> Result<Vec<Vec<Key>>, KeyErrors> {
        let opening = match self.loaded {
            false => Opening::Any,
            true => Opening::RegularOnly,
        };
        let mut errors = Vec::new();
        let mut all = Vec::new();
        for pipe in &config.pipes {
            // Room for every key at once: growing would copy them and free the old
            // block unwiped.
            let mut keys: Vec<Key> = Vec::with_capacity(pipe.keys.len());
            // Where each of `keys` came from.
            let mut sources: Vec<&KeyRoute> = Vec::with_capacity(pipe.keys.len());
            for k in &pipe.keys {
                let loaded = match (k.file.as_str(), &self.stdin) {
                    ("-", Some(key)) => Ok(key.clone()),
                    (file, _) => keyfile::load(file, opening),
                };
                let named = |problem| KeyError {
                    at: k.at.clone(),
                    problem,
                };
                match loaded {
                    Ok(key) => {
                        if k.file == "-" {
                            self.stdin = Some(key.clone());
                        }
                        let twin = (sources.iter().zip(&keys)).find(|(other, loaded)| {
                            other.targets != k.targets && loaded.same_as(&key)
                        });
                        if let Some((first, _)) = twin {
                            errors.push(named(KeyProblem::Twin {
                                file: k.file.clone(),
                                first: first.file.clone(),
                            }));
                        }
                        keys.push(key);
                        sources.push(k);
                    }
                    Err(error) => errors.push(named(KeyProblem::File {
                        error,
                        user: self.user.clone(),
                    })),
                }
            }
            all.push(keys);
        }
        self.loaded = true;
        match errors.is_empty() {
            true => Ok(all),
            false => Err(KeyErrors(errors)),
        }
    }
}

/// Every key file of a configuration that failed to load (see [`KeyLoader::load`]).
#[derive(Debug)]
pub(crate) struct KeyErrors(Vec<KeyError>);

impl KeyErrors {
    /// One error a line, as the command line prints them.
    pub(crate) fn lines(&self) -> String {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        lines.join("\n")
    }
}

impl fmt::Display for KeyErrors {
    /// Every error on one line, as a reload's failure says them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for KeyErrors {}

/// A key that failed to load, and where the configuration file names it.
#[derive(Debug)]
pub(crate) struct KeyError {
    /// `FILE:LINE` in the configuration file, when it came from one.
    at: Option<String>,
    problem: KeyProblem,
}

/// Why a key failed to load.
#[derive(Debug)]
enum KeyProblem {
    /// It holds the same key as an earlier file of its pipe, which leads to another
    /// target: only that one could ever be reached.
    Twin {
        /// The key file.
        file: String,
        /// The earlier one.
        first: String,
    },
    /// The file could not be read, or holds no key.
    File {
        /// Why.
        error: KeyFileError,
        /// The `-u` the process runs as since start, if any: what a reload's
        /// "Permission denied" is about.
        user: Option<UserSpec>,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = &self.at {
            write!(f, "{at}: key: ")?;
        }
        match &self.problem {
            KeyProblem::Twin { file, first } => write!(
                f,
                "key file {file} holds the same key as {first}, which leads to another \
                 target: only the first is ever reached; give each target its own key"
            ),
            KeyProblem::File { error, user } => {
                write!(f, "{error}")?;
                match (error, user) {
                    (KeyFileError::Read { source, .. }, Some(user))
                        if source.kind() == std::io::ErrorKind::PermissionDenied =>
                    {
                        write!(
                            f,
                            "; spiped runs as -u {user} since start, so the key file must be \
                             readable by that user"
                        )
                    }
                    _ => Ok(()),
                }
            }
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            KeyProblem::File { error, .. } => Some(error),
            KeyProblem::Twin { .. } => None,
        }
    }
}
