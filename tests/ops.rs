//! Operator features beyond spiped, through the real binary and against Debian's C
//! spiped where the wire is involved: key rotation, PROXY protocol headers,
//! `--connect-after-handshake` and `--log-connections`.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const NEW_KEY: &[u8] = b"the new key file of a rotation, 32 bytes or more";
const OLD_KEY: &[u8] = b"the old key file of a rotation, 32 bytes or more";
const STRANGER_KEY: &[u8] = b"a key neither server knows, 32 bytes or more";

/// A `-d` of ours (with `flags`) in front of a target answering every connection with
/// `reply`.
fn server(dir: &Path, label: &str, flags: &[&str], reply: &[u8]) -> Server {
    let reply = Mode::Duplex(Arc::new(reply.to_vec()));
    Server::start(Impl::Ours, dir, label, reply, flags)
}

/// Key rotation: our `-d` given two keys serves Debian's C `spipe` and C `spiped -e`
/// (and ours) using either key, names the key each connection used in its log, and
/// still rejects a client whose key is neither.
#[test]
fn two_key_server_accepts_either_key_from_c_clients() {
    let have_c = c_available();
    let dir = temp_dir();
    let dpath = dir.path();
    let new = key_file(dpath, "new", NEW_KEY);
    let old = key_file(dpath, "old", OLD_KEY);
    let stranger = key_file(dpath, "stranger", STRANGER_KEY);
    let (new, old, stranger) = (
        new.to_str().unwrap(),
        old.to_str().unwrap(),
        stranger.to_str().unwrap(),
    );
    let reply = payload(70_000, 1);
    let s = server(
        dpath,
        "rot-d",
        &["-k", new, "-k", old, "--log-connections"],
        &reply,
    );
    let hop = s.hop.arg();
    let clients: &[Impl] = if have_c {
        &[Impl::C, Impl::Ours]
    } else {
        &[Impl::Ours]
    };
    for &which in clients {
        for (n, key) in [(1, new), (2, old)] {
            let up = payload(50_000 + n, 10 + n as u64);
            spipe_round_trip(
                which,
                &format!("{which} spipe with key {n}"),
                &["-t", &hop, "-k", key],
                &up,
                &reply,
                &s.target,
            );
            s.d.wait_stderr(
                &format!("key {n}, {} bytes from peer", up.len()),
                EXCHANGE_DEADLINE,
            )
            .unwrap();

            let src = Addr::fresh(Transport::Tcp, dpath, "rot-e");
            let e = Daemon::pipe(
                which,
                &format!("{which}-e-key{n}"),
                dpath,
                &src,
                &hop,
                key,
                &["-e"],
            );
            let up = payload(3000 + n, 20 + n as u64);
            e_round_trip(
                &format!("{which} -e with key {n}"),
                &e.source,
                &up,
                &reply,
                &s.target,
            );
        }
        let mut cmd = spipe_cmd(which);
        cmd.args(["-t", &hop, "-k", stranger]);
        let out = run_with_stdin(cmd, b"let me in", EXCHANGE_DEADLINE);
        assert_ne!(
            out.code(),
            Some(0),
            "{which} spipe with a third key was accepted"
        );
        assert!(out.stdout.is_empty(), "{which}: got {:?}", out.stdout);
    }
    s.d.wait_stderr("the peer's key differs from ours", EXCHANGE_DEADLINE)
        .unwrap();
    assert!(
        !s.target.records().iter().any(|r| r.received_len == 9),
        "the third key's data reached the target"
    );
}

/// Reads one PROXY header off the front of `bytes` the way a receiving service does,
/// checking every byte against the specification; returns (header, the rest).
fn split_header(bytes: &[u8]) -> (&[u8], &[u8]) {
    const SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
    if bytes.starts_with(SIG) {
        assert!(bytes.len() >= 16, "truncated v2 header");
        let len = u16::from_be_bytes([bytes[14], bytes[15]]) as usize;
        bytes.split_at(16 + len)
    } else {
        assert!(
            bytes.starts_with(b"PROXY "),
            "no PROXY header: {:?}",
            &bytes[..20]
        );
        let end = bytes
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("v1 line end");
        assert!(end + 2 <= 107, "v1 header longer than the spec's 107 bytes");
        bytes.split_at(end + 2)
    }
}

/// `spiped -e --proxy v1|v2` puts a PROXY header with the client's real address and
/// port (TCP) or the socket path (UNIX) in front of the client's bytes; Debian's C
/// `spiped -d` carries it like any data to the service, which gets it byte for byte.
/// With `-f` the header and the client's first bytes go with the DH message.
#[test]
fn proxy_header_reaches_the_service_through_c_spiped() {
    let d_impl = if c_available() { Impl::C } else { Impl::Ours };
    let dir = temp_dir();
    let dpath = dir.path();
    let key = key_file(dpath, "key", NEW_KEY);
    let key = key.to_str().unwrap();
    // An echoing service: the client gets back exactly what the service received.
    let target = Target::start(Transport::Tcp, dpath, Mode::Echo);
    let hop = Addr::fresh(Transport::Tcp, dpath, "proxy-d");
    let (hop_arg, tgt_arg) = (hop.arg(), target.addr.arg());
    let _d = Daemon::pipe(d_impl, "proxy-d", dpath, &hop, &tgt_arg, key, &["-d"]);
    for kind in [Transport::Tcp, Transport::Unix] {
        for (version, fast) in [("v1", false), ("v2", false), ("v1", true), ("v2", true)] {
            let label = format!("proxy-e-{kind}-{version}{}", if fast { "-f" } else { "" });
            let mut args = vec!["-e", "--proxy", version];
            if fast {
                args.push("-f");
            }
            let src = Addr::fresh(kind, dpath, &label);
            let e = Daemon::pipe(Impl::Ours, &label, dpath, &src, &hop_arg, key, &args);
            let conn = e.source.connect().unwrap();
            let expected: Vec<u8> = match (&conn, &src, version) {
                (Stream::Tcp(c), Addr::Tcp(listen), "v1") => {
                    let me = c.local_addr().unwrap();
                    format!(
                        "PROXY TCP4 {} {} {} {}\r\n",
                        me.ip(),
                        listen.ip(),
                        me.port(),
                        listen.port()
                    )
                    .into_bytes()
                }
                (Stream::Tcp(c), Addr::Tcp(listen), _) => {
                    let me = c.local_addr().unwrap();
                    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
                    h.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
                    h.extend_from_slice(&me.port().to_be_bytes());
                    h.extend_from_slice(&listen.port().to_be_bytes());
                    h
                }
                (_, _, "v1") => b"PROXY UNKNOWN\r\n".to_vec(),
                (_, Addr::Unix(path), _) => {
                    // AF_UNIX, stream; the client is unnamed, the destination is our socket.
                    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x31\x00\xd8".to_vec();
                    h.extend_from_slice(&[0; 108]);
                    let p = path.to_str().unwrap().as_bytes();
                    h.extend_from_slice(p);
                    h.resize(h.len() + 108 - p.len(), 0);
                    h
                }
                _ => unreachable!(),
            };
            let up = payload(5000, 7);
            let x = exchange_on(conn, &up, EXCHANGE_DEADLINE).unwrap();
            assert_eq!(x.read_error, None, "{label}");
            let (header, rest) = split_header(&x.received);
            assert_eq!(header, &expected[..], "{label}: header");
            assert_eq!(sha(rest), sha(&up), "{label}: data after the header");
        }
    }
}

/// Connects to `addr` and sends 320 bytes that are not a handshake under any key, then
/// waits for the daemon to drop the connection.
fn bad_handshake(addr: &Addr) {
    let mut c = addr.connect().unwrap();
    c.set_read_timeout(Some(EXCHANGE_DEADLINE)).unwrap();
    let _ = c.write_all(&payload(320, 99));
    let _ = c.shutdown(Shutdown::Write);
    let _ = c.read_to_end(&mut Vec::new());
}

/// With `--connect-after-handshake` a client with the wrong key (Debian's C spipe) and
/// one that never completes the handshake cause no connection at the target, while a
/// client with the right key gets through. Without it (as in spiped) the target does
/// see the wrong-key client's connection, so the check can fail.
#[test]
fn connect_after_handshake_keeps_wrong_keys_from_the_target() {
    let which = if c_available() { Impl::C } else { Impl::Ours };
    let dir = temp_dir();
    let dpath = dir.path();
    let key = key_file(dpath, "key", NEW_KEY);
    let wrong = key_file(dpath, "wrong", STRANGER_KEY);
    let (key, wrong) = (key.to_str().unwrap(), wrong.to_str().unwrap());
    let reply = payload(900, 3);
    let wrong_key_client = |hop: &Addr| {
        let mut cmd = spipe_cmd(which);
        cmd.args(["-t", &hop.arg(), "-k", wrong]);
        let out = run_with_stdin(cmd, b"hello?", EXCHANGE_DEADLINE);
        assert_ne!(out.code(), Some(0), "wrong key accepted");
    };

    let s = server(
        dpath,
        "cah-d",
        &["-k", key, "--connect-after-handshake"],
        &reply,
    );
    wrong_key_client(&s.hop);
    s.d.wait_stderr("the peer's key differs", EXCHANGE_DEADLINE)
        .unwrap();
    assert_eq!(
        s.target.accepted(),
        0,
        "the target heard of a wrong-key client"
    );
    let up = payload(4000, 4);
    spipe_round_trip(
        which,
        "right key",
        &["-t", &s.hop.arg(), "-k", key],
        &up,
        &reply,
        &s.target,
    );
    assert_eq!(s.target.accepted(), 1);

    // The default: the readiness probe and the wrong-key client each reach the target.
    let s = server(dpath, "default-d", &["-k", key], &reply);
    wait_until("the probe's target connection", EXCHANGE_DEADLINE, || {
        s.target.accepted() == 1
    });
    wrong_key_client(&s.hop);
    wait_until(
        "the wrong-key client's target connection",
        EXCHANGE_DEADLINE,
        || s.target.accepted() == 2,
    );
}

/// `--log-connections` logs an open and a close line per connection on both daemons of
/// a pair, with the peer, the target, the handshake, exact byte counts and why it
/// ended; a flood of bad handshakes is logged with reasons but rate-limited, and the
/// limiter says how many lines it left out.
#[test]
fn connection_log_lines_and_failure_rate_limit() {
    let dir = temp_dir();
    let dpath = dir.path();
    let key = key_file(dpath, "key", NEW_KEY);
    let key = key.to_str().unwrap();
    let reply = payload(12_345, 5);
    let s = server(dpath, "log-d", &["-k", key, "--log-connections"], &reply);
    let hop = s.hop.arg();
    let src = Addr::fresh(Transport::Tcp, dpath, "log-e");
    let e = Daemon::pipe(
        Impl::Ours,
        "log-e",
        dpath,
        &src,
        &hop,
        key,
        &["-e", "--log-connections"],
    );
    let up = payload(54_321, 6);
    let conn = e.source.connect().unwrap();
    let Stream::Tcp(c) = &conn else {
        unreachable!()
    };
    let me = c.local_addr().unwrap();
    let x = exchange_on(conn, &up, EXCHANGE_DEADLINE).unwrap();
    assert_eq!(sha(&x.received), sha(&reply));

    let close = format!(
        "handshake group14, {} bytes from peer, {} bytes to peer, ",
        up.len(),
        reply.len()
    );
    let e_log = e.wait_stderr(&close, EXCHANGE_DEADLINE).unwrap();
    let d_log = s.d.wait_stderr(&close, EXCHANGE_DEADLINE).unwrap();
    // Log lines show TCP addresses as the kernel does, without brackets.
    let bare = |a: &Addr| match a {
        Addr::Tcp(sa) => sa.to_string(),
        Addr::Unix(p) => p.display().to_string(),
    };
    let e_open = format!("from {me} to {}: open, handshake group14", bare(&s.hop));
    assert!(e_log.contains(&e_open), "{e_log}");
    let d_open = format!("to {}: open, handshake group14", bare(&s.target.addr));
    assert!(d_log.contains(&d_open), "{d_log}");
    for log in [&e_log, &d_log] {
        let line = log.lines().find(|l| l.contains(&close)).unwrap();
        assert!(
            line.ends_with(" s, ended: both directions finished"),
            "{line}"
        );
    }

    // A flood of bad handshakes: every failure would be a line; the limiter lets a
    // burst through and then about one a second.
    let start = Instant::now();
    let flood = 200;
    for _ in 0..flood {
        bad_handshake(&s.hop);
    }
    let elapsed = start.elapsed().as_secs() as usize;
    let failures = |log: &str| log.matches("ended: handshake failed").count();
    let logged = failures(&s.d.stderr());
    assert!(logged >= 20, "the burst was not logged: {logged}");
    assert!(
        logged <= 20 + elapsed + 2,
        "{logged} failure lines for {flood} failures in {elapsed} s: not rate-limited"
    );
    assert!(s.d.stderr().contains("the peer's key differs from ours"));
    // One more bad handshake every 50 ms until the limiter reports what it left out.
    let counted = poll_every(EXCHANGE_DEADLINE, Duration::from_millis(50), || {
        let said = s.d.stderr();
        let counted = said.contains("similar messages suppressed before this one");
        if !counted {
            bad_handshake(&s.hop);
        }
        counted.then_some(())
    });
    assert!(counted.is_some(), "no suppression count: {}", s.d.stderr());
}

/// A UNIX source socket file left by a dead process is replaced on start; a live one
/// (something listens) and a path that is not a socket are never touched, and spiped
/// says why it cannot listen; `--socket-mode` sets the file's permission bits.
#[test]
fn unix_source_socket_hygiene() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::net::UnixListener;

    let dir = temp_dir();
    let dpath = dir.path();
    let key = key_file(dpath, "key", NEW_KEY);
    let key = key.to_str().unwrap();
    let target = Target::start(Transport::Tcp, dpath, Mode::Echo);
    let tgt = target.addr.arg();
    let args = |path: &Path| -> Vec<String> {
        ["-d", "-s", path.to_str().unwrap(), "-t", &tgt, "-k", key]
            .map(str::to_owned)
            .to_vec()
    };

    // Stale: bound, then the listener went away without removing its file.
    // In a directory of its own, from which the sandbox lets it be removed at exit.
    let stale = run_dir(dpath).join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let source = Addr::Unix(stale.clone());
    let a = args(&stale);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut d = Daemon::spawn(
        Impl::Ours,
        "stale",
        dpath,
        &source,
        &[&a[..], &["--socket-mode", "0660"]].concat(),
    );
    let mode = fs_mode(&stale);
    assert_eq!(mode, 0o660, "socket file mode {mode:o}");
    let up = payload(2000, 9);
    let hop = source.arg();
    spipe_round_trip(
        Impl::Ours,
        "stale replaced",
        &["-t", &hop, "-k", key],
        &up,
        &up,
        &target,
    );
    // A clean exit removes the socket file spiped made.
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(EXCHANGE_DEADLINE).expect("no exit on SIGTERM");
    assert!(status.success(), "{status}");
    assert!(!stale.exists(), "socket file left behind");

    // --socket-owner, as root (who may give files away).
    if root() {
        let owned = dpath.join("owned.sock");
        let source = Addr::Unix(owned.clone());
        let a = args(&owned);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let owner = ["--socket-owner", "nobody:nogroup"];
        let _d = Daemon::spawn(
            Impl::Ours,
            "owned",
            dpath,
            &source,
            &[&a[..], &owner].concat(),
        );
        let meta = std::fs::metadata(&owned).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (getent_id("passwd", "nobody"), getent_id("group", "nogroup"))
        );
    }

    // Live: another process listens there.
    let live = dpath.join("live.sock");
    let owner = UnixListener::bind(&live).unwrap();
    let mut cmd = spiped_cmd(Impl::Ours);
    cmd.arg("-F").args(args(&live));
    let out = run(cmd);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("cannot listen on {}", live.display()))
            && out.stderr.contains("a process listens there"),
        "{}",
        out.stderr
    );
    let _client = std::os::unix::net::UnixStream::connect(&live).expect("live socket broken");
    owner.accept().expect("the live listener lost its socket");

    // Not a socket: a regular file keeps its contents.
    let file = dpath.join("file.sock");
    std::fs::write(&file, b"precious").unwrap();
    let mut cmd = spiped_cmd(Impl::Ours);
    cmd.arg("-F").args(args(&file));
    let out = run(cmd);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");

    /// The numeric id of `name` in the system database `db`, as getent(1) prints it.
    fn getent_id(db: &str, name: &str) -> u32 {
        let out = std::process::Command::new("getent")
            .args([db, name])
            .output()
            .unwrap();
        let line = String::from_utf8(out.stdout).unwrap();
        line.split(':')
            .nth(2)
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("{db} {name}: {line:?}"))
    }

    fn fs_mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }
}
