//! What the daemon serves: process-wide settings and one or more pipes, and the key
//! files they name, loaded ([`keys`]). Plain values: `spiped`'s command line (a configuration of one pipe) and
//! its configuration file build them (`cmd/spiped/args.rs`, `cmd/spiped/file.rs`), both
//! through the command line's validation, so a mistake is worded alike in both.

pub mod keys;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use spiped_transports::Address;

use crate::process::daemonize::UserSpec;
use spiped_proto::handshake::Role;

/// Which side of the protocol the daemon plays for its accepted connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq)]
pub struct PipeConfig {
    /// How logs (and later metrics) name the pipe: the file's `name`, or the source
    /// address as written.
    pub name: String,
    /// `encrypt` / `decrypt`.
    pub direction: Direction,
    /// Where to listen; `None` only under systemd socket activation from the command
    /// line, which passed the socket to serve.
    pub source: Option<Address>,
    /// The keys, newest first: the first is the one `encrypt` uses; a decrypting pipe
    /// accepts clients holding any of them, each sent to its key's target.
    pub keys: Vec<KeyRoute>,
    /// `bind`: local address for outgoing connections.
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
    pub timeout: Duration,
    /// `resolve-interval`; `None` with `no-resolve`.
    pub resolve_interval: Option<Duration>,
    /// `proxy`.
    pub proxy: Option<crate::session::proxy::Version>,
    /// `connect-after-handshake`.
    pub connect_after_handshake: bool,
    /// `log-connections`.
    pub log_connections: bool,
    /// `socket-mode`.
    pub socket_mode: Option<u32>,
    /// `socket-owner`.
    pub socket_owner: Option<UserSpec>,
    /// `allow`: the client addresses served; empty means all. Others are closed as
    /// soon as they are accepted.
    pub allow: Vec<IpNet>,
    /// `idle-timeout`: a session that moves no byte either way for this long is
    /// closed; `None` (the default, as in C) never.
    pub idle_timeout: Option<Duration>,
}

/// A key file of a pipe and the target of the clients that hold it.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRoute {
    /// The key file's path (`-` for standard input, on the command line only).
    pub file: String,
    /// Where a session using this key is connected to.
    pub target: Address,
    /// `FILE:LINE` of the key in a configuration file, for errors found on loading it.
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
    /// Whether different keys lead to different targets, so that the target is known
    /// only once the handshake has told which key the client holds.
    pub fn routes_by_key(&self) -> bool {
        self.keys.iter().any(|k| k.target != self.keys[0].target)
    }
}
