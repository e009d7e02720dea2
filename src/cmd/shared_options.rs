//! The options `spiped` and `spipe` share, validated once for both: the target, the key,
//! and how a connection is set up (`-b`, `-f`/`-g`/`--x25519`, `-j`, `-o`).
//!
//! Validation comes in two halves, so that a tool can check its own options' shape
//! between them: every complaint about the shape of a command line (a missing option,
//! two that contradict) comes before any about a value.

use std::time::Duration;

use spiped_proto::handshake::Mode;
use spiped_transports::Address;

use crate::config::DEFAULT_TIMEOUT;

use super::parse::{Mistake, Refusal};
use super::values::{address, bind_address, c_seconds, required};

/// The shared options as given, values still words.
#[derive(Debug, Default)]
pub(super) struct SharedArgs {
    /// `-t`.
    pub(super) target: Option<String>,
    /// `-k` (the first, for `spiped`).
    pub(super) key: Option<String>,
    /// `-b`.
    pub(super) bind: Option<String>,
    /// `-f`.
    pub(super) fast: bool,
    /// `-g`.
    pub(super) require_pfs: bool,
    /// `--x25519`.
    pub(super) x25519: bool,
    /// `-j`.
    pub(super) no_keepalive: bool,
    /// `-o`.
    pub(super) timeout: Option<String>,
}

/// The [`SharedArgs`] taken out of a tool's argh struct `$args`, whose fields name the shared
/// options as `SharedArgs` does, with `$target` as `-t` and `$key` as `-k`. argh cannot flatten one struct into
/// another, so each tool declares the options (with help worded for it) and this takes
/// them out, in one place for both.
macro_rules! shared_args {
    ($args:ident, $target:expr, $key:expr) => {
        $crate::cmd::shared_options::SharedArgs {
            target: $target,
            key: $key,
            bind: $args.bind.take(),
            fast: $args.fast,
            require_pfs: $args.require_pfs,
            x25519: $args.x25519,
            no_keepalive: $args.no_keepalive,
            timeout: $args.timeout.take(),
        }
    };
}
pub(super) use shared_args;

/// The shared options, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedOptions {
    /// `-t`: the address to connect to (for `spipe`, an `spiped -d`).
    pub target: Address,
    /// `-k`: the key file's path, or `-` for standard input; for `spiped`, the first
    /// `-k` (the key `-e` uses).
    pub key_file: String,
    /// `-b`: the local address outgoing connections bind to (port 0 when left out).
    pub bind: Option<Address>,
    /// `-f` (handshake without Diffie-Hellman), `-g` (refuse a peer that uses `-f`),
    /// `--x25519` (the X25519 handshake extension, only as a client).
    pub mode: Mode,
    /// TCP keep-alives; `-j` turns them off.
    pub keepalive: bool,
    /// `-o`: connect + handshake timeout.
    pub timeout: Duration,
}

impl SharedArgs {
    /// The first half: required options present, none contradicting another.
    pub(super) fn check_shape(&self) -> Result<(), Refusal> {
        let shape = |key, msg: String| (key, Mistake::Shape(msg));
        required(self.target.clone(), "-t/--target").map_err(|m| shape("target", m))?;
        required(self.key.clone(), "-k/--key").map_err(|m| shape("key", m))?;
        if self.fast && self.require_pfs {
            // A peer cannot both skip and demand PFS.
            return Err(shape(
                "require-pfs",
                "-f/--fast and -g/--require-pfs cannot be used together".to_owned(),
            ));
        }
        if self.fast && self.x25519 {
            // -f turns Diffie-Hellman off and --x25519 picks a Diffie-Hellman.
            return Err(shape(
                "x25519",
                "-f/--fast and --x25519 cannot be used together".to_owned(),
            ));
        }
        Ok(())
    }

    /// The second half: the values, once [`SharedArgs::check_shape`] has passed.
    pub(super) fn validate(self) -> Result<SharedOptions, Refusal> {
        self.check_shape()?;
        let target = required(self.target, "-t/--target").map_err(|m| ("target", m.into()))?;
        let target = address(&target, "-t/--target").map_err(|m| ("target", m))?;
        let bind = bind_address(self.bind, "-b/--bind").map_err(|m| ("bind", m))?;
        check_bind(bind.as_ref(), &target).map_err(|m| ("bind", Mistake::Value(m)))?;
        Ok(SharedOptions {
            target,
            key_file: required(self.key, "-k/--key").map_err(|m| ("key", m.into()))?,
            bind,
            mode: Mode {
                fast: self.fast,
                require_pfs: self.require_pfs,
                x25519: self.x25519,
            },
            keepalive: !self.no_keepalive,
            timeout: timeout(self.timeout).map_err(|m| ("timeout", m))?,
        })
    }
}

/// Refuses a `-b` that could only fail every connection, here before daemonizing (as C
/// 1.6.3 checks its addresses' syntax) rather than connection by connection: a UNIX
/// socket path (a TCP socket cannot bind to one) and a UNIX `-t` (its socket cannot
/// bind to an IP address). C takes both and then fails each connection ("Error
/// binding socket"); with a UNIX path and a UNIX target, each after the first.
pub(super) fn check_bind(bind: Option<&Address>, target: &Address) -> Result<(), String> {
    match bind {
        Some(b) if b.is_unix() => Err(format!(
            "-b/--bind: invalid address '{b}': a UNIX socket path; -b takes the IP \
             address or host name (port optional) that outgoing TCP connections come from"
        )),
        Some(_) if target.is_unix() => Err(format!(
            "-b/--bind: the target {target} is a UNIX socket; -b applies to TCP targets only"
        )),
        _ => Ok(()),
    }
}

/// The `-o` timeout: whatever C accepts, with a warning where it cannot be what the
/// operator meant.
fn timeout(s: Option<String>) -> Result<Duration, Mistake> {
    let Some(s) = s else {
        return Ok(DEFAULT_TIMEOUT);
    };
    let d = c_seconds(&s, "-o/--timeout", DEFAULT_TIMEOUT).map_err(Mistake::Value)?;
    if d < Duration::from_millis(1) {
        crate::log::warn(&format!(
            "warning: -o {s}: a timeout under a millisecond; most connections will \
             time out before they are established (-o takes seconds)"
        ));
    } else if d > Duration::from_secs(86_400) {
        crate::log::warn(&format!(
            "warning: -o {s}: a timeout over a day; a connection that never completes \
             its handshake is held that long"
        ));
    }
    Ok(d)
}
