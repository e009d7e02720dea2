//! `spiped`'s command line: the argh struct, and the validation that turns it into
//! [`SpipedOptions`].

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use argh::{ArgsInfo, FromArgs};
use spiped_transports::Address;

use super::{Parsed, Tool, ToolDoc};

const TOOL: Tool = Tool {
    name: "spiped",
    usage: "\
usage: spiped {-e | -d} -s <source socket> -t <target socket> -k <key file>
    [-DFj] [-b <bind address>] [-f | -g] [-n <max # connections>]
    [-o <connection timeout>] [-p <pidfile>] [-r <rtime> | -R] [--syslog]
    [-u <username> | <:groupname> | <username:groupname>]
       spiped -v
",
};

/// How often the target is re-resolved when neither `-r` nor `-R` is given.
const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(60);

/// The simultaneous-connection limit when `-n` is not given.
const DEFAULT_MAX_CONNECTIONS: usize = 100;

pub use crate::conn::Direction;

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
}

/// The `-u` argument: whom to become after binding the source socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserSpec {
    /// `-u user`: that user, and that user's primary group.
    User(String),
    /// `-u :group`: only the group.
    Group(String),
    /// `-u user:group`: both.
    UserGroup(String, String),
}

impl FromStr for UserSpec {
    type Err = String;

    /// Parses `user`, `:group` or `user:group`. Empty names (`:`, `user:`) are errors
    /// rather than "no change", because a script that writes `-u "$U:$G"` with an unset
    /// variable means something, and silently running as root is the wrong guess.
    fn from_str(s: &str) -> Result<UserSpec, String> {
        let bad = |why: &str| format!("invalid value '{s}' for -u/--user: {why}");
        let spec = match s.split_once(':') {
            None if s.is_empty() => return Err(bad("empty user name")),
            None => UserSpec::User(s.to_owned()),
            Some(("", "")) => return Err(bad("expected user, :group or user:group")),
            Some((_, "")) => return Err(bad("empty group name after ':'")),
            Some((_, g)) if g.contains(':') => return Err(bad("more than one ':'")),
            Some(("", g)) => UserSpec::Group(g.to_owned()),
            Some((u, g)) => UserSpec::UserGroup(u.to_owned(), g.to_owned()),
        };
        Ok(spec)
    }
}

/// Parses `spiped`'s arguments (without `argv[0]`).
pub fn parse(args: &[String]) -> Parsed<SpipedOptions> {
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
struct Args {
    /// take plaintext on source, encrypt to target
    #[argh(switch, short = 'e')]
    encrypt: bool,

    /// take encrypted on source, decrypt to target
    #[argh(switch, short = 'd')]
    decrypt: bool,

    /// listen address: /path, host:port, [ip]:port
    #[argh(option, short = 's', arg_name = "source socket")]
    source: Option<String>,

    /// connect address; names re-resolved every -r
    #[argh(option, short = 't', arg_name = "target socket")]
    target: Option<String>,

    /// key file; - reads stdin; repeat on -d to rotate keys
    #[argh(option, short = 'k', arg_name = "key file")]
    key: Vec<String>,

    /// local address for outgoing connections
    #[argh(option, short = 'b', arg_name = "bind address")]
    bind: Option<String>,

    /// daemonize first, retry DNS until it works
    #[argh(switch, short = 'D')]
    wait_dns: bool,

    /// stay in the foreground; no pidfile
    #[argh(switch, short = 'F')]
    foreground: bool,

    /// disable TCP keep-alives
    #[argh(switch, short = 'j')]
    no_keepalive: bool,

    /// handshake without Diffie-Hellman (no PFS)
    #[argh(switch, short = 'f')]
    fast: bool,

    /// require PFS: drop peers that use -f
    #[argh(switch, short = 'g')]
    require_pfs: bool,

    /// use the X25519 handshake (PFS, cheap; only with -e, against this spiped -d)
    #[argh(switch)]
    x25519: bool,

    /// connection limit (default 100; 0 = none)
    #[argh(option, short = 'n', arg_name = "max # connections")]
    max_connections: Option<String>,

    /// connect + handshake timeout, seconds (default 5)
    #[argh(option, short = 'o', arg_name = "connection timeout")]
    timeout: Option<String>,

    /// pidfile (default <source>.pid; none with -F)
    #[argh(option, short = 'p', arg_name = "pidfile")]
    pidfile: Option<String>,

    /// re-resolve target every rtime s (default 60)
    #[argh(option, short = 'r', arg_name = "rtime")]
    resolve_interval: Option<String>,

    /// never re-resolve the target
    #[argh(switch, short = 'R')]
    no_resolve: bool,

    /// after daemonizing, warn to syslog not stderr
    #[argh(switch)]
    syslog: bool,

    /// after binding, run as user, :group or user:group
    #[argh(option, short = 'u', arg_name = "user[:group]")]
    user: Option<String>,

    /// with -e: send a PROXY protocol header first
    #[argh(option, arg_name = "v1|v2")]
    proxy: Option<String>,

    /// with -d: connect to target only after handshake
    #[argh(switch)]
    connect_after_handshake: bool,

    /// log each connection when opened and closed
    #[argh(switch)]
    log_connections: bool,

    /// permission bits (octal) for a UNIX source socket
    #[argh(option, arg_name = "mode")]
    socket_mode: Option<String>,

    /// owner of a UNIX source socket: user, :group or user:group
    #[argh(option, arg_name = "user[:group]")]
    socket_owner: Option<String>,

    /// confinement once serving (default on): on, or strict to kill on a forbidden system call
    #[argh(option, arg_name = "on|strict")]
    sandbox: Option<String>,

    /// do not confine the process (Landlock, seccomp, capabilities)
    #[argh(switch)]
    no_sandbox: bool,
    /// on SIGTERM, close connections still open after this many s
    #[argh(option, arg_name = "seconds")]
    drain_timeout: Option<String>,

    /// print the version and exit
    #[argh(switch, short = 'v')]
    version: bool,
}

impl super::Validate for Args {
    type Options = SpipedOptions;

    fn version(&self) -> bool {
        self.version
    }

    /// Checks what argh cannot express: required options, exclusive pairs, and values.
    /// Presence problems are reported before value problems, so the first complaint is
    /// about the shape of the command line.
    fn validate(self) -> Result<SpipedOptions, super::Mistake> {
        let direction = match (self.encrypt, self.decrypt) {
            (true, false) => Direction::Encrypt,
            (false, true) => Direction::Decrypt,
            (true, true) => {
                return Err("-e/--encrypt and -d/--decrypt cannot be used together"
                    .to_owned()
                    .into());
            }
            (false, false) => {
                return Err("one of -e/--encrypt or -d/--decrypt is required"
                    .to_owned()
                    .into());
            }
        };
        // Under systemd socket activation the socket comes with the process.
        let source = match self.source {
            None if std::env::var_os("LISTEN_FDS").is_some() => None,
            s => Some(super::required(s, "-s/--source")?),
        };
        let unix_source = source.as_deref().is_some_and(|s| s.starts_with('/'));
        if (self.socket_mode.is_some() || self.socket_owner.is_some()) && !unix_source {
            return Err(
                "--socket-mode and --socket-owner are for a UNIX socket source \
                        (-s /path) that spiped creates"
                    .to_owned()
                    .into(),
            );
        }
        let target = super::required(self.target, "-t/--target")?;
        let mut keys = self.key.into_iter();
        let key_file = super::required(keys.next(), "-k/--key")?;
        let extra_key_files: Vec<String> = keys.collect();
        if !extra_key_files.is_empty() {
            if direction != Direction::Decrypt {
                return Err("-k/--key given more than once: only -d/--decrypt accepts \
                            several keys (key rotation); -e/--encrypt uses one"
                    .to_owned()
                    .into());
            }
            if extra_key_files.iter().chain([&key_file]).any(|k| k == "-") {
                return Err(
                    "-k - (key from standard input) cannot be combined with another -k"
                        .to_owned()
                        .into(),
                );
            }
        }
        if self.proxy.is_some() && direction != Direction::Encrypt {
            return Err("--proxy is for -e/--encrypt: it adds the header that the \
                        service behind -d/--decrypt reads"
                .to_owned()
                .into());
        }
        if self.connect_after_handshake && direction != Direction::Decrypt {
            return Err(
                "--connect-after-handshake is for -d/--decrypt; -e/--encrypt \
                        always connects before its handshake"
                    .to_owned()
                    .into(),
            );
        }
        super::fast_and_pfs(self.fast, self.require_pfs)?;
        super::fast_and_x25519(self.fast, self.x25519)?;
        if self.x25519 && direction == Direction::Decrypt {
            return Err("--x25519 is for -e/--encrypt; -d/--decrypt always accepts \
                        X25519 clients"
                .to_owned()
                .into());
        }
        if self.no_resolve && self.resolve_interval.is_some() {
            return Err(
                "-r/--resolve-interval and -R/--no-resolve cannot be used together"
                    .to_owned()
                    .into(),
            );
        }

        let max_connections = match self.max_connections {
            None => Some(DEFAULT_MAX_CONNECTIONS),
            Some(s) => match parse_count(&s).map_err(super::Mistake::Value)? {
                0 => None,
                n => Some(n),
            },
        };
        let resolve_interval = match (self.no_resolve, self.resolve_interval) {
            (true, _) => None,
            (false, None) => Some(DEFAULT_RESOLVE_INTERVAL),
            (false, Some(s)) => {
                Some(super::seconds(&s, "-r/--resolve-interval").map_err(super::Mistake::Value)?)
            }
        };

        let sandbox = super::sandbox(self.sandbox, self.no_sandbox)?;
        let pidfile = self
            .pidfile
            .unwrap_or_else(|| format!("{}.pid", source.as_deref().unwrap_or("spiped")));
        Ok(SpipedOptions {
            direction,
            source: source
                .map(|s| super::address(&s, "-s/--source"))
                .transpose()?,
            target: super::address(&target, "-t/--target")?,
            key_file,
            bind: super::bind_address(self.bind, "-b/--bind")?,
            wait_dns: self.wait_dns,
            foreground: self.foreground,
            keepalive: !self.no_keepalive,
            fast: self.fast,
            require_pfs: self.require_pfs,
            x25519: self.x25519,
            max_connections,
            timeout: super::timeout(self.timeout)?,
            pidfile: PathBuf::from(pidfile),
            resolve_interval,
            syslog: self.syslog,
            user: self
                .user
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(super::Mistake::Value)?,
            extra_key_files,
            proxy: self
                .proxy
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(super::Mistake::Value)?,
            connect_after_handshake: self.connect_after_handshake,
            log_connections: self.log_connections,
            socket_mode: self
                .socket_mode
                .as_deref()
                .map(parse_mode)
                .transpose()
                .map_err(super::Mistake::Value)?,
            socket_owner: self
                .socket_owner
                .as_deref()
                .map(|s| {
                    s.parse::<UserSpec>()
                        .map_err(|e| e.replace("-u/--user", "--socket-owner"))
                })
                .transpose()
                .map_err(super::Mistake::Value)?,
            sandbox,
            drain_timeout: self
                .drain_timeout
                .map(|s| super::seconds(&s, "--drain-timeout"))
                .transpose()
                .map_err(super::Mistake::Value)?,
        })
    }
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
fn parse_count(s: &str) -> Result<usize, String> {
    let bad = |why: &str| format!("invalid value '{s}' for -n/--max-connections: {why}");
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("expected a non-negative whole number (0 = no limit)"));
    }
    s.parse().map_err(|_| bad("number too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::argv::OptSpec;

    fn args(s: &[&str]) -> Vec<String> {
        crate::cli::testing::args(s)
    }

    fn run(s: &[&str]) -> SpipedOptions {
        crate::cli::testing::run(parse, s)
    }

    /// Asserts a usage error and returns its first line.
    fn fail(s: &[&str]) -> String {
        crate::cli::testing::fail(parse, "spiped", s)
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
            (&with(&["-n", "-1"]), "'-1' for -n/--max-connections"),
            (&with(&["-n", "+5"]), "-n/--max-connections"),
            (&with(&["-nfive"]), "-n/--max-connections"),
            (&with(&["-n99999999999999999999999"]), "too large"),
            (
                &with(&["-o0"]),
                "-o/--timeout: the number of seconds must be greater",
            ),
            (&with(&["-o", "-1"]), "-o/--timeout"),
            (&with(&["-o", "inf"]), "must be finite"),
            (&with(&["-o", "nan"]), "must be finite"),
            (&with(&["-o", "90000"]), "at most 86400"),
            (&with(&["-r", "0"]), "-r/--resolve-interval"),
            (&with(&["-r", "infinity"]), "-r/--resolve-interval"),
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
        let mut want: Vec<char> = "bdefghjknoprstuvDFR".chars().collect();
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
            let _ = super::super::spipe::parse(&args(argv));
            let mut more = with(&[]);
            more.extend_from_slice(argv);
            let _ = parse(&args(&more));
        }
    }
}
