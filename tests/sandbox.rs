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
    let args = ["-d", "-s", &hop_arg, "-t", &target_arg, "-k", k];
    let d = Daemon::spawn_cmd(Impl::Ours, "d", dir.path(), &hop, cmd, &args);
    let src = Addr::fresh(Transport::Tcp, dir.path(), "src");
    let e = Daemon::pipe(Impl::Ours, "e", dir.path(), &src, &hop_arg, k, &["-e"]);
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
        &["-d", "--no-sandbox"],
    );
    off.wait_stderr("sandbox: off\n", QUICK).unwrap();
    let status = fs::read_to_string(format!("/proc/{}/status", off.pid())).unwrap();
    assert_eq!(status_field(&status, "NoNewPrivs"), "0");
    assert_eq!(status_field(&status, "Seccomp"), "0");
    assert_ne!(status_field(&status, "CapEff"), "0000000000000000");

    let src = Addr::fresh(Transport::Tcp, dir.path(), "strict");
    let strict = ["-d", "--sandbox", "strict"];
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
    let args = ["-d", "-s", &src.arg(), "-t", &t, "-k", &k];
    let d = Daemon::spawn_cmd(Impl::Ours, "d", dir.path(), &src, cmd, &args);
    d.wait_stderr("sandbox: ", QUICK).unwrap();
    assert!(!d.stderr().contains("probe"), "{}", d.stderr());
}

/// A configuration file's pipe, decrypting from `source` to `target` with `key`.
fn conf_text(top: &str, source: &Addr, target: &Target, key: &Path) -> String {
    format!(
        "{top}\n[[pipe]]\nname = \"p\"\ndecrypt = true\nsource = \"{}\"\n\
         target = \"{}\"\nkey = \"{}\"\n",
        source.arg(),
        target.addr.arg(),
        key.display()
    )
}

/// What a reload may add is allowed from the start: a key file in the directory of
/// the old one. A reload naming a key file elsewhere is refused before any key is read,
/// with a message naming the sandbox, and the running pipe keeps serving (hash
/// compared). `sandbox = false` in the file turns it off.
#[test]
fn reloads_stay_within_the_sandbox() {
    if skip_under_emulation("the reload's Landlock check") {
        return;
    }
    let keys = temp_dir();
    let elsewhere = temp_dir();
    let d = keys.path();
    let old = key_file(d, "old", KEY);
    let target = Target::start(Transport::Tcp, d, Mode::Echo);
    let source = Addr::fresh(Transport::Tcp, d, "s");
    let conf = d.join("spiped.conf");
    fs::write(&conf, conf_text("", &source, &target, &old)).unwrap();
    let c = conf.to_str().unwrap();
    let daemon = Daemon::spawn(Impl::Ours, "conf", d, &source, &["-c", c]);
    daemon
        .wait_stderr("(fs; any TCP port, for reloads)", QUICK)
        .unwrap();

    let outside = key_file(
        elsewhere.path(),
        "outside",
        b"a key outside the sandbox, 32 bytes+",
    );
    fs::write(&conf, conf_text("", &source, &target, &outside)).unwrap();
    daemon.signal(libc::SIGHUP);
    let err = daemon.wait_stderr("reload failed", QUICK).unwrap();
    let want = format!(
        "reload failed, still serving the previous configuration: the sandbox set up at \
         start (Landlock) does not allow reading {}",
        outside.display()
    );
    assert!(err.contains(&want), "{err}");
    let via = Addr::fresh(Transport::Tcp, d, "via");
    let k = old.to_str().unwrap();
    let _e = Daemon::pipe(Impl::Ours, "e", d, &via, &source.arg(), k, &["-e"]);
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

    let src = Addr::fresh(Transport::Tcp, d, "off");
    let off_conf = d.join("off.conf");
    fs::write(&off_conf, conf_text("sandbox = false", &src, &target, &old)).unwrap();
    let off = Daemon::spawn(
        Impl::Ours,
        "off",
        d,
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
