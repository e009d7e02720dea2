use std::time::Duration;

use super::pipe_table::parse_net;
use super::*;
use crate::cmd::spiped::args::{Invocation, parse as parse_cli};
use crate::config::Direction;

fn read(text: &str) -> Result<Config, Vec<String>> {
    parse(Path::new("/etc/spiped.conf"), text)
}

/// The single error `text` draws.
fn error(text: &str) -> String {
    let errors = read(text).expect_err(text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.into_iter().next().unwrap()
}

/// The first line of the command line's complaint about `argv`.
fn cli_error(argv: &[&str]) -> String {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    match parse_cli(&argv) {
        Parsed::Exit { stderr, .. } => stderr.lines().next().unwrap().to_owned(),
        Parsed::Run(o) => panic!("{argv:?} accepted: {o:?}"),
    }
}

use crate::cmd::parse::Parsed;

/// The example of the man page and of issue 17, verbatim.
const EXAMPLE: &str = r#"
pidfile = "/run/spiped.pid"          # process-wide settings first
[[pipe]]
name = "smtp"
decrypt = true                       # or: encrypt = true
source = "[0.0.0.0]:8025"
target = "[127.0.0.1]:25"
key = "/etc/spiped/smtp.key"         # or a list, newest first: ["new.key", "old.key"]
[[pipe]]
name = "api"
decrypt = true
source = "[0.0.0.0]:9000"
keys = [{ file = "/etc/spiped/pg.key",    target = "[127.0.0.1]:5432" },
        { file = "/etc/spiped/redis.key", target = "[127.0.0.1]:6379" }]
allow = ["10.0.0.0/8", "127.0.0.1"]
idle-timeout = 600
"#;

#[test]
fn the_documented_example() {
    let c = read(EXAMPLE).unwrap();
    assert_eq!(c.process.pidfile, PathBuf::from("/run/spiped.pid"));
    assert!(!c.process.foreground && c.process.user.is_none());
    let [smtp, api] = &c.pipes[..] else {
        panic!("{c:?}")
    };
    assert_eq!(smtp.name, "smtp");
    assert_eq!(smtp.direction, Direction::Decrypt);
    assert_eq!(smtp.keys.len(), 1);
    assert_eq!(smtp.keys[0].at.as_deref(), Some("/etc/spiped.conf:8"));
    assert!(!smtp.routes_by_key());
    // The command line's defaults apply.
    assert_eq!(smtp.max_connections, Some(100));
    assert_eq!(smtp.timeout, Duration::from_secs(5));
    assert_eq!(smtp.idle_timeout, None);
    assert!(api.routes_by_key());
    assert_eq!(api.keys[1].file, "/etc/spiped/redis.key");
    assert_eq!(api.keys[1].targets[0].to_string(), "[127.0.0.1]:6379");
    assert_eq!(api.idle_timeout, Some(Duration::from_secs(600)));
    let nets: Vec<String> = api.allow.iter().map(ToString::to_string).collect();
    assert_eq!(nets, ["10.0.0.0/8", "127.0.0.1/32"]);
    assert!(smtp.allow.is_empty());
}

#[test]
fn a_command_line_and_its_file_make_the_same_pipe() {
    let argv = [
        "-e",
        "-s",
        "[127.0.0.1]:8025",
        "-t",
        "host:25",
        "-k",
        "/k",
        "-f",
        "-n",
        "7",
        "-o",
        "0.5",
        "-r",
        "9",
        "--proxy",
        "v2",
        "-j",
    ];
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let Parsed::Run(Invocation::Pipe(mut o)) = parse_cli(&argv) else {
        panic!()
    };
    let from_cli = o.pipes.remove(0);
    let from_file = read(
        r#"[[pipe]]
        encrypt = true
        source = "[127.0.0.1]:8025"
        target = "host:25"
        key = "/k"
        fast = true
        max-connections = 7
        timeout = 0.5
        resolve-interval = 9
        proxy = "v2"
        no-keepalive = true
        "#,
    )
    .unwrap()
    .pipes
    .remove(0);
    let without_place = |mut p: PipeConfig| {
        p.keys.iter_mut().for_each(|k| k.at = None);
        p
    };
    assert_eq!(without_place(from_file), from_cli);
}

#[test]
fn mistakes_name_file_line_and_key_in_the_command_lines_words() {
    let pipe = "[[pipe]]\nsource = \"[127.0.0.1]:1\"\ntarget = \"[127.0.0.1]:2\"\nkey = \"/k\"\n";
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "encrypt = true\nfast = true\nrequire-pfs = true\n",
            "/etc/spiped.conf:8: require-pfs: -f/--fast and -g/--require-pfs cannot be used together",
            &["-e", "-s/a", "-t/b", "-k/k", "-f", "-g"],
        ),
        (
            "encrypt = true\nmax-connections = 1.5\n",
            "/etc/spiped.conf:7: max-connections: invalid value '1.5' for -n/--max-connections",
            &["-e", "-s/a", "-t/b", "-k/k", "-n", "1.5"],
        ),
        (
            "encrypt = true\ndecrypt = true\n",
            "/etc/spiped.conf:7: decrypt: -e/--encrypt and -d/--decrypt cannot be used together",
            &["-e", "-d", "-s/a", "-t/b", "-k/k"],
        ),
        (
            "decrypt = true\nproxy = \"v1\"\n",
            "/etc/spiped.conf:7: proxy: --proxy is for -e/--encrypt",
            &["-d", "-s/a", "-t/b", "-k/k", "--proxy", "v1"],
        ),
        (
            "encrypt = true\ntimeout = -1\n",
            "/etc/spiped.conf:7: timeout: invalid value '-1' for -o/--timeout",
            &["-e", "-s/a", "-t/b", "-k/k", "-o", "-1"],
        ),
        (
            "encrypt = true\nbind = \"[1.2.3]\"\n",
            "/etc/spiped.conf:7: bind: -b/--bind: invalid address",
            &["-e", "-s/a", "-t/b", "-k/k", "-b", "[1.2.3]"],
        ),
    ];
    for (extra, want, argv) in cases {
        let e = error(&format!("\n{pipe}{extra}"));
        assert!(e.starts_with(want), "{extra}: {e}");
        let message = want.splitn(3, ": ").nth(2).unwrap();
        assert!(cli_error(argv).contains(message), "{argv:?}");
    }
    let d = "[[pipe]]\ndecrypt = true\nsource = \"[127.0.0.1]:1\"\n";
    let cases: &[(&str, &str)] = &[
        ("pidfile = [", "/etc/spiped.conf:1: pidfile: "),
        (
            "[[pipe]]\nfsat = true\n",
            "/etc/spiped.conf:2: unknown field `fsat`",
        ),
        (
            "[[pipe]]\nencrypt = \"yes\"\n",
            "/etc/spiped.conf:2: encrypt: invalid type: string \"yes\", expected a boolean",
        ),
        (
            "[[pipe]]\nencrypt = true\ntarget = \"[127.0.0.1]:2\"\nkey = \"/k\"\n",
            "/etc/spiped.conf:1: source: missing required option -s/--source",
        ),
        (
            &format!("{d}target = \"[127.0.0.1]:2\"\n"),
            "/etc/spiped.conf:1: key: missing required option -k/--key",
        ),
        (
            &format!(
                "{d}keys = [{{ file = \"/a\", target = \"[127.0.0.1]:2\" }}, {{ file = \"/b\" }}]\n"
            ),
            "/etc/spiped.conf:4: keys: key /b has no target",
        ),
        (
            &format!("{d}target = \"[127.0.0.1]:2\"\nkey = \"/k\"\nkeys = [{{ file = \"/a\" }}]\n"),
            "/etc/spiped.conf:6: keys: key and keys cannot be used together",
        ),
        (
            &format!("{d}target = \"[127.0.0.1]:2\"\nkey = 5\n"),
            "/etc/spiped.conf:5: key: expected a key file path or a list of them, found integer",
        ),
        (
            &format!("{d}target = \"[127.0.0.1]:2\"\nkey = \"-\"\n"),
            "/etc/spiped.conf:5: key: a key from standard input",
        ),
        (
            &format!("{d}target = \"[127.0.0.1]:2\"\nkey = \"/k\"\nallow = [\"10.0.0.0/33\"]\n"),
            "/etc/spiped.conf:6: allow: invalid address '10.0.0.0/33'",
        ),
        (
            &format!("{d}target = \"[127.0.0.1]:2\"\nkey = \"/k\"\nidle-timeout = \"x\"\n"),
            "/etc/spiped.conf:6: idle-timeout: expected a number, found string",
        ),
        (
            &format!("{d}target = \"[127.0.0.1]:2\"\nkey = \"/k\"\nidle-timeout = -3\n"),
            "/etc/spiped.conf:6: idle-timeout: invalid value '-3' for idle-timeout",
        ),
        (
            "[[pipe]]\nencrypt = true\nsource = \"/s\"\ntarget = \"[127.0.0.1]:2\"\nkey = \"/k\"\nallow = [\"::1\"]\n",
            "/etc/spiped.conf:6: allow: allow lists client IP addresses",
        ),
        (
            "[[pipe]]\nencrypt = true\nsource = \"/s\"\ntarget = \"[127.0.0.1]:2\"\nkey = [\"/k\", \"/j\"]\n",
            "/etc/spiped.conf:5: key: -k/--key given more than once: only -d/--decrypt",
        ),
        (
            "[[pipe]]\nencrypt = true\nsource = \"/s\"\nkeys = [{ file = \"/k\", target = \"[127.0.0.1]:2\" }]\n",
            "/etc/spiped.conf:4: keys: a key's own target (routing by key) is for -d/--decrypt",
        ),
        (
            "user = \"a:b:c\"\n",
            "/etc/spiped.conf:1: user: invalid value 'a:b:c' for -u/--user",
        ),
    ];
    for (text, want) in cases {
        let errors = read(text).expect_err(text);
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "{text}: {errors:?}, want {want}"
        );
    }
    let twice = format!("{pipe}encrypt = true\n{pipe}encrypt = true\n");
    assert!(
        error(&twice).starts_with(
            "/etc/spiped.conf:6: name: pipe name '[127.0.0.1]:1' is also used on line 1"
        )
    );
    let same_source =
        format!("{pipe}encrypt = true\nname = \"a\"\n{pipe}encrypt = true\nname = \"b\"\n");
    assert!(error(&same_source).starts_with(
        "/etc/spiped.conf:7: source: pipe 'b' listens on the same source as pipe 'a' (line 1)"
    ));
    assert!(error("pidfile = \"/p\"\n").contains("no [[pipe]] table"));
}

#[test]
fn odd_files_never_panic() {
    for text in [
        "",
        "\u{0}",
        "[[pipe]]",
        "[[pipe]]\n[[pipe]]",
        "pipe = 3",
        "=",
        "[pipe]\nx=1",
        "[[pipe]]\nkey = []\nencrypt=true\nsource=\"/a\"\ntarget=\"/b\"",
        "[[pipe]]\nkeys = []\ndecrypt=true\nsource=\"/a\"",
        "[[pipe]]\nmax-connections = 1e300\nencrypt=true\nsource=\"/a\"\ntarget=\"/b\"\nkey=\"/k\"",
    ] {
        let _ = read(text);
    }
}

/// The commented example in contrib/ stays a valid configuration.
#[test]
fn the_contrib_example_is_valid() {
    let text = include_str!("../../../../contrib/spiped.toml");
    let c = read(text).unwrap();
    let names: Vec<&str> = c.pipes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["smtp", "api", "backup", "db"]);
    assert!(c.pipes[1].routes_by_key());
    assert_eq!(c.pipes[3].keys[0].targets.len(), 2);
    assert_eq!(c.pipes[1].allow.len(), 3);
    // Its pidfile lies in a directory of its own, where the sandboxed daemon may remove
    // it at exit (not in /run itself, where it would stay behind).
    #[cfg(target_os = "linux")]
    {
        let dir = c.process.pidfile.parent().and_then(|d| d.to_str()).unwrap();
        assert!(
            dir.len() > 1 && !crate::sandbox::directories::SHARED_DIRECTORIES.contains(&dir),
            "{dir}"
        );
    }
}

/// `allow = []` would read as "no list" and serve everyone: refused, with the way to
/// say either.
#[test]
fn an_empty_allow_list_is_refused() {
    let text = "[[pipe]]\ndecrypt = true\nsource = \"[127.0.0.1]:1\"\ntarget = \"[127.0.0.1]:2\"\n\
                key = \"/k\"\nallow = []\n";
    assert_eq!(
        error(text),
        "/etc/spiped.conf:6: allow: the list is empty: list the clients to serve, or leave \
         allow out to serve every client"
    );
}

/// An IPv4-mapped entry means the IPv4 address (or network) it maps, as a peer's mapped
/// address does when it is matched.
#[test]
fn mapped_allow_entries_are_taken_as_ipv4() {
    for (entry, net) in [
        ("::ffff:127.0.0.1", "127.0.0.1/32"),
        ("[::ffff:10.1.2.3]", "10.1.2.3/32"),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:0.0.0.0/96", "0.0.0.0/0"),
        ("::1", "::1/128"),
        ("::ffff:0:0/80", "::ffff:0.0.0.0/80"),
    ] {
        assert_eq!(parse_net(entry).unwrap().to_string(), net, "{entry}");
    }
}

/// The configuration file is a regular file of at most 1 MiB; a larger one, a FIFO or
/// a device is refused with one line, having read no more than the cap.
#[test]
fn the_file_read_is_bounded_and_regular() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(MAX_CONFIG_FILE + 1).unwrap();
    assert_eq!(
        read_file(&big).unwrap_err().lines(),
        format!(
            "configuration file {} is larger than 1 MiB: is it the right file?",
            big.display()
        )
    );
    f.set_len(MAX_CONFIG_FILE).unwrap();
    assert_eq!(read_file(&big).unwrap().len() as u64, MAX_CONFIG_FILE);
    assert_eq!(
        read_file(Path::new("/dev/zero")).unwrap_err().lines(),
        "configuration file /dev/zero is a character device, not a regular file"
    );
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert!(
        read_file(&fifo)
            .unwrap_err()
            .lines()
            .ends_with("is a FIFO, not a regular file"),
        "a FIFO without writer is refused at once"
    );
}

/// A pipe of several targets, a key's own list, and the options that go with them.
#[test]
fn several_targets() {
    let c = read(
        r#"
[[pipe]]
decrypt = true
source = "[0.0.0.0]:9000"
target = ["[127.0.0.1]:1", "/run/b.sock"]
balance = "round-robin"
connect-timeout = 0.5
health-interval = 10
keys = [{ file = "/k1" }, { file = "/k2", target = ["[127.0.0.1]:3", "[127.0.0.1]:4"] }]
"#,
    )
    .unwrap();
    let p = &c.pipes[0];
    let shown =
        |i: usize| -> Vec<String> { p.keys[i].targets.iter().map(|t| t.to_string()).collect() };
    assert_eq!(shown(0), ["[127.0.0.1]:1", "/run/b.sock"]);
    assert_eq!(shown(1), ["[127.0.0.1]:3", "[127.0.0.1]:4"]);
    assert_eq!(p.balance, crate::targets::Balance::RoundRobin);
    assert_eq!(p.connect_timeout, Some(Duration::from_millis(500)));
    assert_eq!(p.health_interval, Some(Duration::from_secs(10)));
    assert!(p.routes_by_key());
}

/// An empty or repeating target list, a bad balance: one line naming file, line and key.
#[test]
fn several_targets_refusals() {
    let pipe = |line: &str| {
        format!("[[pipe]]\nencrypt = true\nsource = \"[127.0.0.1]:2\"\nkey = \"/k\"\n{line}\n")
    };
    let e = error(&pipe("target = []"));
    assert!(
        e.starts_with("/etc/spiped.conf:5: target: ") && e.contains("empty"),
        "{e}"
    );
    let e = error(&pipe(r#"target = ["[127.0.0.1]:1", "[127.0.0.1]:1"]"#));
    assert!(
        e.starts_with("/etc/spiped.conf:5: target: ") && e.contains("twice"),
        "{e}"
    );
    let e = error(&pipe("target = \"[127.0.0.1]:1\"\nbalance = \"x\""));
    assert!(
        e.starts_with("/etc/spiped.conf:6: balance: ") && e.contains("invalid balance"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    // The command line: the same target twice, and spipe's one -t.
    let e = cli_error(&[
        "-e", "-s", "[::1]:1", "-t", "[::1]:2", "-t", "[::1]:2", "-k", "/k",
    ]);
    assert!(e.contains("given twice"), "{e}");
}
