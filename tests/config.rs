//! Many pipes from one configuration file (`spiped -c`): real processes, C peers where
//! they fit, hashes compared. Reload (SIGHUP) under load, key rotation by reload, broken
//! files on reload, routing by key, the allow-list, idle-timeout, and systemd's
//! notify-reload protocol.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// One `[[pipe]]` table.
fn pipe(
    name: &str,
    direction: &str,
    source: &Addr,
    target: &str,
    key: &Path,
    extra: &str,
) -> String {
    format!(
        "[[pipe]]\nname = \"{name}\"\n{direction} = true\nsource = \"{}\"\ntarget = \"{target}\"\n\
         key = \"{}\"\n{extra}\n",
        source.arg(),
        key.display()
    )
}

/// Writes the configuration file `path` (replacing it at once, as an editor's save or
/// a configuration manager would).
fn write_conf(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// A directory of its own for the configuration file and key files, in `dir`: the
/// sandbox lets a reload read new files only in such a directory (see SECURITY.md).
fn etc_dir(dir: &Path) -> PathBuf {
    let etc = dir.join("etc");
    fs::create_dir(&etc).unwrap();
    etc
}

/// Starts our daemon on the file `conf` in the foreground; ready once `first` accepts
/// and the daemon is confined (so that files a test adds later are new to it).
fn start(dir: &Path, conf: &Path, first: &Addr) -> Daemon {
    let d = Daemon::spawn(
        Impl::Ours,
        "config",
        dir,
        first,
        &["-c", conf.to_str().unwrap()],
    );
    d.wait_confined();
    d
}

/// How many lines of `text` contain `needle`.
fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

/// Sends SIGHUP and waits until the daemon has reported the outcome of reload number
/// `n` (counting from 1); returns that outcome's line.
fn reload(d: &Daemon, n: usize) -> String {
    d.signal(libc::SIGHUP);
    let outcome = poll(EXCHANGE_DEADLINE, || {
        (d.stderr().lines())
            .filter(|l| l.contains("reloaded:") || l.contains("reload failed"))
            .nth(n - 1)
            .map(str::to_owned)
    });
    outcome.unwrap_or_else(|| panic!("reload {n} not reported: {}", d.stderr()))
}

/// A `spiped -e` of ours in front of `to`, with `key`: a client of a decrypting pipe.
fn client(dir: &Path, label: &str, to: &Addr, key: &Path) -> Daemon {
    let key = key.to_str().unwrap();
    Daemon::encrypting(Impl::Ours, label, dir, &to.arg(), key, &[])
}

/// Asserts that a connection to `addr` is closed without a byte of answer.
fn assert_dropped(case: &str, addr: &Addr) {
    let x = exchange(addr, b"anyone there?", EXCHANGE_DEADLINE)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    assert!(x.was_dropped(), "{case}: got {} bytes", x.received.len());
}

/// The example of the issue and the man page: two pipes from one file, a C peer on
/// each: C `-e` into our decrypting pipe, our encrypting pipe into C `-d`.
#[test]
fn two_pipes_from_one_file_with_c_peers() {
    if !c_available() {
        return;
    }
    let dir = temp_dir();
    let d = dir.path();
    let key = key_file(d, "key", b"two pipes, one file");
    let k = key.to_str().unwrap();
    let (reply1, reply2) = (payload(300_000, 1), payload(200_000, 2));
    let t1 = Target::start(Transport::Tcp, d, Mode::Duplex(Arc::new(reply1.clone())));
    let t2 = Target::start(Transport::Tcp, d, Mode::Duplex(Arc::new(reply2.clone())));
    let (ours_d, ours_e) = (
        Addr::fresh(Transport::Tcp, d, "a"),
        Addr::fresh(Transport::Tcp, d, "b"),
    );
    let c_d = Addr::fresh(Transport::Tcp, d, "cd");
    let _c_dec = Daemon::pipe(Impl::C, "c-d", d, &c_d, &t2.addr.arg(), k, &["-d"]);
    let conf = d.join("spiped.conf");
    write_conf(
        &conf,
        &format!(
            "foreground = true\n{}{}",
            pipe("in", "decrypt", &ours_d, &t1.addr.arg(), &key, ""),
            pipe("out", "encrypt", &ours_e, &c_d.arg(), &key, "")
        ),
    );
    let check = run({
        let mut c = spiped_cmd(Impl::Ours);
        c.args(["-c", conf.to_str().unwrap(), "--check"]);
        c
    });
    assert_eq!(check.code(), Some(0), "{}", check.stderr);
    assert!(check.stdout_str().contains("configuration OK (2 pipes)"));
    let ours = start(d, &conf, &ours_d);
    ours_e.wait_accepting(READY_DEADLINE).unwrap();
    let c_e = Addr::fresh(Transport::Tcp, d, "ce");
    let _c_enc = Daemon::pipe(Impl::C, "c-e", d, &c_e, &ours_d.arg(), k, &["-e"]);
    let (up1, up2) = (payload(400_000, 3), payload(500_000, 4));
    e_round_trip("C -e into our decrypting pipe", &c_e, &up1, &reply1, &t1);
    e_round_trip("our encrypting pipe into C -d", &ours_e, &up2, &reply2, &t2);
    drop(ours);
}

/// `--check` says what the sandbox puts in force (it confines itself as the daemon will
/// once serving): here, every layer. A daemon started from the file, every layer in
/// force, says nothing at all on stderr, as C on a good start.
#[test]
fn check_says_the_sandbox_and_a_good_start_is_silent() {
    let dir = temp_dir();
    let d = dir.path();
    let key = key_file(d, "key", b"the sandbox as checked, 32 bytes+");
    let target = Target::start(Transport::Tcp, d, Mode::Echo);
    let source = Addr::fresh(Transport::Tcp, d, "s");
    let conf = d.join("spiped.conf");
    let text = format!(
        "foreground = true\n{}",
        pipe("p", "decrypt", &source, &target.addr.arg(), &key, "")
    );
    write_conf(&conf, &text);
    let mut c = spiped_cmd(Impl::Ours);
    c.args(["-c", conf.to_str().unwrap(), "--check"]);
    let out = run(c);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let stdout = out.stdout_str();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(
        lines[0],
        format!("{}: configuration OK (1 pipe)", conf.display())
    );
    assert!(
        lines[1].starts_with("sandbox: landlock ABI ")
            && lines[1].contains("), seccomp ")
            && lines[1].ends_with(" syscalls, no capabilities"),
        "{stdout}"
    );
    let daemon = start(d, &conf, &source);
    let via = Addr::fresh(Transport::Tcp, d, "via");
    let k = key.to_str().unwrap();
    let _e = Daemon::pipe(Impl::Ours, "e", d, &via, &source.arg(), k, &["-e"]);
    let data = payload(50_000, 7);
    e_round_trip("from the file", &via, &data, &data, &target);
    // The readiness probe's connection may have drawn a line; nothing else may.
    let err = daemon.stderr();
    assert!(err.lines().all(|l| l.contains("handshake failed")), "{err}");
}

/// Ten transfers of several MiB run while five reloads add, change and remove pipes:
/// every byte arrives (hashes), the removed pipe's open transfers complete, and its
/// port refuses new connections afterwards.
#[test]
fn reload_under_load_drops_nothing() {
    const SIZE: usize = 3 << 20;
    let dir = temp_dir();
    let d = dir.path();
    let etc = etc_dir(d);
    let key = key_file(&etc, "key", b"reload under load");
    let target = Target::start(Transport::Tcp, d, Mode::Echo);
    let t = target.addr.arg();
    let [a, b, c, e] = ["a", "b", "c", "e"].map(|n| Addr::fresh(Transport::Tcp, d, n));
    let conf = etc.join("spiped.conf");
    let dec = |extra: &str| pipe("dec", "decrypt", &b, &t, &key, extra);
    let enc =
        |name: &str, src: &Addr, extra: &str| pipe(name, "encrypt", src, &b.arg(), &key, extra);
    let configs = [
        // The start: a and c lead into b, which leads to the target.
        format!(
            "{}{}{}",
            enc("main", &a, ""),
            enc("doomed", &c, ""),
            dec("")
        ),
        // 1: a pipe added.
        format!(
            "{}{}{}{}",
            enc("main", &a, ""),
            enc("doomed", &c, ""),
            dec(""),
            enc("extra", &e, "")
        ),
        // 2: the decrypting pipe changed.
        format!(
            "{}{}{}{}",
            enc("main", &a, ""),
            enc("doomed", &c, ""),
            dec("max-connections = 50\nlog-connections = true"),
            enc("extra", &e, "")
        ),
        // 3: a pipe with open transfers removed.
        format!(
            "{}{}{}",
            enc("main", &a, ""),
            dec("max-connections = 50"),
            enc("extra", &e, "")
        ),
        // 4: a pipe changed, another renamed.
        format!(
            "{}{}{}",
            enc("main", &a, "timeout = 10"),
            dec("max-connections = 50"),
            enc("extra2", &e, "")
        ),
        // 5: the added pipe removed again.
        format!("{}{}", enc("main", &a, "timeout = 10"), dec("")),
    ];
    write_conf(&conf, &configs[0]);
    let daemon = start(d, &conf, &a);
    c.wait_accepting(READY_DEADLINE).unwrap();
    // Every transfer sends its first half, then waits until all reloads are done.
    let halfway = Arc::new(Barrier::new(11));
    let reloaded = Arc::new(Barrier::new(11));
    let transfers: Vec<_> = (0..10)
        .map(|i| {
            let (halfway, reloaded) = (halfway.clone(), reloaded.clone());
            let via = if i < 7 { a.clone() } else { c.clone() };
            thread::spawn(move || {
                let data = payload(SIZE, 100 + i as u64);
                let mut conn = via.connect().expect("connect");
                conn.set_read_timeout(Some(EXCHANGE_DEADLINE)).unwrap();
                let mut reader = conn.try_clone().unwrap();
                let read = thread::spawn(move || reader.read_to_eof());
                conn.write_all(&data[..SIZE / 2]).expect("first half");
                halfway.wait();
                reloaded.wait();
                conn.write_all(&data[SIZE / 2..]).expect("second half");
                conn.shutdown(std::net::Shutdown::Write).unwrap();
                let (got, err) = read.join().unwrap();
                assert!(err.is_none(), "transfer {i}: {err:?}");
                assert_eq!((got.len(), sha(&got)), (SIZE, sha(&data)), "transfer {i}");
            })
        })
        .collect();
    halfway.wait();
    for (n, config) in configs.iter().enumerate().skip(1) {
        write_conf(&conf, config);
        let outcome = reload(&daemon, n);
        assert!(outcome.contains("reloaded:"), "reload {n}: {outcome}");
        // New connections work after every reload.
        let up = payload(10_000, n as u64);
        e_round_trip(&format!("after reload {n}"), &a, &up, &up, &target);
        if (1..=3).contains(&n) {
            e_round_trip(&format!("added pipe, reload {n}"), &e, &up, &up, &target);
        }
    }
    reloaded.wait();
    for t in transfers {
        t.join().expect("a transfer failed");
    }
    for gone in [&c, &e] {
        let refused = gone.connect();
        assert!(
            refused.is_err(),
            "{gone} still accepts after its pipe was removed"
        );
    }
    let err = daemon.stderr();
    assert_eq!(count(&err, "reloaded:"), 5, "{err}");
    assert!(
        !err.contains("connection broken") && !err.contains("reload failed"),
        "{err}"
    );
}

/// A new key by reload: accepted at once, the old one refused, and a session opened
/// with the old key before the reload runs on to its end.
#[test]
fn key_rotation_by_reload() {
    let dir = temp_dir();
    let d = dir.path();
    let etc = etc_dir(d);
    let old = key_file(&etc, "old", b"the old key");
    let target = Target::start(Transport::Tcp, d, Mode::Echo);
    let source = Addr::fresh(Transport::Tcp, d, "s");
    let conf = etc.join("spiped.conf");
    write_conf(
        &conf,
        &pipe("p", "decrypt", &source, &target.addr.arg(), &old, ""),
    );
    let daemon = start(d, &conf, &source);
    // Put beside the old key once spiped runs: a file its directory held at start
    // without the configuration naming it would make the directory a shared one.
    let new = key_file(&etc, "new", b"the new key");
    let (with_old, with_new) = (
        client(d, "old", &source, &old),
        client(d, "new", &source, &new),
    );
    let early = payload(100_000, 7);
    let mut open = with_old.source.connect().unwrap();
    open.write_all(&early[..50_000]).unwrap();
    open.set_read_timeout(Some(EXCHANGE_DEADLINE)).unwrap();
    let echoed = open.read_exact_within(50_000, EXCHANGE_DEADLINE).unwrap();
    assert_eq!(echoed, early[..50_000]);
    assert_dropped("new key before the reload", &with_new.source);

    write_conf(
        &conf,
        &pipe("p", "decrypt", &source, &target.addr.arg(), &new, ""),
    );
    assert!(reload(&daemon, 1).contains("reloaded:"));
    let up = payload(30_000, 8);
    e_round_trip(
        "new key after the reload",
        &with_new.source,
        &up,
        &up,
        &target,
    );
    assert_dropped("old key after the reload", &with_old.source);
    open.write_all(&early[50_000..]).unwrap();
    open.shutdown(std::net::Shutdown::Write).unwrap();
    let (rest, err) = open.read_to_eof();
    assert!(err.is_none(), "{err:?}");
    assert_eq!(rest, early[50_000..], "the old-key session was altered");
}

/// Command-line mode reloads its key files too: a key file replaced on disk takes
/// effect with SIGHUP, without a restart.
#[test]
fn command_line_reloads_its_key_file() {
    let dir = temp_dir();
    let d = dir.path();
    let key = key_file(d, "key", b"first contents");
    let target = Target::start(Transport::Tcp, d, Mode::Echo);
    let source = Addr::fresh(Transport::Tcp, d, "s");
    let k = key.to_str().unwrap();
    let daemon = Daemon::pipe(
        Impl::Ours,
        "cli",
        d,
        &source,
        &target.addr.arg(),
        k,
        &["-d"],
    );
    let second = key_file(d, "second", b"second contents");
    let with_second = client(d, "second", &source, &second);
    assert_dropped("before the reload", &with_second.source);
    key_file(d, "key", b"second contents");
    assert!(reload(&daemon, 1).contains("reloaded: 1 pipes"));
    let up = payload(20_000, 9);
    e_round_trip("after the reload", &with_second.source, &up, &up, &target);
}

/// A reload that cannot apply changes nothing: a syntax error, an unreadable key file,
/// a source port that another process holds. The error names the place; the old
/// configuration keeps serving.
#[test]
fn broken_reloads_change_nothing() {
    let dir = temp_dir();
    let d = dir.path();
    let etc = etc_dir(d);
    let key = key_file(&etc, "key", b"broken reloads");
    let target = Target::start(Transport::Tcp, d, Mode::Echo);
    let (a, b) = (
        Addr::fresh(Transport::Tcp, d, "a"),
        Addr::fresh(Transport::Tcp, d, "b"),
    );
    let conf = etc.join("spiped.conf");
    let good = format!(
        "{}{}",
        pipe("enc", "encrypt", &a, &b.arg(), &key, ""),
        pipe("dec", "decrypt", &b, &target.addr.arg(), &key, "")
    );
    write_conf(&conf, &good);
    let daemon = start(d, &conf, &a);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = Addr::Tcp(taken.local_addr().unwrap());
    let missing = etc.join("no-such.key");
    let conf_name = conf.display().to_string();
    let cases = [
        (
            format!("{good}max-connections = [\n"),
            format!("{conf_name}:15: max-connections: "),
        ),
        (
            format!(
                "{good}{}",
                pipe(
                    "new",
                    "decrypt",
                    &Addr::fresh(Transport::Tcp, d, "n"),
                    &target.addr.arg(),
                    &missing,
                    ""
                )
            ),
            format!(
                "{conf_name}:20: key: cannot read key file {}",
                missing.display()
            ),
        ),
        (
            format!(
                "{good}{}",
                pipe("taken", "decrypt", &taken, &target.addr.arg(), &key, "")
            ),
            format!("pipe taken: cannot listen on {taken}: Address already in use"),
        ),
    ];
    for (n, (text, want)) in cases.iter().enumerate() {
        write_conf(&conf, text);
        let outcome = reload(&daemon, n + 1);
        assert!(
            outcome.contains("reload failed, still serving the previous configuration")
                && outcome.contains(want.as_str()),
            "case {n}: {outcome}, want {want}"
        );
        let up = payload(50_000, n as u64);
        e_round_trip(&format!("after broken reload {n}"), &a, &up, &up, &target);
    }
    // The file fixed, a reload works again.
    write_conf(&conf, &good);
    assert!(reload(&daemon, 4).contains("reloaded: 2 pipes"));
}

/// Routing by key: one port, two keys, two services; each client reaches its own, and
/// a client with another key reaches nothing. With C clients when available.
#[test]
fn routing_by_key() {
    let dir = temp_dir();
    let d = dir.path();
    let (k1, k2, k3) = (
        key_file(d, "k1", b"key of service one"),
        key_file(d, "k2", b"key of service two"),
        key_file(d, "k3", b"a key nobody serves"),
    );
    let (r1, r2) = (payload(70_000, 11), payload(80_000, 12));
    let t1 = Target::start(Transport::Tcp, d, Mode::Duplex(Arc::new(r1.clone())));
    let t2 = Target::start(Transport::Tcp, d, Mode::Duplex(Arc::new(r2.clone())));
    let source = Addr::fresh(Transport::Tcp, d, "s");
    let conf = d.join("spiped.conf");
    write_conf(
        &conf,
        &format!(
            "[[pipe]]\ndecrypt = true\nsource = \"{}\"\nkeys = [{{ file = \"{}\", target = \"{}\" }},\n\
             {{ file = \"{}\", target = \"{}\" }}]\n",
            source.arg(),
            k1.display(),
            t1.addr.arg(),
            k2.display(),
            t2.addr.arg()
        ),
    );
    let _daemon = start(d, &conf, &source);
    let clients = if c_available() { Impl::C } else { Impl::Ours };
    let cl = |label: &str, key: &Path| {
        let s = Addr::fresh(Transport::Tcp, d, label);
        Daemon::pipe(
            clients,
            label,
            d,
            &s,
            &source.arg(),
            key.to_str().unwrap(),
            &["-e"],
        )
    };
    let (c1, c2, c3) = (cl("c1", &k1), cl("c2", &k2), cl("c3", &k3));
    let (u1, u2) = (payload(90_000, 13), payload(60_000, 14));
    e_round_trip("key 1 to service 1", &c1.source, &u1, &r1, &t1);
    e_round_trip("key 2 to service 2", &c2.source, &u2, &r2, &t2);
    // The clients' readiness probes reached the targets too; count from here.
    for t in [&t1, &t2] {
        t.wait_idle(EXCHANGE_DEADLINE).unwrap();
    }
    let before = (t1.accepted(), t2.accepted());
    assert_dropped("unknown key", &c3.source);
    assert_eq!(
        (t1.accepted(), t2.accepted()),
        before,
        "a target heard of the unknown key"
    );
}

/// The allow-list: a client it does not list is closed at once, without a handshake,
/// and the target never hears of it; a listed one is served.
#[test]
fn allow_list_refuses_others() {
    let dir = temp_dir();
    let d = dir.path();
    let key = key_file(d, "key", b"allow list");
    let target = Target::start(Transport::Tcp, d, Mode::Echo);
    let (closed, open) = (
        Addr::fresh(Transport::Tcp, d, "c"),
        Addr::fresh(Transport::Tcp, d, "o"),
    );
    let conf = d.join("spiped.conf");
    let t = target.addr.arg();
    write_conf(
        &conf,
        &format!(
            "{}{}",
            pipe(
                "closed",
                "decrypt",
                &closed,
                &t,
                &key,
                "allow = [\"10.0.0.0/8\", \"[::1]\"]\nlog-connections = true"
            ),
            pipe(
                "open",
                "decrypt",
                &open,
                &t,
                &key,
                "allow = [\"127.0.0.0/8\"]"
            )
        ),
    );
    let mut daemon = start(d, &conf, &closed);
    // A raw connection gets no nonce: the server's first handshake message never comes.
    let mut raw = closed.connect().unwrap();
    let (got, _) = raw.read_to_eof();
    assert!(got.is_empty(), "a refused client got {} bytes", got.len());
    let via_closed = client(d, "via-closed", &closed, &key);
    assert_dropped("not in the allow list", &via_closed.source);
    daemon
        .wait_stderr("closed: connection from 127.0.0.1:", READY_DEADLINE)
        .and_then(|e| {
            e.contains("refused: not in the pipe's allow list")
                .then_some(())
                .ok_or(e)
        })
        .unwrap();
    assert_eq!(target.accepted(), 0);
    let via_open = client(d, "via-open", &open, &key);
    let up = payload(40_000, 15);
    e_round_trip("in the allow list", &via_open.source, &up, &up, &target);
    // Every refusal was counted: the count at exit equals the refusals logged.
    let err = stop(&mut daemon);
    let refused = count(&err, "refused: not in the pipe's allow list");
    assert!(refused >= 2, "{err}");
    assert!(
        err.contains(&format!(
            "pipe closed stopped: 0 connections served, {refused} refused by allow"
        )),
        "{err}"
    );
}

/// SIGTERM, a clean exit, and everything the daemon wrote.
fn stop(daemon: &mut Daemon) -> String {
    daemon.signal(libc::SIGTERM);
    let status = daemon
        .wait_exit(EXCHANGE_DEADLINE)
        .expect("no exit on SIGTERM");
    assert!(status.success(), "{status}");
    daemon.stderr()
}

/// idle-timeout closes a session that moves nothing, and leaves one that keeps moving
/// alone, though it lasts longer than the timeout.
#[test]
fn idle_timeout_closes_idle_sessions_only() {
    let dir = temp_dir();
    let d = dir.path();
    let key = key_file(d, "key", b"idle timeout");
    let target = Target::start(Transport::Tcp, d, Mode::Echo);
    let source = Addr::fresh(Transport::Tcp, d, "s");
    let conf = d.join("spiped.conf");
    write_conf(
        &conf,
        &pipe(
            "idle",
            "decrypt",
            &source,
            &target.addr.arg(),
            &key,
            "idle-timeout = 0.8\nlog-connections = true",
        ),
    );
    let mut daemon = start(d, &conf, &source);
    let via = client(d, "via", &source, &key);
    let started = Instant::now();
    let mut idle = via.source.connect().unwrap();
    idle.write_all(b"hello").unwrap();
    assert_eq!(
        idle.read_exact_within(5, EXCHANGE_DEADLINE).unwrap(),
        b"hello"
    );
    let mut busy = via.source.connect().unwrap();
    // The busy session sends a little every 200 ms for three timeouts' worth. (The
    // sleep is the traffic's pace, well inside the 0.8 s timeout, not a wait for
    // anything: what the test waits for below, it polls.)
    let mut sent = Vec::new();
    for i in 0..12u8 {
        busy.write_all(&[i; 100]).unwrap();
        sent.extend_from_slice(&[i; 100]);
        assert_eq!(
            busy.read_exact_within(100, EXCHANGE_DEADLINE).unwrap(),
            [i; 100]
        );
        thread::sleep(Duration::from_millis(200));
    }
    // The idle session was closed meanwhile, not before its timeout.
    idle.set_read_timeout(Some(EXCHANGE_DEADLINE)).unwrap();
    let (rest, _) = idle.read_to_eof();
    assert!(rest.is_empty());
    let err = daemon
        .wait_stderr(
            "closed after 0.8 s without traffic (idle-timeout)",
            READY_DEADLINE,
        )
        .unwrap();
    assert_eq!(count(&err, "idle-timeout"), 1, "{err}");
    assert!(started.elapsed() >= Duration::from_millis(800));
    busy.shutdown(std::net::Shutdown::Write).unwrap();
    let (tail, e) = busy.read_to_eof();
    assert!(tail.is_empty() && e.is_none(), "{e:?}");
    target.wait_received(&sent, EXCHANGE_DEADLINE).unwrap();
    let err = stop(&mut daemon);
    assert!(err.contains("closed by idle-timeout"), "{err}");
    assert!(
        err.contains("connections served, 0 refused by allow, 1 closed by idle-timeout"),
        "{err}"
    );
    assert!(err.contains(" on pipe idle to "), "{err}");
}

/// `Type=notify-reload`: READY=1 at start; on SIGHUP, RELOADING=1 with a
/// MONOTONIC_USEC of the reload's start, then READY=1; WATCHDOG=1 at half the
/// WATCHDOG_USEC interval meanwhile.
#[test]
fn notify_reload_and_watchdog() {
    let dir = temp_dir();
    let d = dir.path();
    let key = key_file(d, "key", b"notify");
    let source = Addr::fresh(Transport::Tcp, d, "s");
    let conf = d.join("spiped.conf");
    write_conf(
        &conf,
        &pipe("p", "decrypt", &source, "[127.0.0.1]:9", &key, ""),
    );
    let notify_path = d.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(READY_DEADLINE)).unwrap();
    let mut cmd = spiped_cmd(Impl::Ours);
    cmd.env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "200000");
    let daemon = Daemon::spawn_cmd(
        Impl::Ours,
        "notify",
        d,
        &source,
        cmd,
        &["-c", conf.to_str().unwrap()],
    );
    let mut buf = [0u8; 256];
    let mut next = |what: &str| -> String {
        loop {
            let n = notify
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no {what}: {e}; stderr: {}", daemon.stderr()));
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg != "WATCHDOG=1" || what == "WATCHDOG=1" {
                return msg;
            }
        }
    };
    assert_eq!(next("READY=1"), "READY=1");
    // Five pings at 100 ms intervals take about 400 ms.
    let pings = Instant::now();
    next("WATCHDOG=1");
    for _ in 0..4 {
        assert_eq!(next("WATCHDOG=1"), "WATCHDOG=1");
    }
    let took = pings.elapsed();
    assert!(
        (Duration::from_millis(300)..Duration::from_millis(2000)).contains(&took),
        "{took:?}"
    );
    let before = monotonic_usec();
    daemon.signal(libc::SIGHUP);
    let reloading = next("RELOADING=1");
    let after = monotonic_usec();
    let usec: u64 = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .unwrap_or_else(|| panic!("{reloading:?}"))
        .parse()
        .unwrap();
    assert!(
        (before..=after).contains(&usec),
        "{before} <= {usec} <= {after}"
    );
    assert_eq!(next("READY=1"), "READY=1");
    // A failed reload still ends the reload for systemd, saying why.
    fs::write(&conf, "[[pipe]]\nbogus = 1\n").unwrap();
    daemon.signal(libc::SIGHUP);
    assert!(next("RELOADING=1").starts_with("RELOADING=1\nMONOTONIC_USEC="));
    let ready = next("READY=1");
    assert!(
        ready.starts_with("READY=1\nSTATUS=reload failed: "),
        "{ready:?}"
    );
    assert!(ready.contains("unknown field `bogus`"), "{ready:?}");
}

/// The monotonic clock in microseconds, as systemd reads it.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the valid pointer it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// `--check` says what is wrong (every problem, each with its place) and exits 1, or
/// says all is well and exits 0; command-line pipe options do not mix with `-c`.
#[test]
fn check_reports_every_problem() {
    let dir = temp_dir();
    let d = dir.path();
    let key = key_file(d, "key", b"check");
    let conf = d.join("spiped.conf");
    let s = Addr::fresh(Transport::Tcp, d, "s");
    let s2 = Addr::fresh(Transport::Tcp, d, "s2");
    let missing = PathBuf::from("/nonexistent/key");
    write_conf(
        &conf,
        &format!(
            "{}{}",
            pipe("a", "decrypt", &s, "[127.0.0.1]:9", &missing, ""),
            pipe(
                "b",
                "encrypt",
                &s2,
                "[127.0.0.1]:9",
                &key,
                "fast = true\nrequire-pfs = true"
            )
        ),
    );
    let check = |extra: &[&str]| {
        let mut c = spiped_cmd(Impl::Ours);
        c.args(["-c", conf.to_str().unwrap()]).args(extra);
        run(c)
    };
    let out = check(&["--check"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    let name = conf.display();
    assert!(
        out.stderr.contains(&format!(
            "spiped: {name}:15: require-pfs: -f/--fast and -g/--require-pfs cannot be used together"
        )),
        "{}",
        out.stderr
    );
    write_conf(
        &conf,
        &pipe("a", "decrypt", &s, "[127.0.0.1]:9", &missing, ""),
    );
    let out = check(&["--check"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains(&format!(
            "{name}:6: key: cannot read key file /nonexistent/key"
        )),
        "{}",
        out.stderr
    );
    // The same mistake, started for real, stops the daemon with the same words.
    let out = check(&["-F"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .contains(&format!("{name}:6: key: cannot read key file")),
        "{}",
        out.stderr
    );
    let out = check(&["-e"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains("-e/--encrypt is a pipe setting"),
        "{}",
        out.stderr
    );
    let mut c = spiped_cmd(Impl::Ours);
    c.arg("--check");
    let out = run(c);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains("--check checks a configuration file"),
        "{}",
        out.stderr
    );
}

/// SIGTERM drains every pipe at once: all sources refuse at once, open sessions go on,
/// and `drain-timeout` ends them all together.
#[test]
fn drain_covers_every_pipe() {
    let dir = temp_dir();
    let d = dir.path();
    let key = key_file(d, "key", b"drain");
    let target = Target::start(Transport::Tcp, d, Mode::Echo);
    let (a, b) = (
        Addr::fresh(Transport::Tcp, d, "a"),
        Addr::fresh(Transport::Tcp, d, "b"),
    );
    let conf = d.join("spiped.conf");
    let t = target.addr.arg();
    write_conf(
        &conf,
        &format!(
            "drain-timeout = 1\n{}{}",
            pipe("a", "encrypt", &a, &b.arg(), &key, ""),
            pipe("b", "decrypt", &b, &t, &key, "")
        ),
    );
    let mut daemon = start(d, &conf, &a);
    let mut open = a.connect().unwrap();
    open.write_all(b"still here").unwrap();
    assert_eq!(
        open.read_exact_within(10, EXCHANGE_DEADLINE).unwrap(),
        b"still here"
    );
    let signalled = Instant::now();
    daemon.signal(libc::SIGTERM);
    for source in [&a, &b] {
        source.wait_refusing(
            &format!("{source} to stop accepting (drain)"),
            READY_DEADLINE,
        );
    }
    // The session (through both pipes) still works while the drain lasts.
    open.write_all(b"and now").unwrap();
    assert_eq!(
        open.read_exact_within(7, EXCHANGE_DEADLINE).unwrap(),
        b"and now"
    );
    let status = daemon
        .wait_exit(EXCHANGE_DEADLINE)
        .expect("the drain timeout did not end the daemon");
    assert!(status.success(), "{status}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(1),
        "exited before the drain timeout"
    );
    let (rest, _) = open.read_to_eof();
    assert!(rest.is_empty());
}

/// `-n 2` survives a reload that keeps the pipe: with two connections open, a no-op
/// SIGHUP makes no room (it used to start a fresh count, so that four were served): a
/// third, then a fourth, is served only as one of the open ones closes.
#[test]
fn a_reload_keeps_the_connection_limit_and_its_count() {
    let dir = temp_dir();
    let d = dir.path();
    let k = key_arg(d, "key", b"limit across reloads");
    let server = Server::start(Impl::Ours, d, "d", Mode::Echo, &["-k", &k]);
    let src = Addr::fresh(Transport::Tcp, d, "src");
    let e = Daemon::pipe(
        Impl::Ours,
        "e",
        d,
        &src,
        &server.hop.arg(),
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
    assert!(
        reload(&e, 1).contains("reloaded: 1 pipes"),
        "{}",
        e.stderr()
    );
    let third = queued(&src, b'3', || {
        open.remove(0).shutdown(std::net::Shutdown::Both).unwrap();
    });
    // Two open again: a fourth waits too (a count started afresh had room for two).
    queued(&src, b'4', || {
        third.shutdown(std::net::Shutdown::Both).unwrap()
    });
}

/// Connects to the echoing pipe at `src` and sends `byte`, asserting that it is not
/// served (no echo for 1.5 s) until `free` closes another connection, then that it is.
fn queued(src: &Addr, byte: u8, free: impl FnOnce()) -> Stream {
    let mut c = src.connect().expect("queued, not refused");
    c.write_all(&[byte]).unwrap();
    c.silent_for(Duration::from_millis(1500))
        .unwrap_or_else(|e| panic!("client {byte} served over -n 2 after a reload: {e}"));
    free();
    assert_eq!(c.read_exact_within(1, EXCHANGE_DEADLINE).unwrap(), [byte]);
    c
}

/// A FIFO put where a key file was, then SIGHUP: the reload is refused at once with a
/// line that says why, instead of waiting (with the whole daemon) for a writer; the
/// pipe goes on serving. The same for the configuration file itself.
#[test]
fn a_fifo_at_reload_is_refused_and_serving_goes_on() {
    let dir = temp_dir();
    let d = dir.path();
    // Keys and configuration in a directory of their own, as an operator keeps them.
    let own = d.join("etc");
    fs::create_dir(&own).unwrap();
    let key = key_file(&own, "key", b"a key, then a fifo");
    let target = Target::start(Transport::Tcp, d, Mode::Echo);
    let source = Addr::fresh(Transport::Tcp, d, "s");
    let conf = own.join("spiped.conf");
    write_conf(
        &conf,
        &pipe("p", "decrypt", &source, &target.addr.arg(), &key, ""),
    );
    let daemon = start(d, &conf, &source);
    let with_key = client(d, "c", &source, &key);
    let up = payload(10_000, 3);
    e_round_trip("before the reloads", &with_key.source, &up, &up, &target);

    // A FIFO where `path` was (set aside meanwhile) fails reload number `n`, saying
    // what it is, and the pipe serves on.
    let refused = |n, path: &Path, what: &str| {
        let kept = path.with_extension("kept");
        fs::rename(path, &kept).unwrap();
        mkfifo(path);
        let outcome = reload(&daemon, n);
        let said = format!("{what} {} is a FIFO, not a regular file", path.display());
        assert!(outcome.contains(&said), "{outcome}");
        e_round_trip(
            &format!("after {said}"),
            &with_key.source,
            &up,
            &up,
            &target,
        );
        fs::remove_file(path).unwrap();
        fs::rename(&kept, path).unwrap();
    };
    refused(1, &key, "key file");
    refused(2, &conf, "configuration file");
    assert!(
        reload(&daemon, 3).contains("reloaded:"),
        "{}",
        daemon.stderr()
    );
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "{path:?}");
}

/// A handshake under way when a reload removes its key: the client has the server's
/// nonce and waits while the reload happens, then sends its DH message, signed with
/// the removed key. That session is not admitted: the daemon closes it and says why.
/// The same when the reload removes the whole pipe.
#[test]
fn a_handshake_finishing_after_its_key_is_removed_is_refused() {
    let dir = temp_dir();
    let d = dir.path();
    let etc = etc_dir(d);
    let old = key_file(&etc, "old", b"the key a reload removes");
    let target = Target::start(Transport::Tcp, d, Mode::Echo);
    let source = Addr::fresh(Transport::Tcp, d, "s");
    let other = Addr::fresh(Transport::Tcp, d, "other");
    let conf = etc.join("spiped.conf");
    let decrypt = |name: &str, source: &Addr, key: &Path| {
        let after = "connect-after-handshake = true\nlog-connections = true";
        pipe(name, "decrypt", source, &target.addr.arg(), key, after)
    };
    write_conf(&conf, &decrypt("p", &source, &old));
    let daemon = start(d, &conf, &source);
    // Made after start, so that the directory stays spiped's own (all it held at
    // start is named by the configuration) and a reload may read it.
    let new = key_file(&etc, "new", b"the key that stays");
    let new_key = decrypt("p", &source, &new);
    refused_after_reload(&daemon, 1, &source, &old, || write_conf(&conf, &new_key));

    write_conf(&conf, &decrypt("p", &source, &old));
    assert!(reload(&daemon, 2).contains("reloaded:"));
    let no_pipe = decrypt("q", &other, &old);
    refused_after_reload(&daemon, 3, &source, &old, || write_conf(&conf, &no_pipe));
    assert_eq!(target.accepted(), 0, "the target heard of a session");
}

/// Runs a protocol client with the key file `key` against the `-d` pipe at `source` of
/// `daemon`, pausing once it has the server's nonce: `change` rewrites the
/// configuration, and reload number `n` applies it. Then asserts that the daemon closes
/// the connection instead of admitting the session, and says why.
fn refused_after_reload(
    daemon: &Daemon,
    n: usize,
    source: &Addr,
    key: &Path,
    change: impl FnOnce(),
) {
    use spiped_proto::{Handshake, Key, Next, Role};
    const SAID: &str = "a reload removed meanwhile";
    let before = count(&daemon.stderr(), SAID);
    let mut conn = source.connect().unwrap();
    conn.set_read_timeout(Some(EXCHANGE_DEADLINE)).unwrap();
    let key = Key::from_file_contents(&fs::read(key).unwrap());
    let mut hs = Handshake::new(Role::Client, spiped_proto::Mode::default(), &key).unwrap();
    let (mut sent, mut change) = (0, Some(change));
    let refused = loop {
        match hs.next() {
            Next::Send(out) => {
                if sent == 1
                    && let Some(change) = change.take()
                {
                    // The server's nonce is in: the reload comes before our DH message.
                    change();
                    assert!(reload(daemon, n).contains("reloaded:"));
                }
                conn.write_all(out.bytes).unwrap();
                hs.sent();
                sent += 1;
            }
            Next::Recv(r) => {
                let mut buf = vec![0; r.len];
                match conn.read_exact(&mut buf) {
                    Ok(()) => hs.received(&buf).expect("the server's messages"),
                    Err(e) => break e.to_string(),
                }
            }
            Next::Done => {
                let mut b = [0u8; 1];
                break match conn.read(&mut b) {
                    Ok(0) => "closed".to_owned(),
                    Ok(_) => panic!("the daemon sent data on a session of a removed key"),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => e.to_string(),
                    Err(e) => panic!("session of a removed key left open: {e}"),
                };
            }
        }
    };
    assert!(change.is_none(), "refused before the reload: {refused}");
    let said = poll(EXCHANGE_DEADLINE, || {
        let text = daemon.stderr();
        (count(&text, SAID) > before).then_some(text)
    });
    assert!(said.is_some(), "{refused}: {}", daemon.stderr());
}

/// `--check` refuses two targets behind one key (only the first could be reached) and
/// an empty `allow`, refuses a configuration file that is no regular file or is over
/// 1 MiB, and warns, in one line each, of a configuration or key file that others may
/// write.
#[test]
fn check_refuses_what_means_nothing_and_warns_of_writable_files() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = temp_dir();
    let d = dir.path();
    let k1 = key_file(d, "k1", b"one key, two files");
    let k2 = key_file(d, "k2", b"one key, two files");
    let conf = d.join("spiped.conf");
    let s = Addr::fresh(Transport::Tcp, d, "s");
    let check = |path: &Path| {
        let mut c = spiped_cmd(Impl::Ours);
        c.args(["-c", path.to_str().unwrap(), "--check"]);
        run(c)
    };
    write_conf(
        &conf,
        &format!(
            "[[pipe]]\nname = \"p\"\ndecrypt = true\nsource = \"{}\"\n\
             keys = [{{ file = \"{}\", target = \"[127.0.0.1]:1\" }},\n\
             {{ file = \"{}\", target = \"[127.0.0.1]:2\" }}]\n",
            s.arg(),
            k1.display(),
            k2.display()
        ),
    );
    let out = check(&conf);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{}:6: key: key file {} holds the same key as {}, which leads to another target",
            conf.display(),
            k2.display(),
            k1.display()
        )),
        "{}",
        out.stderr
    );

    let good = pipe("p", "decrypt", &s, "[127.0.0.1]:1", &k1, "");
    write_conf(&conf, &format!("{good}allow = []\n"));
    let out = check(&conf);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("allow: the list is empty"),
        "{}",
        out.stderr
    );

    write_conf(&conf, &good);
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o664)).unwrap();
    fs::set_permissions(&k1, fs::Permissions::from_mode(0o602)).unwrap();
    let out = check(&conf);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let warned = |needle: String| {
        assert_eq!(count(&out.stderr, &needle), 1, "{needle}: {}", out.stderr);
    };
    warned(format!(
        "configuration file {} is writable by its group (mode 664)",
        conf.display()
    ));
    warned(format!(
        "key file {} is writable by everyone (mode 602)",
        k1.display()
    ));

    let out = check(Path::new("/dev/zero"));
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr.trim(),
        "spiped: configuration file /dev/zero is a character device, not a regular file"
    );
    fs::File::create(&conf)
        .unwrap()
        .set_len((1 << 20) + 1)
        .unwrap();
    let out = check(&conf);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains("is larger than 1 MiB"),
        "{}",
        out.stderr
    );
}
