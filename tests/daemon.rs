//! Daemon behaviour of our `spiped`: daemonizing with readiness, the pidfile, graceful
//! shutdown on SIGTERM/SIGINT, `-u`, `--syslog`, DNS re-resolution (`-r`/`-R`), `-D`,
//! `-b`, `-n` and `-o`. Name resolution tests run the daemon in a private mount
//! namespace with its own /etc/hosts and /etc/resolv.conf (root, as in CI).

mod common;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use common::*;

const KEY: &[u8] = b"a key file for the daemon tests, longer than 32 bytes";
const QUICK: Duration = Duration::from_secs(10);

/// The key file, and our `-d` under it in front of an echo target: the encrypted hop
/// that the `-e` under test connects to.
fn echo_server(dir: &Path) -> (String, Server) {
    let k = key(dir);
    let server = Server::start(Impl::Ours, dir, "d", Mode::Echo, &["-k", &k]);
    (k, server)
}

fn key(dir: &Path) -> String {
    key_arg(dir, "key", KEY)
}

fn ours() -> Command {
    spiped_cmd(Impl::Ours)
}

fn code(st: Option<ExitStatus>) -> Option<i32> {
    st.and_then(|s| s.code())
}

/// Sends `data` through `spipe -t via` (our spipe) and returns what came back.
fn through_spipe(via: &Addr, key: &str, data: &[u8]) -> RunOutput {
    let mut cmd = spipe_cmd(Impl::Ours);
    cmd.args(["-t", &via.arg(), "-k", key]);
    run_with_stdin(cmd, data, EXCHANGE_DEADLINE)
}

/// Asserts that `data` sent through `spipe -t via` comes back byte-exact from an echo
/// target.
fn assert_echo_via_spipe(via: &Addr, key: &str, data: &[u8]) {
    let out = through_spipe(via, key, data);
    assert_eq!(out.code(), Some(0), "spipe via {via}: {}", out.stderr);
    assert_eq!(sha(&out.stdout), sha(data), "spipe via {via}: echo differs");
}

/// spipe reads a regular file on standard input in its event loop (not on a blocking
/// thread, as it does pipes) and writes one on standard output: several megabytes echo
/// back whole, and spipe exits 0 once the file ends and the echo is complete.
#[test]
fn spipe_with_regular_files_on_stdin_and_stdout() {
    let dir = temp_dir();
    let (k, server) = echo_server(dir.path());
    let hop = &server.hop;
    let data = payload(3_000_000, 9);
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    fs::write(&input, &data).unwrap();
    let mut cmd = spipe_cmd(Impl::Ours);
    cmd.args(["-t", &hop.arg(), "-k", &k])
        .stdin(fs::File::open(&input).unwrap())
        .stdout(fs::File::create(&output).unwrap());
    let mut child = cmd.spawn().unwrap();
    assert_eq!(code(wait_deadline(&mut child, EXCHANGE_DEADLINE)), Some(0));
    let echoed = fs::read(&output).unwrap();
    assert_eq!((echoed.len(), sha(&echoed)), (data.len(), sha(&data)));
}

/// Without -F: the parent exits 0 only once the daemon serves (the first connection
/// right after exit succeeds, no retry), the pidfile (default: the -s argument plus
/// `.pid`, relative to the working directory as in C) holds the daemon's pid, and
/// SIGTERM removes the pidfile and a UNIX source socket; it writes nothing to stderr.
#[test]
fn daemonizes_with_readiness_and_pidfile() {
    for kind in [Transport::Tcp, Transport::Unix] {
        let dir = temp_dir();
        let (k, server) = echo_server(dir.path());
        let hop = &server.hop;
        let run = run_dir(dir.path());
        let src = Addr::fresh(kind, &run, "src");
        let pidfile = match &src {
            Addr::Tcp(_) => run.join(format!("{}.pid", src.arg())),
            Addr::Unix(p) => PathBuf::from(format!("{}.pid", p.display())),
        };
        let mut cmd = ours();
        cmd.current_dir(&run)
            .args(["-e", "-s", &src.arg(), "-t", &hop.arg(), "-k", &k]);
        let (st, daemon) = Daemonized::start(cmd, &pidfile, &dir.path().join("e.stderr"));
        assert_eq!(code(st), Some(0), "{kind}");
        let daemon = daemon.unwrap();
        assert!(alive(daemon.pid), "{kind}: daemon not running");
        assert_eq!(
            fs::read_to_string(&pidfile).unwrap(),
            daemon.pid.to_string()
        );
        assert_echo(&src, &payload(300_000, 1));
        signal(daemon.pid, libc::SIGTERM);
        assert!(
            daemon.wait_gone(QUICK),
            "{kind}: still running after SIGTERM"
        );
        assert!(!pidfile.exists(), "{kind}: pidfile left behind");
        if let Addr::Unix(p) = &src {
            assert!(!p.exists(), "UNIX source socket left behind");
        }
        // Quiet on a good start, as C: every layer of the sandbox is in force here, so
        // the daemon says nothing.
        assert_eq!(daemon.stderr(), "", "{kind}");
    }
}

/// Start-up failures reach the caller: the parent exits 1 with the reason, and no
/// daemon or pidfile stays behind.
#[test]
fn startup_failures_make_the_parent_exit_1() {
    if !root() {
        return;
    }
    let dir = temp_dir();
    let k = key(dir.path());
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = format!("[127.0.0.1]:{}", busy.local_addr().unwrap().port());
    let free = Addr::fresh(Transport::Tcp, dir.path(), "src").arg();
    let names = Names::new(dir.path(), "127.0.0.1 localhost\n");
    let pidfile = dir.path().join("p.pid");
    let p = pidfile.to_str().unwrap();
    let t = "[127.0.0.1]:9";
    let cases: &[(Command, &[&str], &str)] = &[
        (ours(), &["-s", &busy, "-t", t], "cannot listen on"),
        (
            names.spiped(),
            &["-s", &free, "-t", "nowhere.spiped.test:1"],
            "cannot resolve nowhere.spiped.test:1",
        ),
        (
            ours(),
            &["-s", &free, "-t", t, "-u", "no-such-user-here"],
            "unknown user 'no-such-user-here'",
        ),
        (
            ours(),
            &["-s", &free, "-t", t, "-u", ":no-such-group"],
            "unknown group",
        ),
    ];
    for (base, extra, want) in cases {
        let mut cmd = Command::new(base.get_program());
        cmd.args(base.get_args())
            .args(["-e", "-k", &k, "-p", p])
            .args(*extra);
        let (st, daemon) = Daemonized::start(cmd, &pidfile, &dir.path().join("err"));
        assert!(daemon.is_none());
        let err = fs::read_to_string(dir.path().join("err")).unwrap();
        assert_eq!(code(st), Some(1), "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: want {want:?}, got {err:?}");
        assert_eq!(err.lines().count(), 1, "{extra:?}: {err}");
        assert!(!pidfile.exists(), "{extra:?}: pidfile left behind");
    }
}

/// SIGTERM and SIGINT (foreground): new connections are refused at once, the open one
/// still completes byte-exact, then the daemon exits 0.
#[test]
fn signals_drain_open_connections_then_exit_0() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let dir = temp_dir();
        let (k, server) = echo_server(dir.path());
        let hop = &server.hop;
        let src = Addr::fresh(Transport::Unix, &run_dir(dir.path()), "src");
        let mut e = Daemon::pipe(Impl::Ours, "e", dir.path(), &src, &hop.arg(), &k, &["-e"]);
        let data = payload(200_000, sig as u64);
        let (first, rest) = data.split_at(1000);
        let mut conn = src.connect().unwrap();
        conn.write_all(first).unwrap();
        let echoed = conn
            .read_exact_within(first.len(), EXCHANGE_DEADLINE)
            .unwrap();
        assert_eq!(echoed, first);

        e.signal(sig);
        src.wait_refusing(&format!("signal {sig}: the listener to close"), QUICK);
        let ex = exchange_on(conn, rest, EXCHANGE_DEADLINE).unwrap();
        assert_eq!(
            sha(&ex.received),
            sha(rest),
            "signal {sig}: open connection"
        );
        let st = e.wait_exit(QUICK);
        assert_eq!(code(st), Some(0), "signal {sig}: {st:?}; {}", e.stderr());
        let Addr::Unix(p) = &src else { unreachable!() };
        assert!(!p.exists(), "signal {sig}: UNIX source socket left behind");
    }
}

/// An `-e` on a UNIX socket with one idle connection open through it (to an echo target
/// behind a `-d`), for the drain tests: the daemon, the connection, and what keeps the
/// rest alive.
fn draining_setup(dir: &Path, extra: &[&str]) -> (Daemon, Stream, Addr, Server) {
    let (k, server) = echo_server(dir);
    let hop = &server.hop;
    let src = Addr::fresh(Transport::Unix, &run_dir(dir), "src");
    let args = [&["-e"][..], extra].concat();
    let e = Daemon::pipe(Impl::Ours, "e", dir, &src, &hop.arg(), &k, &args);
    let mut conn = src.connect().unwrap();
    conn.write_all(b"ping").unwrap();
    let echoed = conn.read_exact_within(4, EXCHANGE_DEADLINE).unwrap();
    assert_eq!(echoed, b"ping");
    (e, conn, src, server)
}

/// A second SIGTERM or SIGINT during the drain ends the daemon at once (as C does),
/// though a connection is still open: exit 0, the socket file removed, the client's
/// connection closed.
#[test]
fn second_signal_during_drain_exits_at_once() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let dir = temp_dir();
        let (mut e, mut conn, src, _rest) = draining_setup(dir.path(), &[]);
        e.signal(sig);
        src.wait_refusing("the listener to close after the signal", QUICK);
        e.assert_running();
        e.signal(sig);
        let st = e.wait_exit(QUICK);
        assert_eq!(code(st), Some(0), "signal {sig}: {st:?}; {}", e.stderr());
        conn.set_read_timeout(Some(QUICK)).unwrap();
        let (_, err) = conn.read_to_eof();
        assert!(
            err.as_ref()
                .is_none_or(|e| e.kind() == ErrorKind::ConnectionReset),
            "signal {sig}: connection not closed: {err:?}"
        );
        let Addr::Unix(p) = &src else { unreachable!() };
        assert!(!p.exists(), "signal {sig}: UNIX source socket left behind");
    }
}

/// `--drain-timeout 1`: one SIGTERM, and the idle connection still open a second later
/// is closed and the daemon exits 0, no sooner.
#[test]
fn drain_timeout_closes_what_is_left_and_exits_0() {
    let dir = temp_dir();
    let (mut e, mut conn, src, _rest) = draining_setup(dir.path(), &["--drain-timeout", "1"]);
    let start = Instant::now();
    e.signal(libc::SIGTERM);
    src.wait_refusing("the listener to close after the signal", QUICK);
    let st = e.wait_exit(QUICK);
    let took = start.elapsed();
    assert_eq!(code(st), Some(0), "{st:?}; {}", e.stderr());
    assert!(
        took >= Duration::from_millis(900),
        "exited after {took:?}, before the drain timeout"
    );
    conn.set_read_timeout(Some(QUICK)).unwrap();
    let (_, err) = conn.read_to_eof();
    assert!(
        err.as_ref()
            .is_none_or(|e| e.kind() == ErrorKind::ConnectionReset),
        "connection not closed: {err:?}"
    );
}

/// The gid of `group` from /etc/group.
fn group_id(group: &str) -> String {
    let groups = fs::read_to_string("/etc/group").unwrap();
    let line = groups
        .lines()
        .find(|l| l.starts_with(&format!("{group}:")))
        .unwrap_or_else(|| panic!("no group {group}"));
    line.split(':').nth(2).unwrap().to_owned()
}

/// `-u user:group`, `-u user` and `-u :group`: the running daemon has exactly the new
/// ids (real, effective, saved), no supplementary groups, and still serves.
#[test]
fn drops_privileges() {
    if !root() {
        return;
    }
    let (nobody_uid, nobody_gid) = passwd_ids("nobody");
    let nogroup = group_id("nogroup");
    let cases = [
        ("nobody:nogroup", nobody_uid.as_str(), nogroup.as_str()),
        ("nobody", nobody_uid.as_str(), nobody_gid.as_str()),
        (":nogroup", "0", nogroup.as_str()),
    ];
    for (spec, uid, gid) in cases {
        let dir = temp_dir();
        let k = key(dir.path());
        let target = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
        let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
        let pidfile = dir.path().join("d.pid");
        let mut cmd = ours();
        cmd.args(["-d", "-s", &src.arg(), "-t", &target.addr.arg(), "-k", &k])
            .args(["-p", pidfile.to_str().unwrap(), "-u", spec]);
        let (st, daemon) = Daemonized::start(cmd, &pidfile, &dir.path().join("err"));
        assert_eq!(code(st), Some(0), "-u {spec}");
        let daemon = daemon.unwrap();
        let status = fs::read_to_string(format!("/proc/{}/status", daemon.pid)).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(field("Uid:"), [uid; 4], "-u {spec}");
        assert_eq!(field("Gid:"), [gid; 4], "-u {spec}");
        assert!(field("Groups:").is_empty(), "-u {spec}");
        assert_echo_via_spipe(&src, &k, &payload(50_000, 3));
    }
}

/// `--syslog`, daemonized and in the foreground: a warning (here: target refused) goes
/// to /dev/log with facility daemon, priority warning, ident `spiped[PID]`, and nothing
/// to stderr. /dev/log is a socket of the test's, seen through a private /dev.
#[test]
fn syslog_receives_warnings() {
    if !root() {
        return;
    }
    for foreground in [false, true] {
        let dir = temp_dir();
        let k = key(dir.path());
        let dev = dir.path().join("dev");
        fs::create_dir(&dev).unwrap();
        fs::write(dev.join("null"), "").unwrap();
        let log_sock = dir.path().join("log.sock");
        std::os::unix::fs::symlink(&log_sock, dev.join("log")).unwrap();
        let log = UnixDatagram::bind(&log_sock).unwrap();
        log.set_read_timeout(Some(QUICK)).unwrap();
        let cmd = in_mount_ns(
            &[
                (Path::new("/dev/null"), dev.join("null").to_str().unwrap()),
                (&dev, "/dev"),
            ],
            &spiped_bin(Impl::Ours),
        );
        let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
        let refused = Addr::fresh(Transport::Tcp, dir.path(), "nothing");
        let pidfile = dir.path().join("d.pid");
        let args = [
            "-e",
            "-s",
            &src.arg(),
            "-t",
            &refused.arg(),
            "-k",
            &k,
            "--syslog",
            "-p",
            pidfile.to_str().unwrap(),
        ];
        let (pid, stderr, _keep_f, _keep_d);
        if foreground {
            let d = Daemon::spawn_cmd(Impl::Ours, "fg", dir.path(), &src, cmd, &args);
            (pid, stderr) = (d.pid(), dir.path().join("fg.stderr"));
            (_keep_f, _keep_d) = (Some(d), None);
        } else {
            let mut cmd = cmd;
            cmd.args(args);
            let errp = dir.path().join("bg.stderr");
            let (st, d) = Daemonized::start(cmd, &pidfile, &errp);
            assert_eq!(code(st), Some(0));
            let d = d.unwrap();
            let _ = src.connect().unwrap();
            (pid, stderr) = (d.pid, errp);
            (_keep_f, _keep_d) = (None, Some(d));
        }
        let mut buf = vec![0u8; 4096];
        let mut recv = || {
            let n = log.recv(&mut buf).expect("no syslog message");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        // The start-up line saying what the sandbox enforces comes first, at info.
        let msg = recv();
        assert!(msg.starts_with("<30>"), "not daemon.info: {msg:?}");
        assert!(
            msg.contains(&format!("spiped[{pid}]: sandbox: landlock ABI")),
            "{msg:?}"
        );
        let msg = recv();
        assert!(msg.starts_with("<28>"), "not daemon.warning: {msg:?}");
        assert!(msg.contains(&format!("spiped[{pid}]: ")), "{msg:?}");
        assert!(msg.contains("cannot connect to target"), "{msg:?}");
        assert_eq!(fs::read_to_string(&stderr).unwrap(), "", "fg={foreground}");
    }
}

/// The target's name is looked up again every `-r` seconds: after /etc/hosts changes,
/// new connections through a `-r 1` daemon reach the new address, while a `-R` daemon
/// started at the same time still uses the old one. `localhost`-style hosts-file names
/// resolve at all, without DNS.
#[test]
fn re_resolves_the_target_with_r_not_with_big_r() {
    if !root() {
        return;
    }
    let dir = temp_dir();
    let k = key(dir.path());
    let old = Target::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), Mode::Echo);
    let Addr::Tcp(old_addr) = old.addr else {
        unreachable!()
    };
    let new = Target::start_at(
        SocketAddr::from(([127, 0, 0, 2], old_addr.port())),
        Mode::Echo,
    );
    let names = Names::new(dir.path(), "127.0.0.1 target.spiped.test\n");
    let t = format!("target.spiped.test:{}", old_addr.port());
    let daemon = |label: &str, extra: &str| {
        let src = Addr::fresh(Transport::Tcp, dir.path(), label);
        let args = ["-d", "-s", &src.arg(), "-t", &t, "-k", &k, extra];
        let d = Daemon::spawn_cmd(Impl::Ours, label, dir.path(), &src, names.spiped(), &args);
        (src, d)
    };
    let (fresh_src, _fresh) = daemon("r1", "-r1");
    let (fixed_src, _fixed) = daemon("bigr", "-R");
    for (i, src) in [&fresh_src, &fixed_src].into_iter().enumerate() {
        let data = payload(10_000, 10 + i as u64);
        assert_echo_via_spipe(src, &k, &data);
        old.wait_received(&data, QUICK).unwrap();
    }

    names.set_hosts("127.0.0.2 target.spiped.test\n");
    let end = Instant::now() + QUICK;
    for seed in 100.. {
        let data = payload(10_000, seed);
        assert_echo_via_spipe(&fresh_src, &k, &data);
        if new.wait_received(&data, Duration::ZERO).is_ok() {
            break;
        }
        assert!(
            Instant::now() < end,
            "-r 1 never switched to the new address"
        );
    }
    let data = payload(10_000, 99);
    assert_echo_via_spipe(&fixed_src, &k, &data);
    old.wait_received(&data, QUICK).unwrap();
    assert!(new.records().iter().all(|r| r.received_sha != sha(&data)));
}

/// `-D`: the parent exits 0 while the target name does not resolve yet; the daemon
/// keeps trying, and serves once /etc/hosts has the name. Without `-D` the same start
/// fails (see `startup_failures_make_the_parent_exit_1`).
#[test]
fn wait_dns_starts_before_the_name_resolves() {
    if !root() {
        return;
    }
    let dir = temp_dir();
    let k = key(dir.path());
    let target = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
    let Addr::Tcp(ta) = target.addr else {
        unreachable!()
    };
    let names = Names::new(dir.path(), "127.0.0.1 localhost\n");
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let pidfile = dir.path().join("d.pid");
    let mut cmd = names.spiped();
    cmd.args(["-d", "-D", "-s", &src.arg(), "-k", &k])
        .args(["-t", &format!("late.spiped.test:{}", ta.port())])
        .args(["-p", pidfile.to_str().unwrap()]);
    let (st, daemon) = Daemonized::start(cmd, &pidfile, &dir.path().join("err"));
    assert_eq!(code(st), Some(0));
    let daemon = daemon.unwrap();
    assert!(
        src.connect().is_err(),
        "listening before the target resolved"
    );
    assert!(alive(daemon.pid));
    names.set_hosts("127.0.0.1 localhost\n127.0.0.1 late.spiped.test\n");
    src.wait_accepting(QUICK).unwrap();
    let data = payload(20_000, 4);
    assert_echo_via_spipe(&src, &k, &data);
    target.wait_received(&data, QUICK).unwrap();
}

/// Asserts that `target` was connected to, only ever from `ip` (`-b`).
fn assert_all_from(target: &Target, ip: [u8; 4]) {
    let peers = target.peers();
    assert!(
        !peers.is_empty() && peers.iter().all(|p| p.ip() == std::net::Ipv4Addr::from(ip)),
        "{peers:?}"
    );
}

/// `-b`: outgoing connections come from the given local address.
#[test]
fn bind_address_for_outgoing_connections() {
    let dir = temp_dir();
    let k = key(dir.path());
    let args = ["-k", &k, "-b", "[127.0.0.2]"];
    let s = Server::start(Impl::Ours, dir.path(), "b", Mode::Echo, &args);
    let data = payload(10_000, 5);
    assert_echo_via_spipe(&s.hop, &k, &data);
    s.target.wait_received(&data, QUICK).unwrap();
    assert_all_from(&s.target, [127, 0, 0, 2]);
}

/// `-b [IP]:PORT`, a fixed port, in two daemons: the second binds it while the first's
/// connection lingers there in TIME_WAIT (SO_REUSEADDR before bind, as C does). They
/// connect to their targets only after a handshake, so the readiness probes leave no
/// connection behind.
#[test]
fn a_fixed_bind_port_is_bound_again_while_the_last_lingers() {
    let dir = temp_dir();
    let k = key(dir.path());
    let bind = format!("[127.0.0.2]:{}", free_port());
    let args = ["-k", &k, "-b", &bind, "--connect-after-handshake"];
    let first = Server::start(Impl::Ours, dir.path(), "b1", Mode::Echo, &args);
    let second = Server::start(Impl::Ours, dir.path(), "b2", Mode::Echo, &args);
    for (seed, s) in [(6, &first), (7, &second)] {
        let data = payload(10_000, seed);
        let out = through_spipe(&s.hop, &k, &data);
        assert_eq!(out.code(), Some(0), "{}; {}", out.stderr, s.d.stderr());
        assert_eq!(sha(&out.stdout), sha(&data));
        let peers = s.target.peers();
        assert!(
            peers
                .iter()
                .all(|p| format!("[{}]:{}", p.ip(), p.port()) == bind),
            "{peers:?}"
        );
    }
}

/// A name with several addresses for `-s` or `-b` (C spiped 1.6.3): one warning each,
/// naming the address used, which is the first; the source listens there alone, and
/// outgoing connections come from there.
#[test]
fn several_addresses_for_source_and_bind_warn_and_use_the_first() {
    if !root() {
        return;
    }
    let dir = temp_dir();
    let k = key(dir.path());
    let target = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
    let names = Names::new(
        dir.path(),
        "127.0.0.1 localhost\n127.0.0.2 multi.spiped.test\n127.0.0.3 multi.spiped.test\n",
    );
    let port = free_port();
    let first = Addr::Tcp(SocketAddr::from(([127, 0, 0, 2], port)));
    let s = format!("multi.spiped.test:{port}");
    let args = [
        "-d",
        "-s",
        &s,
        "-t",
        &target.addr.arg(),
        "-k",
        &k,
        "-b",
        "multi.spiped.test",
    ];
    let d = Daemon::spawn_cmd(
        Impl::Ours,
        "multi",
        dir.path(),
        &first,
        names.spiped(),
        &args,
    );
    let data = payload(10_000, 11);
    assert_echo_via_spipe(&first, &k, &data);
    target.wait_received(&data, QUICK).unwrap();
    let second = Addr::Tcp(SocketAddr::from(([127, 0, 0, 3], port)));
    assert!(
        second.connect().is_err(),
        "listening on the second address too"
    );
    assert_all_from(&target, [127, 0, 0, 2]);
    let err = d.stderr();
    for line in [
        format!(
            "spiped: warning: -s/--source {s}: 2 addresses found; using the first, \
             127.0.0.2:{port}"
        ),
        "spiped: warning: -b/--bind multi.spiped.test:0: 2 addresses found; using the \
         first, 127.0.0.2:0"
            .to_owned(),
    ] {
        assert_eq!(err.matches(&line).count(), 1, "{line:?} once in {err:?}");
    }
    // spipe's -b alike.
    let mut spipe = names.spiped();
    spipe.args([
        "spipe",
        "-t",
        &first.arg(),
        "-k",
        &k,
        "-b",
        "multi.spiped.test",
    ]);
    let out = run_with_stdin(spipe, &data, EXCHANGE_DEADLINE);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(sha(&out.stdout), sha(&data));
    assert_eq!(
        out.stderr,
        "spipe: warning: -b/--bind multi.spiped.test:0: 2 addresses found; using the first, \
         127.0.0.2:0\n"
    );
}

/// A name /etc/hosts knows is what /etc/hosts says, as for the C library ("files"
/// before "dns"): with only `127.0.0.1 localhost` there, `-s localhost:PORT` listens on
/// 127.0.0.1 (where C spiped listens), with no word about several addresses, rather
/// than on the `::1` the resolver adds for localhost by itself.
#[test]
fn a_name_in_etc_hosts_has_only_its_addresses() {
    if !root() {
        return;
    }
    let dir = temp_dir();
    let k = key(dir.path());
    let target = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
    let names = Names::new(dir.path(), "127.0.0.1 localhost\n");
    let port = free_port();
    let listening = Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], port)));
    let s = format!("localhost:{port}");
    let args = ["-d", "-s", &s, "-t", &target.addr.arg(), "-k", &k];
    let d = Daemon::spawn_cmd(
        Impl::Ours,
        "localhost",
        dir.path(),
        &listening,
        names.spiped(),
        &args,
    );
    let data = payload(10_000, 12);
    assert_echo_via_spipe(&listening, &k, &data);
    target.wait_received(&data, QUICK).unwrap();
    let err = d.stderr();
    assert!(!err.contains("addresses found"), "{err}");
}

/// `-D` with a `-b` name that does not resolve yet: the parent exits 0, nothing listens
/// while the daemon retries (each second, as C 1.6.3 does), and once /etc/hosts has
/// the name it serves, its outgoing connections coming from that address.
#[test]
fn wait_dns_retries_the_bind_address() {
    if !root() {
        return;
    }
    let dir = temp_dir();
    let k = key(dir.path());
    let target = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
    let names = Names::new(dir.path(), "127.0.0.1 localhost\n");
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let pidfile = dir.path().join("d.pid");
    let mut cmd = names.spiped();
    cmd.args([
        "-d",
        "-D",
        "-s",
        &src.arg(),
        "-t",
        &target.addr.arg(),
        "-k",
        &k,
    ])
    .args(["-b", "late.spiped.test", "-p", pidfile.to_str().unwrap()]);
    let (st, daemon) = Daemonized::start(cmd, &pidfile, &dir.path().join("err"));
    assert_eq!(code(st), Some(0));
    let daemon = daemon.unwrap();
    assert!(src.connect().is_err(), "listening before -b resolved");
    assert!(alive(daemon.pid));
    names.set_hosts("127.0.0.1 localhost\n127.0.0.2 late.spiped.test\n");
    src.wait_accepting(QUICK).unwrap();
    let data = payload(20_000, 12);
    assert_echo_via_spipe(&src, &k, &data);
    target.wait_received(&data, QUICK).unwrap();
    assert_all_from(&target, [127, 0, 0, 2]);
}

/// `-n 2`: a third client waits (is not served, not dropped) while two are open, with
/// one warning, and is served byte-exact as soon as one of the two closes.
#[test]
fn connection_limit_queues_the_third_client() {
    let dir = temp_dir();
    let (k, server) = echo_server(dir.path());
    let hop = &server.hop;
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let e = Daemon::pipe(
        Impl::Ours,
        "e",
        dir.path(),
        &src,
        &hop.arg(),
        &k,
        &["-e", "-n", "2"],
    );
    let mut open = Vec::new();
    for i in 0..2u8 {
        let mut c = src.connect().unwrap();
        c.write_all(&[i]).unwrap();
        assert_eq!(c.read_exact_within(1, EXCHANGE_DEADLINE).unwrap(), [i]);
        open.push(c);
    }
    let mut third = src
        .connect()
        .expect("third client must be queued, not refused");
    third.write_all(b"3").unwrap();
    third
        .silent_for(Duration::from_millis(1500))
        .expect("third client served over the limit");
    open.remove(0).shutdown(Shutdown::Both).unwrap();
    assert_eq!(third.read_exact_within(1, EXCHANGE_DEADLINE).unwrap(), b"3");
    let warnings = e.stderr().matches("connection limit reached").count();
    assert_eq!(warnings, 1, "{}", e.stderr());
}

/// `-o 1`: a peer that never completes the handshake is dropped after about a second,
/// and a target that never accepts the connection is given up after about a second.
#[test]
fn timeouts_drop_stalled_handshakes_and_targets() {
    let dir = temp_dir();
    let k = key(dir.path());
    let s = Server::start(
        Impl::Ours,
        dir.path(),
        "d",
        Mode::Echo,
        &["-k", &k, "-o", "1"],
    );
    assert_times_out(&s.d, &s.hop, "dropped");

    // A listener whose queue is full never completes a connection: SYNs are dropped.
    let full = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: re-listening on our own open socket only shrinks its queue to one.
    assert_eq!(unsafe { libc::listen(full.as_raw_fd(), 0) }, 0);
    let _filler = std::net::TcpStream::connect(full.local_addr().unwrap()).unwrap();
    let src2 = Addr::fresh(Transport::Tcp, dir.path(), "src2");
    let e = Daemon::pipe(
        Impl::Ours,
        "e",
        dir.path(),
        &src2,
        &format!("[127.0.0.1]:{}", full.local_addr().unwrap().port()),
        &k,
        &["-e", "-o", "1"],
    );
    assert_times_out(&e, &src2, "given up");
}

/// Connects to `src` and asserts that `daemon` closes the connection after its `-o 1`
/// (not before 0.9 s, and within [`QUICK`]), saying it timed out.
fn assert_times_out(daemon: &Daemon, src: &Addr, what: &str) {
    let mut conn = src.connect().unwrap();
    let t0 = Instant::now();
    stalled_read(&mut conn, QUICK);
    let took = t0.elapsed();
    assert!(
        (Duration::from_millis(900)..QUICK).contains(&took),
        "{what} after {took:?}"
    );
    daemon.wait_stderr("timed out", QUICK).unwrap();
}

/// Reads until the daemon closes the connection (EOF or reset); panics if it is still
/// open after `deadline`.
fn stalled_read(s: &mut Stream, deadline: Duration) {
    s.set_read_timeout(Some(deadline)).unwrap();
    let mut buf = Vec::new();
    if let Err(e) = s.read_to_end(&mut buf) {
        let open = matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut);
        assert!(!open, "connection still open after {deadline:?}");
    }
}

/// `-D` waiting for a name that never resolves still ends cleanly on SIGTERM, removing
/// its pidfile.
#[test]
fn wait_dns_stops_on_sigterm() {
    if !root() {
        return;
    }
    let dir = temp_dir();
    let k = key(dir.path());
    let names = Names::new(dir.path(), "127.0.0.1 localhost\n");
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let pidfile = dir.path().join("d.pid");
    let mut cmd = names.spiped();
    cmd.args([
        "-d",
        "-D",
        "-s",
        &src.arg(),
        "-k",
        &k,
        "-t",
        "never.spiped.test:1",
    ])
    .args(["-p", pidfile.to_str().unwrap()]);
    let (st, daemon) = Daemonized::start(cmd, &pidfile, &dir.path().join("err"));
    assert_eq!(code(st), Some(0));
    let daemon = daemon.unwrap();
    daemon
        .wait_stderr("retrying until it resolves (-D)", QUICK)
        .unwrap();
    signal(daemon.pid, libc::SIGTERM);
    assert!(daemon.wait_gone(QUICK), "-D daemon ignored SIGTERM");
    assert!(!pidfile.exists(), "pidfile left behind");
}
