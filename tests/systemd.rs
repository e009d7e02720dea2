//! systemd integration through the real binary, with this test playing systemd's part
//! for the example units in contrib/systemd: socket activation and sd_notify.

mod common;

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::*;

/// The words of the first `NAME=` line of `text`.
fn setting<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}=");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name}= line"))
        .split_whitespace()
        .collect()
}

/// The `spiped` command line of contrib/systemd/spiped@.service with SPIPED_ARGS from
/// spiped-example.conf, as systemd would expand it, but with this test's binary, target
/// and key files in place of the example's (one key file per `-k`, in order).
fn unit_command_line(target: &str, keys: &[&str]) -> (String, Vec<String>) {
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd");
    let unit = fs::read_to_string(contrib.join("spiped@.service")).unwrap();
    assert!(
        unit.contains("\nType=notify\n"),
        "the unit must wait for READY=1"
    );
    let conf = fs::read_to_string(contrib.join("spiped-example.conf")).unwrap();
    let conf_args = setting(&conf, "SPIPED_ARGS");
    assert!(
        !conf_args.contains(&"-s"),
        "socket activation: no -s in the example"
    );
    let exec = setting(&unit, "ExecStart");
    assert_eq!(exec[0], "/usr/bin/spiped");
    let mut args = Vec::new();
    let mut keys = keys.iter();
    for word in &exec[1..] {
        if *word != "$SPIPED_ARGS" {
            args.push(word.to_string());
            continue;
        }
        let mut words = conf_args.iter();
        while let Some(w) = words.next() {
            args.push(w.to_string());
            match *w {
                "-t" => args.push(target.to_owned()),
                "-k" => args.push(keys.next().expect("a key per -k").to_string()),
                _ => continue,
            }
            words.next();
        }
    }
    (spiped_bin(Impl::Ours).to_str().unwrap().to_owned(), args)
}

/// Starts the example unit's command the way systemd does for spiped@.socket: the
/// listening socket as descriptor 3, `LISTEN_FDS=1`, `LISTEN_PID` the service's own pid
/// (set by a shell that then execs spiped, keeping its pid), and `NOTIFY_SOCKET`; waits
/// for the `READY=1` datagram, then serves Debian's C spipe (or ours) using either key
/// of the example's two, through the socket spiped never bound itself; on SIGTERM it
/// sends `STOPPING=1`, exits 0 and leaves the socket file alone.
#[test]
fn socket_activated_unit_notifies_and_serves() {
    let client = if c_available() { Impl::C } else { Impl::Ours };
    let dir = temp_dir();
    let dpath = dir.path();
    let keys = [
        key_file(dpath, "new", b"activated new key"),
        key_file(dpath, "old", b"activated old key"),
    ];
    let key_args: Vec<&str> = keys.iter().map(|k| k.to_str().unwrap()).collect();
    let reply = payload(20_000, 8);
    let target = Target::start(Transport::Tcp, dpath, Mode::Duplex(Arc::new(reply.clone())));
    let (bin, args) = unit_command_line(&target.addr.arg(), &key_args);

    let sock = dpath.join("activated.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let notify_path = dpath.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(READY_DEADLINE)).unwrap();

    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ exec \"$0\" \"$@\"")
        .arg(&bin)
        .env("LISTEN_FDS", "1")
        .env("NOTIFY_SOCKET", &notify_path);
    let fd = listener.as_raw_fd();
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
    let source = Addr::Unix(sock.clone());
    // spawn_cmd adds the -F of the unit's ExecStart itself.
    assert_eq!(args[0], "-F");
    let rest: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    let mut d = Daemon::spawn_cmd(Impl::Ours, "activated", dpath, &source, cmd, &rest);
    let mut buf = [0u8; 64];
    let n = notify
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no sd_notify datagram: {e}; stderr: {}", d.stderr()));
    assert_eq!(&buf[..n], b"READY=1");

    for (i, key) in key_args.iter().enumerate() {
        let up = payload(10_000 + i, 30 + i as u64);
        spipe_round_trip(
            client,
            &format!("socket-activated, key {}", i + 1),
            &["-t", &source.arg(), "-k", key],
            &up,
            &reply,
            &target,
        );
    }
    assert!(
        d.stderr().contains("open, handshake group14, key 2"),
        "{}",
        d.stderr()
    );
    // systemctl stop: SIGTERM, STOPPING=1, a clean exit, and the socket file left to
    // systemd, which made it.
    d.signal(libc::SIGTERM);
    let n = notify
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no STOPPING=1: {e}; stderr: {}", d.stderr()));
    assert_eq!(&buf[..n], b"STOPPING=1");
    let status = d
        .wait_exit(EXCHANGE_DEADLINE)
        .expect("did not exit on SIGTERM");
    assert!(status.success(), "{status}; stderr: {}", d.stderr());
    assert!(sock.exists(), "the socket file is systemd's to remove");
}

/// With LISTEN_FDS set but meant for another process (LISTEN_PID is not ours), spiped
/// takes no descriptors, and without -s it says what is missing.
#[test]
fn activation_for_another_pid_is_ignored() {
    let dir = temp_dir();
    let key = key_file(dir.path(), "key", b"k");
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
