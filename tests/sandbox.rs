//! The sandbox (Landlock, seccomp, no capabilities) of a running daemon and of spipe:
//! what `/proc` shows of it, that data still flows through it, and that it bites: with
//! `SPIPED_SANDBOX_PROBE` a debug build tries to read `/etc/shadow`, to execve and to map
//! executable memory right after confining itself, and logs what the kernel answered.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const KEY: &[u8] = b"a key file for the sandbox tests, longer than 32 bytes";
const QUICK: Duration = Duration::from_secs(10);

/// The probe's line when every attempt was refused: EACCES from Landlock for the
/// file, EPERM from seccomp for execve and for executable memory.
const BITTEN: &str = "sandbox probe: open /etc/shadow: Permission denied (os error 13); \
                      execve /bin/true: Operation not permitted (os error 1); \
                      executable mmap: Operation not permitted (os error 1)";

/// A temporary directory holding the tests' key file (returned as its path) and an
/// echo target.
fn setup() -> (tempfile::TempDir, String, Target) {
    let dir = temp_dir();
    let k = key_arg(dir.path(), "key", KEY);
    let target = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
    (dir, k, target)
}

/// `Field:\tvalue` lines of `/proc/<pid>/status` (or of one of its tasks).
fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in status"))
        .trim()
        .to_owned()
}

/// Asserts that every thread of `pid` has no_new_privs, a seccomp filter and no
/// capability at all; returns how many threads there are.
fn assert_confined(pid: i32, what: &str) -> usize {
    let mut threads = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path();
        let status = fs::read_to_string(path.join("status")).unwrap();
        let comm = fs::read_to_string(path.join("comm")).unwrap_or_default();
        let t = format!("{what}, thread {} ({})", path.display(), comm.trim());
        assert_eq!(status_field(&status, "NoNewPrivs"), "1", "{t}");
        assert_eq!(status_field(&status, "Seccomp"), "2", "{t}");
        for set in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
            assert_eq!(status_field(&status, set), "0000000000000000", "{t}: {set}");
        }
        threads += 1;
    }
    threads
}

/// A daemon started as root without -u: every thread is confined, its start-up line
/// says so, the probe is refused, and a connection still carries data both ways
/// through `-e` and `-d` (hash compared).
#[test]
fn root_daemon_without_u_is_confined_and_serves() {
    if !root() || skip_under_emulation("root daemon without u is confined and serves") {
        return;
    }
    let (dir, k, target) = setup();
    let k = k.as_str();
    let hop = Addr::fresh(Transport::Unix, dir.path(), "hop");
    let mut cmd = spiped_cmd(Impl::Ours);
    cmd.env("SPIPED_SANDBOX_PROBE", "1");
    let hop_arg = hop.arg();
    let target_arg = target.addr.arg();
    // --log-connections: the start-up line says what is in force (a good start is
    // otherwise silent).
    let args = [
        "-d",
        "-s",
        &hop_arg,
        "-t",
        &target_arg,
        "-k",
        k,
        "--log-connections",
    ];
    let d = Daemon::spawn_cmd(Impl::Ours, "d", dir.path(), &hop, cmd, &args);
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let verbose = ["-e", "--log-connections"];
    let e = Daemon::pipe(Impl::Ours, "e", dir.path(), &src, &hop_arg, k, &verbose);
    // Accepting starts before the sandbox (the socket is bound first): wait for its line.
    e.wait_stderr("sandbox: ", QUICK).unwrap();
    let err = d.wait_stderr("sandbox: landlock", QUICK).unwrap();
    assert!(err.contains(BITTEN), "{err}");
    assert!(
        err.contains("sandbox: landlock ABI") && err.contains("(fs, net), seccomp "),
        "{err}"
    );
    assert!(err.contains("syscalls, no capabilities\n"), "{err}");
    for daemon in [&d, &e] {
        assert_confined(daemon.pid(), &daemon.label);
    }
    let data = payload(2_000_000, 19);
    e_round_trip("sandboxed -e and -d", &src, &data, &data, &target);
}

/// `--no-sandbox` confines nothing and says so; `--sandbox strict` confines as the
/// default does (this kernel has every layer) and still serves.
#[test]
fn no_sandbox_and_strict() {
    if !root() || skip_under_emulation("no sandbox and strict") {
        return;
    }
    let (dir, k, target) = setup();
    let k = k.as_str();
    let src = Addr::fresh(Transport::Tcp, dir.path(), "off");
    let t = target.addr.arg();
    let off = Daemon::pipe(
        Impl::Ours,
        "off",
        dir.path(),
        &src,
        &t,
        k,
        &["-d", "--no-sandbox", "--log-connections"],
    );
    off.wait_stderr("sandbox: off\n", QUICK).unwrap();
    let status = fs::read_to_string(format!("/proc/{}/status", off.pid())).unwrap();
    assert_eq!(status_field(&status, "NoNewPrivs"), "0");
    assert_eq!(status_field(&status, "Seccomp"), "0");
    assert_ne!(status_field(&status, "CapEff"), "0000000000000000");

    let src = Addr::fresh(Transport::Tcp, dir.path(), "strict");
    let strict = ["-d", "--sandbox", "strict", "--log-connections"];
    let s = Daemon::pipe(Impl::Ours, "strict", dir.path(), &src, &t, k, &strict);
    s.wait_stderr("syscalls (strict), no capabilities", QUICK)
        .unwrap();
    assert!(
        !s.stderr().contains("thread(s) started earlier"),
        "{}",
        s.stderr()
    );
    assert_confined(s.pid(), "strict");
    let data = payload(300_000, 20);
    let via = Addr::fresh(Transport::Tcp, dir.path(), "via");
    let _e = Daemon::pipe(Impl::Ours, "e", dir.path(), &via, &src.arg(), k, &["-e"]);
    e_round_trip("--sandbox strict", &via, &data, &data, &target);
}

/// A layer that cannot be put in force (seccomp here, refused under strace as a
/// kernel or container without it refuses it) is what a start says, in one warning
/// line naming it; every layer in force, it says nothing. The daemon serves either way.
#[test]
fn a_layer_not_in_force_is_one_warning_line() {
    if skip_under_emulation("the warning of a layer not in force")
        || !program_available("/usr/bin/strace", "strace")
    {
        return;
    }
    let (dir, k, target) = setup();
    let t = target.addr.arg();
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=seccomp"])
        .args(["-e", "inject=seccomp:error=EINVAL"])
        .arg(spiped_bin(Impl::Ours));
    let args = ["-d", "-s", &src.arg(), "-t", &t, "-k", &k];
    let d = Daemon::spawn_cmd(Impl::Ours, "no-seccomp", dir.path(), &src, cmd, &args);
    let err = d.wait_stderr("sandbox: ", QUICK).unwrap();
    // Its first line (the readiness probe's closed connection may follow).
    let first = err.lines().next().unwrap();
    assert!(
        first.starts_with("spiped: warning: sandbox: landlock ABI")
            && first.contains(", no seccomp ("),
        "{err}"
    );
    assert_eq!(err.matches("sandbox").count(), 1, "{err}");
    let data = payload(100_000, 21);
    let via = Addr::fresh(Transport::Tcp, dir.path(), "via");
    let e = Daemon::pipe(Impl::Ours, "e", dir.path(), &via, &src.arg(), &k, &["-e"]);
    e_round_trip("without seccomp", &via, &data, &data, &target);
    assert!(
        !e.stderr().contains("sandbox"),
        "every layer in force: {}",
        e.stderr()
    );
}

/// spipe confines itself once connected: while it is piping, every thread is
/// confined, the probe is refused (no file at all is allowed), and the bytes arrive.
#[test]
fn spipe_is_confined_once_connected() {
    if !root() || skip_under_emulation("spipe is confined once connected") {
        return;
    }
    let (dir, k, target) = setup();
    let k = k.as_str();
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let t = target.addr.arg();
    let _d = Daemon::pipe(Impl::Ours, "d", dir.path(), &src, &t, k, &["-d"]);
    let err_path = dir.path().join("spipe.stderr");
    let mut spipe = spipe_cmd(Impl::Ours)
        .args(["-t", &src.arg(), "-k", k])
        .env("SPIPED_SANDBOX_PROBE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let err = wait_file_contains(&err_path, "sandbox probe", QUICK)
        .unwrap_or_else(|err| panic!("spipe did not confine itself: {err}"));
    assert!(err.contains(BITTEN), "{err}");
    assert_confined(spipe.id() as i32, "spipe");
    let data = payload(500_000, 21);
    let mut stdin = spipe.stdin.take().unwrap();
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || stdin.write_all(&data))
    };
    let out = spipe.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{err}");
    assert_eq!(sha(&out.stdout), sha(&data));
}

/// Without the probe variable nothing is tried: the same daemon logs no probe line
/// (the hook is a test aid, not behaviour).
#[test]
fn no_probe_without_the_variable() {
    let (dir, k, target) = setup();
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let mut cmd: Command = spiped_cmd(Impl::Ours);
    cmd.env_remove("SPIPED_SANDBOX_PROBE");
    let t = target.addr.arg();
    let args = [
        "-d",
        "-s",
        &src.arg(),
        "-t",
        &t,
        "-k",
        &k,
        "--log-connections",
    ];
    let d = Daemon::spawn_cmd(Impl::Ours, "d", dir.path(), &src, cmd, &args);
    d.wait_stderr("sandbox: ", QUICK).unwrap();
    assert!(!d.stderr().contains("probe"), "{}", d.stderr());
}

/// A configuration file's pipe, decrypting from `source` to `target` with `key`;
/// `log-connections`, so that the start-up line says what the sandbox puts in force.
fn conf_text(top: &str, source: &Addr, target: &Target, key: &Path) -> String {
    format!(
        "{top}\n[[pipe]]\nname = \"p\"\ndecrypt = true\nsource = \"{}\"\n\
         target = \"{}\"\nkey = \"{}\"\nlog-connections = true\n",
        source.arg(),
        target.addr.arg(),
        key.display()
    )
}

/// What a reload may add is allowed from the start: a key file in the directory of
/// the old one, which holds nothing but the key and the configuration file (spiped's
/// own). A reload naming a key file elsewhere is refused before any key is read,
/// with a message naming the sandbox, and the running pipe keeps serving (hash
/// compared). `sandbox = false` in the file turns it off.
#[test]
fn reloads_stay_within_the_sandbox() {
    if skip_under_emulation("the reload's Landlock check") {
        return;
    }
    let keys = temp_dir();
    let elsewhere = temp_dir();
    let work = temp_dir();
    let d = keys.path();
    let w = work.path();
    let old = key_file(d, "old", KEY);
    let target = Target::start(Transport::Tcp, w, Mode::Echo);
    let source = Addr::fresh(Transport::Tcp, w, "s");
    let conf = d.join("spiped.conf");
    let daemon = conf_daemon(w, &conf, &conf_text("", &source, &target, &old), &source);
    daemon
        .wait_stderr("(fs; any TCP port, for reloads)", QUICK)
        .unwrap();

    let outside = key_file(
        elsewhere.path(),
        "outside",
        b"a key outside the sandbox, 32 bytes+",
    );
    let err = reload_refused(&daemon, &conf, &conf_text("", &source, &target, &outside));
    let want = format!(
        "reload failed, still serving the previous configuration: the sandbox set up at \
         start (Landlock) does not allow reading {}",
        outside.display()
    );
    assert!(err.contains(&want), "{err}");
    let via = Addr::fresh(Transport::Tcp, w, "via");
    let k = old.to_str().unwrap();
    let _e = Daemon::pipe(Impl::Ours, "e", w, &via, &source.arg(), k, &["-e"]);
    let data = payload(200_000, 22);
    e_round_trip(
        "old key after the refused reload",
        &via,
        &data,
        &data,
        &target,
    );

    let beside = key_file(d, "beside", b"a key beside the old one, 32 bytes+");
    fs::write(&conf, conf_text("", &source, &target, &beside)).unwrap();
    daemon.signal(libc::SIGHUP);
    daemon.wait_stderr("reloaded: 1 pipes", QUICK).unwrap();

    let src = Addr::fresh(Transport::Tcp, w, "off");
    let off_conf = w.join("off.conf");
    fs::write(&off_conf, conf_text("sandbox = false", &src, &target, &old)).unwrap();
    let off = Daemon::spawn(
        Impl::Ours,
        "off",
        w,
        &src,
        &["-c", off_conf.to_str().unwrap()],
    );
    off.wait_stderr("sandbox: off\n", QUICK).unwrap();
}

/// Under qemu-user (a cross-built binary in CI) the kernel's layers are out of reach:
/// the start-up line names each one missing with the reason, the daemon serves
/// (hash compared), and `--sandbox strict` refuses to start, naming the first layer.
#[test]
fn emulated_daemon_names_the_layers_it_lacks_and_serves() {
    let Some(emulator) = emulator() else {
        eprintln!(
            "NOTE: skipping: our binary runs natively (SPIPED_TEST_BIN names no foreign one)"
        );
        return;
    };
    let (dir, k, target) = setup();
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let t = target.addr.arg();
    let d = Daemon::pipe(Impl::Ours, "d", dir.path(), &src, &t, &k, &["-d"]);
    let err = d.wait_stderr("sandbox: ", QUICK).unwrap();
    let line = err.lines().find(|l| l.contains("sandbox: ")).unwrap();
    assert!(line.contains("no landlock ("), "{emulator}: {line}");
    assert!(line.contains(", no seccomp ("), "{emulator}: {line}");
    let via = Addr::fresh(Transport::Tcp, dir.path(), "via");
    let _e = Daemon::pipe(Impl::C, "e", dir.path(), &via, &src.arg(), &k, &["-e"]);
    let data = payload(300_000, 23);
    e_round_trip("emulated -d behind C -e", &via, &data, &data, &target);

    let strict = Addr::fresh(Transport::Tcp, dir.path(), "strict");
    let out = spiped_cmd(Impl::Ours)
        .args([
            "-F",
            "-d",
            "--sandbox",
            "strict",
            "-s",
            &strict.arg(),
            "-t",
            &t,
            "-k",
            &k,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--sandbox strict: Landlock cannot be enforced"),
        "{stderr}"
    );
}

/// `spiped -d -D -u nobody --metrics NAME:PORT`, its metrics name not resolving yet
/// (a private /etc/hosts), its target and source addresses plain, with `-p PIDFILE`.
fn late_metrics_daemon(dir: &Path, names: &Names, src: &Addr, target: &Target) -> Daemonized {
    let k = key_arg(dir, "key", KEY);
    let pidfile = dir.join("d.pid");
    let metrics = format!("metrics.spiped.test:{}", free_port());
    let mut cmd = names.spiped();
    // --log-connections: the start-up line saying what is in force is logged.
    cmd.args([
        "-d",
        "-D",
        "-u",
        "nobody",
        "--metrics",
        &metrics,
        "--log-connections",
    ])
    .args(["-s", &src.arg(), "-t", &target.addr.arg(), "-k", &k])
    .args(["-p", pidfile.to_str().unwrap()]);
    let (st, daemon) = Daemonized::start(cmd, &pidfile, &dir.join("d.stderr"));
    assert_eq!(st.and_then(|s| s.code()), Some(0));
    let daemon = daemon.unwrap();
    daemon
        .wait_stderr("retrying until it resolves (-D)", QUICK)
        .unwrap();
    daemon
}

/// Asserts that every thread of `pid` still running is confined and runs as `uid` and
/// `gid` (every one of the real, effective, saved and file-system ids); returns how
/// many threads there were. A thread that ends while it is looked at is skipped.
fn assert_threads_confined(pid: i32, uid: &str, gid: &str) -> usize {
    let mut threads = 0;
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    for task in tasks.flatten() {
        let Ok(status) = fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        let t = format!("thread {}", task.path().display());
        assert_eq!(status_field(&status, "Seccomp"), "2", "{t}");
        assert_eq!(status_field(&status, "NoNewPrivs"), "1", "{t}");
        assert_eq!(status_field(&status, "CapEff"), "0000000000000000", "{t}");
        for (field, want) in [("Uid", uid), ("Gid", gid)] {
            let ids = status_field(&status, field);
            assert!(
                ids.split_whitespace().all(|id| id == want),
                "{t}: {field} {ids}"
            );
        }
        threads += 1;
    }
    threads
}

/// The High item of the review: with `-D`, `-u nobody` and a metrics name that
/// resolves only later, nothing is served while the daemon waits (six clients keep
/// trying through an `-e` in front), and from the first connection served on, every
/// thread of the daemon (the pool threads that do the offloaded cryptography of the
/// concurrent clients included) is under seccomp and no_new_privs, without
/// capabilities, as nobody, and nothing started before the sandbox.
#[test]
fn nothing_is_served_before_the_sandbox() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    if !root() || skip_under_emulation("every thread confined before serving") {
        return;
    }
    let dir = temp_dir();
    let d = dir.path();
    let target = Target::start(Transport::Tcp, d, Mode::Echo);
    let names = Names::new(d, "127.0.0.1 localhost\n");
    let src = Addr::fresh(Transport::Tcp, d, "src");
    let daemon = late_metrics_daemon(d, &names, &src, &target);
    let k = d.join("key");
    let e = Daemon::encrypting(Impl::Ours, "e", d, &src.arg(), k.to_str().unwrap(), &[]);
    let front = e.source.clone();

    const CLIENTS: usize = 6;
    const ROUNDS: usize = 4;
    let (attempts, served) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (front, attempts, served) = (front.clone(), attempts.clone(), served.clone());
            std::thread::spawn(move || {
                let data = payload(1_000_000, 40 + i as u64);
                let mut rounds = 0;
                let end = std::time::Instant::now() + 4 * EXCHANGE_DEADLINE;
                while rounds < ROUNDS && std::time::Instant::now() < end {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    match exchange(&front, &data, EXCHANGE_DEADLINE) {
                        Ok(ex) if sha(&ex.received) == sha(&data) => {
                            served.fetch_add(1, Ordering::SeqCst);
                            rounds += 1;
                        }
                        // Refused while the daemon waits: try again.
                        _ => {}
                    }
                }
                rounds
            })
        })
        .collect();
    wait_until("every client to have tried twice", QUICK, || {
        attempts.load(Ordering::SeqCst) >= 2 * CLIENTS
    });
    assert_eq!(
        served.load(Ordering::SeqCst),
        0,
        "served while waiting for the metrics name, before the sandbox: {}",
        daemon.stderr()
    );
    assert!(
        src.connect().is_err(),
        "listening before every name resolved"
    );

    names.set_hosts("127.0.0.1 localhost\n127.0.0.1 metrics.spiped.test\n");
    let (uid, gid) = passwd_ids("nobody");
    wait_until("the first connection served", EXCHANGE_DEADLINE, || {
        served.load(Ordering::SeqCst) > 0
    });
    let mut most_threads = 0;
    while clients.iter().any(|c| !c.is_finished()) {
        most_threads = most_threads.max(assert_threads_confined(daemon.pid, &uid, &gid));
        // Sampling as often as possible, but leaving the cores to the traffic.
        std::thread::yield_now();
    }
    for c in clients {
        assert_eq!(c.join().unwrap(), ROUNDS, "a client was not served");
    }
    assert!(most_threads > 1, "no pool thread seen during the traffic");
    let err = daemon.stderr();
    assert!(err.contains("sandbox: landlock"), "{err}");
    assert!(!err.contains("started earlier"), "{err}");
}

/// SIGTERM and SIGINT end a `-D` wait for the metrics name at once: the daemon exits
/// without a word more, its pidfile removed, having listened on nothing. A SIGHUP
/// meanwhile reloads nothing, and says so.
#[test]
fn a_signal_ends_the_wait_for_the_metrics_name() {
    if !root() || skip_under_emulation("the wait in a private mount namespace") {
        return;
    }
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let dir = temp_dir();
        let d = dir.path();
        let target = Target::start(Transport::Tcp, d, Mode::Echo);
        let names = Names::new(d, "127.0.0.1 localhost\n");
        let src = Addr::fresh(Transport::Tcp, d, "src");
        let daemon = late_metrics_daemon(d, &names, &src, &target);
        assert!(
            src.connect().is_err(),
            "listening before every name resolved"
        );
        signal(daemon.pid, libc::SIGHUP);
        let said = daemon.wait_stderr("SIGHUP ignored: not serving yet", QUICK);
        assert!(said.is_ok(), "{said:?}");
        let before = daemon.stderr();
        signal(daemon.pid, sig);
        assert!(
            daemon.wait_gone(QUICK),
            "signal {sig} ignored while waiting"
        );
        assert!(!d.join("d.pid").exists(), "pidfile left behind");
        assert_eq!(daemon.stderr(), before, "signal {sig}");
    }
}

/// Whether `spipe -t SRC -k KEY` echoes `data` whole and exits 0.
fn spipe_echoes(src: &Addr, key: &Path, data: &[u8]) -> bool {
    let mut cmd = spipe_cmd(Impl::Ours);
    cmd.args(["-t", &src.arg(), "-k", key.to_str().unwrap()]);
    let out = run_with_stdin(cmd, data, EXCHANGE_DEADLINE);
    out.code() == Some(0) && sha(&out.stdout) == sha(data)
}

/// Replaces the file at `path` as editors and key rotation do: a new file beside it,
/// renamed over it.
fn replace_by_rename(path: &Path, bytes: &[u8]) {
    let new = path.with_extension("new");
    key_file(
        new.parent().unwrap(),
        new.file_name().unwrap().to_str().unwrap(),
        bytes,
    );
    fs::rename(&new, path).unwrap();
}

/// Our daemon serving the configuration file `conf`, written as `text` (a pipe
/// listening on `source`), its stderr in `work`; returned once it is confined.
fn conf_daemon(work: &Path, conf: &Path, text: &str, source: &Addr) -> Daemon {
    fs::write(conf, text).unwrap();
    let c = conf.to_str().unwrap();
    let daemon = Daemon::spawn(Impl::Ours, "conf", work, source, &["-c", c]);
    daemon.wait_stderr("sandbox: landlock", QUICK).unwrap();
    daemon
}

/// Rewrites `conf` in place (so it stays the file allowed at start) as `text`, sends
/// SIGHUP, and returns the line saying that this reload failed.
fn reload_refused(daemon: &Daemon, conf: &Path, text: &str) -> String {
    let failed = |err: String| -> Vec<String> {
        let lines = err.lines().filter(|l| l.contains("reload"));
        lines.map(str::to_owned).collect()
    };
    let before = failed(daemon.stderr()).len();
    fs::write(conf, text).unwrap();
    daemon.signal(libc::SIGHUP);
    let line = poll(QUICK, || failed(daemon.stderr()).into_iter().nth(before));
    let line = line.unwrap_or_else(|| panic!("no reload reported: {}", daemon.stderr()));
    assert!(line.contains("reload failed"), "{line}");
    line
}

/// The README's quick start, `-k key` relative to the directory spiped starts in (a
/// directory of the key's own): the key rotated by renaming a new file over it and
/// SIGHUP, with the sandbox on. The new key is served and the old one refused.
#[test]
fn a_relative_key_rotates_under_the_sandbox() {
    if skip_under_emulation("a relative key rotated under Landlock") {
        return;
    }
    const NEW: &[u8] = b"the key after the rotation, 32 bytes or more";
    let keys = temp_dir();
    let work = temp_dir();
    let w = work.path();
    key_file(keys.path(), "key", KEY);
    let (old, new) = (key_file(w, "old", KEY), key_file(w, "new", NEW));
    let target = Target::start(Transport::Tcp, w, Mode::Echo);
    let src = Addr::fresh(Transport::Tcp, w, "src");
    let mut cmd = spiped_cmd(Impl::Ours);
    cmd.current_dir(keys.path());
    let args = [
        "-d",
        "-s",
        &src.arg(),
        "-t",
        &target.addr.arg(),
        "-k",
        "key",
        "--log-connections",
    ];
    let d = Daemon::spawn_cmd(Impl::Ours, "d", w, &src, cmd, &args);
    d.wait_stderr("sandbox: landlock", QUICK).unwrap();
    let data = payload(100_000, 23);
    assert!(spipe_echoes(&src, &old, &data), "{}", d.stderr());

    replace_by_rename(&keys.path().join("key"), NEW);
    d.signal(libc::SIGHUP);
    d.wait_stderr("reloaded: 1 pipes", QUICK)
        .unwrap_or_else(|e| panic!("the reload failed: {e}"));
    assert!(spipe_echoes(&src, &new, &data), "{}", d.stderr());
    assert!(
        !spipe_echoes(&src, &old, &data),
        "the old key is still served"
    );
}

/// A key file beside files the configuration does not name (as in `/etc/ssl`): a
/// reload may not read those (a key path pointed at one is refused, naming the
/// sandbox), and a key file there replaced by rename is refused as such, saying to
/// keep keys in a directory of their own. The running pipe serves on with its key.
#[test]
fn a_reload_reads_nothing_else_beside_a_key() {
    if skip_under_emulation("the reload's Landlock check of files") {
        return;
    }
    let shared = temp_dir();
    let work = temp_dir();
    let (s, w) = (shared.path(), work.path());
    let key = key_file(s, "key", KEY);
    let unrelated = key_file(
        s,
        "unrelated.key",
        b"someone else's secret, 32 bytes or more",
    );
    let target = Target::start(Transport::Tcp, w, Mode::Echo);
    let source = Addr::fresh(Transport::Tcp, w, "s");
    let conf = s.join("spiped.conf");
    let daemon = conf_daemon(w, &conf, &conf_text("", &source, &target, &key), &source);

    let err = reload_refused(&daemon, &conf, &conf_text("", &source, &target, &unrelated));
    let want = format!(
        "reload failed, still serving the previous configuration: the sandbox set up at \
         start (Landlock) does not allow reading {}: only the files named then",
        unrelated.display()
    );
    assert!(err.contains(&want), "{err}");
    // A key file that is not there is named as missing, not blamed on the sandbox.
    let missing = s.join("missing.key");
    let err = reload_refused(&daemon, &conf, &conf_text("", &source, &target, &missing));
    let want = format!("cannot read key file {}: No such file", missing.display());
    assert!(err.contains(&want) && !err.contains("sandbox"), "{err}");

    fs::write(&conf, conf_text("", &source, &target, &key)).unwrap();
    replace_by_rename(&key, b"the key replaced by rename, 32 bytes or more");
    daemon.signal(libc::SIGHUP);
    let err = daemon.wait_stderr("has been replaced", QUICK).unwrap();
    let want = format!(
        "reload failed, still serving the previous configuration: {} has been replaced",
        key.display()
    );
    assert!(err.contains(&want), "{err}");
    assert!(
        err.contains("keep key files and the configuration file in a directory of their own"),
        "{err}"
    );
    assert!(!err.contains("reloaded"), "{err}");
    let old = key_file(w, "old", KEY);
    assert!(spipe_echoes(&source, &old, &payload(50_000, 24)), "{err}");
}

/// A reload may not point a pipe at a UNIX socket the start-up configuration did not
/// allow (here one in another directory): it is refused in one line, whatever the
/// kernel's Landlock ABI, and the old target keeps being served.
#[test]
fn a_reload_connects_to_no_other_unix_socket() {
    if skip_under_emulation("the reload's Landlock check of UNIX targets") {
        return;
    }
    let keys = temp_dir();
    let work = temp_dir();
    let private = temp_dir();
    let (k, w) = (keys.path(), work.path());
    let key = key_file(k, "key", KEY);
    let target = Target::start(Transport::Unix, w, Mode::Echo);
    let other = Target::start(Transport::Unix, private.path(), Mode::Echo);
    let source = Addr::fresh(Transport::Tcp, w, "s");
    let conf = k.join("spiped.conf");
    let daemon = conf_daemon(w, &conf, &conf_text("", &source, &target, &key), &source);

    let err = reload_refused(&daemon, &conf, &conf_text("", &source, &other, &key));
    let want = format!(
        "reload failed, still serving the previous configuration: the sandbox set up at \
         start allows connecting only to the UNIX sockets targeted then ({}), and to any \
         socket of a directory that held nothing else: not to {};",
        fs::canonicalize(target.addr.arg()).unwrap().display(),
        other.addr.arg()
    );
    assert!(err.contains(&want), "{err}");
    let e = Daemon::encrypting(
        Impl::Ours,
        "e",
        w,
        &source.arg(),
        key.to_str().unwrap(),
        &[],
    );
    let data = payload(60_000, 25);
    e_round_trip(
        "the old target after the refused reload",
        &e.source,
        &data,
        &data,
        &target,
    );
    assert!(other.records().is_empty(), "the refused target was reached");
}

/// A UNIX source socket directly in a shared directory (`/tmp`): a reload keeping its
/// pipe creates nothing, so the sandbox does not stand in its way (it used to refuse
/// every reload of such a file as creating the socket anew).
#[test]
fn a_reload_keeps_a_source_in_a_shared_directory() {
    if skip_under_emulation("the reload's Landlock check of a kept source") {
        return;
    }
    let keys = temp_dir();
    let work = temp_dir();
    let (k, w) = (keys.path(), work.path());
    let key = key_file(k, "key", KEY);
    let target = Target::start(Transport::Tcp, w, Mode::Echo);
    // Removed when the test ends: the sandbox keeps the daemon from removing it.
    let path = tempfile::Builder::new()
        .prefix("spiped-test")
        .suffix(".sock")
        .tempfile_in("/tmp")
        .unwrap()
        .into_temp_path();
    fs::remove_file(&path).unwrap();
    let source = Addr::Unix(path.to_path_buf());
    let conf = k.join("spiped.conf");
    let text = conf_text("", &source, &target, &key);
    let daemon = conf_daemon(w, &conf, &text, &source);
    daemon.signal(libc::SIGHUP);
    let done = |e: &String| e.contains("reloaded") || e.contains("reload failed");
    let err = poll(QUICK, || Some(daemon.stderr()).filter(done)).unwrap_or_default();
    assert!(
        err.contains("reloaded: 1 pipes (0 added, 1 kept, 0 removed)"),
        "{err}"
    );
    assert!(spipe_echoes(&source, &key, &payload(50_000, 27)), "{err}");
}

/// With `-u`, a reload reads the configuration file as that user too: one only root
/// may read says why at a reload, and the pipes serve on.
#[test]
fn a_reload_under_u_names_the_user_the_configuration_must_be_readable_by() {
    use std::os::unix::fs::PermissionsExt;
    if !root() {
        return;
    }
    let (dir, k, target) = setup();
    let etc = temp_dir();
    fs::set_permissions(etc.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let conf = etc.path().join("spiped.toml");
    fs::write(
        &conf,
        format!(
            "[[pipe]]\ndecrypt = true\nsource = \"{}\"\ntarget = \"{}\"\nkey = \"{k}\"\n\
             log-connections = true\n",
            src.arg(),
            target.addr.arg()
        ),
    )
    .unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).unwrap();
    let c = conf.to_str().unwrap();
    let d = Daemon::spawn(
        Impl::Ours,
        "d",
        dir.path(),
        &src,
        &["-c", c, "-u", "nobody"],
    );
    d.wait_stderr("sandbox: ", QUICK).unwrap();
    d.signal(libc::SIGHUP);
    let err = d.wait_stderr("reload failed", QUICK).unwrap();
    let want = format!(
        "cannot read configuration file {c}: Permission denied; spiped runs as -u nobody \
         since start, so the configuration file must be readable by that user"
    );
    assert!(err.contains(&want), "{err}");
    assert!(
        spipe_echoes(&src, Path::new(&k), &payload(50_000, 28)),
        "{err}"
    );
}

/// A pidfile beside a file the configuration does not name (as in a home directory):
/// once confined, the daemon may remove nothing there, so that file survives an attempt
/// to remove it, and the pidfile stays behind at exit, as C spiped's does.
#[test]
fn a_pidfile_beside_other_files_grants_no_removal() {
    if !root() || skip_under_emulation("removal beside a pidfile under Landlock") {
        return;
    }
    let (dir, k, target) = setup();
    let home = temp_dir();
    let unrelated = home.path().join("unrelated");
    fs::write(&unrelated, "someone else's file").unwrap();
    let pidfile = home.path().join("spiped.pid");
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let mut cmd = spiped_cmd(Impl::Ours);
    cmd.env("SPIPED_SANDBOX_PROBE", &unrelated).args([
        "-d",
        "-s",
        &src.arg(),
        "-t",
        &target.addr.arg(),
        "-k",
        &k,
        "-p",
        pidfile.to_str().unwrap(),
    ]);
    let (st, daemon) = Daemonized::start(cmd, &pidfile, &dir.path().join("err"));
    let started = fs::read_to_string(dir.path().join("err")).unwrap();
    assert!(st.is_some_and(|s| s.success()), "{st:?}: {started}");
    let daemon = daemon.unwrap();
    let err = daemon.wait_stderr("sandbox probe: remove", QUICK).unwrap();
    let want = format!(
        "sandbox probe: remove {}: Permission denied",
        unrelated.display()
    );
    assert!(err.contains(&want), "{err}");
    assert!(unrelated.exists(), "the unrelated file was removed");
    signal(daemon.pid, libc::SIGTERM);
    assert!(daemon.wait_gone(QUICK), "still running after SIGTERM");
    assert!(pidfile.exists(), "the pidfile was removed");
}

/// With `-u`, a reload reads key files as that user: a root-only key read at start
/// cannot be read again, and the reload says why (not a bare "Permission denied"),
/// while the pipe serves on with the key it has.
#[test]
fn a_reload_under_u_names_the_user_a_key_must_be_readable_by() {
    use std::os::unix::fs::PermissionsExt;
    if !root() {
        return;
    }
    let (dir, k, target) = setup();
    let keys = temp_dir();
    fs::set_permissions(keys.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let key = key_arg(keys.path(), "key", KEY);
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let t = target.addr.arg();
    let args = ["-d", "-u", "nobody", "--log-connections"];
    let d = Daemon::pipe(Impl::Ours, "d", dir.path(), &src, &t, &key, &args);
    d.wait_stderr("sandbox: ", QUICK).unwrap();
    d.signal(libc::SIGHUP);
    let err = d.wait_stderr("reload failed", QUICK).unwrap();
    let want = format!(
        "cannot read key file {key}: Permission denied; spiped runs as -u nobody since \
         start, so the key file must be readable by that user"
    );
    assert!(err.contains(&want), "{err}");
    assert!(
        spipe_echoes(&src, Path::new(&k), &payload(50_000, 25)),
        "{err}"
    );
}
