//! The opt-in X25519 handshake extension (`--x25519`, see PROTOCOL.md) end to end: our
//! X25519 clients against our server, legacy clients (including Debian's C ones) sharing
//! a listener with them, and a clean, bounded failure against the C server.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const KEY: &[u8] = b"x25519 test key file, any bytes will do";
const WRONG_KEY: &[u8] = b"some other key file, 32 bytes or more";

/// The hint every X25519 client failure caused by an unaware server must carry.
const HINT: &str = "the server may not support --x25519";

/// A `spiped -d` of `which` (with `flags`) under the key [`KEY`], in front of a target
/// that answers every connection with `reply`.
fn server(which: Impl, dir: &Path, label: &str, flags: &[&str], reply: &[u8]) -> Server {
    let key = key_arg(dir, "key", KEY);
    let args = [&["-k", key.as_str()][..], flags].concat();
    let reply = Mode::Duplex(Arc::new(reply.to_vec()));
    Server::start(which, dir, label, reply, &args)
}

/// Our `spipe --x25519` and `spiped -e --x25519` move data both ways (hashed at both
/// ends, up to megabytes) through our `-d`, whatever its `-f`/`-g`: an X25519 client
/// always gets (and gives) forward secrecy.
#[test]
fn x25519_clients_move_data() {
    let dir = temp_dir();
    let dpath = dir.path();
    let key = &key_arg(dpath, "key", KEY);
    for (i, flags) in [&[][..], &["-g"], &["-f"]].iter().enumerate() {
        let reply = payload(1_000_000 + i, 10 + i as u64);
        let s = server(Impl::Ours, dpath, &format!("d{i}"), flags, &reply);
        let hop = s.hop.arg();
        let up = payload(2_000_000 + i, 20 + i as u64);
        spipe_round_trip(
            Impl::Ours,
            &format!("spipe --x25519 -> -d {flags:?}"),
            &["-t", &hop, "-k", key, "--x25519", "-g"],
            &up,
            &reply,
            &s.target,
        );
        let e = Daemon::encrypting(
            Impl::Ours,
            &format!("e{i}"),
            dpath,
            &hop,
            key,
            &["--x25519"],
        );
        let up = payload(1500, 30 + i as u64);
        e_round_trip(
            &format!("-e --x25519 -> -d {flags:?}"),
            &e.source,
            &up,
            &reply,
            &s.target,
        );
    }
}

/// One listener of our `-d` serves, at the same time, the C `spipe` and C `spiped -e`
/// (plain spiped 1.6), our legacy `-e`, and our `--x25519` spipe and `-e`.
#[test]
fn legacy_and_x25519_clients_share_a_listener() {
    if !c_available() {
        return;
    }
    let dir = temp_dir();
    let dpath = dir.path();
    let key = key_arg(dpath, "key", KEY);
    let reply = payload(300_000, 40);
    let s = server(Impl::Ours, dpath, "shared-d", &[], &reply);
    let hop = s.hop.arg();
    let c_e = Daemon::encrypting(Impl::C, "c-e", dpath, &hop, &key, &[]);
    let our_e = Daemon::encrypting(Impl::Ours, "our-e", dpath, &hop, &key, &[]);
    let x_e = Daemon::encrypting(Impl::Ours, "x-e", dpath, &hop, &key, &["--x25519"]);
    thread::scope(|scope| {
        let (s, reply, key, hop) = (&s, &reply, &key, &hop);
        for (n, which, flags) in [(0, Impl::C, &[][..]), (1, Impl::Ours, &["--x25519"])] {
            scope.spawn(move || {
                let up = payload(400_000 + n, 50 + n as u64);
                let mut args = vec!["-t", hop.as_str(), "-k", key.as_str()];
                args.extend_from_slice(flags);
                let case = format!("{which} spipe {flags:?} -> our -d");
                spipe_round_trip(which, &case, &args, &up, reply, &s.target);
            });
        }
        for (n, e, case) in [
            (2, &c_e, "C -e -> our -d"),
            (3, &our_e, "our -e -> our -d"),
            (4, &x_e, "our -e --x25519 -> our -d"),
        ] {
            scope.spawn(move || {
                let up = payload(200_000 + n, 50 + n as u64);
                e_round_trip(case, &e.source, &up, reply, &s.target);
            });
        }
    });
    let mut d = s.d;
    d.assert_running();
}

/// Our `--x25519` clients against the C `spiped -d` (which waits for the rest of a
/// group-14 message that never comes) fail within their own `-o 1`, saying the server may
/// not support `--x25519`, and nothing reaches the target. So does our X25519 client
/// with a wrong key against our server (which cannot tell the two apart).
#[test]
fn x25519_client_fails_cleanly_against_unaware_or_wrong_key_server() {
    let dir = temp_dir();
    let dpath = dir.path();
    let mut cases = vec![(Impl::Ours, WRONG_KEY, "our -d with another key")];
    if c_available() {
        cases.push((Impl::C, KEY, "the C -d"));
    }
    for (i, (which, client_key, what)) in cases.into_iter().enumerate() {
        // The server's own timeout is long, so only the client's -o can end it quickly.
        let s = server(
            which,
            dpath,
            &format!("unaware{i}"),
            &["-o", "30"],
            b"never",
        );
        let client_key = key_arg(dpath, &format!("client{i}"), client_key);
        let hop = s.hop.arg();

        let case = format!("spipe --x25519 -o 1 vs {what}");
        let mut cmd = spipe_cmd(Impl::Ours);
        cmd.args(["-t", &hop, "-k", &client_key]);
        cmd.args(["--x25519", "-o", "1"]);
        let start = Instant::now();
        let out = run_with_stdin(cmd, b"secret", Duration::from_secs(20));
        let took = start.elapsed();
        assert!(out.status.is_some(), "{case}: hung");
        assert_eq!(out.code(), Some(1), "{case}: stderr {}", out.stderr);
        assert!(took < Duration::from_secs(4), "{case}: took {took:?}");
        assert!(out.stdout.is_empty(), "{case}: printed data");
        assert!(
            out.stderr.contains("timed out") && out.stderr.contains(HINT),
            "{case}: stderr {:?}",
            out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1, "{case}: {:?}", out.stderr);
        println!("{case}: {:?} after {took:?}", out.stderr);

        let case = format!("-e --x25519 -o 1 vs {what}");
        let flags = ["--x25519", "-o", "1"];
        let e = Daemon::encrypting(
            Impl::Ours,
            &format!("x-e{i}"),
            dpath,
            &hop,
            &client_key,
            &flags,
        );
        let start = Instant::now();
        let x = exchange(&e.source, b"secret", Duration::from_secs(20))
            .unwrap_or_else(|err| panic!("{case}: {err}"));
        assert!(x.was_dropped(), "{case}: got {:?}", x.received);
        assert!(start.elapsed() < Duration::from_secs(4), "{case}: slow");
        let log = e
            .wait_stderr(HINT, Duration::from_secs(10))
            .unwrap_or_else(|err| panic!("{case}: {err}"));
        assert!(log.contains("timed out"), "{case}: {log}");
        println!("{case}: {log:?}");

        let Server { d, target, .. } = s;
        drop(e);
        drop(d);
        target.assert_received_nothing(what);
    }
}
