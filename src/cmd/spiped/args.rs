//! `spiped`'s command line: the argh struct, and the validation that turns it into
//! an [`Invocation`]: a configuration of one pipe (its pipe options are checked in
//! `pipe_args.rs`), or a configuration file to read with the process-wide options
//! that combine with it.

use std::path::PathBuf;
use std::time::Duration;

use argh::{ArgsInfo, FromArgs};
use spiped_transports::Address;

use crate::cmd::parse::{Mistake, Parsed, Refusal, Tool, ToolDoc};
use crate::config::Config;
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

    /// connect address; names re-resolved every -r; repeat for several targets
    #[argh(option, short = 't', arg_name = "target socket")]
    pub(crate) target: Vec<String>,

    /// with several -t: failover, round-robin or least-connections
    #[argh(option, arg_name = "policy")]
    pub(crate) balance: Option<String>,

    /// bound on one connect attempt, s (default the smaller of -o and 5)
    #[argh(option, arg_name = "seconds")]
    pub(crate) connect_timeout: Option<String>,

    /// check each target this often, s (-d: connect; -e: handshake)
    #[argh(option, arg_name = "seconds")]
    pub(crate) health_interval: Option<String>,

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
            (!self.target.is_empty(), "-t/--target"),
            (self.balance.is_some(), "--balance"),
            (self.connect_timeout.is_some(), "--connect-timeout"),
            (self.health_interval.is_some(), "--health-interval"),
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
                _ => Some(crate::cmd::values::sandbox(self.sandbox, self.no_sandbox)?),
            },
            metrics: parse_metrics(self.metrics.as_deref()).map_err(|(_, m)| m)?,
        })
    }
}

/// Parses `--metrics` (the `metrics` setting of a configuration file): an address in
/// `-s`'s syntax.
pub(crate) fn parse_metrics(s: Option<&str>) -> Result<Option<Address>, Refusal> {
    s.map(|s| crate::cmd::values::address(s, "--metrics").map_err(|m| ("metrics", m)))
        .transpose()
}

/// Parses `--drain-timeout` (the `drain-timeout` setting of a configuration file).
pub(crate) fn parse_drain_timeout(s: Option<&str>) -> Result<Option<Duration>, Refusal> {
    s.map(|s| crate::cmd::values::seconds(s, "--drain-timeout"))
        .transpose()
        .map_err(|m| ("drain-timeout", Mistake::Value(m)))
}

/// Parses `-u` (the `user` setting of a configuration file).
pub(crate) fn parse_user(s: Option<&str>) -> Result<Option<UserSpec>, Refusal> {
    s.map(str::parse)
        .transpose()
        .map_err(|e: UserSpecError| ("user", Mistake::Value(e.to_string())))
}
