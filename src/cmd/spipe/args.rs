//! `spipe`'s command line: the argh struct, and the validation that turns it into
//! [`SpipeOptions`].

use argh::{ArgsInfo, FromArgs};

use crate::cmd::parse::{Mistake, Parsed, Tool, ToolDoc};
use crate::cmd::shared_options::{SharedOptions, shared_args};

const TOOL: Tool = Tool {
    name: "spipe",
    usage: "\
usage: spipe -t <target socket> -k <key file> [-b <bind address>] [-f | -g] [-j]
    [-o <connection timeout>]
       spipe -v
",
};

/// A validated `spipe` command line.
#[derive(Clone, Debug, PartialEq)]
pub struct SpipeOptions {
    /// `-t` (the `spiped -d` to connect to), `-k`, `-b`, `-f`, `-g`, `--x25519` (needs
    /// our `spiped -d`), `-j` and `-o`.
    pub shared: SharedOptions,
    /// `--sandbox` / `--no-sandbox`: how spipe confines itself once connected.
    pub sandbox: crate::sandbox::Mode,
}

/// Parses `spipe`'s arguments (without `argv[0]`).
pub fn parse(args: &[String]) -> Parsed<SpipeOptions> {
    TOOL.parse::<Args>(args)
}

/// `spipe`'s options, for completions and documentation checks.
pub fn doc() -> ToolDoc {
    TOOL.doc::<Args>(&[])
}

/// spipe: connect standard input and output to an spiped server.
///
/// Values stay strings so that validation, not argh, words every complaint; see
/// `spiped::Args` for how a field reaches the getopt normaliser.
#[derive(FromArgs, ArgsInfo, Debug, Default)]
struct Args {
    /// the spiped -d to connect to
    #[argh(option, short = 't', arg_name = "target socket")]
    target: Option<String>,

    /// key file; - reads the key from stdin
    #[argh(option, short = 'k', arg_name = "key file")]
    key: Option<String>,

    /// local address for the connection
    #[argh(option, short = 'b', arg_name = "bind address")]
    bind: Option<String>,

    /// handshake without Diffie-Hellman (no PFS)
    #[argh(switch, short = 'f')]
    fast: bool,

    /// require PFS: refuse a server that uses -f
    #[argh(switch, short = 'g')]
    require_pfs: bool,

    /// use the X25519 handshake (PFS, cheap); needs our spiped -d
    #[argh(switch)]
    x25519: bool,

    /// disable TCP keep-alives
    #[argh(switch, short = 'j')]
    no_keepalive: bool,

    /// connect + handshake timeout, seconds (default 5)
    #[argh(option, short = 'o', arg_name = "connection timeout")]
    timeout: Option<String>,

    /// confinement once connected (default on): on, or strict to kill on a forbidden system call
    #[argh(option, arg_name = "on|strict")]
    sandbox: Option<String>,

    /// do not confine the process (Landlock, seccomp, capabilities)
    #[argh(switch)]
    no_sandbox: bool,

    /// print the version and exit
    #[argh(switch, short = 'v')]
    version: bool,
}

impl crate::cmd::parse::Validate for Args {
    type Options = SpipeOptions;

    fn version(&self) -> bool {
        self.version
    }

    /// Checks what argh cannot express; presence problems come before value problems.
    fn validate(mut self) -> Result<SpipeOptions, Mistake> {
        let shared = shared_args!(self, self.target.take(), self.key.take())
            .validate()
            .map_err(|(_, m)| m)?;
        Ok(SpipeOptions {
            shared,
            sandbox: crate::cmd::values::sandbox(self.sandbox, self.no_sandbox)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use spiped_transports::Address;

    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        crate::cmd::parse::testing::args(s)
    }

    fn run(s: &[&str]) -> SpipeOptions {
        crate::cmd::parse::testing::run(parse, s)
    }

    #[test]
    fn documented_forms() {
        let o = run(&["-t", "host:8025", "-k", "/etc/key"]);
        assert_eq!(
            o,
            SpipeOptions {
                shared: SharedOptions {
                    target: Address::Name {
                        host: "host".into(),
                        port: 8025
                    },
                    key_file: "/etc/key".into(),
                    bind: None,
                    mode: spiped_proto::handshake::Mode::default(),
                    keepalive: true,
                    timeout: Duration::from_secs(5),
                },
                sandbox: crate::sandbox::Mode::On,
            }
        );
        let o = run(&["-t[::1]:1", "-k/etc/key", "-fj", "-o0.5", "-b", "[::1]"]);
        assert!(o.shared.mode.fast && !o.shared.keepalive);
        assert_eq!(o.shared.timeout, Duration::from_millis(500));
        assert_eq!(o.shared.bind, Some(Address::parse_bind("[::1]").unwrap()));
        assert_eq!(run(&["-t/s", "-kkey", "-g"]).shared.key_file, "key");
        assert!(run(&["-t/s", "-k", "-", "-g"]).shared.mode.require_pfs);
        let o = run(&[
            "--target=host:1",
            "--key",
            "-",
            "--no-keepalive",
            "--timeout=2",
            "--bind=host",
        ]);
        assert_eq!(o.shared.key_file, "-");
        assert_eq!(o.shared.timeout, Duration::from_secs(2));
        assert!(run(&["-t/s", "-k/k", "--x25519", "-g"]).shared.mode.x25519);
        use crate::sandbox::Mode;
        assert_eq!(run(&["-t/s", "-k/k", "--no-sandbox"]).sandbox, Mode::Off);
        assert_eq!(
            run(&["-t/s", "-k/k", "--sandbox", "strict"]).sandbox,
            Mode::Strict
        );
    }

    #[test]
    fn usage_errors_name_the_problem() {
        let cases: &[(&[&str], &str)] = &[
            (&["-t/s", "-k/k", "-D"], "unknown option '-D'"),
            (&["-t/s", "-k/k", "-s/x"], "unknown option '-s'"),
            (
                &["-t/s", "-k/k", "-jj"],
                "-j/--no-keepalive given more than once",
            ),
            (&["-k/k"], "missing required option -t/--target"),
            (&["-t/s"], "missing required option -k/--key"),
            (&["-t/s", "-k/k", "x"], "unexpected argument 'x'"),
            (&["-t/s", "-k"], "-k/--key requires a value"),
            (&["-t/s", "-k/k", "-fg"], "-f/--fast and -g/--require-pfs"),
            (
                &["-t/s", "-k/k", "-f", "--x25519"],
                "-f/--fast and --x25519",
            ),
            (&["-t/s", "-k/k", "-o-1"], "-o/--timeout"),
            (&["-t/s", "-k/k", "-o", "nan"], "-o/--timeout"),
            (
                &["-t", "nope", "-k/k"],
                "-t/--target: invalid address 'nope'",
            ),
            (&["-t/s", "-k/k", "-b:"], "-b/--bind: invalid address"),
        ];
        crate::cmd::parse::testing::refusals(parse, "spipe", cases);
    }

    #[test]
    fn version_and_help() {
        assert_eq!(
            parse(&args(&["-v"])),
            Parsed::Exit {
                stdout: String::new(),
                stderr: format!("spipe {}\n", env!("CARGO_PKG_VERSION")),
                status: 0
            }
        );
        let Parsed::Exit { stdout, status, .. } = parse(&args(&["-h"])) else {
            panic!("-h ran");
        };
        assert_eq!(status, 0);
        assert!(stdout.starts_with(TOOL.usage));
        assert!(stdout.contains("-t, --target <target socket>"));
    }

    #[test]
    fn option_table_matches_argh() {
        assert_eq!(
            crate::cmd::parse::testing::option_letters::<Args>("spipe"),
            ['b', 'f', 'g', 'h', 'j', 'k', 'o', 't', 'v']
        );
    }
}
