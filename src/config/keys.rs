//! Loading every key file a configuration names: at start-up, for `--check`, and again
//! on each reload (so a key file replaced on disk takes effect with SIGHUP).

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
pub struct KeyLoader {
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
    pub fn running_as(&mut self, user: &UserSpec) {
        self.user = Some(user.clone());
    }

    /// The keys of each pipe of `config`, in its order and each pipe's key order.
    /// `Err` names every file that failed, one line each (with the place in the
    /// configuration file when it came from one), and every pair of keys of a pipe
    /// with the same contents but different targets: only the first could be reached.
    pub fn load(&mut self, config: &Config) -> Result<Vec<Vec<Key>>, Vec<String>> {
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
                let named = |e: &dyn std::fmt::Display| match &k.at {
                    Some(at) => format!("{at}: key: {e}"),
                    None => e.to_string(),
                };
                match loaded {
                    Ok(key) => {
                        if k.file == "-" {
                            self.stdin = Some(key.clone());
                        }
                        let twin = (sources.iter().zip(&keys)).find(|(other, loaded)| {
                            other.target != k.target && loaded.same_as(&key)
                        });
                        if let Some((first, _)) = twin {
                            errors.push(named(&format!(
                                "key file {} holds the same key as {}, which leads to another \
                                 target: only the first is ever reached; give each target its \
                                 own key",
                                k.file, first.file
                            )));
                        }
                        keys.push(key);
                        sources.push(k);
                    }
                    Err(e) => {
                        let hint = match (&e, &self.user) {
                            (KeyFileError::Read { source, .. }, Some(user))
                                if source.kind() == std::io::ErrorKind::PermissionDenied =>
                            {
                                format!(
                                    "; spiped runs as -u {user} since start, so the key file \
                                     must be readable by that user"
                                )
                            }
                            _ => String::new(),
                        };
                        errors.push(named(&format!("{e}{hint}")));
                    }
                }
            }
            all.push(keys);
        }
        self.loaded = true;
        match errors.is_empty() {
            true => Ok(all),
            false => Err(errors),
        }
    }
}
