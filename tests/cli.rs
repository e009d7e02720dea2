//! Command-line behaviour: usage errors, option values (the numbers C takes, values
//! that do not parse), `-v`, addresses (bad ones, IPv6 without brackets), start-up
//! errors (missing key file, port in use), key files (a loose mode's warning, short and
//! huge keys, `-k -`), and what spipe says when a server drops it in the handshake. Each
//! check runs against our binary and, as a self-check of the expectations, against
//! Debian's C spiped where the two should agree.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use common::*;

/// How a `spipe` is invoked.
#[derive(Clone, Copy, Debug)]
enum SpipeVia {
    /// A program (or symlink) named `spipe`.
    Name,
    /// `spiped spipe ARGS` (ours only).
    Subcommand,
}

/// A test of each implementation for one check: `$c` runs it on the C spiped (when
/// installed; under CI it must be), `$ours` on ours.
macro_rules! both {
    ($c:ident, $ours:ident, $check:ident) => {
        #[test]
        fn $c() {
            if c_available() {
                $check(Impl::C);
            }
        }

        #[test]
        fn $ours() {
            $check(Impl::Ours);
        }
    };
}

fn spiped(which: Impl, args: &[&str]) -> RunOutput {
    let mut cmd = spiped_cmd(which);
    cmd.args(args);
    run_with_stdin(cmd, b"", Duration::from_secs(5))
}

fn spipe(which: Impl, via: SpipeVia, args: &[&str]) -> RunOutput {
    let mut cmd = match via {
        SpipeVia::Name => spipe_cmd(which),
        SpipeVia::Subcommand => {
            assert_eq!(which, Impl::Ours, "only ours has the subcommand form");
            let mut c = spiped_cmd(Impl::Ours);
            c.arg("spipe");
            c
        }
    };
    cmd.args(args);
    run_with_stdin(cmd, b"", Duration::from_secs(5))
}

fn describe(tool: &str, which: Impl, args: &[&str]) -> String {
    format!("{which} {tool} {}", args.join(" "))
}

/// Asserts that the process exited, with status 1.
fn assert_exit_1(case: &str, out: &RunOutput) {
    assert!(
        out.status.is_some(),
        "{case}: did not exit (killed at deadline)"
    );
    assert_eq!(
        out.code(),
        Some(1),
        "{case}: exit code; stderr {:?}",
        out.stderr
    );
}

fn assert_usage(case: &str, out: &RunOutput) {
    assert_exit_1(case, out);
    assert!(
        out.stderr.to_lowercase().contains("usage"),
        "{case}: stderr lacks usage text: {:?}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{case}: printed on stdout");
}

/// Asserts exit 1 and that stderr names every one of `words`. For our binary the error
/// must also be a single line.
fn assert_error(case: &str, which: Impl, out: &RunOutput, words: &[&str]) {
    assert_exit_1(case, out);
    if which == Impl::Ours {
        for w in words {
            assert!(
                out.stderr.contains(w),
                "{case}: error does not name {w:?}: {:?}",
                out.stderr
            );
        }
        assert_eq!(
            out.stderr.trim_end().lines().count(),
            1,
            "{case}: expected a one-line error, got {:?}",
            out.stderr
        );
    }
    println!("{case}: exit 1, stderr {:?}", out.stderr);
}

fn key(dir: &Path) -> String {
    key_arg(dir, "key", b"some key material for the cli tests")
}

/// spiped command lines that every implementation must reject with usage + exit 1.
fn spiped_usage_cases(k: &str) -> Vec<Vec<String>> {
    let s = "[127.0.0.1]:1";
    let t = "[127.0.0.1]:2";
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["-e", "-s", s, "-t", t, "-k", k, "-F"]
            .iter()
            .map(|x| x.to_string())
            .collect();
        v.extend(extra.iter().map(|x| x.to_string()));
        v
    };
    let own = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        own(&[]),
        own(&["-x"]),
        own(&["-e"]),
        own(&["-e", "-s", s, "-t", t, "-F"]),    // no -k
        own(&["-e", "-t", t, "-k", k, "-F"]),    // no -s
        own(&["-e", "-s", s, "-k", k, "-F"]),    // no -t
        own(&["-s", s, "-t", t, "-k", k, "-F"]), // neither -e nor -d
        base(&["-d"]),                           // both -e and -d
        base(&["-x"]),                           // unknown option
        base(&["-f", "-g"]),                     // -f with -g
        base(&["-r", "5", "-R"]),                // -r with -R
        base(&["-s", "[127.0.0.1]:3"]),          // option twice
        base(&["-k", k]),                        // option twice
        base(&["stray"]),                        // stray argument
    ]
}

/// spipe command lines that every implementation must reject with usage + exit 1.
fn spipe_usage_cases(k: &str) -> Vec<Vec<String>> {
    let t = "[127.0.0.1]:2";
    [
        vec![],
        vec!["-x"],
        vec!["-t", t],
        vec!["-k", k],
        vec!["-t", t, "-k", k, "-f", "-g"],
        vec!["-t", t, "-k", k, "-t", t],
        vec!["-t", t, "-k", k, "stray"],
        vec!["-t", t, "-k", k, "-x"],
    ]
    .iter()
    .map(|v| v.iter().map(|x| x.to_string()).collect())
    .collect()
}

fn check_usage(which: Impl) {
    let dir = temp_dir();
    let k = key(dir.path());
    for args in spiped_usage_cases(&k) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let case = describe("spiped", which, &args);
        assert_usage(&case, &spiped(which, &args));
    }
    let vias: &[SpipeVia] = match which {
        Impl::C => &[SpipeVia::Name],
        Impl::Ours => &[SpipeVia::Name, SpipeVia::Subcommand],
    };
    for &via in vias {
        for args in spipe_usage_cases(&k) {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let case = format!("{} (via {via:?})", describe("spipe", which, &args));
            assert_usage(&case, &spipe(which, via, &args));
        }
    }
}

both!(c_usage_errors, ours_usage_errors, check_usage);

/// Numbers C spiped 1.6 takes (its PARSENUM, then 0 meaning the default) start a daemon
/// that serves: `-o 0`, `-r 0`, a timeout over a day, `-r inf`, `-n -1`, hexadecimal and
/// octal counts, `-R` beside the default `-r 60`. Checked on C too, so the list stays
/// what C really accepts.
fn check_numbers_c_takes(which: Impl) {
    let dir = temp_dir();
    let k = key(dir.path());
    let target = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
    let cases: &[&[&str]] = &[
        &["-o", "0", "-r", "0"],
        &["-o", "90000", "-r", "inf"],
        &["-o", "1e6", "-n", "-1"],
        &["-n", "0x10", "-o", " 5"],
        &["-n", "010", "-R", "-r", "60"],
    ];
    for (i, extra) in cases.iter().enumerate() {
        let case = describe("spiped -d", which, extra);
        let src = Addr::fresh(Transport::Tcp, dir.path(), &format!("src{i}"));
        let mut args = vec!["-d"];
        args.extend_from_slice(extra);
        let _d = Daemon::pipe(
            which,
            &format!("d{i}"),
            dir.path(),
            &src,
            &target.addr.arg(),
            &k,
            &args,
        );
        let up = payload(3000, i as u64);
        spipe_round_trip(
            which,
            &case,
            &["-t", &src.arg(), "-k", &k, "-o", "0"],
            &up,
            &up,
            &target,
        );
    }
}

both!(
    c_numbers_c_takes,
    ours_numbers_c_takes,
    check_numbers_c_takes
);

/// Option values that do not parse: exit 1, naming the bad value.
fn check_bad_values(which: Impl) {
    let dir = temp_dir();
    let k = key(dir.path());
    for (opt, val) in [("-n", "abc"), ("-o", "soon"), ("-r", "often")] {
        let args = [
            "-e",
            "-s",
            "[127.0.0.1]:1",
            "-t",
            "[127.0.0.1]:2",
            "-k",
            &k,
            "-F",
            opt,
            val,
        ];
        let case = describe("spiped", which, &args);
        let out = spiped(which, &args);
        assert!(out.status.is_some(), "{case}: did not exit");
        assert_eq!(out.code(), Some(1), "{case}: stderr {:?}", out.stderr);
        if which == Impl::Ours {
            assert!(
                out.stderr.contains(val) || out.stderr.to_lowercase().contains("usage"),
                "{case}: error names neither {val:?} nor the usage: {:?}",
                out.stderr
            );
        }
    }
}

both!(
    c_bad_option_values,
    ours_bad_option_values,
    check_bad_values
);

/// `-v` prints `NAME VERSION` on standard error and nothing on standard output, exit 0,
/// as C 1.6.2 does: scripts capture it with `2>&1`.
fn check_version(which: Impl) {
    let out = spiped(which, &["-v"]);
    assert_eq!(out.code(), Some(0), "{which} spiped -v: {:?}", out.stderr);
    assert!(
        out.stdout.is_empty(),
        "{which} spiped -v: {:?}",
        out.stdout_str()
    );
    assert!(
        out.stderr.starts_with("spiped "),
        "{which} spiped -v: {:?}",
        out.stderr
    );
    let vias: &[SpipeVia] = match which {
        Impl::C => &[SpipeVia::Name],
        Impl::Ours => &[SpipeVia::Name, SpipeVia::Subcommand],
    };
    for &via in vias {
        let out = spipe(which, via, &["-v"]);
        let case = format!("{which} spipe -v via {via:?}");
        assert_eq!(out.code(), Some(0), "{case}: {:?}", out.stderr);
        assert!(out.stdout.is_empty(), "{case}: {:?}", out.stdout_str());
        assert!(out.stderr.starts_with("spipe "), "{case}: {:?}", out.stderr);
    }
}

both!(c_version, ours_version, check_version);

/// Bad addresses (no port, relative path) are rejected before any socket opens.
fn check_bad_address(which: Impl) {
    let dir = temp_dir();
    let k = key(dir.path());
    let good = format!("[127.0.0.1]:{}", free_port());
    for bad in ["bogus", "127.0.0.1", "relative/path.sock"] {
        for (role, args) in [
            (
                "-s",
                ["-e", "-s", bad, "-t", "[127.0.0.1]:2", "-k", &k, "-F"],
            ),
            ("-t", ["-d", "-s", &good, "-t", bad, "-k", &k, "-F"]),
        ] {
            let case = format!("{} (bad {role})", describe("spiped", which, &args));
            assert_error(&case, which, &spiped(which, &args), &[bad]);
        }
        let args = ["-t", bad, "-k", &k];
        let case = describe("spipe", which, &args);
        assert_error(&case, which, &spipe(which, SpipeVia::Name, &args), &[bad]);
    }
}

both!(c_bad_address, ours_bad_address, check_bad_address);

/// IPv6 addresses work without brackets, as in C: the port follows the last colon
/// (`-s ::1:P`, `-t ::1:Q`, spipe's `-t ::1:P`), and data passes.
fn check_ipv6_without_brackets(which: Impl) {
    let dir = temp_dir();
    let k = key(dir.path());
    let target = Target::start_at("[::1]:0".parse().unwrap(), Mode::Echo);
    let Addr::Tcp(t) = &target.addr else {
        unreachable!("a TCP target")
    };
    let port = free_port();
    let src = Addr::Tcp((std::net::Ipv6Addr::LOCALHOST, port).into());
    let (s, t) = (format!("::1:{port}"), format!("::1:{}", t.port()));
    let args = ["-d", "-s", &s, "-t", &t, "-k", &k];
    let _d = Daemon::spawn(which, "v6", dir.path(), &src, &args);
    let case = describe("spiped", which, &args);
    let up = b"over IPv6 written without brackets";
    spipe_round_trip(which, &case, &["-t", &s, "-k", &k], up, up, &target);
}

both!(
    c_ipv6_without_brackets,
    ours_ipv6_without_brackets,
    check_ipv6_without_brackets
);

fn check_missing_key(which: Impl) {
    let dir = temp_dir();
    let missing = dir.path().join("no-such-key-file");
    let missing = missing.to_str().unwrap();
    let src = format!("[127.0.0.1]:{}", free_port());
    let args = ["-e", "-s", &src, "-t", "[127.0.0.1]:2", "-k", missing, "-F"];
    let case = describe("spiped", which, &args);
    let out = spiped(which, &args);
    assert_error(&case, which, &out, &[missing]);
    // Both implementations name the file.
    assert!(out.stderr.contains(missing), "{case}: {:?}", out.stderr);

    let args = ["-t", "[127.0.0.1]:2", "-k", missing];
    let case = describe("spipe", which, &args);
    let out = spipe(which, SpipeVia::Name, &args);
    assert_error(&case, which, &out, &[missing]);
    assert!(out.stderr.contains(missing), "{case}: {:?}", out.stderr);
}

both!(c_missing_key_file, ours_missing_key_file, check_missing_key);

/// The source port is taken: exit 1 (ours must name the address; C 1.6.2 does not).
fn check_port_in_use(which: Impl) {
    let dir = temp_dir();
    let k = key(dir.path());
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().unwrap().port().to_string();
    let src = format!("[127.0.0.1]:{port}");
    let args = ["-d", "-s", &src, "-t", "[127.0.0.1]:2", "-k", &k, "-F"];
    let case = describe("spiped", which, &args);
    assert_error(&case, which, &spiped(which, &args), &[&port]);

    // A UNIX socket in a directory that does not exist.
    let sock = dir.path().join("no-such-dir").join("s.sock");
    let sock = sock.to_str().unwrap();
    let args = ["-d", "-s", sock, "-t", "[127.0.0.1]:2", "-k", &k, "-F"];
    let case = describe("spiped", which, &args);
    assert_error(&case, which, &spiped(which, &args), &[sock]);
    drop(holder);
}

both!(c_port_in_use, ours_port_in_use, check_port_in_use);

/// Exit codes agree between ours and C for the same usage errors.
#[test]
fn ours_usage_exit_codes_match_c() {
    if !c_available() {
        return;
    }
    let dir = temp_dir();
    let k = key(dir.path());
    for args in spiped_usage_cases(&k) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let c = spiped(Impl::C, &args).code();
        let ours = spiped(Impl::Ours, &args).code();
        assert_eq!(ours, c, "exit code of spiped {}: ours vs C", args.join(" "));
    }
}

/// A key file readable by others draws one ssh-style warning naming the file and who may
/// read it, and the key is still used: spipe goes on to try the target (which refuses),
/// so the error that ends it is about the connection, not the key.
#[test]
fn ours_warns_about_a_world_readable_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir();
    let k = key(dir.path());
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = format!("[127.0.0.1]:{}", refused.local_addr().unwrap().port());
    drop(refused);
    let out = spipe(Impl::Ours, SpipeVia::Name, &["-t", &target, "-k", &k]);
    assert_eq!(out.code(), Some(1), "stderr {:?}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "warning then the connect error: {lines:?}");
    assert_eq!(
        lines[0],
        format!("spipe: warning: key file {k} is readable by everyone (mode 644); chmod 600 it")
    );
    assert!(lines[1].contains(&target), "{lines:?}");

    // Group-readable: the warning says so, not "everyone".
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = spipe(Impl::Ours, SpipeVia::Name, &["-t", &target, "-k", &k]);
    assert_eq!(
        out.stderr.lines().next(),
        Some(
            format!(
                "spipe: warning: key file {k} is readable by its group (mode 640); chmod 600 it"
            )
            .as_str()
        )
    );

    // A FIFO is no regular file: its mode says nothing about the key, so no warning.
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o666)).unwrap();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, [7u8; 32]))
    };
    let out = spipe(
        Impl::Ours,
        SpipeVia::Name,
        &["-t", &target, "-k", fifo.to_str().unwrap()],
    );
    writer.join().unwrap().expect("write the FIFO");
    assert!(!out.stderr.contains("warning"), "{:?}", out.stderr);

    // Owner-only: no warning at all.
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = spipe(Impl::Ours, SpipeVia::Name, &["-t", &target, "-k", &k]);
    assert!(!out.stderr.contains("warning"), "{:?}", out.stderr);
}

/// Empty and short key files work, as in C (whose own test suite runs its daemons with
/// `-k /dev/null`): a daemon and a spipe keyed so carry data. Ours says once, on start,
/// how short the key is, and nothing about the mode of /dev/null.
fn check_short_keys(which: Impl) {
    let dir = temp_dir();
    let target = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
    let short = key_file(dir.path(), "short", b"12345");
    for (k, len) in [("/dev/null", 0), (short.to_str().unwrap(), 5)] {
        let src = Addr::fresh(Transport::Tcp, dir.path(), "d");
        let d = Daemon::pipe(
            which,
            "short",
            dir.path(),
            &src,
            &target.addr.arg(),
            k,
            &["-d"],
        );
        let case = format!("{which} -k {k}");
        let up = format!("through a {len}-byte key");
        let s = src.arg();
        spipe_round_trip(
            which,
            &case,
            &["-t", &s, "-k", k],
            up.as_bytes(),
            up.as_bytes(),
            &target,
        );
        if which == Impl::Ours {
            let want = format!(
                "spiped: warning: key file {k} holds {len} bytes; use 32 random bytes \
                 (`spiped keygen > FILE`)"
            );
            // Other lines are about connections (the readiness probe's, cut short).
            let err = d.stderr();
            let about_key: Vec<&str> = err.lines().filter(|l| l.contains("key file")).collect();
            assert_eq!(about_key, [want.as_str()], "{case}");
        }
    }
}

both!(c_short_keys, ours_short_keys, check_short_keys);

/// A key file of more than 1 GiB is refused with one line, at once for a sparse file and
/// after 1 GiB for an endless device: never read whole, never an abort.
#[test]
fn ours_refuses_huge_key_files() {
    let dir = temp_dir();
    let sparse = dir.path().join("sparse");
    std::fs::File::create(&sparse)
        .and_then(|f| f.set_len(64 << 30))
        .expect("sparse 64 GiB file");
    let sparse = sparse.to_str().unwrap();
    for k in ["/dev/zero", sparse] {
        let out = spipe(
            Impl::Ours,
            SpipeVia::Name,
            &["-t", "[127.0.0.1]:1", "-k", k],
        );
        assert_eq!(out.code(), Some(1), "-k {k}: {:?}", out.stderr);
        assert_eq!(
            out.stderr,
            format!(
                "spipe: key file {k} is larger than 1 GiB: give -k a file of 32 random bytes \
                 (`spiped keygen > FILE`)\n"
            ),
            "-k {k}"
        );
    }
}

/// A spipe that a server drops during the handshake names every cause (a wrong key, a
/// -g/-f mismatch, or a target the server could not reach: it cannot tell which), here
/// shown by a server (ours and C's) with another key and by one requiring PFS (`-g`)
/// from a fast (`-f`) spipe. (A server that cannot reach its target drops the client
/// too, but only if its connect fails before the handshake ends: too racy to test.)
#[test]
fn ours_spipe_dropped_in_handshake_names_every_cause() {
    const CAUSES: &str = "wrong key, a -g/-f mismatch, or the server could not reach its target";
    let dir = temp_dir();
    let k = key(dir.path());
    let other = key_file(
        dir.path(),
        "other",
        b"a different key file, 32 bytes or more",
    );
    let other = other.to_str().unwrap();
    let target = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
    let mut servers = vec![Impl::Ours];
    if c_available() {
        servers.push(Impl::C);
    }
    for server in servers {
        for (why, server_key, server_flags, spipe_flags) in [
            ("other key", other, &["-d"][..], &[][..]),
            ("-g server, -f spipe", &k, &["-d", "-g"], &["-f"]),
        ] {
            let src = Addr::fresh(Transport::Tcp, dir.path(), "d");
            let t = target.addr.arg();
            let _d = Daemon::pipe(server, "d", dir.path(), &src, &t, server_key, server_flags);
            let s = src.arg();
            let args = [&["-t", &s, "-k", &k][..], spipe_flags].concat();
            let out = spipe(Impl::Ours, SpipeVia::Name, &args);
            assert_eq!(out.code(), Some(1), "{server} -d, {why}: {:?}", out.stderr);
            assert!(
                out.stderr.contains(CAUSES),
                "{server} -d, {why}: {:?}",
                out.stderr
            );
        }
    }
}

/// `-k -` reads the key from standard input: a daemon keyed that way talks to a spipe
/// keyed from a file with the same bytes.
#[test]
fn ours_key_from_stdin() {
    use std::io::Write;
    use std::process::Stdio;
    const KEY: &[u8] = b"key material given on standard input";
    let dir = temp_dir();
    let target = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
    let src = Addr::fresh(Transport::Tcp, dir.path(), "d");
    let (s, t) = (src.arg(), target.addr.arg());
    let mut daemon = spiped_cmd(Impl::Ours)
        .args(["-F", "-d", "-s", &s, "-t", &t, "-k", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn spiped");
    daemon.stdin.take().unwrap().write_all(KEY).unwrap();
    let served = src.wait_accepting(READY_DEADLINE).map(|()| {
        let k = key_file(dir.path(), "key", KEY);
        let mut cmd = spipe_cmd(Impl::Ours);
        cmd.args(["-t", &s, "-k", k.to_str().unwrap()]);
        run_with_stdin(cmd, b"hello through a stdin key", EXCHANGE_DEADLINE)
    });
    let _ = daemon.kill();
    let _ = daemon.wait();
    let out = served.expect("daemon accepting");
    assert_eq!(
        out.stdout_str(),
        "hello through a stdin key",
        "{:?}",
        out.stderr
    );
}

/// Addresses that do not parse, and a `-b` that could only fail every connection (a UNIX
/// socket path, an IP beside a UNIX target), are refused at once, before daemonizing,
/// with `-D` too (C 1.6.3 checks addresses' syntax first; 1.6.2 daemonizes first, and
/// its daemon retries a bad address every second for ever): exit 1, one line naming
/// the problem, no pidfile, nothing listening; spipe likewise.
#[test]
fn ours_refuses_bad_addresses_before_daemonizing() {
    let dir = temp_dir();
    let k = key(dir.path());
    let src = format!("127.0.0.1:{}", free_port());
    let pid = dir.path().join("b.pid");
    let pid = pid.to_str().unwrap();
    let unix_target = dir.path().join("t.sock");
    let unix_target = unix_target.to_str().unwrap();
    let tcp_target = "[127.0.0.1]:2";
    let cases: [(&[&str], &str, &str); 6] = [
        (
            &["-s", &src, "-t", tcp_target, "-b", "/tmp/b.sock"],
            "-b/--bind",
            "'/tmp/b.sock'",
        ),
        (
            &["-s", &src, "-t", tcp_target, "-b", ":0"],
            "-b/--bind",
            "':0'",
        ),
        (
            &["-s", &src, "-t", unix_target, "-b", "127.0.0.1"],
            "-b/--bind",
            unix_target,
        ),
        (&["-s", ":8000", "-t", tcp_target], "-s/--source", "':8000'"),
        (
            &["-s", "nohost", "-t", tcp_target],
            "-s/--source",
            "'nohost'",
        ),
        (
            &["-s", &src, "-t", "[127.0.0.1]"],
            "-t/--target",
            "'[127.0.0.1]'",
        ),
    ];
    for (args, option, names) in cases {
        let all = [&["-e", "-D", "-k", &k, "-p", pid][..], args].concat();
        let case = describe("spiped", Impl::Ours, &all);
        assert_error(
            &case,
            Impl::Ours,
            &spiped(Impl::Ours, &all),
            &[option, names],
        );
        assert!(!Path::new(pid).exists(), "{case}: daemonized");
        assert!(
            std::net::TcpStream::connect(&src).is_err(),
            "{case}: listening"
        );
    }
    let args = ["-t", tcp_target, "-k", &k, "-b", "/tmp/b.sock"];
    let out = spipe(Impl::Ours, SpipeVia::Name, &args);
    let case = describe("spipe", Impl::Ours, &args);
    assert_error(&case, Impl::Ours, &out, &["-b/--bind", "'/tmp/b.sock'"]);
}
