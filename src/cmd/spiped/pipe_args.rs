//! Validating `spiped`'s options of one pipe, which a configuration file's `[[pipe]]`
//! table goes through too, so that both word every mistake alike; with the command
//! line's process-wide options, which come with its one pipe.

use std::path::PathBuf;
use std::time::Duration;

use super::args::{Args, parse_drain_timeout, parse_metrics, parse_user};
use crate::cmd::parse::{Mistake, Refusal};
use crate::cmd::shared_options::{SharedArgs, check_bind, shared_args};
use crate::config::{
    DEFAULT_MAX_CONNECTIONS, DEFAULT_RESOLVE_INTERVAL, Direction, KeyRoute, PipeConfig, Process,
};
use crate::process::daemonize::UserSpec;
use spiped_transports::Address;

impl Args {
    /// Checks what argh cannot express: required options, exclusive pairs, and values.
    /// Presence problems are reported before value problems, so the first complaint is
    /// about the shape of the command line. A configuration file's pipe goes through
    /// here too, so that both word every mistake alike.
    pub(crate) fn pipe(mut self) -> Result<(PipeConfig, Process), Refusal> {
        let direction = self.direction()?;
        let source = self.source()?;
        let mut keys = std::mem::take(&mut self.key).into_iter();
        let mut targets = std::mem::take(&mut self.target).into_iter();
        let shared = shared_args!(self, targets.next(), keys.next());
        shared.check_shape()?;
        let extra_targets: Vec<String> = targets.collect();
        let extra_key_files: Vec<String> = keys.collect();
        self.check_for(direction, &shared, &extra_key_files)?;
        let resolve_interval = self.resolve_interval()?;
        let max_connections = match &self.max_connections {
            None => Some(DEFAULT_MAX_CONNECTIONS),
            Some(s) => match parse_count(s).map_err(value("max-connections"))? {
                0 => None,
                n => Some(n),
            },
        };

        let sandbox = crate::cmd::values::sandbox(self.sandbox, self.no_sandbox)
            .map_err(|m| ("sandbox", m))?;
        let pidfile = self
            .pidfile
            .unwrap_or_else(|| format!("{}.pid", source.as_deref().unwrap_or("spiped")));
        let source = source
            .map(|s| crate::cmd::values::address(&s, "-s/--source").map_err(|m| ("source", m)))
            .transpose()?;
        let shared = shared.validate()?;
        let targets = more_targets(shared.target.clone(), &extra_targets, shared.bind.as_ref())?;
        let user = parse_user(self.user.as_deref())?;
        let keys = std::iter::once(shared.key_file)
            .chain(extra_key_files)
            .map(|file| KeyRoute {
                file,
                targets: targets.clone(),
                at: None,
            })
            .collect();
        let name = source.as_ref().map_or_else(
            || "socket passed by systemd".to_owned(),
            ToString::to_string,
        );
        let pipe = PipeConfig {
            source,
            keys,
            bind: shared.bind,
            keepalive: shared.keepalive,
            fast: shared.mode.fast,
            require_pfs: shared.mode.require_pfs,
            x25519: shared.mode.x25519,
            max_connections,
            timeout: shared.timeout,
            resolve_interval,
            proxy: self
                .proxy
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(value("proxy"))?,
            connect_after_handshake: self.connect_after_handshake,
            log_connections: self.log_connections,
            socket_mode: self
                .socket_mode
                .as_deref()
                .map(parse_mode)
                .transpose()
                .map_err(value("socket-mode"))?,
            socket_owner: self
                .socket_owner
                .as_deref()
                .map(|s| UserSpec::parse(s, "--socket-owner").map_err(|e| e.to_string()))
                .transpose()
                .map_err(value("socket-owner"))?,
            balance: self
                .balance
                .as_deref()
                .map(|s| s.parse().map_err(|e| format!("--balance: {e}")))
                .transpose()
                .map_err(value("balance"))?
                .unwrap_or_default(),
            connect_timeout: seconds(self.connect_timeout.as_deref(), "connect-timeout")?,
            health_interval: seconds(self.health_interval.as_deref(), "health-interval")?,
            // A configuration file sets the rest.
            ..PipeConfig::new(name, direction)
        };
        let process = Process {
            wait_dns: self.wait_dns,
            foreground: self.foreground,
            pidfile: PathBuf::from(pidfile),
            syslog: self.syslog,
            user,
            drain_timeout: parse_drain_timeout(self.drain_timeout.as_deref())?,
            sandbox,
            metrics: parse_metrics(self.metrics.as_deref())?,
        };
        Ok((pipe, process))
    }

    /// `-e` or `-d`: exactly one.
    fn direction(&self) -> Result<Direction, Refusal> {
        match (self.encrypt, self.decrypt) {
            (true, false) => Ok(Direction::Encrypt),
            (false, true) => Ok(Direction::Decrypt),
            (true, true) => Err(shape(
                "decrypt",
                "-e/--encrypt and -d/--decrypt cannot be used together",
            )),
            (false, false) => Err(shape(
                "encrypt",
                "one of -e/--encrypt or -d/--decrypt is required",
            )),
        }
    }

    /// `-s` as written: required unless systemd passed the socket; `--socket-mode` and
    /// `--socket-owner` only beside a UNIX socket source.
    fn source(&mut self) -> Result<Option<String>, Refusal> {
        // Under systemd socket activation the socket comes with the process.
        let source = match self.source.take() {
            None if std::env::var_os("LISTEN_FDS").is_some() => None,
            s => Some(
                crate::cmd::values::required(s, "-s/--source").map_err(|m| ("source", m.into()))?,
            ),
        };
        let unix_source = source.as_deref().is_some_and(|s| s.starts_with('/'));
        if (self.socket_mode.is_some() || self.socket_owner.is_some()) && !unix_source {
            let key = match self.socket_mode {
                Some(_) => "socket-mode",
                None => "socket-owner",
            };
            return Err(shape(
                key,
                "--socket-mode and --socket-owner are for a UNIX socket source \
                 (-s /path) that spiped creates",
            ));
        }
        Ok(source)
    }

    /// The options of one direction only: several `-k` and `--connect-after-handshake`
    /// are for `-d`, `--proxy` and `--x25519` for `-e`.
    fn check_for(
        &self,
        direction: Direction,
        shared: &SharedArgs,
        extra_key_files: &[String],
    ) -> Result<(), Refusal> {
        if !extra_key_files.is_empty() {
            if direction != Direction::Decrypt {
                return Err(shape(
                    "key",
                    "-k/--key given more than once: only -d/--decrypt accepts \
                     several keys (key rotation); -e/--encrypt uses one",
                ));
            }
            if extra_key_files.iter().chain(&shared.key).any(|k| k == "-") {
                return Err(shape(
                    "key",
                    "-k - (key from standard input) cannot be combined with another -k",
                ));
            }
        }
        if self.proxy.is_some() && direction != Direction::Encrypt {
            return Err(shape(
                "proxy",
                "--proxy is for -e/--encrypt: it adds the header that the \
                 service behind -d/--decrypt reads",
            ));
        }
        if self.connect_after_handshake && direction != Direction::Decrypt {
            return Err(shape(
                "connect-after-handshake",
                "--connect-after-handshake is for -d/--decrypt; -e/--encrypt \
                 always connects before its handshake",
            ));
        }
        if shared.x25519 && direction == Direction::Decrypt {
            return Err(shape(
                "x25519",
                "--x25519 is for -e/--encrypt; -d/--decrypt always accepts \
                 X25519 clients",
            ));
        }
        Ok(())
    }

    /// `-r` and `-R`: how often to re-resolve the target, `None` for never.
    fn resolve_interval(&self) -> Result<Option<Duration>, Refusal> {
        let interval = self
            .resolve_interval
            .as_deref()
            .map(|s| {
                crate::cmd::values::c_seconds(s, "-r/--resolve-interval", DEFAULT_RESOLVE_INTERVAL)
            })
            .transpose()
            .map_err(value("resolve-interval"))?;
        // C refuses -R only beside an -r that changes the interval: `-R -r 60` (or -r 0,
        // the default) starts there, so it starts here.
        if self.no_resolve && interval.is_some_and(|r| r != DEFAULT_RESOLVE_INTERVAL) {
            return Err(shape(
                "no-resolve",
                "-r/--resolve-interval and -R/--no-resolve cannot be used together",
            ));
        }
        Ok(match self.no_resolve {
            true => None,
            false => Some(interval.unwrap_or(DEFAULT_RESOLVE_INTERVAL)),
        })
    }
}

/// The targets of `-t` given more than once (an extension: C takes one): `first`, then
/// each of `more` as an address, none twice, each fit for `bind` as the first is.
pub(crate) fn more_targets(
    first: Address,
    more: &[String],
    bind: Option<&Address>,
) -> Result<Vec<Address>, Refusal> {
    let mut targets = vec![first];
    for t in more {
        let target = crate::cmd::values::address(t, "-t/--target").map_err(|m| ("target", m))?;
        check_bind(bind, &target).map_err(value("bind"))?;
        if targets.contains(&target) {
            return Err(value("target")(format!(
                "-t/--target: {target} given twice: list each target once"
            )));
        }
        targets.push(target);
    }
    Ok(targets)
}

/// Parses `--KEY` (the configuration file's `KEY`): seconds, more than 0.
fn seconds(s: Option<&str>, key: &'static str) -> Result<Option<Duration>, Refusal> {
    s.map(|s| crate::cmd::values::seconds(s, &format!("--{key}")))
        .transpose()
        .map_err(value(key))
}

/// A refusal of the command line's shape, concerning the configuration file key `key`.
fn shape(key: &'static str, msg: &str) -> Refusal {
    (key, Mistake::Shape(msg.to_owned()))
}

/// A refusal of a value, concerning the configuration file key `key`.
fn value<E: std::fmt::Display>(key: &'static str) -> impl Fn(E) -> Refusal {
    move |e| (key, Mistake::Value(e.to_string()))
}

/// Parses `--socket-mode`: octal permission bits, such as `660` or `0660`.
fn parse_mode(s: &str) -> Result<u32, String> {
    let bad = || {
        format!(
            "invalid value '{s}' for --socket-mode: expected octal permission bits from 0 to 0777, such as 0660"
        )
    };
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(bad());
    }
    // Set through the umask at bind, which covers the permission bits only (set-id and
    // sticky bits mean nothing on a socket).
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(bad)
}

/// Parses `-n`. Digits only: `usize::from_str` would also take `+5`, which upstream's
/// strict number parsing rejects.
///
/// As C spiped 1.6 (`PARSENUM` into a `size_t`, which is `strtoumax`): leading blanks, an
/// optional sign, and `0x` (hexadecimal) or `0` (octal) prefixes are taken, and a minus
/// sign wraps around, so `-1` is the largest count. A count no process could reach (past
/// `u32::MAX`) is returned as 0, no limit, which is what it means.
fn parse_count(s: &str) -> Result<usize, String> {
    let bad = |why: &str| format!("invalid value '{s}' for -n/--max-connections: {why}");
    let t = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, h)
    } else if t.len() > 1 && t.starts_with('0') {
        (8, &t[1..])
    } else {
        (10, t)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(bad("expected a whole number (0 = no limit)"));
    }
    let n = u64::from_str_radix(digits, radix).map_err(|_| bad("number too large"))?;
    let n = if negative { n.wrapping_neg() } else { n };
    Ok(if n > u64::from(u32::MAX) {
        0
    } else {
        n as usize
    })
}
