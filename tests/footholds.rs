//! Nothing an unprivileged user who may write to the directory of a root daemon's
//! socket or pidfile can turn against it: no symlink planted there is followed, and at
//! exit only what is still the daemon's own is removed.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const KEY: &[u8] = b"key file of the foothold tests, 32 bytes or more";
const QUICK: Duration = Duration::from_secs(10);

/// A file standing for one of root's: its mode and owner must not change.
fn victim(dir: &Path) -> PathBuf {
    let v = dir.join("victim");
    fs::write(&v, "root's file").unwrap();
    fs::set_permissions(&v, fs::Permissions::from_mode(0o600)).unwrap();
    v
}

/// Whether a listening UNIX socket is bound at `path` (per /proc/net/unix).
fn listening_at(path: &Path) -> bool {
    let table = fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let path = path.to_str().unwrap();
    // Columns: Num RefCount Protocol Flags Type St Inode Path; flag 00010000 = listening.
    table.lines().any(|l| {
        l.ends_with(&format!(" {path}")) && l.split_whitespace().nth(3) == Some("00010000")
    })
}

/// `--socket-mode` and `--socket-owner` with a symlink swapped in for the socket file
/// right after `bind` (strace holds bind's return for two seconds, the window a
/// slowed-down daemon leaves): the file the link points to keeps its mode and owner.
#[test]
fn socket_mode_and_owner_never_follow_a_planted_symlink() {
    if !program_available("/usr/bin/strace", "strace") {
        return;
    }
    let dir = temp_dir();
    let d = dir.path();
    let k = key_file(d, "key", KEY);
    let victim = victim(d);
    let before = fs::metadata(&victim).unwrap();
    let sock = d.join("s.sock");
    let mut args: Vec<String> = ["-F", "-d", "-s", sock.to_str().unwrap()]
        .into_iter()
        .chain(["-t", "[127.0.0.1]:9", "-k", k.to_str().unwrap()])
        .chain(["--socket-mode", "0666"])
        .map(str::to_owned)
        .collect();
    if root() {
        args.extend(["--socket-owner".to_owned(), "nobody:nogroup".to_owned()]);
    }
    // In a process group of its own, killed whole: killing strace alone would leave
    // the traced daemon running.
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=bind"])
        .args(["-e", "inject=bind:delay_exit=2000000"])
        .arg(spiped_bin(Impl::Ours))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut traced = Group::spawn(cmd);
    // The socket file appears when bind has done its work in the kernel; the daemon is
    // then held in strace. Swap in the link at once.
    wait_until("the socket file", QUICK, || {
        fs::symlink_metadata(&sock).is_ok_and(|m| m.file_type().is_socket())
    });
    let planted_at = Instant::now();
    let link = d.join("link");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    fs::rename(&link, &sock).unwrap();
    assert!(
        planted_at.elapsed() < Duration::from_millis(1500),
        "the symlink went in too late to test anything"
    );
    // Once it listens, the daemon has set the mode and owner.
    wait_until("the daemon to listen", QUICK, || {
        assert!(
            traced.leader().try_wait().unwrap().is_none(),
            "the daemon exited"
        );
        listening_at(&sock)
    });
    let members = traced.members();
    assert_eq!(members.len(), 2, "strace and its daemon: {members:?}");
    assert!(traced.kill(QUICK), "left running: {:?}", traced.members());
    let after = fs::metadata(&victim).unwrap();
    assert_eq!(after.mode() & 0o7777, 0o600, "the victim was chmodded");
    assert_eq!(
        (after.uid(), after.gid()),
        (before.uid(), before.gid()),
        "the victim was chowned"
    );
}

/// A pidfile path that is a symlink is never written through: the daemon refuses to
/// start, saying why, and the file the link points to is unchanged.
#[test]
fn pidfile_never_written_through_a_symlink() {
    let dir = temp_dir();
    let d = dir.path();
    let k = key_file(d, "key", KEY);
    let victim = victim(d);
    let pidfile = d.join("spiped.pid");
    std::os::unix::fs::symlink(&victim, &pidfile).unwrap();
    let src = Addr::fresh(Transport::Tcp, d, "src");
    let mut cmd = spiped_cmd(Impl::Ours);
    cmd.args([
        "-d",
        "-s",
        &src.arg(),
        "-t",
        "[127.0.0.1]:9",
        "-k",
        k.to_str().unwrap(),
    ])
    .args(["-p", pidfile.to_str().unwrap()]);
    let err = d.join("err");
    let (st, daemon) = Daemonized::start(cmd, &pidfile, &err);
    assert!(daemon.is_none());
    let err = fs::read_to_string(err).unwrap();
    assert_eq!(st.and_then(|s| s.code()), Some(1), "{err}");
    assert!(
        err.contains("pidfile") && err.contains("symbolic link"),
        "{err:?}"
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root's file");
    assert!(
        fs::symlink_metadata(&pidfile)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

/// Starts a daemonized `spiped -d` on the UNIX socket `sock` with pidfile `pidfile`.
fn daemon_on(d: &Path, sock: &Path, pidfile: &Path, target: &Target, label: &str) -> Daemonized {
    let k = d.join("key");
    let mut cmd = spiped_cmd(Impl::Ours);
    cmd.args(["-d", "-s", sock.to_str().unwrap(), "-t", &target.addr.arg()])
        .args(["-k", k.to_str().unwrap(), "-p", pidfile.to_str().unwrap()]);
    let (st, daemon) = Daemonized::start(cmd, pidfile, &d.join(format!("{label}.stderr")));
    daemon.unwrap_or_else(|| panic!("{label} did not start: {st:?}"))
}

/// A second instance started on the same socket and pidfile while the first drains
/// its last connection: the first's exit leaves the second's socket and pidfile alone.
#[test]
fn exit_removes_only_what_is_still_ours() {
    use std::io::Write;
    let dir = temp_dir();
    let d = dir.path();
    let k = key_file(d, "key", KEY);
    let target = Target::start(Transport::Tcp, d, Mode::Echo);
    // In a directory of their own, from which the sandbox lets them be removed at exit.
    let run = run_dir(d);
    let (sock, pidfile) = (run.join("s.sock"), run.join("s.pid"));
    let first = daemon_on(d, &sock, &pidfile, &target, "first");

    // A spipe holding a connection open through the first daemon.
    let mut spipe = spipe_cmd(Impl::Ours)
        .args(["-t", sock.to_str().unwrap(), "-k", k.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn spipe");
    let mut to_spipe = spipe.stdin.take().unwrap();
    to_spipe.write_all(b"held open").unwrap();
    let mut from_spipe = spipe.stdout.take().unwrap();
    let echo = std::thread::spawn(move || {
        let mut b = [0u8; 9];
        std::io::Read::read_exact(&mut from_spipe, &mut b).map(|()| b)
    });
    let echoed = join_deadline(echo, QUICK).expect("no echo through the first daemon");
    assert_eq!(
        &echoed.unwrap(),
        b"held open",
        "connection through the first daemon"
    );

    signal(first.pid, libc::SIGTERM);
    Addr::Unix(sock.clone()).wait_refusing("the first daemon to stop accepting", QUICK);
    assert!(alive(first.pid), "the first daemon should be draining");

    let second = daemon_on(d, &sock, &pidfile, &target, "second");
    let second_inode = fs::symlink_metadata(&sock).unwrap().ino();
    drop(to_spipe);
    let _ = spipe.wait();
    assert!(first.wait_gone(QUICK), "the first daemon did not exit");

    assert_eq!(
        fs::read_to_string(&pidfile).unwrap(),
        second.pid.to_string()
    );
    assert_eq!(fs::symlink_metadata(&sock).unwrap().ino(), second_inode);
    let mut cmd = spipe_cmd(Impl::Ours);
    cmd.args(["-t", sock.to_str().unwrap(), "-k", k.to_str().unwrap()]);
    let out = run_with_stdin(cmd, b"second serves", EXCHANGE_DEADLINE);
    assert_eq!(out.stdout, b"second serves", "{}", out.stderr);

    // The second's own exit removes both.
    signal(second.pid, libc::SIGTERM);
    assert!(second.wait_gone(QUICK));
    assert!(!pidfile.exists() && !sock.exists());
}
