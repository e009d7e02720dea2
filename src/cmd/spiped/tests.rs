//! `spiped`'s command line, as tests: every form C spiped takes, and every mistake named.

use std::path::PathBuf;
use std::time::Duration;

use spiped_transports::Address;

use super::args::*;
use crate::cmd::argv::OptSpec;
use crate::cmd::parse::Parsed;
use crate::config::Direction;
use crate::config::{Config, KeyRoute, PipeConfig, Process};
use crate::process::daemonize::UserSpec;

fn args(s: &[&str]) -> Vec<String> {
    crate::cmd::parse::testing::args(s)
}

/// The configuration of one pipe that `s` describes.
fn run(s: &[&str]) -> Config {
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
        Config {
            process: Process {
                wait_dns: false,
                foreground: false,
                pidfile: PathBuf::from("[127.0.0.1]:8025.pid"),
                syslog: false,
                user: None,
                drain_timeout: None,
                sandbox: crate::sandbox::Mode::On,
                metrics: None,
            },
            pipes: vec![PipeConfig {
                name: "[127.0.0.1]:8025".into(),
                direction: Direction::Encrypt,
                source: Some(Address::parse("[127.0.0.1]:8025").unwrap()),
                keys: vec![KeyRoute {
                    file: "/etc/key".into(),
                    targets: vec![Address::Name {
                        host: "host".into(),
                        port: 25
                    }],
                    at: None,
                }],
                bind: None,
                keepalive: true,
                fast: false,
                require_pfs: false,
                x25519: false,
                max_connections: Some(100),
                timeout: Duration::from_secs(5),
                resolve_interval: Some(Duration::from_secs(60)),
                proxy: None,
                connect_after_handshake: false,
                log_connections: false,
                socket_mode: None,
                socket_owner: None,
                allow: vec![],
                idle_timeout: None,
                ..PipeConfig::new(String::new(), Direction::Encrypt)
            }],
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
    assert_eq!(o.pipes[0].keys[0].file, "/new");
    let extra: Vec<&str> = o.pipes[0].keys[1..]
        .iter()
        .map(|k| k.file.as_str())
        .collect();
    assert_eq!(extra, ["/old", "/older"]);
    assert!(o.pipes[0].connect_after_handshake && o.pipes[0].log_connections);
    assert_eq!(o.pipes[0].proxy, None);
    for (v, want) in [
        ("v1", crate::session::proxy::Version::V1),
        ("v2", crate::session::proxy::Version::V2),
    ] {
        assert_eq!(run(&with(&["--proxy", v])).pipes[0].proxy, Some(want));
    }
    assert!(fail(&with(&["--proxy", "v3"])).contains("invalid value 'v3' for --proxy"));
    use crate::sandbox::Mode;
    assert_eq!(run(&with(&[])).process.sandbox, Mode::On);
    assert_eq!(run(&with(&["--sandbox", "on"])).process.sandbox, Mode::On);
    assert_eq!(
        run(&with(&["--sandbox=strict"])).process.sandbox,
        Mode::Strict
    );
    assert_eq!(run(&with(&["--no-sandbox"])).process.sandbox, Mode::Off);
    assert!(fail(&with(&["--sandbox", "off"])).contains("invalid value 'off' for --sandbox"));
    assert!(
        fail(&with(&["--sandbox", "strict", "--no-sandbox"]))
            .contains("--sandbox and --no-sandbox cannot be used together")
    );
    assert_eq!(run(&with(&[])).process.drain_timeout, None);
    let o = run(&with(&["--metrics", "[127.0.0.1]:9187"]));
    assert_eq!(
        o.process.metrics,
        Some(Address::parse("[127.0.0.1]:9187").unwrap())
    );
    let o = run(&with(&["--metrics=/run/spiped/metrics.sock"]));
    assert_eq!(
        o.process.metrics,
        Some(Address::parse("/run/spiped/metrics.sock").unwrap())
    );
    assert!(fail(&with(&["--metrics", "9187"])).contains("--metrics"));
    assert_eq!(
        run(&with(&["--drain-timeout", "2.5"]))
            .process
            .drain_timeout,
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
    assert_eq!(o.pipes[0].socket_mode, Some(0o660));
    assert_eq!(
        o.pipes[0].socket_owner,
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
    assert_eq!(o.pipes[0].direction, Direction::Decrypt);
    assert_eq!(
        o.pipes[0].source,
        Some(Address::Unix("/run/in.sock".into()))
    );
    assert_eq!(o.pipes[0].keys[0].file, "/etc/key");
    assert!(
        o.process.wait_dns && o.process.foreground && !o.pipes[0].keepalive && o.process.syslog
    );
    assert_eq!(o.pipes[0].max_connections, Some(5));
    assert_eq!(o.pipes[0].timeout, Duration::from_millis(500));
    assert_eq!(
        o.pipes[0].resolve_interval,
        Some(Duration::from_millis(2500))
    );
    assert_eq!(
        o.pipes[0].bind,
        Some(Address::parse_bind("[10.0.0.1]").unwrap())
    );
    assert_eq!(o.process.pidfile, PathBuf::from("/run/x.pid"));
    assert_eq!(
        run(&["-e", "-s", "1.2.3.4:5", "-t/b", "-kk"])
            .process
            .pidfile,
        PathBuf::from("1.2.3.4:5.pid")
    );
    assert_eq!(
        o.process.user,
        Some(UserSpec::UserGroup("nobody".into(), "nogroup".into()))
    );

    assert_eq!(run(&with(&[])).pipes[0].keys[0].file, "/k");
    let o = run(&["-ekkey", "-s/a", "-t/b"]);
    assert_eq!(
        (o.pipes[0].direction, o.pipes[0].keys[0].file.as_str()),
        (Direction::Encrypt, "key")
    );
    assert_eq!(
        run(&["-e", "-s/a", "-t/b", "-k", "-"]).pipes[0].keys[0].file,
        "-"
    );
    assert_eq!(
        run(&["-e", "-s/a", "-t/b", "-k-"]).pipes[0].keys[0].file,
        "-"
    );
    let o = run(&with(&["-fR", "-n", "0"]));
    assert!(
        o.pipes[0].fast
            && o.pipes[0].resolve_interval.is_none()
            && o.pipes[0].max_connections.is_none()
    );
    assert!(run(&with(&["-g"])).pipes[0].require_pfs);
    assert_eq!(run(&with(&["--"])).pipes[0].keys[0].file, "/k");
}

/// Numbers as C spiped 1.6 parses them (PARSENUM, then 0 means the default).
#[test]
fn numbers_that_c_takes() {
    let o = run(&with(&["-o", "0", "-r", "0"]));
    assert_eq!(o.pipes[0].timeout, Duration::from_secs(5));
    assert_eq!(o.pipes[0].resolve_interval, Some(Duration::from_secs(60)));
    assert_eq!(
        run(&with(&["-o", "90000"])).pipes[0].timeout,
        Duration::from_secs(90_000)
    );
    assert!(
        run(&with(&["-R", "-r", "60"])).pipes[0]
            .resolve_interval
            .is_none()
    );
    assert!(
        run(&with(&["-R", "-r0"])).pipes[0]
            .resolve_interval
            .is_none()
    );
    for (n, want) in [
        ("-1", None),
        ("0", None),
        ("0x10", Some(16)),
        ("010", Some(8)),
        ("+5", Some(5)),
        (" 5", Some(5)),
        ("99999999999", None),
    ] {
        assert_eq!(
            run(&with(&["-n", n])).pipes[0].max_connections,
            want,
            "-n {n}"
        );
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
    assert_eq!(o.pipes[0].direction, Direction::Decrypt);
    assert_eq!(o.pipes[0].keys[0].file, "x");
    assert!(
        o.process.wait_dns
            && o.process.foreground
            && !o.pipes[0].keepalive
            && o.pipes[0].require_pfs
    );
    assert_eq!(o.pipes[0].max_connections, Some(7));
    assert_eq!(o.pipes[0].timeout, Duration::from_secs(3));
    assert_eq!(o.pipes[0].resolve_interval, None);
    assert_eq!(o.process.user, Some(UserSpec::Group("wheel".into())));
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
    assert!(o.pipes[0].fast);
    assert_eq!(o.pipes[0].keys[0].file, "-");
    assert_eq!(o.pipes[0].resolve_interval, Some(Duration::from_secs(9)));
    assert_eq!(o.process.user, Some(UserSpec::User("daemon".into())));
    assert!(run(&with(&["--x25519", "-g"])).pipes[0].x25519);
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
    crate::cmd::parse::testing::refusals(parse, "spiped", cases);
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

/// The usage's `-c` form shows every option that combines with `-c`: a bundled letter
/// in `[-DF]`, any other by name.
#[test]
fn config_usage_shows_every_option_that_combines_with_c() {
    let form = TOOL
        .usage
        .split_once("spiped -c ")
        .and_then(|(_, rest)| rest.split_once("spiped -v"))
        .expect("a -c form before -v")
        .0;
    for opt in CONFIG_OPTIONS {
        let shown = match opt.strip_prefix('-') {
            Some(letter) if letter.len() == 1 => {
                form.contains(&format!("[{opt} "))
                    || form.contains("[-DF]") && "DF".contains(letter)
            }
            _ => form.contains(&format!("{opt} ")) || form.contains(&format!("{opt}]")),
        };
        assert!(
            shown,
            "{opt} missing from the -c form of the usage:\n{form}"
        );
    }
    assert!(fail(&["-c", "f", "-e"]).contains("--metrics, --sandbox and --no-sandbox combine"));
}

/// The normaliser's table comes from argh's metadata; check it still names every
/// letter of the C tool, and that argh accepts each canonical spelling it emits.
#[test]
fn option_table_matches_argh() {
    let mut want: Vec<char> = "bcdefghjknoprstuvDFR".chars().collect();
    want.sort_unstable();
    assert_eq!(
        crate::cmd::parse::testing::option_letters::<Args>("spiped"),
        want
    );
    assert!(
        OptSpec::table_for::<Args>()
            .iter()
            .any(|o| o.long == "--syslog" && o.short.is_none())
    );
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
