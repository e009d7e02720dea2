//! A connection's settings: everything a pipe's connections need from accept to close.

use std::net::SocketAddr;
use std::sync::Arc;

use spiped_proto::key::Key;

use crate::config::PipeConfig;
use crate::session::client::Dial;

/// Everything a connection needs, fixed from its accept to its close: a reload gives
/// the pipe a new one for later connections.
pub(crate) struct ConnConfig {
    /// The pipe's configuration as applied, read where each setting is used.
    pub pipe: Arc<PipeConfig>,
    /// The hashed pre-shared keys, never none: the first (`-k`) is the one `-e` uses;
    /// a `-d` accepts them all (repeated `-k`, for key rotation). One vector, filled in
    /// place and never shifted, so that each key has one copy, wiped when dropped.
    pub keys: Vec<Key>,
    /// Local address for outgoing connections (`-b`), resolved.
    pub bind: Option<SocketAddr>,
    /// The pipe's name for log lines, when the process serves several (`-c`).
    pub label: Option<String>,
}

impl ConnConfig {
    /// Whether `key` is among this configuration's keys (compared in constant time).
    pub(crate) fn holds(&self, key: &Key) -> bool {
        self.keys
            .iter()
            .fold(false, |found, k| k.same_as(key) | found)
    }

    /// How this pipe opens its connections to the target.
    pub(crate) fn dial(&self) -> Dial {
        Dial {
            bind: self.bind,
            stream: self.pipe.stream(),
            timeout: self.pipe.timeout,
        }
    }
}
