//! What the daemon serves: process-wide settings and one or more pipes, and the key
//! files they name, loaded ([`keys`]). Plain values: `spiped`'s command line (a configuration of one pipe) and
//! its configuration file build them (`cmd/spiped/args.rs`, `cmd/spiped/file.rs`), both
//! through the command line's validation, so a mistake is worded alike in both.

pub(crate) mod keys;
#[cfg(test)]
mod tests;

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Serialize, Serializer};
use spiped_transports::{Address, StreamOptions};

use crate::process::daemonize::UserSpec;
use crate::targets::{self, Balance};
use spiped_proto::handshake::{Mode, Role};

/// The connect + handshake timeout when `-o` / `timeout` is not given, as upstream.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the target is re-resolved when neither `-r` nor `-R` is given.
pub(crate) const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(60);

/// The simultaneous-connection limit when `-n` / `max-connections` is not given.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 100;

/// Which side of the protocol the daemon plays for its accepted connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// `-e`: accept plaintext, connect encrypted (protocol client).
    Encrypt,
    /// `-d`: accept encrypted, connect plaintext (protocol server).
    Decrypt,
}

impl Direction {
    /// The protocol role of the daemon's connections.
    pub fn role(self) -> Role {
        match self {
            Direction::Encrypt => Role::Client,
            Direction::Decrypt => Role::Server,
        }
    }
}

/// The whole configuration of a daemon: settings of the process, then its pipes.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Settings that apply to the process, not to one pipe.
    pub process: Process,
    /// The pipes, in the order given; at least one.
    pub pipes: Vec<PipeConfig>,
}

/// Process-wide settings (the top of a configuration file, or the command line). A
/// reload cannot change them: they take effect at the next start.
#[derive(Clone, Debug, PartialEq)]
pub struct Process {
    /// `-D` / `wait-dns`: daemonize before resolving (releasing the caller), and retry
    /// failed look-ups until they succeed.
    pub wait_dns: bool,
    /// `-F` / `foreground`: stay in the foreground; no pidfile.
    pub foreground: bool,
    /// `-p` / `pidfile`. By default on the command line the `-s` argument as written
    /// plus `.pid` (as C spiped names it, so a TCP source's pidfile lands in the working
    /// directory), `spiped.pid` when socket activation left `-s` out or in a file.
    /// None is written with `-F`.
    pub pidfile: PathBuf,
    /// `--syslog` / `syslog`: after daemonizing, warn to syslog not stderr.
    pub syslog: bool,
    /// `-u` / `user`: the user and/or group to switch to after binding.
    pub user: Option<UserSpec>,
    /// `--drain-timeout` / `drain-timeout`: after SIGTERM/SIGINT, how long the open
    /// connections of all pipes may go on before they are closed; `None` (the default,
    /// as C) waits for them all.
    pub drain_timeout: Option<Duration>,
    /// `--sandbox` / `--no-sandbox` / `sandbox`: how the process confines itself once
    /// serving.
    pub sandbox: crate::sandbox::Mode,
    /// `--metrics` / `metrics`: where to serve Prometheus metrics, `/status` and
    /// `/healthz` over HTTP; `None` (the default) serves nothing.
    pub metrics: Option<Address>,
}

/// One pipe: a source to listen on, and what to do with each connection to it.
///
/// Carried whole to where each setting is used (a connection's settings hold it), and
/// serialized as the pipe's `settings` on the status page: every setting except
/// the socket file's mode and owner, durations in seconds, key files by path only
/// (nothing derived from their contents is ever shown).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PipeConfig {
    /// How logs (and later metrics) name the pipe: the file's `name`, or the source
    /// address as written.
    pub name: String,
    /// `encrypt` / `decrypt`.
    pub direction: Direction,
    /// Where to listen; `None` only under systemd socket activation from the command
    /// line, which passed the socket to serve.
    #[serde(serialize_with = "shown")]
    pub source: Option<Address>,
    /// The keys, newest first: the first is the one `encrypt` uses; a decrypting pipe
    /// accepts clients holding any of them, each sent to its key's target.
    pub keys: Vec<KeyRoute>,
    /// `bind`: local address for outgoing connections.
    #[serde(serialize_with = "shown")]
    pub bind: Option<Address>,
    /// TCP keep-alives (`no-keepalive` turns them off).
    pub keepalive: bool,
    /// `fast`.
    pub fast: bool,
    /// `require-pfs`.
    pub require_pfs: bool,
    /// `x25519`.
    pub x25519: bool,
    /// `max-connections`; `None` means no limit.
    pub max_connections: Option<usize>,
    /// `timeout`: connect plus handshake.
    #[serde(rename = "timeout_seconds", serialize_with = "seconds")]
    pub timeout: Duration,
    /// `resolve-interval`; `None` with `no-resolve`.
    #[serde(rename = "resolve_interval_seconds", serialize_with = "seconds")]
    pub resolve_interval: Option<Duration>,
    /// `proxy`.
    #[serde(serialize_with = "proxy_version")]
    pub proxy: Option<crate::session::proxy::Version>,
    /// `connect-after-handshake`.
    pub connect_after_handshake: bool,
    /// `log-connections`.
    pub log_connections: bool,
    /// `socket-mode`.
    #[serde(skip)]
    pub socket_mode: Option<u32>,
    /// `socket-owner`.
    #[serde(skip)]
    pub socket_owner: Option<UserSpec>,
    /// `allow`: the client addresses served; empty means all. Others are closed as
    /// soon as they are accepted.
    #[serde(serialize_with = "shown")]
    pub allow: Vec<IpNet>,
    /// `idle-timeout`: a session that moves no byte either way for this long is
    /// closed; `None` (the default, as in C) never.
    #[serde(rename = "idle_timeout_seconds", serialize_with = "seconds")]
    pub idle_timeout: Option<Duration>,
    /// `balance`: how connections choose among several targets.
    #[serde(serialize_with = "text", skip_serializing_if = "one_way")]
    pub(crate) balance: Balance,
    /// `connect-timeout`: the bound on one connect attempt; `None` for the default
    /// (see [`targets::connect_timeout`]).
    #[serde(
        rename = "connect_timeout_seconds",
        serialize_with = "seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub connect_timeout: Option<Duration>,
    /// `health-interval`: active checks of each target this often; `None` for none.
    #[serde(
        rename = "health_interval_seconds",
        serialize_with = "seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub health_interval: Option<Duration>,
}

/// A key file of a pipe and the target of the clients that hold it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyRoute {
    /// The key file's path (`-` for standard input, on the command line only).
    pub file: String,
    /// Where a session using this key is connected to: one target or several, in the
    /// order given (shown as one address, or a list of them).
    #[serde(rename = "target", serialize_with = "one_or_list")]
    pub targets: Vec<Address>,
    /// `FILE:LINE` of the key in a configuration file, for errors found on loading it.
    #[serde(skip)]
    pub at: Option<String>,
}

impl Config {
    /// Makes the relative paths of the files the configuration names (key files, the
    /// pidfile) absolute against `base`, the directory spiped started in: that is what
    /// the operator meant, and a reload then reads the same files wherever the process
    /// is by then (and without asking for its working directory, which the sandbox
    /// does not allow). UNIX socket paths stay as written: an absolute one may exceed
    /// the 107 bytes a socket address holds, and the process never changes its
    /// working directory, so they name the same sockets (the sandbox resolves them
    /// against the same directory, see `sandbox::Needs::base`).
    pub fn anchor(&mut self, base: &Path) {
        self.process.pidfile = base.join(&self.process.pidfile);
        for key in self.pipes.iter_mut().flat_map(|p| p.keys.iter_mut()) {
            if key.file != "-" {
                // A working directory that is not UTF-8 leaves the path as written.
                if let Some(file) = base.join(&key.file).to_str() {
                    key.file = file.to_owned();
                }
            }
        }
    }
}

impl PipeConfig {
    /// A pipe named `name` that goes `direction`, with every option as C's defaults:
    /// no source and no key yet, for its maker to fill in.
    pub fn new(name: String, direction: Direction) -> PipeConfig {
        PipeConfig {
            name,
            direction,
            source: None,
            keys: Vec::new(),
            bind: None,
            keepalive: true,
            fast: false,
            require_pfs: false,
            x25519: false,
            max_connections: Some(DEFAULT_MAX_CONNECTIONS),
            timeout: DEFAULT_TIMEOUT,
            resolve_interval: Some(DEFAULT_RESOLVE_INTERVAL),
            proxy: None,
            connect_after_handshake: false,
            log_connections: false,
            socket_mode: None,
            socket_owner: None,
            allow: Vec::new(),
            idle_timeout: None,
            balance: Balance::default(),
            connect_timeout: None,
            health_interval: None,
        }
    }

    /// The handshake's options (`fast`, `require-pfs`, `x25519`).
    pub fn mode(&self) -> Mode {
        Mode {
            fast: self.fast,
            require_pfs: self.require_pfs,
            x25519: self.x25519,
        }
    }

    /// The socket options of the pipe's connections, both accepted and opened.
    pub fn stream(&self) -> StreamOptions {
        StreamOptions {
            keepalive: self.keepalive,
        }
    }

    /// Whether different keys lead to different targets, so that the target is known
    /// only once the handshake has told which key the client holds.
    pub fn routes_by_key(&self) -> bool {
        self.keys.iter().any(|k| k.targets != self.keys[0].targets)
    }

    /// How a route of `several` targets uses them (`balance`, `connect-timeout`,
    /// `health-interval`).
    pub(crate) fn target_settings(&self, several: bool) -> targets::Settings {
        targets::Settings {
            balance: self.balance,
            connect_timeout: targets::connect_timeout(self.timeout, self.connect_timeout, several),
            health_interval: self.health_interval,
        }
    }
}

/// Serializes addresses and networks (one, maybe none, or a list) as they are written.
fn shown<T, S>(value: &T, s: S) -> Result<S::Ok, S::Error>
where
    T: Shown,
    S: Serializer,
{
    value.show(s)
}

/// A value the status page shows as text: what [`shown`] serializes.
trait Shown {
    /// Serializes `self` with its `Display` text in place of each value.
    fn show<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error>;
}

impl Shown for Address {
    fn show<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<T: Display> Shown for Option<T> {
    fn show<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }
}

impl<T: Display> Shown for Vec<T> {
    fn show<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(ToString::to_string))
    }
}

/// Whether `balance` is the default, which the status page leaves out (as it was
/// before pipes had several targets).
fn one_way(b: &Balance) -> bool {
    *b == Balance::default()
}

/// Serializes a value as its `Display` text.
fn text<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Serializes a key's targets: one as its address, several as a list.
fn one_or_list<S: Serializer>(targets: &Vec<Address>, s: S) -> Result<S::Ok, S::Error> {
    match targets.as_slice() {
        [one] => one.show(s),
        _ => targets.show(s),
    }
}

/// Serializes a duration, or none, in seconds (a fraction where it has one).
fn seconds<D, S>(d: &D, s: S) -> Result<S::Ok, S::Error>
where
    D: Into<Option<Duration>> + Copy,
    S: Serializer,
{
    match (*d).into() {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// Serializes a PROXY protocol version as `proxy` is written: `v1` or `v2`.
fn proxy_version<S: Serializer>(
    v: &Option<crate::session::proxy::Version>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(crate::session::proxy::Version::V1) => s.serialize_str("v1"),
        Some(crate::session::proxy::Version::V2) => s.serialize_str("v2"),
        None => s.serialize_none(),
    }
}
