//! A connection's settings: everything a pipe's connections need from accept to close.

use std::net::SocketAddr;
use std::time::Duration;

use spiped_proto::handshake::Mode;
use spiped_proto::key::Key;
use spiped_transports::StreamOptions;

use crate::config::Direction;
use crate::session::client::Dial;
use crate::session::proxy;

/// Everything a connection needs, fixed from its accept to its close: a reload gives
/// the pipe a new one for later connections.
pub struct ConnConfig {
    /// `-e` or `-d`.
    pub direction: Direction,
    /// The hashed pre-shared keys, never none: the first (`-k`) is the one `-e` uses;
    /// a `-d` accepts them all (repeated `-k`, for key rotation). One vector, filled in
    /// place and never shifted, so that each key has one copy, wiped when dropped.
    pub keys: Vec<Key>,
    /// `--proxy` (only with `-e`): send a PROXY protocol header first.
    pub proxy: Option<proxy::Version>,
    /// `--connect-after-handshake` (only with `-d`): open the target only once the
    /// client has proved it holds the key.
    pub connect_after_handshake: bool,
    /// `--log-connections`: a line per connection when established and when closed.
    pub log_connections: bool,
    /// `-f` / `-g` / `--x25519`.
    pub mode: Mode,
    /// Bound on target connect plus handshake (`-o`).
    pub timeout: Duration,
    /// Socket options for both sockets of a connection (`-j`).
    pub stream: StreamOptions,
    /// Local address for outgoing connections (`-b`).
    pub bind: Option<SocketAddr>,
    /// Whether keys lead to different targets (routing by key, `-d` only): the target
    /// is then connected once the handshake has told which key the client holds.
    pub routed: bool,
    /// `idle-timeout`: close an established session that moves nothing for this long.
    pub idle_timeout: Option<Duration>,
    /// The pipe's name for log lines, when the process serves several (`-c`).
    pub label: Option<String>,
}

impl ConnConfig {
    /// Whether `key` is among this configuration's keys (compared in constant time).
    pub fn holds(&self, key: &Key) -> bool {
        self.keys
            .iter()
            .fold(false, |found, k| k.same_as(key) | found)
    }

    /// How this pipe opens its connections to the target.
    pub fn dial(&self) -> Dial {
        Dial {
            bind: self.bind,
            stream: self.stream,
            timeout: self.timeout,
        }
    }
}
