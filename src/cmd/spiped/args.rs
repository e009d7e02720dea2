//! `spiped`'s command line: the argh struct, and the validation that turns it into
//! an [`Invocation`]: a configuration of one pipe, or a configuration file to read.

use std::path::PathBuf;
use std::time::Duration;

use argh::{ArgsInfo, FromArgs};
use spiped_transports::Address;

use crate::cmd::link::{LinkArgs, link_args};
use crate::cmd::parse::{Mistake, Parsed, Refusal, Tool, ToolDoc};
use crate::config::{Config, Direction, KeyRoute, PipeConfig, Process};
use crate::process::daemonize::{UserSpec, UserSpecError};

pub(super) const TOOL: Tool = Tool {
    name: "spiped",
    usage: "\
usage: spiped {-e | -d} -s <source socket> -t <target socket> -k <key file>
    [-DFj] [-b <bind address>] [-f | -g] [-n <max # connections>]
    [-o <connection timeout>] [-p <pidfile>] [-r <rtime> | -R] [--syslog]
    [-u <username> | <:groupname> | <username:groupname>]
       spiped -c <config file> [--check] [-DF] [-p <pidfile>] [--syslog]
    [-u <username> | <:groupname> | <username:groupname>]
    [--drain-timeout <seconds>] [--metrics <address>]
    [--sandbox {on | strict} | --no-sandbox]
       spiped -v
",
};

/// The process-wide options that combine with `-c`, as the refusal of any other names
/// them (the usage's `-c` form shows each).
pub(super) const CONFIG_OPTIONS: &[&str] = &[
    "-D",
    "-F",
    "-p",
    "-u",
    "--syslog",
    "--drain-timeout",
    "--metrics",
    "--sandbox",
    "--no-sandbox",
];

/// How often the target is re-resolved when neither `-r` nor `-R` is given.
const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(60);

/// The simultaneous-connection limit when `-n` is not given.
const DEFAULT_MAX_CONNECTIONS: usize = 100;

/// Parses `spiped`'s arguments (without `argv[0]`).
pub fn parse(args: &[String]) -> Parsed<Invocation> {
    TOOL.parse::<Args>(args)
}

/// `spiped`'s options, for completions and documentation checks.
pub fn doc() -> ToolDoc {
    TOOL.doc::<Args>(&[])
}

/// spiped: symmetrically encrypted and authenticated pipes between sockets.
///
/// Values stay strings here so that validation, not argh, words every complaint.
/// A new option is a new field: its `short`, long name and whether it takes a value
/// reach the getopt normaliser through argh's `ArgsInfo`, with no second table.
#[derive(FromArgs, ArgsInfo, Debug, Default)]
pub(crate) struct Args {
    /// take plaintext on source, encrypt to target
    #[argh(switch, short = 'e')]
    pub(crate) encrypt: bool,

    /// take encrypted on source, decrypt to target
    #[argh(switch, short = 'd')]
    pub(crate) decrypt: bool,

    /// listen address: /path, host:port, [ip]:port
    #[argh(option, short = 's', arg_name = "source socket")]
    pub(crate) source: Option<String>,

    /// connect address; names re-resolved every -r
    #[argh(option, short = 't', arg_name = "target socket")]
    pub(crate) target: Option<String>,

    /// key file; - reads stdin; repeat on -d to rotate keys
    #[argh(option, short = 'k', arg_name = "key file")]
    pub(crate) key: Vec<String>,

    /// local address for outgoing connections
    #[argh(option, short = 'b', arg_name = "bind address")]
    pub(crate) bind: Option<String>,

    /// daemonize first, retry DNS until it works
    #[argh(switch, short = 'D')]
    pub(crate) wait_dns: bool,

    /// stay in the foreground; no pidfile
    #[argh(switch, short = 'F')]
    pub(crate) foreground: bool,

    /// disable TCP keep-alives
    #[argh(switch, short = 'j')]
    pub(crate) no_keepalive: bool,

    /// handshake without Diffie-Hellman (no PFS)
    #[argh(switch, short = 'f')]
    pub(crate) fast: bool,

    /// require PFS: drop peers that use -f
    #[argh(switch, short = 'g')]
    pub(crate) require_pfs: bool,

    /// use the X25519 handshake (PFS, cheap; only with -e, against this spiped -d)
    #[argh(switch)]
    pub(crate) x25519: bool,

    /// connection limit (default 100; 0 = none)
    #[argh(option, short = 'n', arg_name = "max # connections")]
    pub(crate) max_connections: Option<String>,

    /// connect + handshake timeout, seconds (default 5)
    #[argh(option, short = 'o', arg_name = "connection timeout")]
    pub(crate) timeout: Option<String>,

    /// pidfile (default <source>.pid; none with -F)
    #[argh(option, short = 'p', arg_name = "pidfile")]
    pub(crate) pidfile: Option<String>,

    /// re-resolve target every rtime s (default 60)
    #[argh(option, short = 'r', arg_name = "rtime")]
    pub(crate) resolve_interval: Option<String>,

    /// never re-resolve the target
    #[argh(switch, short = 'R')]
    pub(crate) no_resolve: bool,

    /// after daemonizing, warn to syslog not stderr
    #[argh(switch)]
    pub(crate) syslog: bool,

    /// after binding, run as user, :group or user:group
    #[argh(option, short = 'u', arg_name = "user[:group]")]
    pub(crate) user: Option<String>,

    /// with -e: send a PROXY protocol header first
    #[argh(option, arg_name = "v1|v2")]
    pub(crate) proxy: Option<String>,

    /// with -d: connect to target only after handshake
    #[argh(switch)]
    pub(crate) connect_after_handshake: bool,

    /// log each connection when opened and closed
    #[argh(switch)]
    pub(crate) log_connections: bool,

    /// permission bits (octal) for a UNIX source socket
    #[argh(option, arg_name = "mode")]
    pub(crate) socket_mode: Option<String>,

    /// owner of a UNIX source socket: user, :group or user:group
    #[argh(option, arg_name = "user[:group]")]
    pub(crate) socket_owner: Option<String>,

    /// serve the pipes of this TOML file (see CONFIGURATION FILE in spiped(1))
    #[argh(option, short = 'c', arg_name = "config file")]
    pub(crate) config: Option<String>,

    /// with -c: check the file and its key files, then exit
    #[argh(switch)]
    pub(crate) check: bool,

    /// confinement once serving (default on): on, or strict to kill on a forbidden system call
    #[argh(option, arg_name = "on|strict")]
    pub(crate) sandbox: Option<String>,

    /// do not confine the process (Landlock, seccomp, capabilities)
    #[argh(switch)]
    pub(crate) no_sandbox: bool,

    /// on SIGTERM, close connections still open after this many s
    #[argh(option, arg_name = "seconds")]
    pub(crate) drain_timeout: Option<String>,

    /// serve /metrics, /status, /healthz over HTTP here
    #[argh(option, arg_name = "address")]
    pub(crate) metrics: Option<String>,

    /// print the version and exit
    #[argh(switch, short = 'v')]
    pub(crate) version: bool,
}

impl crate::cmd::parse::Validate for Args {
    type Options = Invocation;

    fn version(&self) -> bool {
        self.version
    }

    fn validate(self) -> Result<Invocation, Mistake> {
        if self.config.is_some() {
            return self.config_invocation().map(Invocation::Config);
        }
        if self.check {
            return Err(
                "--check checks a configuration file: give it with -c/--config"
                    .to_owned()
                    .into(),
            );
        }
        let (pipe, process) = self.pipe().map_err(|(_, m)| m)?;
        Ok(Invocation::Pipe(Box::new(Config {
            process,
            pipes: vec![pipe],
        })))
    }
}

/// What a valid `spiped` command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Invocation {
    /// One pipe, described by the command line: a configuration of one pipe.
    Pipe(Box<Config>),
    /// The pipes of a configuration file (`-c`).
    Config(ConfigOptions),
}

/// `spiped -c FILE` and the process-wide options that combine with it; each one given
/// here overrides the file's setting of the same name.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigOptions {
    /// `-c`: the configuration file.
    pub path: PathBuf,
    /// `--check`: check the file and its key files, then exit.
    pub check: bool,
    /// `-D`.
    pub wait_dns: bool,
    /// `-F`.
    pub foreground: bool,
    /// `-p`.
    pub pidfile: Option<PathBuf>,
    /// `--syslog`.
    pub syslog: bool,
    /// `-u`.
    pub user: Option<UserSpec>,
    /// `--drain-timeout`.
    pub drain_timeout: Option<Duration>,
    /// `--sandbox` or `--no-sandbox`, when given.
    pub sandbox: Option<crate::sandbox::Mode>,
    /// `--metrics`.
    pub metrics: Option<Address>,
}

impl Args {
    /// `-c`: only process-wide options may come with it.
    fn config_invocation(self) -> Result<ConfigOptions, Mistake> {
        let pipe_options = [
            (self.encrypt, "-e/--encrypt"),
            (self.decrypt, "-d/--decrypt"),
            (self.source.is_some(), "-s/--source"),
            (self.target.is_some(), "-t/--target"),
            (!self.key.is_empty(), "-k/--key"),
            (self.bind.is_some(), "-b/--bind"),
            (self.no_keepalive, "-j/--no-keepalive"),
            (self.fast, "-f/--fast"),
            (self.require_pfs, "-g/--require-pfs"),
            (self.x25519, "--x25519"),
            (self.max_connections.is_some(), "-n/--max-connections"),
            (self.timeout.is_some(), "-o/--timeout"),
            (self.resolve_interval.is_some(), "-r/--resolve-interval"),
            (self.no_resolve, "-R/--no-resolve"),
            (self.proxy.is_some(), "--proxy"),
            (self.connect_after_handshake, "--connect-after-handshake"),
            (self.log_connections, "--log-connections"),
            (self.socket_mode.is_some(), "--socket-mode"),
            (self.socket_owner.is_some(), "--socket-owner"),
        ];
        if let Some((_, name)) = pipe_options.iter().find(|(given, _)| *given) {
            let (last, others) = CONFIG_OPTIONS.split_last().expect("options");
            return Err(format!(
                "{name} is a pipe setting: with -c/--config it goes in the file's [[pipe]] \
                 table (only {} and {last} combine with -c)",
                others.join(", ")
            )
            .into());
        }
        Ok(ConfigOptions {
            path: PathBuf::from(self.config.unwrap_or_default()),
            check: self.check,
            wait_dns: self.wait_dns,
            foreground: self.foreground,
            pidfile: self.pidfile.map(PathBuf::from),
            syslog: self.syslog,
            user: parse_user(self.user.as_deref()).map_err(|(_, m)| m)?,
            drain_timeout: parse_drain_timeout(self.drain_timeout.as_deref())
                .map_err(|(_, m)| m)?,
            sandbox: match (&self.sandbox, self.no_sandbox) {
                (None, false) => None,
                _ => Some(crate::cmd::parse::sandbox(self.sandbox, self.no_sandbox)?),
            },
            metrics: parse_metrics(self.metrics.as_deref()).map_err(|(_, m)| m)?,
        })
    }

    /// Checks what argh cannot express: required options, exclusive pairs, and values.
    /// Presence problems are reported before value problems, so the first complaint is
    /// about the shape of the command line. A configuration file's pipe goes through
    /// here too, so that both word every mistake alike.
    pub(crate) fn pipe(mut self) -> Result<(PipeConfig, Process), Refusal> {
        let direction = self.direction()?;
        let source = self.source()?;
        let mut keys = std::mem::take(&mut self.key).into_iter();
        let link = link_args!(self, keys.next());
        link.check_shape()?;
        let extra_key_files: Vec<String> = keys.collect();
        self.check_for(direction, &link, &extra_key_files)?;
        let resolve_interval = self.resolve_interval()?;
        let max_connections = match &self.max_connections {
            None => Some(DEFAULT_MAX_CONNECTIONS),
            Some(s) => match parse_count(s).map_err(value("max-connections"))? {
                0 => None,
                n => Some(n),
            },
        };

        let sandbox = crate::cmd::parse::sandbox(self.sandbox, self.no_sandbox)
            .map_err(|m| ("sandbox", m))?;
        let pidfile = self
            .pidfile
            .unwrap_or_else(|| format!("{}.pid", source.as_deref().unwrap_or("spiped")));
        let source = source
            .map(|s| crate::cmd::parse::address(&s, "-s/--source").map_err(|m| ("source", m)))
            .transpose()?;
        let link = link.validate()?;
        let user = parse_user(self.user.as_deref())?;
        let keys = std::iter::once(link.key_file)
            .chain(extra_key_files)
            .map(|file| KeyRoute {
                file,
                target: link.target.clone(),
                at: None,
            })
            .collect();
        let pipe = PipeConfig {
            name: source.as_ref().map_or_else(
                || "socket passed by systemd".to_owned(),
                ToString::to_string,
            ),
            direction,
            source,
            keys,
            bind: link.bind,
            keepalive: link.keepalive,
            fast: link.mode.fast,
            require_pfs: link.mode.require_pfs,
            x25519: link.mode.x25519,
            max_connections,
            timeout: link.timeout,
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
            // Only a configuration file sets these.
            allow: Vec::new(),
            idle_timeout: None,
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
                crate::cmd::parse::required(s, "-s/--source").map_err(|m| ("source", m.into()))?,
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
        link: &LinkArgs,
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
            if extra_key_files.iter().chain(&link.key).any(|k| k == "-") {
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
        if link.x25519 && direction == Direction::Decrypt {
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
                crate::cmd::parse::c_seconds(s, "-r/--resolve-interval", DEFAULT_RESOLVE_INTERVAL)
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

/// A refusal of the command line's shape, concerning the configuration file key `key`.
fn shape(key: &'static str, msg: &str) -> Refusal {
    (key, Mistake::Shape(msg.to_owned()))
}

/// A refusal of a value, concerning the configuration file key `key`.
fn value<E: std::fmt::Display>(key: &'static str) -> impl Fn(E) -> Refusal {
    move |e| (key, Mistake::Value(e.to_string()))
}

/// Parses `--metrics` (the `metrics` setting of a configuration file): an address in
/// `-s`'s syntax.
pub(crate) fn parse_metrics(s: Option<&str>) -> Result<Option<Address>, Refusal> {
    s.map(|s| crate::cmd::parse::address(s, "--metrics").map_err(|m| ("metrics", m)))
        .transpose()
}

/// Parses `--drain-timeout` (the `drain-timeout` setting of a configuration file).
pub(crate) fn parse_drain_timeout(s: Option<&str>) -> Result<Option<Duration>, Refusal> {
    s.map(|s| crate::cmd::parse::seconds(s, "--drain-timeout"))
        .transpose()
        .map_err(|m| ("drain-timeout", Mistake::Value(m)))
}

/// Parses `-u` (the `user` setting of a configuration file).
pub(crate) fn parse_user(s: Option<&str>) -> Result<Option<UserSpec>, Refusal> {
    s.map(str::parse)
        .transpose()
        .map_err(|e: UserSpecError| ("user", Mistake::Value(e.to_string())))
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
