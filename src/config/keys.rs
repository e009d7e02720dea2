//! Loading every key file a configuration names: at start-up, for `--check`, and again
//! on each reload (so a key file replaced on disk takes effect with SIGHUP).

use super::Config;
use crate::keyfile;
use spiped_proto::key::Key;

/// Loads key files, remembering a key read from standard input (`-k -`): standard
/// input can be read once only, so a reload keeps that key.
#[derive(Default)]
pub struct KeyLoader {
    stdin: Option<Key>,
}

impl KeyLoader {
    /// The keys of each pipe of `config`, in its order and each pipe's key order.
    /// `Err` names every file that failed, one line each (with the place in the
    /// configuration file when it came from one).
    pub fn load(&mut self, config: &Config) -> Result<Vec<Vec<Key>>, Vec<String>> {
        let mut errors = Vec::new();
        let mut all = Vec::new();
        for pipe in &config.pipes {
            let mut keys = Vec::new();
            for k in &pipe.keys {
                let loaded = match (k.file.as_str(), &self.stdin) {
                    ("-", Some(key)) => Ok(key.clone()),
                    (file, _) => keyfile::load(file),
                };
                match loaded {
                    Ok(key) => {
                        if k.file == "-" {
                            self.stdin = Some(key.clone());
                        }
                        keys.push(key);
                    }
                    Err(e) => errors.push(match &k.at {
                        Some(at) => format!("{at}: key: {e}"),
                        None => e.to_string(),
                    }),
                }
            }
            all.push(keys);
        }
        match errors.is_empty() {
            true => Ok(all),
            false => Err(errors),
        }
    }
}
