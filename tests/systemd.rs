//! systemd integration through the real binary, with this test playing systemd's part
//! for the example units in contrib/systemd: socket activation and sd_notify.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::thread;

use common::*;

/// The value of the first `NAME=` line of `text`.
fn setting<'a>(text: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}=");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name}= line"))
}

/// The `[Service]` drop-in for key rotation that the unit's opening comment shows
/// (its indented `#   ` lines).
fn rotation_drop_in(unit: &str) -> String {
    unit.lines()
        .filter_map(|l| l.strip_prefix("#   "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `spiped` command line of an `ExecStart=` of contrib/systemd/spiped@.service, with
/// SPIPED_ARGS from spiped-example.conf, as systemd would expand it: `%d` is the
/// credentials directory `creds`; this test's binary stands in for /usr/bin/spiped and
/// `target` for the example's target.
fn unit_command_line(exec_start: &str, target: &str, creds: &Path) -> (String, Vec<String>) {
    let contrib = repo_file("contrib/systemd");
    let conf = fs::read_to_string(contrib.join("spiped-example.conf")).unwrap();
    let conf_args: Vec<&str> = setting(&conf, "SPIPED_ARGS").split_whitespace().collect();
    for unwanted in ["-s", "-k", "-F"] {
        assert!(
            !conf_args.contains(&unwanted),
            "socket activation and credentials: no {unwanted} in the example"
        );
    }
    let exec: Vec<&str> = exec_start.split_whitespace().collect();
    assert_eq!(exec[0], "/usr/bin/spiped", "the Debian package's path");
    let mut args = Vec::new();
    for word in &exec[1..] {
        if *word != "$SPIPED_ARGS" {
            args.push(word.replace("%d", creds.to_str().unwrap()));
            continue;
        }
        let mut words = conf_args.iter();
        while let Some(w) = words.next() {
            args.push(w.to_string());
            if *w == "-t" {
                args.push(target.to_owned());
                words.next();
            }
        }
    }
    (spiped_bin(Impl::Ours).to_str().unwrap().to_owned(), args)
}

/// The credential names of the `LoadCredential=` lines of `text`, each checked to load
/// a root-owned file under /etc/spiped.
fn credentials(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("LoadCredential="))
        .map(|v| {
            let (name, path) = v.split_once(':').expect("LoadCredential=ID:PATH");
            assert!(path.starts_with("/etc/spiped/"), "{v}");
            name
        })
        .collect()
}

/// Starts the example unit's command (its own `ExecStart=`, then the key-rotation
/// drop-in its comment shows) the way systemd does for spiped@.socket: the key files in a
/// credentials directory, mode 0400 as systemd makes them, named as `LoadCredential=`
/// names them; the listening socket as descriptor 3, `LISTEN_FDS=1`, `LISTEN_PID` the
/// service's own pid (set by a shell that then execs spiped, keeping its pid), and
/// `NOTIFY_SOCKET`. Waits for the `READY=1` datagram, then serves Debian's C spipe (or
/// ours) with each key, through the socket spiped never bound itself; the key draws no
/// warning; on SIGHUP (the unit's `ExecReload=`) it sends `RELOADING=1` and `READY=1`
/// and serves on; on SIGTERM it sends `STOPPING=1`, exits 0 and leaves the socket file
/// alone.
#[test]
fn socket_activated_unit_notifies_and_serves() {
    let contrib = repo_file("contrib/systemd");
    let unit = fs::read_to_string(contrib.join("spiped@.service")).unwrap();
    assert!(
        unit.contains("\nType=notify\n"),
        "the unit must wait for READY=1"
    );
    assert!(unit.contains("\nDynamicUser=yes\n"), "no user to create");
    // systemctl reload signals spiped; socket_activated checks what spiped does then.
    assert_eq!(setting(&unit, "ExecReload"), "/bin/kill -HUP $MAINPID");
    let drop_in = rotation_drop_in(&unit);
    assert!(drop_in.starts_with("[Service]\n"), "{drop_in}");
    // The drop-in's empty ExecStart= resets the list; the next line is the new command.
    let rotated = drop_in
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .find(|v| !v.is_empty())
        .expect("the drop-in sets ExecStart=");
    let mut creds_rotated = credentials(&unit);
    creds_rotated.extend(credentials(&drop_in));
    let cases = [
        ("unit", setting(&unit, "ExecStart"), credentials(&unit)),
        ("rotation drop-in", rotated, creds_rotated),
    ];
    for (case, exec_start, creds) in cases {
        socket_activated(case, exec_start, &creds);
    }
}

/// `bin` started the way systemd starts a socket-activated service: `fd` as descriptor
/// 3, `LISTEN_FDS=1`, `LISTEN_PID` the service's own pid (set by a shell that then execs
/// `bin`, keeping its pid), and `NOTIFY_SOCKET` at `notify`. The caller keeps its copy
/// of the socket open, as systemd does.
fn activated(bin: impl AsRef<std::ffi::OsStr>, fd: RawFd, notify: &Path) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ exec \"$0\" \"$@\"")
        .arg(bin)
        .env("LISTEN_FDS", "1")
        .env("NOTIFY_SOCKET", notify);
    // SAFETY: the hook runs in the forked child before exec and calls only dup2 and
    // fcntl, which are async-signal-safe; it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 gives descriptor 3 without close-on-exec; if the listener already is
            // descriptor 3, clear the flag instead.
            let r = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// One run of [`socket_activated_unit_notifies_and_serves`]: `exec_start` with a key in
/// the credential named by each of `creds`.
fn socket_activated(case: &str, exec_start: &str, creds: &[&str]) {
    use std::os::unix::fs::PermissionsExt;
    let client = if c_available() { Impl::C } else { Impl::Ours };
    let dir = temp_dir();
    let dpath = dir.path();
    let cred_dir = dpath.join("credentials");
    fs::create_dir(&cred_dir).unwrap();
    let keys: Vec<_> = creds
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let key = key_file(
                &cred_dir,
                name,
                format!("activated key {i}, 32 bytes or more").as_bytes(),
            );
            fs::set_permissions(&key, fs::Permissions::from_mode(0o400)).unwrap();
            key
        })
        .collect();
    fs::set_permissions(&cred_dir, fs::Permissions::from_mode(0o500)).unwrap();
    let reply = payload(20_000, 8);
    let target = Target::start(Transport::Tcp, dpath, Mode::Duplex(Arc::new(reply.clone())));
    let (bin, args) = unit_command_line(exec_start, &target.addr.arg(), &cred_dir);
    assert_eq!(
        args.iter().filter(|a| *a == "-k").count(),
        keys.len(),
        "{case}: one -k per credential: {args:?}"
    );

    let sock = dpath.join("activated.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let notify_path = dpath.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(READY_DEADLINE)).unwrap();

    let mut cmd = activated(&bin, listener.as_raw_fd(), &notify_path);
    cmd.env("CREDENTIALS_DIRECTORY", &cred_dir);
    let source = Addr::Unix(sock.clone());
    // spawn_cmd adds the -F of the unit's ExecStart itself.
    assert_eq!(args[0], "-F");
    let rest: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    let mut d = Daemon::spawn_cmd(Impl::Ours, "activated", dpath, &source, cmd, &rest);
    let mut buf = [0u8; 64];
    let n = notify
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("{case}: no sd_notify datagram: {e}; stderr: {}", d.stderr()));
    assert_eq!(&buf[..n], b"READY=1");

    for (i, key) in keys.iter().enumerate() {
        let up = payload(10_000 + i, 30 + i as u64);
        spipe_round_trip(
            client,
            &format!("socket-activated {case}, key {}", i + 1),
            &["-t", &source.arg(), "-k", key.to_str().unwrap()],
            &up,
            &reply,
            &target,
        );
    }
    let stderr = d.stderr();
    // With one key the lines name none; with two, the last connection used key 2.
    let used = match keys.len() {
        1 => "open, handshake group14\n".to_owned(),
        n => format!("open, handshake group14, key {n}"),
    };
    assert!(stderr.contains(&used), "{case}: {stderr}");
    assert!(!stderr.contains("warning"), "{case}: {stderr}");
    // systemctl reload: the unit's ExecReload= sends SIGHUP; spiped reports the reload
    // and serves on, through the same socket.
    d.signal(libc::SIGHUP);
    for want in ["RELOADING=1\nMONOTONIC_USEC=", "READY=1"] {
        let n = notify
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("{case}: no {want}: {e}; stderr: {}", d.stderr()));
        let got = String::from_utf8_lossy(&buf[..n]);
        assert!(
            got.starts_with(want) && (want != "READY=1" || got == want),
            "{case}: {got:?}"
        );
    }
    let up = payload(5_000, 40);
    spipe_round_trip(
        client,
        &format!("socket-activated {case}, after the reload"),
        &["-t", &source.arg(), "-k", keys[0].to_str().unwrap()],
        &up,
        &reply,
        &target,
    );
    // systemctl stop: SIGTERM, STOPPING=1, a clean exit, and the socket file left to
    // systemd, which made it.
    d.signal(libc::SIGTERM);
    let n = notify
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("{case}: no STOPPING=1: {e}; stderr: {}", d.stderr()));
    assert_eq!(&buf[..n], b"STOPPING=1");
    let status = d
        .wait_exit(EXCHANGE_DEADLINE)
        .expect("did not exit on SIGTERM");
    assert!(status.success(), "{case}: {status}; stderr: {}", d.stderr());
    assert!(sock.exists(), "the socket file is systemd's to remove");
    // Let the temporary directory's removal in.
    fs::set_permissions(&cred_dir, fs::Permissions::from_mode(0o700)).unwrap();
}

/// With LISTEN_FDS set but meant for another process (LISTEN_PID is not ours), spiped
/// takes no descriptors, and without -s it says what is missing.
#[test]
fn activation_for_another_pid_is_ignored() {
    let dir = temp_dir();
    let key = key_file(dir.path(), "key", b"any key, as long as 32 bytes or more");
    let mut cmd = spiped_cmd(Impl::Ours);
    cmd.args([
        "-F",
        "-d",
        "-t",
        "[127.0.0.1]:1",
        "-k",
        key.to_str().unwrap(),
    ])
    .env("LISTEN_FDS", "1")
    .env("LISTEN_PID", "1");
    let out = run(cmd);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .contains("no -s/--source given, and systemd passed no socket"),
        "{}",
        out.stderr
    );
}

/// Copies `from` to `to` until end of stream, then passes the end on.
fn copy_then_close(mut from: TcpStream, mut to: TcpStream) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    })
}

/// Whether process `pid` holds a descriptor of the socket with inode `ino`.
fn holds_socket(pid: i32, ino: u64) -> bool {
    let want = format!("socket:[{ino}]");
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .any(|l| l.to_string_lossy() == want)
}

/// `spipe` to `via` with piped standard input and output, as a connection the test
/// drives by hand.
fn spipe_child(via: &str, key: &str) -> std::process::Child {
    let mut cmd = spipe_cmd(Impl::Ours);
    cmd.args(["-t", via, "-k", key, "-o", "60"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    cmd.spawn().unwrap()
}

/// Reads `n` bytes of `from` within the deadline (on a thread, which a hang leaves
/// behind), returning them and the reader.
fn read_n<R: Read + Send + 'static>(mut from: R, n: usize) -> (Vec<u8>, R) {
    let h = thread::spawn(move || {
        let mut buf = vec![0; n];
        from.read_exact(&mut buf).map(|()| (buf, from))
    });
    join_deadline(h, EXCHANGE_DEADLINE)
        .expect("read within the deadline")
        .unwrap()
}

/// A socket-activated `spiped -d --connect-after-handshake` closes its listener when
/// SIGTERM starts a drain, while systemd (here: this test) keeps the listening socket
/// open and connections keep arriving on it, and then the socket is shut down. None of
/// that may reach the sockets the daemon still uses or opens afterwards: a connection
/// open across the close, and one whose handshake finishes after it (so its target
/// connection is opened after the close) both carry their bytes intact, and the daemon
/// exits 0 once they end. (An event loop that closed the listener without removing it
/// from epoll would report the queued connections and the shutdown's hang-up into
/// whatever socket it registers next.)
#[test]
fn inherited_listener_closed_in_a_drain_disturbs_no_connection() {
    let dir = temp_dir();
    let dpath = dir.path();
    let key = key_file(dpath, "key", b"drained activation key");
    let key = key.to_str().unwrap();
    let target = Target::start(Transport::Tcp, dpath, Mode::Echo);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let source = Addr::Tcp(listener.local_addr().unwrap());
    let notify_path = dpath.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(READY_DEADLINE)).unwrap();
    let cmd = activated(spiped_bin(Impl::Ours), listener.as_raw_fd(), &notify_path);
    let t = target.addr.arg();
    let args = ["-d", "--connect-after-handshake", "-t", &t, "-k", key];
    let mut d = Daemon::spawn_cmd(Impl::Ours, "activated-d", dpath, &source, cmd, &args);
    let mut buf = [0u8; 64];
    let n = notify.recv(&mut buf).expect("READY=1");
    assert_eq!(&buf[..n], b"READY=1");

    // Connection A carries data before the close.
    let mut a = spipe_child(&source.arg(), key);
    let mut a_in = a.stdin.take().unwrap();
    let first = payload(50_000, 1);
    a_in.write_all(&first).unwrap();
    let (echoed, a_out) = read_n(a.stdout.take().unwrap(), first.len());
    assert_eq!(sha(&echoed), sha(&first));
    // Connection B: the daemon accepts it now; its handshake waits in a relay.
    let relay = TcpListener::bind("127.0.0.1:0").unwrap();
    let hop = Addr::Tcp(relay.local_addr().unwrap()).arg();
    let second = payload(300_000, 2);
    let b = {
        let (mut cmd, up) = (spipe_cmd(Impl::Ours), second.clone());
        cmd.args(["-t", &hop, "-k", key, "-o", "60"]);
        thread::spawn(move || run_with_stdin(cmd, &up, EXCHANGE_DEADLINE))
    };
    let (b_e, _) = relay.accept().unwrap();
    let b_d = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let ino = fs::metadata(format!("/proc/self/fd/{}", listener.as_raw_fd()))
        .unwrap()
        .ino();
    assert!(
        holds_socket(d.pid(), ino),
        "the daemon serves the passed socket"
    );

    d.signal(libc::SIGTERM);
    let n = notify.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    wait_until(
        "the listener to close in the drain",
        EXCHANGE_DEADLINE,
        || !holds_socket(d.pid(), ino),
    );
    // Events on the listening socket the daemon closed: queued connections, then the
    // hang-up of shutting it down.
    let queued: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(listener.local_addr().unwrap()).unwrap())
        .collect();
    // SAFETY: shutdown of a descriptor this test owns; it only changes the socket's state.
    let shut = unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) };
    assert_eq!(shut, 0);

    // B's handshake goes through now, so the daemon opens its target connection after
    // the close; B's bytes come back intact.
    let relays = [
        copy_then_close(b_e.try_clone().unwrap(), b_d.try_clone().unwrap()),
        copy_then_close(b_d, b_e),
    ];
    let out = join_deadline(b, EXCHANGE_DEADLINE).expect("B finished");
    assert_eq!(
        out.code(),
        Some(0),
        "B: {}; daemon: {}",
        out.stderr,
        d.stderr()
    );
    assert_eq!(sha(&out.stdout), sha(&second), "B; daemon: {}", d.stderr());
    // A still works after the close and ends cleanly.
    let rest = payload(200_000, 3);
    a_in.write_all(&rest).unwrap();
    drop(a_in);
    let (echoed, _) = read_n(a_out, rest.len());
    assert_eq!(sha(&echoed), sha(&rest), "A; daemon: {}", d.stderr());
    let a_status = wait_deadline(&mut a, EXCHANGE_DEADLINE).expect("A's spipe exits");
    assert!(a_status.success());
    for r in relays {
        join_deadline(r, EXCHANGE_DEADLINE).expect("relay ends");
    }

    let status = d
        .wait_exit(EXCHANGE_DEADLINE)
        .expect("drained, then exited");
    assert!(status.success(), "{status}; stderr: {}", d.stderr());
    drop(queued);
    assert_eq!(
        target.accepted(),
        2,
        "one target connection each for A and B"
    );
}

/// A configuration file under socket activation: the pipe whose source is the passed
/// socket serves through it, another pipe binds its own source; a reload keeps the
/// passed socket.
#[test]
fn activated_configuration_serves_passed_and_own_sockets() {
    let dir = temp_dir();
    let d = dir.path();
    let key = key_file(d, "key", b"activated configuration key, 32 bytes");
    let target = Target::start(Transport::Tcp, d, Mode::Echo);
    let sock = d.join("passed.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let own = Addr::fresh(Transport::Tcp, d, "own");
    let conf = d.join("spiped.conf");
    let pipe = |name: &str, source: &str| {
        format!(
            "[[pipe]]\nname = \"{name}\"\ndecrypt = true\nsource = \"{source}\"\n\
             target = \"{}\"\nkey = \"{}\"\n",
            target.addr.arg(),
            key.display()
        )
    };
    let text = format!(
        "{}{}",
        pipe("passed", sock.to_str().unwrap()),
        pipe("own", &own.arg())
    );
    fs::write(&conf, &text).unwrap();
    let notify_path = d.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(READY_DEADLINE)).unwrap();
    let cmd = activated(spiped_bin(Impl::Ours), listener.as_raw_fd(), &notify_path);
    let passed = Addr::Unix(sock.clone());
    let conf_arg = conf.to_str().unwrap();
    let d2 = Daemon::spawn_cmd(Impl::Ours, "activated", d, &passed, cmd, &["-c", conf_arg]);
    own.wait_accepting(READY_DEADLINE).unwrap();
    let mut buf = [0u8; 64];
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    let k = key.to_str().unwrap();
    for (case, source) in [("passed socket", &passed), ("own socket", &own)] {
        let up = payload(8_000, 50);
        spipe_round_trip(
            Impl::Ours,
            case,
            &["-t", &source.arg(), "-k", k],
            &up,
            &up,
            &target,
        );
    }
    // A reload keeps the passed socket (its source did not change) and its file.
    d2.signal(libc::SIGHUP);
    d2.wait_stderr(
        "reloaded: 2 pipes (0 added, 2 kept, 0 removed)",
        READY_DEADLINE,
    )
    .unwrap();
    let up = payload(8_000, 51);
    let case = "passed socket after the reload";
    spipe_round_trip(
        Impl::Ours,
        case,
        &["-t", &passed.arg(), "-k", k],
        &up,
        &up,
        &target,
    );
    assert!(sock.exists());
}

/// The `[Service]` settings of a unit file, one `NAME=value` a line, in order.
fn service_settings(unit: &str) -> Vec<&str> {
    unit.split_once("\n[Service]\n")
        .expect("a [Service] section")
        .1
        .split("\n[")
        .next()
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Receives the next sd_notify datagram other than a watchdog ping; counts those.
fn next_state(notify: &UnixDatagram, pings: &mut usize, d: &Daemon) -> String {
    let mut buf = [0u8; 256];
    loop {
        let n = notify
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no sd_notify datagram: {e}; stderr: {}", d.stderr()));
        match &buf[..n] {
            b"WATCHDOG=1" => *pings += 1,
            other => return String::from_utf8_lossy(other).into_owned(),
        }
    }
}

/// contrib/systemd/spiped.service runs a configuration file: `Type=notify`, reload by
/// SIGHUP, a watchdog, and the template's sandbox but for what the keys need (no
/// `DynamicUser=`, no credentials: it reads root's keys, and reads them again on
/// reload, with no capability). Its `ExecStart=`, run the way systemd runs it (this
/// test playing systemd: `NOTIFY_SOCKET`, `WATCHDOG_USEC`), says `READY=1`, pings the
/// watchdog, serves, answers `systemctl reload` with `RELOADING=1` and `READY=1` after
/// reading a new key beside the old one, stops with `STOPPING=1` and exit 0, and says
/// nothing on stderr about its sandbox (every layer is in force).
#[test]
fn config_unit_notifies_reloads_and_pings_the_watchdog() {
    let contrib = repo_file("contrib/systemd");
    let unit = fs::read_to_string(contrib.join("spiped.service")).unwrap();
    let template = fs::read_to_string(contrib.join("spiped@.service")).unwrap();
    assert_eq!(setting(&unit, "Type"), "notify");
    assert_eq!(setting(&unit, "ExecReload"), "/bin/kill -HUP $MAINPID");
    let watchdog: u64 = setting(&unit, "WatchdogSec").parse().unwrap();
    assert!(watchdog > 0);
    assert_eq!(setting(&unit, "CapabilityBoundingSet"), "");
    // Every setting of the template's but those that pass one tunnel's options and key
    // and make up its user, and the watchdog added.
    let per_tunnel = [
        "EnvironmentFile=",
        "LoadCredential=",
        "DynamicUser=",
        "ExecStart=",
    ];
    let want: Vec<&str> = service_settings(&template)
        .into_iter()
        .filter(|l| !per_tunnel.iter().any(|p| l.starts_with(p)))
        .collect();
    let got: Vec<&str> = service_settings(&unit)
        .into_iter()
        .filter(|l| !l.starts_with("ExecStart=") && !l.starts_with("WatchdogSec="))
        .collect();
    assert_eq!(got, want);

    let exec: Vec<&str> = setting(&unit, "ExecStart").split_whitespace().collect();
    assert_eq!(
        exec,
        ["/usr/bin/spiped", "-F", "-c", "/etc/spiped/spiped.toml"]
    );
    let dir = temp_dir();
    let d = dir.path();
    // The file and its keys in a directory of their own, as /etc/spiped/ is: the
    // sandbox lets a reload read a new key there (see SECURITY.md).
    let etc = d.join("etc");
    fs::create_dir(&etc).unwrap();
    let old = key_file(&etc, "old.key", b"the config unit's old key, 32 bytes+");
    let target = Target::start(Transport::Tcp, d, Mode::Echo);
    let source = Addr::fresh(Transport::Tcp, d, "s");
    let conf = etc.join("spiped.toml");
    let text = |key: &Path| {
        format!(
            "[[pipe]]\ndecrypt = true\nsource = \"{}\"\ntarget = \"{}\"\nkey = \"{}\"\n",
            source.arg(),
            target.addr.arg(),
            key.display()
        )
    };
    fs::write(&conf, text(&old)).unwrap();
    let notify_path = d.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(READY_DEADLINE)).unwrap();
    let mut cmd = spiped_cmd(Impl::Ours);
    // A short watchdog, so that its pings come within the test.
    cmd.env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "200000");
    let conf_arg = conf.to_str().unwrap();
    // spawn_cmd adds the -F of ExecStart itself.
    let mut daemon = Daemon::spawn_cmd(Impl::Ours, "unit", d, &source, cmd, &["-c", conf_arg]);
    let mut pings = 0;
    assert_eq!(next_state(&notify, &mut pings, &daemon), "READY=1");
    let up = payload(20_000, 60);
    let k = old.to_str().unwrap();
    spipe_round_trip(
        Impl::Ours,
        "config unit",
        &["-t", &source.arg(), "-k", k],
        &up,
        &up,
        &target,
    );

    // Added once serving (READY=1 comes after confinement), as an operator would.
    let new = key_file(&etc, "new.key", b"the config unit's new key, 32 bytes+");
    fs::write(&conf, text(&new)).unwrap();
    daemon.signal(libc::SIGHUP);
    let reloading = next_state(&notify, &mut pings, &daemon);
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading:?}"
    );
    assert_eq!(next_state(&notify, &mut pings, &daemon), "READY=1");
    let k = new.to_str().unwrap();
    let case = "config unit, new key after the reload";
    spipe_round_trip(
        Impl::Ours,
        case,
        &["-t", &source.arg(), "-k", k],
        &up,
        &up,
        &target,
    );
    // The watchdog keeps being pinged (every 100 ms here) while serving.
    let mut buf = [0u8; 64];
    while pings < 3 {
        let n = notify.recv(&mut buf).expect("watchdog pings");
        assert_eq!(&buf[..n], b"WATCHDOG=1");
        pings += 1;
    }

    daemon.signal(libc::SIGTERM);
    assert_eq!(next_state(&notify, &mut pings, &daemon), "STOPPING=1");
    let status = daemon
        .wait_exit(EXCHANGE_DEADLINE)
        .expect("exits on SIGTERM");
    assert!(status.success(), "{status}; stderr: {}", daemon.stderr());
    assert!(!daemon.stderr().contains("sandbox"), "{}", daemon.stderr());
}
