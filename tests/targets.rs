//! Several targets per pipe (`-t` more than once, `target = [...]`): failover past a
//! refused or hung target, round-robin, the return to a primary that is back, active
//! health checks that catch a `-d` holding another key, a reload that keeps a target's
//! health, what metrics say of each target, and the refusals.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const KEY: &[u8] = b"the key of the several-targets tests";
const OTHER_KEY: &[u8] = b"a key no client of the several-targets tests holds";
const DEADLINE: Duration = Duration::from_secs(30);

/// A TCP address nothing listens on (refused).
fn dead() -> Addr {
    Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], free_port())))
}

/// The body of `GET /metrics` from the endpoint at `addr`.
fn metrics_text(addr: &Addr) -> String {
    let Addr::Tcp(sa) = addr else {
        panic!("metrics on TCP only here")
    };
    let mut s = TcpStream::connect_timeout(sa, DEADLINE).expect("connect to metrics");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read metrics");
    text
}

/// The value of series `name` for target `target` in a scrape of `addr`.
fn target_series(addr: &Addr, name: &str, target: &Addr) -> Option<f64> {
    let want = format!("target=\"{}\"", target.arg());
    metrics_text(addr)
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&want))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

/// Polls until series `name` of `target` is `value`; panics with the scrape if not.
fn wait_series(metrics: &Addr, name: &str, target: &Addr, value: f64) {
    let got = poll(DEADLINE, || {
        (target_series(metrics, name, target) == Some(value)).then_some(())
    });
    assert!(
        got.is_some(),
        "{name} of {target} never {value}: {}",
        metrics_text(metrics)
    );
}

/// How many connections `t` served bytes on: readiness probes, which send nothing,
/// left out. Polled, since a connection's record lands when it has closed.
fn wait_served(t: &Target, want: usize) {
    let served = || t.records().iter().filter(|r| r.received_len > 0).count();
    let got = poll(DEADLINE, || (served() == want).then_some(()));
    assert!(got.is_some(), "{} served {}, want {want}", t.addr, served());
}

/// How many lines of `text` say a target went down.
fn down_lines(text: &str) -> usize {
    text.lines().filter(|l| l.contains(" is down (")).count()
}

/// A `-d` (labelled `label`, files in `dir`) whose targets are a dead address and then
/// an echo target, behind an `-e`, both with `key`: what the failover tests start from.
struct DeadFirst {
    /// The `-e` in front, whose source clients use.
    c: Daemon,
    /// The `-d` with the two targets.
    d: Daemon,
    live: Target,
    src: Addr,
    gone: Addr,
}

fn dead_first(dir: &Path, key: &str, label: &str) -> DeadFirst {
    let live = Target::start(Transport::Tcp, dir, Mode::Echo);
    let gone = dead();
    let src = Addr::fresh(Transport::Tcp, dir, "src");
    let (g, e, s) = (gone.arg(), live.addr.arg(), src.arg());
    let args = ["-d", "-s", &s, "-t", &g, "-t", &e, "-k", key];
    let d = Daemon::spawn(Impl::Ours, label, dir, &src, &args);
    let ca = Addr::fresh(Transport::Tcp, dir, "client");
    let c = Daemon::pipe(Impl::Ours, "e", dir, &ca, &s, key, &["-e"]);
    DeadFirst {
        c,
        d,
        live,
        src,
        gone,
    }
}

/// `-t` twice on the command line, and a list in a configuration file: the dead first
/// target is passed over and every connection echoes through the live one.
#[test]
fn two_t_and_a_config_list_are_served() {
    let dir = temp_dir();
    let key = key_arg(dir.path(), "key", KEY);
    let DeadFirst {
        c,
        d,
        live: echo,
        src,
        gone,
    } = dead_first(dir.path(), &key, "two-t");
    let (g, e, s) = (gone.arg(), echo.addr.arg(), src.arg());
    for i in 0..5 {
        assert_echo(&c.source, &payload(3000, i));
    }
    wait_served(&echo, 5);
    drop((c, d));

    let conf = dir.path().join("spiped.toml");
    let src2 = Addr::fresh(Transport::Tcp, dir.path(), "src2");
    fs::write(
        &conf,
        format!(
            "[[pipe]]\nname = \"list\"\nencrypt = true\nsource = \"{}\"\n\
             target = [\"{g}\", \"{s}\"]\nkey = \"{key}\"\n",
            src2.arg()
        ),
    )
    .unwrap();
    let d = Daemon::pipe(Impl::Ours, "d2", dir.path(), &src, &e, &key, &["-d"]);
    let conf_arg = conf.to_str().unwrap();
    let f = Daemon::spawn(Impl::Ours, "list", dir.path(), &src2, &["-c", conf_arg]);
    for i in 0..5 {
        assert_echo(&src2, &payload(2000, 10 + i));
    }
    assert_eq!(down_lines(&f.stderr()), 1, "{}", f.stderr());
    drop((f, d));
}

/// An `-e` with 3 targets, the first refused: every connection is served (bytes
/// hashed), the dead one goes down in exactly one log line, and the metrics say so.
#[test]
fn a_refused_primary_costs_no_client_a_connection() {
    let dir = temp_dir();
    let key = key_arg(dir.path(), "key", KEY);
    let echo = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
    let d1 = Addr::fresh(Transport::Tcp, dir.path(), "d1");
    let d2 = Addr::fresh(Transport::Tcp, dir.path(), "d2");
    let e_arg = echo.addr.arg();
    let _s1 = Daemon::pipe(Impl::Ours, "d1", dir.path(), &d1, &e_arg, &key, &["-d"]);
    let _s2 = Daemon::pipe(Impl::Ours, "d2", dir.path(), &d2, &e_arg, &key, &["-d"]);
    let gone = dead();
    let metrics = Addr::fresh(Transport::Tcp, dir.path(), "metrics");
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let (g, a1, a2, s, m) = (gone.arg(), d1.arg(), d2.arg(), src.arg(), metrics.arg());
    let args = [
        "-e",
        "-s",
        &s,
        "-t",
        &g,
        "-t",
        &a1,
        "-t",
        &a2,
        "-k",
        &key,
        "--metrics",
        &m,
    ];
    let e = Daemon::spawn(Impl::Ours, "e", dir.path(), &src, &args);
    const N: u64 = 20;
    for i in 0..N {
        assert_echo(&src, &payload(5000, i));
    }
    wait_served(&echo, N as usize);
    assert_eq!(down_lines(&e.stderr()), 1, "{}", e.stderr());
    wait_series(&metrics, "spiped_target_up", &gone, 0.0);
    wait_series(&metrics, "spiped_target_up", &d1, 1.0);
    let failures = target_series(&metrics, "spiped_target_connect_failures_total", &gone);
    assert!(failures.is_some_and(|f| f >= 1.0), "{failures:?}");
    let served: f64 = [&d1, &d2]
        .iter()
        .filter_map(|t| target_series(&metrics, "spiped_target_connections_total", t))
        .sum();
    // The readiness probe of the harness counts too.
    assert!(served >= N as f64, "{served}");
}

/// round-robin over 3 echo targets: 30 connections, 10 each (one more where the
/// harness's probe took a turn).
#[test]
fn round_robin_spreads_exactly_evenly() {
    let dir = temp_dir();
    let key = key_arg(dir.path(), "key", KEY);
    let targets: Vec<Target> = (0..3)
        .map(|_| Target::start(Transport::Tcp, dir.path(), Mode::Echo))
        .collect();
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let s = src.arg();
    let mut args = vec![
        "-d".to_owned(),
        "-s".into(),
        s.clone(),
        "-k".into(),
        key.clone(),
    ];
    for t in &targets {
        args.extend(["-t".to_owned(), t.addr.arg()]);
    }
    // Connecting after the handshake, readiness probes reach no target.
    args.extend(["--balance", "round-robin", "--connect-after-handshake"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = Daemon::spawn(Impl::Ours, "rr", dir.path(), &src, &args);
    let ca = Addr::fresh(Transport::Tcp, dir.path(), "client");
    let c = Daemon::pipe(Impl::Ours, "e", dir.path(), &ca, &s, &key, &["-e"]);
    for i in 0..30 {
        assert_echo(&c.source, &payload(100, i));
    }
    // The harness's readiness probe of the -e may complete a handshake and take a turn
    // (its session moves no byte): every turn counts, and no target has two more.
    let served = |t: &Target| t.records().iter().filter(|r| r.received_len > 0).count();
    wait_until("30 served", DEADLINE, || {
        targets.iter().map(served).sum::<usize>() == 30
    });
    let mut counts = Vec::new();
    let even = poll(DEADLINE, || {
        counts = targets
            .iter()
            .map(|t| t.records().len())
            .collect::<Vec<_>>();
        let (min, max) = (counts.iter().min()?, counts.iter().max()?);
        (max - min <= 1 && counts.iter().sum::<usize>() <= 31).then_some(())
    });
    assert!(even.is_some(), "{counts:?}: {}", d.stderr());
}

/// failover: while the primary is dead the second serves; once the primary listens
/// again, new connections reach it after its back-off (1 s).
#[test]
fn failover_returns_to_the_primary_once_it_is_back() {
    let dir = temp_dir();
    let key = key_arg(dir.path(), "key", KEY);
    let DeadFirst {
        c,
        d,
        live: second,
        gone,
        ..
    } = dead_first(dir.path(), &key, "failover");
    assert_echo(&c.source, b"while the primary is dead");
    wait_served(&second, 1);
    let Addr::Tcp(at) = gone else { unreachable!() };
    let primary = Target::start_at(at, Mode::Echo);
    let back = poll(DEADLINE, || {
        assert_echo(&c.source, b"is the primary back?");
        (primary.accepted() > 0).then_some(())
    });
    assert!(back.is_some(), "never back to the primary: {}", d.stderr());
    d.wait_stderr(" is up again after ", DEADLINE).unwrap();
    let before = second.records().len();
    for i in 0..5 {
        assert_echo(&c.source, &payload(100, i));
    }
    assert_eq!(
        second.records().len(),
        before,
        "failover stays on the primary"
    );
}

/// `health-interval` on an `-e` whose first `-d` holds another key: its check marks it
/// down, and from then on clients never meet its handshake failure.
#[test]
fn a_health_check_catches_a_server_with_another_key() {
    let dir = temp_dir();
    let key = key_arg(dir.path(), "key", KEY);
    let other = key_arg(dir.path(), "other", OTHER_KEY);
    let echo = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
    let wrong = Addr::fresh(Transport::Tcp, dir.path(), "wrong");
    let right = Addr::fresh(Transport::Tcp, dir.path(), "right");
    let e_arg = echo.addr.arg();
    let _w = Daemon::pipe(
        Impl::Ours,
        "wrong",
        dir.path(),
        &wrong,
        &e_arg,
        &other,
        &["-d"],
    );
    let _r = Daemon::pipe(
        Impl::Ours,
        "right",
        dir.path(),
        &right,
        &e_arg,
        &key,
        &["-d"],
    );
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let (w, r, s) = (wrong.arg(), right.arg(), src.arg());
    let args = [
        "-e",
        "-s",
        &s,
        "-t",
        &w,
        "-t",
        &r,
        "-k",
        &key,
        "--health-interval",
        "0.2",
    ];
    let e = Daemon::spawn(Impl::Ours, "e", dir.path(), &src, &args);
    let line = e.wait_stderr("health check failed", DEADLINE).unwrap();
    assert!(line.contains(&w), "{line}");
    for i in 0..10 {
        assert_echo(&src, &payload(1000, i));
    }
    wait_served(&echo, 10);
    assert_eq!(down_lines(&e.stderr()), 1, "{}", e.stderr());
}

/// A primary that never accepts (its backlog full): the first connection waits about
/// `connect-timeout`, then is served by the next; later ones skip the primary.
#[test]
fn a_hung_primary_costs_only_the_first_connection() {
    let dir = temp_dir();
    let key = key_arg(dir.path(), "key", KEY);
    let echo = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
    // Backlog 0, filled: further SYNs are dropped, and a connect hangs.
    let hung = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    hung.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    hung.listen(0).unwrap();
    let at = hung.local_addr().unwrap().as_socket().unwrap();
    let fillers: Vec<_> = (0..2)
        .filter_map(|_| TcpStream::connect_timeout(&at, Duration::from_millis(200)).ok())
        .collect();
    assert!(!fillers.is_empty(), "could not fill the backlog");
    let hung_addr = Addr::Tcp(at);
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let (h, e, s) = (hung_addr.arg(), echo.addr.arg(), src.arg());
    let args = [
        "-d",
        "-s",
        &s,
        "-t",
        &h,
        "-t",
        &e,
        "-k",
        &key,
        "--connect-timeout",
        "2",
    ];
    let d = Daemon::spawn(Impl::Ours, "hung", dir.path(), &src, &args);
    let ca = Addr::fresh(Transport::Tcp, dir.path(), "client");
    let c = Daemon::pipe(
        Impl::Ours,
        "e",
        dir.path(),
        &ca,
        &s,
        &key,
        &["-e", "-o", "20"],
    );
    let started = Instant::now();
    assert_echo(&c.source, b"first");
    let first = started.elapsed();
    assert!(first >= Duration::from_millis(1900), "first took {first:?}");
    assert!(first < Duration::from_secs(15), "first took {first:?}");
    d.wait_stderr("connect timed out", DEADLINE).unwrap();
    let started = Instant::now();
    assert_echo(&c.source, b"second");
    let second = started.elapsed();
    assert!(
        second < Duration::from_millis(1500),
        "second took {second:?}"
    );
    drop(fillers);
}

/// A reload that keeps a down target keeps it down, with its counts.
#[test]
fn a_reload_keeps_a_kept_targets_health() {
    let dir = temp_dir();
    // The sandbox lets a reload read its files in a directory of their own.
    let etc = dir.path().join("etc");
    fs::create_dir(&etc).unwrap();
    let key = key_arg(&etc, "key", KEY);
    let echo = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
    let gone = dead();
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let metrics = Addr::fresh(Transport::Tcp, dir.path(), "metrics");
    let conf = etc.join("spiped.toml");
    let write = |extra: &str| {
        let text = format!(
            "metrics = \"{}\"\n[[pipe]]\nname = \"p\"\ndecrypt = true\nsource = \"{}\"\n\
             target = [\"{}\", \"{}\"]\nkey = \"{key}\"\n{extra}",
            metrics.arg(),
            src.arg(),
            gone.arg(),
            echo.addr.arg()
        );
        let tmp = conf.with_extension("new");
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, &conf).unwrap();
    };
    write("");
    let conf_arg = conf.to_str().unwrap();
    let d = Daemon::spawn(Impl::Ours, "reload", dir.path(), &src, &["-c", conf_arg]);
    let ca = Addr::fresh(Transport::Tcp, dir.path(), "client");
    let c = Daemon::pipe(Impl::Ours, "e", dir.path(), &ca, &src.arg(), &key, &["-e"]);
    assert_echo(&c.source, b"marks the primary down");
    wait_series(&metrics, "spiped_target_up", &gone, 0.0);
    let failures = target_series(&metrics, "spiped_target_connect_failures_total", &gone);
    write("log-connections = true\n");
    signal(d.pid(), libc::SIGHUP);
    d.wait_stderr("reloaded: ", DEADLINE).unwrap();
    assert_eq!(
        target_series(&metrics, "spiped_target_up", &gone),
        Some(0.0)
    );
    assert_eq!(
        target_series(&metrics, "spiped_target_connect_failures_total", &gone),
        failures
    );
}

/// Runs `spiped ARGS` to its end: its exit code and stderr.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = spiped_cmd(Impl::Ours);
    cmd.args(args);
    let out = run(cmd);
    (out.code(), out.stderr)
}

/// A configuration file's empty or repeated target list, a bad balance, and the same
/// `-t` twice: each refused in one line naming it, exit non-zero.
#[test]
fn config_errors_are_one_line_each() {
    let dir = temp_dir();
    let key = key_arg(dir.path(), "key", KEY);
    let conf = dir.path().join("bad.toml");
    let conf_arg = conf.to_str().unwrap().to_owned();
    let cases = [
        ("target = []", "the list is empty"),
        (
            "target = [\"[127.0.0.1]:1\", \"[127.0.0.1]:1\"]",
            "listed twice",
        ),
        (
            "target = \"[127.0.0.1]:1\"\nbalance = \"random\"",
            "invalid balance 'random'",
        ),
        (
            "target = \"[127.0.0.1]:1\"\nhealth-interval = 0",
            "greater than 0",
        ),
    ];
    for (line, says) in cases {
        fs::write(
            &conf,
            format!(
                "[[pipe]]\nencrypt = true\nsource = \"[127.0.0.1]:2\"\n{line}\nkey = \"{key}\"\n"
            ),
        )
        .unwrap();
        let (code, err) = refused(&["-c", &conf_arg, "--check"]);
        assert_ne!(code, Some(0), "{line}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{line}: {err}");
        assert!(
            err.contains(says) && err.contains("bad.toml:"),
            "{line}: {err}"
        );
    }
    let (code, err) = refused(&[
        "-e",
        "-s",
        "[127.0.0.1]:2",
        "-t",
        "[127.0.0.1]:1",
        "-t",
        "[127.0.0.1]:1",
        "-k",
        &key,
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("given twice"), "{err}");
    let (code, err) = refused(&[
        "-e",
        "-s",
        "[127.0.0.1]:2",
        "-t",
        "[127.0.0.1]:1",
        "-k",
        &key,
        "--balance",
        "x",
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("--balance"), "{err}");
}

/// spipe keeps exactly one `-t`: a second is refused, as C refuses it.
#[test]
fn spipe_refuses_a_second_t() {
    let dir = temp_dir();
    let key = key_arg(dir.path(), "key", KEY);
    let args = ["-t", "[127.0.0.1]:1", "-t", "[127.0.0.1]:2", "-k", &key];
    let ours = run_with_stdin(
        {
            let mut c = spipe_cmd(Impl::Ours);
            c.args(args);
            c
        },
        b"",
        DEADLINE,
    );
    assert_ne!(ours.code(), Some(0));
    let err = &ours.stderr;
    assert!(err.contains("-t"), "{err}");
    if c_available() {
        let mut c = spipe_cmd(Impl::C);
        c.args(args);
        let theirs = run_with_stdin(c, b"", DEADLINE);
        assert_ne!(theirs.code(), Some(0), "C refuses it too");
    }
}
