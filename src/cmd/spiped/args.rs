//! `spiped`'s command line: the argh struct, and the validation that turns it into
//! [`SpipedOptions`].

use std::path::PathBuf;
use std::time::Duration;

use argh::{ArgsInfo, FromArgs};
use spiped_transports::Address;

use crate::cmd::parse::{Parsed, Tool, ToolDoc};

const TOOL: Tool = Tool {
    name: "spiped",
    usage: "\
usage: spiped {-e | -d} -s <source socket> -t <target socket> -k <key file>
    [-DFj] [-b <bind address>] [-f | -g] [-n <max # connections>]
    [-o <connection timeout>] [-p <pidfile>] [-r <rtime> | -R] [--syslog]
    [-u <username> | <:groupname> | <username:groupname>]
       spiped -c <config file> [--check] [-DF] [-p <pidfile>] [--syslog]
    [-u <username> | <:groupname> | <username:groupname>]
       spiped -v
",
};

/// How often the target is re-resolved when neither `-r` nor `-R` is given.
const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(60);

/// The simultaneous-connection limit when `-n` is not given.
const DEFAULT_MAX_CONNECTIONS: usize = 100;

use crate::config::conn::Direction;
use crate::daemon::UserSpec;

/// A validated `spiped` command line.
#[derive(Clone, Debug, PartialEq)]
pub struct SpipedOptions {
    /// `-e` or `-d`.
    pub direction: Direction,
    /// `-s`: the address to listen on.
    /// `None` only under systemd socket activation, which passed the socket to serve.
    pub source: Option<Address>,
    /// `-t`: the address to connect each accepted connection to.
    pub target: Address,
    /// `-k`: the key file's path, or `-` for standard input; the first `-k` when
    /// repeated (the key `-e` uses).
    pub key_file: String,
    /// `-b`: the local address outgoing connections bind to (port 0 when left out).
    pub bind: Option<Address>,
    /// `-D`: daemonize before resolving, and retry failed look-ups until they succeed.
    pub wait_dns: bool,
    /// `-F`: stay in the foreground and write no pidfile.
    pub foreground: bool,
    /// TCP keep-alives on outgoing and accepted sockets; `-j` turns them off.
    pub keepalive: bool,
    /// `-f`: handshake without Diffie-Hellman (no perfect forward secrecy).
    pub fast: bool,
    /// `-g`: refuse peers that use `-f`.
    pub require_pfs: bool,
    /// `--x25519` (only with `-e`): use the X25519 handshake extension.
    pub x25519: bool,
    /// `-n`: at most this many connections at once; `None` means no limit (`-n 0`).
    pub max_connections: Option<usize>,
    /// `-o`: connect + handshake timeout.
    pub timeout: Duration,
    /// `-p`, or by default the `-s` argument as written plus `.pid` (as C spiped names
    /// it, so a TCP source's pidfile lands in the working directory); `spiped.pid` when
    /// socket activation left `-s` out. None is written with `-F`.
    pub pidfile: PathBuf,
    /// `-r`: how often to re-resolve the target; `None` with `-R`.
    pub resolve_interval: Option<Duration>,
    /// `--syslog`: after daemonizing, warn to syslog not stderr.
    pub syslog: bool,
    /// `-u`: the user and/or group to switch to after binding.
    pub user: Option<UserSpec>,
    /// Further `-k` files (only with `-d`): keys also accepted, for key rotation.
    pub extra_key_files: Vec<String>,
    /// `--proxy v1|v2` (only with `-e`): send a PROXY protocol header first.
    pub proxy: Option<crate::proxy::Version>,
    /// `--connect-after-handshake` (only with `-d`).
    pub connect_after_handshake: bool,
    /// `--log-connections`: log each connection's open and close.
    pub log_connections: bool,
    /// `--socket-mode`: permission bits for a UNIX source socket's file.
    pub socket_mode: Option<u32>,
    /// `--socket-owner`: owner and/or group for a UNIX source socket's file.
    pub socket_owner: Option<UserSpec>,
    /// `--sandbox` / `--no-sandbox`: how the daemon confines itself once serving.
    pub sandbox: crate::sandbox::Mode,
    /// `--drain-timeout`: after SIGTERM/SIGINT, how long open connections may go on
    /// before they are closed; `None` (the default, as C) waits for them all.
    pub drain_timeout: Option<Duration>,
    /// `--metrics`: where to serve Prometheus metrics, `/status` and `/healthz`
    /// over HTTP; `None` (the default) serves nothing.
    pub metrics: Option<Address>,
}

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

    /// serve the pipes of this TOML file (see spiped.conf in the man page)
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

    fn validate(self) -> Result<Invocation, crate::cmd::parse::Mistake> {
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
        self.pipe()
            .map(|o| Invocation::Pipe(Box::new(o)))
            .map_err(|(_, m)| m)
    }
}

/// What a valid `spiped` command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Invocation {
    /// One pipe, described by the command line.
    Pipe(Box<SpipedOptions>),
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

/// A pipe's settings, as a configuration file or command line states them, that cannot
/// be used: the configuration file key it concerns (the long option name) and the
/// message, worded as for the command line.
pub(crate) type Refusal = (&'static str, crate::cmd::parse::Mistake);

impl Args {
    /// `-c`: only process-wide options may come with it.
    fn config_invocation(self) -> Result<ConfigOptions, crate::cmd::parse::Mistake> {
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
            return Err(format!(
                "{name} is a pipe setting: with -c/--config it goes in the file's [[pipe]] \
                 table (only -D, -F, -p, -u, --syslog, --drain-timeout, --metrics, --sandbox \
                 and --no-sandbox combine with -c)"
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
    pub(crate) fn pipe(self) -> Result<SpipedOptions, Refusal> {
        let shape =
            |key: &'static str, msg: &str| (key, crate::cmd::parse::Mistake::Shape(msg.to_owned()));
        let value =
            |key: &'static str| move |msg: String| (key, crate::cmd::parse::Mistake::Value(msg));
        let direction = match (self.encrypt, self.decrypt) {
            (true, false) => Direction::Encrypt,
            (false, true) => Direction::Decrypt,
            (true, true) => {
                return Err(shape(
                    "decrypt",
                    "-e/--encrypt and -d/--decrypt cannot be used together",
                ));
            }
            (false, false) => {
                return Err(shape(
                    "encrypt",
                    "one of -e/--encrypt or -d/--decrypt is required",
                ));
            }
        };
        // Under systemd socket activation the socket comes with the process.
        let source = match self.source {
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
        let target = crate::cmd::parse::required(self.target, "-t/--target")
            .map_err(|m| ("target", m.into()))?;
        let mut keys = self.key.into_iter();
        let key_file =
            crate::cmd::parse::required(keys.next(), "-k/--key").map_err(|m| ("key", m.into()))?;
        let extra_key_files: Vec<String> = keys.collect();
        if !extra_key_files.is_empty() {
            if direction != Direction::Decrypt {
                return Err(shape(
                    "key",
                    "-k/--key given more than once: only -d/--decrypt accepts \
                     several keys (key rotation); -e/--encrypt uses one",
                ));
            }
            if extra_key_files.iter().chain([&key_file]).any(|k| k == "-") {
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
        crate::cmd::parse::fast_and_pfs(self.fast, self.require_pfs)
            .map_err(|m| ("require-pfs", m.into()))?;
        crate::cmd::parse::fast_and_x25519(self.fast, self.x25519)
            .map_err(|m| ("x25519", m.into()))?;
        if self.x25519 && direction == Direction::Decrypt {
            return Err(shape(
                "x25519",
                "--x25519 is for -e/--encrypt; -d/--decrypt always accepts \
                 X25519 clients",
            ));
        }
        let resolve_interval = self
            .resolve_interval
            .map(|s| {
                crate::cmd::parse::c_seconds(&s, "-r/--resolve-interval", DEFAULT_RESOLVE_INTERVAL)
            })
            .transpose()
            .map_err(value("resolve-interval"))?;
        // C refuses -R only beside an -r that changes the interval: `-R -r 60` (or -r 0,
        // the default) starts there, so it starts here.
        if self.no_resolve && resolve_interval.is_some_and(|r| r != DEFAULT_RESOLVE_INTERVAL) {
            return Err(shape(
                "no-resolve",
                "-r/--resolve-interval and -R/--no-resolve cannot be used together",
            ));
        }

        let max_connections = match self.max_connections {
            None => Some(DEFAULT_MAX_CONNECTIONS),
            Some(s) => match parse_count(&s).map_err(value("max-connections"))? {
                0 => None,
                n => Some(n),
            },
        };
        let resolve_interval = match (self.no_resolve, resolve_interval) {
            (true, _) => None,
            (false, r) => Some(r.unwrap_or(DEFAULT_RESOLVE_INTERVAL)),
        };

        let sandbox = crate::cmd::parse::sandbox(self.sandbox, self.no_sandbox)
            .map_err(|m| ("sandbox", m))?;
        let pidfile = self
            .pidfile
            .unwrap_or_else(|| format!("{}.pid", source.as_deref().unwrap_or("spiped")));
        let address =
            |s: &str, name, key| crate::cmd::parse::address(s, name).map_err(|m| (key, m));
        Ok(SpipedOptions {
            direction,
            source: source
                .map(|s| address(&s, "-s/--source", "source"))
                .transpose()?,
            target: address(&target, "-t/--target", "target")?,
            key_file,
            bind: crate::cmd::parse::bind_address(self.bind, "-b/--bind")
                .map_err(|m| ("bind", m))?,
            wait_dns: self.wait_dns,
            foreground: self.foreground,
            keepalive: !self.no_keepalive,
            fast: self.fast,
            require_pfs: self.require_pfs,
            x25519: self.x25519,
            max_connections,
            timeout: crate::cmd::parse::timeout(self.timeout).map_err(|m| ("timeout", m))?,
            pidfile: PathBuf::from(pidfile),
            resolve_interval,
            syslog: self.syslog,
            user: parse_user(self.user.as_deref())?,
            extra_key_files,
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
                .map(|s| {
                    s.parse::<UserSpec>()
                        .map_err(|e| e.replace("-u/--user", "--socket-owner"))
                })
                .transpose()
                .map_err(value("socket-owner"))?,
            sandbox,
            drain_timeout: parse_drain_timeout(self.drain_timeout.as_deref())?,
            metrics: parse_metrics(self.metrics.as_deref())?,
        })
    }
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
        .map_err(|m| ("drain-timeout", crate::cmd::parse::Mistake::Value(m)))
}

/// Parses `-u` (the `user` setting of a configuration file).
pub(crate) fn parse_user(s: Option<&str>) -> Result<Option<UserSpec>, Refusal> {
    s.map(str::parse)
        .transpose()
        .map_err(|m| ("user", crate::cmd::parse::Mistake::Value(m)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::argv::OptSpec;

    fn args(s: &[&str]) -> Vec<String> {
        crate::cmd::parse::testing::args(s)
    }

    fn run(s: &[&str]) -> SpipedOptions {
        match crate::cmd::parse::testing::run(parse, s) {
            Invocation::Pipe(o) => *o,
            Invocation::Config(c) => panic!("{s:?} read as a configuration: {c:?}"),
        }
    }

    /// Asserts a usage error and returns its first line.
    fn fail(s: &[&str]) -> String {
        crate::cmd::parse::testing::fail(parse, "spiped", s)
    }

    const BASE: &[&str] = &["-e", "-s", "[127.0.0.1]:8025", "-t", "host:25", "-k", "/k"];

    fn with(extra: &[&str]) -> Vec<&'static str> {
        // Leaking is fine in tests and keeps the helpers simple.
        let extra: Vec<&'static str> = extra
            .iter()
            .map(|s| &*Box::leak(s.to_string().into_boxed_str()))
            .collect();
        [BASE, &extra].concat()
    }

    #[test]
    fn the_documented_command_line() {
        let o = run(&[
            "-e",
            "-s",
            "[127.0.0.1]:8025",
            "-t",
            "host:25",
            "-k",
            "/etc/key",
        ]);
        assert_eq!(
            o,
            SpipedOptions {
                direction: Direction::Encrypt,
                source: Some(Address::parse("[127.0.0.1]:8025").unwrap()),
                target: Address::Name {
                    host: "host".into(),
                    port: 25
                },
                key_file: "/etc/key".into(),
                bind: None,
                wait_dns: false,
                foreground: false,
                keepalive: true,
                fast: false,
                require_pfs: false,
                x25519: false,
                max_connections: Some(100),
                timeout: Duration::from_secs(5),
                pidfile: PathBuf::from("[127.0.0.1]:8025.pid"),
                resolve_interval: Some(Duration::from_secs(60)),
                syslog: false,
                user: None,
                extra_key_files: vec![],
                proxy: None,
                connect_after_handshake: false,
                log_connections: false,
                socket_mode: None,
                socket_owner: None,
                sandbox: crate::sandbox::Mode::On,
                drain_timeout: None,
                metrics: None,
            }
        );
    }

    #[test]
    fn operator_options() {
        let o = run(&[
            "-d",
            "-s/a",
            "-t/b",
            "-k/new",
            "-k",
            "/old",
            "--key=/older",
            "--connect-after-handshake",
            "--log-connections",
        ]);
        assert_eq!(o.key_file, "/new");
        assert_eq!(o.extra_key_files, ["/old", "/older"]);
        assert!(o.connect_after_handshake && o.log_connections);
        assert_eq!(o.proxy, None);
        for (v, want) in [
            ("v1", crate::proxy::Version::V1),
            ("v2", crate::proxy::Version::V2),
        ] {
            assert_eq!(run(&with(&["--proxy", v])).proxy, Some(want));
        }
        assert!(fail(&with(&["--proxy", "v3"])).contains("invalid value 'v3' for --proxy"));
        use crate::sandbox::Mode;
        assert_eq!(run(&with(&[])).sandbox, Mode::On);
        assert_eq!(run(&with(&["--sandbox", "on"])).sandbox, Mode::On);
        assert_eq!(run(&with(&["--sandbox=strict"])).sandbox, Mode::Strict);
        assert_eq!(run(&with(&["--no-sandbox"])).sandbox, Mode::Off);
        assert!(fail(&with(&["--sandbox", "off"])).contains("invalid value 'off' for --sandbox"));
        assert!(
            fail(&with(&["--sandbox", "strict", "--no-sandbox"]))
                .contains("--sandbox and --no-sandbox cannot be used together")
        );
        assert_eq!(run(&with(&[])).drain_timeout, None);
        let o = run(&with(&["--metrics", "[127.0.0.1]:9187"]));
        assert_eq!(o.metrics, Some(Address::parse("[127.0.0.1]:9187").unwrap()));
        let o = run(&with(&["--metrics=/run/spiped/metrics.sock"]));
        assert_eq!(
            o.metrics,
            Some(Address::parse("/run/spiped/metrics.sock").unwrap())
        );
        assert!(fail(&with(&["--metrics", "9187"])).contains("--metrics"));
        assert_eq!(
            run(&with(&["--drain-timeout", "2.5"])).drain_timeout,
            Some(Duration::from_millis(2500))
        );
        assert!(fail(&with(&["--drain-timeout", "0"])).contains("for --drain-timeout"));
        let o = run(&[
            "-d",
            "-s/run/a.sock",
            "-t/b",
            "-k/k",
            "--socket-mode",
            "0660",
            "--socket-owner",
            "nobody:nogroup",
        ]);
        assert_eq!(o.socket_mode, Some(0o660));
        assert_eq!(
            o.socket_owner,
            Some(UserSpec::UserGroup("nobody".into(), "nogroup".into()))
        );
        for bad in ["0668", "12345", "rw", "4755", "1777"] {
            let e = fail(&["-d", "-s/a", "-t/b", "-k/k", "--socket-mode", bad]);
            assert!(
                e.contains("for --socket-mode: expected octal"),
                "{bad}: {e}"
            );
        }
        assert!(
            fail(&["-d", "-s/a", "-t/b", "-k/k", "--socket-owner", "u:"])
                .contains("for --socket-owner")
        );
        assert!(fail(&with(&["--socket-mode", "600"])).contains("are for a UNIX socket source"));
    }

    #[test]
    fn bundled_and_attached_forms() {
        let o = run(&[
            "-d",
            "-s/run/in.sock",
            "-t",
            "[::1]:22",
            "-k/etc/key",
            "-DFj",
            "-n5",
            "-o0.5",
            "-r",
            "2.5",
            "-b[10.0.0.1]",
            "-p/run/x.pid",
            "-u",
            "nobody:nogroup",
            "--syslog",
        ]);
        assert_eq!(o.direction, Direction::Decrypt);
        assert_eq!(o.source, Some(Address::Unix("/run/in.sock".into())));
        assert_eq!(o.key_file, "/etc/key");
        assert!(o.wait_dns && o.foreground && !o.keepalive && o.syslog);
        assert_eq!(o.max_connections, Some(5));
        assert_eq!(o.timeout, Duration::from_millis(500));
        assert_eq!(o.resolve_interval, Some(Duration::from_millis(2500)));
        assert_eq!(o.bind, Some(Address::parse_bind("[10.0.0.1]").unwrap()));
        assert_eq!(o.pidfile, PathBuf::from("/run/x.pid"));
        assert_eq!(
            run(&["-e", "-s", "1.2.3.4:5", "-t/b", "-kk"]).pidfile,
            PathBuf::from("1.2.3.4:5.pid")
        );
        assert_eq!(
            o.user,
            Some(UserSpec::UserGroup("nobody".into(), "nogroup".into()))
        );

        assert_eq!(run(&with(&[])).key_file, "/k");
        let o = run(&["-ekkey", "-s/a", "-t/b"]);
        assert_eq!(
            (o.direction, o.key_file.as_str()),
            (Direction::Encrypt, "key")
        );
        assert_eq!(run(&["-e", "-s/a", "-t/b", "-k", "-"]).key_file, "-");
        assert_eq!(run(&["-e", "-s/a", "-t/b", "-k-"]).key_file, "-");
        let o = run(&with(&["-fR", "-n", "0"]));
        assert!(o.fast && o.resolve_interval.is_none() && o.max_connections.is_none());
        assert!(run(&with(&["-g"])).require_pfs);
        assert_eq!(run(&with(&["--"])).key_file, "/k");
    }

    /// Numbers as C spiped 1.6 parses them (PARSENUM, then 0 means the default).
    #[test]
    fn numbers_that_c_takes() {
        let o = run(&with(&["-o", "0", "-r", "0"]));
        assert_eq!(o.timeout, Duration::from_secs(5));
        assert_eq!(o.resolve_interval, Some(Duration::from_secs(60)));
        assert_eq!(
            run(&with(&["-o", "90000"])).timeout,
            Duration::from_secs(90_000)
        );
        assert!(run(&with(&["-R", "-r", "60"])).resolve_interval.is_none());
        assert!(run(&with(&["-R", "-r0"])).resolve_interval.is_none());
        for (n, want) in [
            ("-1", None),
            ("0", None),
            ("0x10", Some(16)),
            ("010", Some(8)),
            ("+5", Some(5)),
            (" 5", Some(5)),
            ("99999999999", None),
        ] {
            assert_eq!(run(&with(&["-n", n])).max_connections, want, "-n {n}");
        }
    }

    #[test]
    fn long_names() {
        let o = run(&[
            "--decrypt",
            "--source",
            "/a",
            "--target=host:1",
            "--key=x",
            "--bind",
            "host",
            "--wait-dns",
            "--foreground",
            "--no-keepalive",
            "--require-pfs",
            "--max-connections=7",
            "--timeout",
            "3",
            "--pidfile",
            "/p",
            "--no-resolve",
            "--user",
            ":wheel",
        ]);
        assert_eq!(o.direction, Direction::Decrypt);
        assert_eq!(o.key_file, "x");
        assert!(o.wait_dns && o.foreground && !o.keepalive && o.require_pfs);
        assert_eq!(o.max_connections, Some(7));
        assert_eq!(o.timeout, Duration::from_secs(3));
        assert_eq!(o.resolve_interval, None);
        assert_eq!(o.user, Some(UserSpec::Group("wheel".into())));
        let o = run(&[
            "--encrypt",
            "-s/a",
            "-t/b",
            "--key",
            "-",
            "--fast",
            "--resolve-interval=9",
            "-u",
            "daemon",
        ]);
        assert!(o.fast);
        assert_eq!(o.key_file, "-");
        assert_eq!(o.resolve_interval, Some(Duration::from_secs(9)));
        assert_eq!(o.user, Some(UserSpec::User("daemon".into())));
        assert!(run(&with(&["--x25519", "-g"])).x25519);
    }

    #[test]
    fn usage_errors_name_the_problem() {
        let cases: &[(&[&str], &str)] = &[
            (&with(&["-x"]), "unknown option '-x'"),
            (&with(&["--bogus"]), "unknown option '--bogus'"),
            (&with(&["-e"]), "-e/--encrypt given more than once"),
            (&with(&["-DD"]), "-D/--wait-dns given more than once"),
            (
                &with(&["--key=/j"]),
                "-k/--key given more than once: only -d/--decrypt accepts several keys",
            ),
            (
                &["-d", "-s/a", "-t/b", "-k/k", "-k-"],
                "-k - (key from standard input) cannot be combined",
            ),
            (
                &with(&["--connect-after-handshake"]),
                "--connect-after-handshake is for -d",
            ),
            (
                &["-d", "-s/a", "-t/b", "-k/k", "--proxy", "v1"],
                "--proxy is for -e/--encrypt",
            ),
            (
                &["-e", "-t/b", "-k/k"],
                "missing required option -s/--source",
            ),
            (
                &["-e", "-s/a", "-k/k"],
                "missing required option -t/--target",
            ),
            (&["-e", "-s/a", "-t/b"], "missing required option -k/--key"),
            (&with(&["stray"]), "unexpected argument 'stray'"),
            (&with(&["--", "x"]), "unexpected argument 'x'"),
            (&["-e", "-s/a", "-t/b", "-k"], "-k/--key requires a value"),
            (
                &with(&["-d"]),
                "-e/--encrypt and -d/--decrypt cannot be used together",
            ),
            (
                &["-s/a", "-t/b", "-k/k"],
                "one of -e/--encrypt or -d/--decrypt",
            ),
            (&with(&["-fg"]), "-f/--fast and -g/--require-pfs"),
            (&with(&["-f", "--x25519"]), "-f/--fast and --x25519"),
            (
                &["-d", "-s/a", "-t/b", "-k/k", "--x25519"],
                "--x25519 is for -e/--encrypt; -d/--decrypt always accepts X25519 clients",
            ),
            (
                &with(&["-r5", "-R"]),
                "-r/--resolve-interval and -R/--no-resolve",
            ),
            (&with(&["-n", "--1"]), "'--1' for -n/--max-connections"),
            (&with(&["-n", "5x"]), "-n/--max-connections"),
            (&with(&["-n", "08"]), "-n/--max-connections"),
            (&with(&["-nfive"]), "-n/--max-connections"),
            (&with(&["-n99999999999999999999999"]), "too large"),
            (
                &with(&["-o", "-1"]),
                "-o/--timeout: the number of seconds must not be negative",
            ),
            (&with(&["-o", "nan"]), "-o/--timeout"),
            (&with(&["-r", "-2"]), "-r/--resolve-interval"),
            (
                &with(&["-r", "5", "-R"]),
                "-r/--resolve-interval and -R/--no-resolve",
            ),
            (
                &["-e", "-s", "nope", "-t/b", "-k/k"],
                "-s/--source: invalid address 'nope'",
            ),
            (
                &["-e", "-s/a", "-t", "h:99999", "-k/k"],
                "-t/--target: invalid address",
            ),
            (&with(&["-b", "[1.2.3]"]), "-b/--bind: invalid address"),
            (&with(&["-u", ":"]), "-u/--user"),
            (&with(&["-u", "a:"]), "empty group name"),
            (&with(&["-u", "a:b:c"]), "-u/--user"),
            (&with(&["--syslog=yes"]), "--syslog does not take a value"),
            (
                &with(&["-p", ""]),
                "-p/--pidfile requires a non-empty value",
            ),
        ];
        for (argv, want) in cases {
            let first = fail(argv);
            assert!(
                first.contains(want),
                "{argv:?}: got {first:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn version_and_help() {
        let want_version = format!("spiped {}\n", env!("CARGO_PKG_VERSION"));
        for argv in [&["-v"][..], &["--version"], &["-e", "-v"]] {
            assert_eq!(
                parse(&args(argv)),
                Parsed::Exit {
                    stdout: String::new(),
                    stderr: want_version.clone(),
                    status: 0
                }
            );
        }
        for argv in [
            &["-h"][..],
            &["--help"],
            &["-Fh"],
            &["-e", "--help", "junk"],
        ] {
            let Parsed::Exit {
                stdout,
                stderr,
                status,
            } = parse(&args(argv))
            else {
                panic!("{argv:?} ran");
            };
            assert_eq!(status, 0);
            assert!(stderr.is_empty());
            assert!(stdout.starts_with(TOOL.usage), "{stdout}");
            assert!(stdout.contains("-k, --key <key file>"), "{stdout}");
            assert!(stdout.contains("    --syslog"), "{stdout}");
            assert!(stdout.contains("-h, --help"), "{stdout}");
        }
    }

    /// The normaliser's table comes from argh's metadata; check it still names every
    /// letter of the C tool, and that argh accepts each canonical spelling it emits.
    #[test]
    fn option_table_matches_argh() {
        let table = OptSpec::table_for::<Args>();
        let mut letters: Vec<char> = table.iter().filter_map(|o| o.short).collect();
        letters.sort_unstable();
        let mut want: Vec<char> = "bcdefghjknoprstuvDFR".chars().collect();
        want.sort_unstable();
        assert_eq!(letters, want);
        assert!(
            table
                .iter()
                .any(|o| o.long == "--syslog" && o.short.is_none())
        );
        for opt in table.iter().filter(|o| o.long != "--help") {
            let argv: Vec<&str> = if opt.takes_value {
                vec![opt.long, "x"]
            } else {
                vec![opt.long]
            };
            assert!(Args::from_args(&["spiped"], &argv).is_ok(), "{opt:?}");
        }
    }

    #[test]
    fn odd_inputs_never_panic() {
        let odd: &[&[&str]] = &[
            &[],
            &[""],
            &["-"],
            &["--"],
            &["---"],
            &["-k"],
            &["-@"],
            &["--="],
            &["--key="],
            &["=", "-"],
            &["-e", "", "-s"],
            &["help"],
            &["-k", "--help"],
            &["-\u{e9}"],
            &["-e\u{1F600}"],
            &["--\u{1F600}=x"],
            &["-s", "["],
            &["-s", "[]:"],
            &["-s", ":"],
            &["-u", "::"],
            &["-o", "1e400"],
            &["-n", "\u{0661}"],
        ];
        for argv in odd {
            let _ = parse(&args(argv));
            let _ = crate::cmd::spipe::args::parse(&args(argv));
            let mut more = with(&[]);
            more.extend_from_slice(argv);
            let _ = parse(&args(&more));
        }
    }
}
