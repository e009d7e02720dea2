//! Interoperability with Debian's C spiped 1.6: every scenario runs for each assignment
//! of implementations to roles. The C-vs-C cases are the harness's own self-check.

mod common;

use std::net::Shutdown;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef this key file is longer than 32 bytes";
const WRONG_KEY: &[u8] = b"another key, which hashes to something else entirely";
const BIG: usize = 4 * 1024 * 1024;

/// `-e daemon -> -d daemon -> target`, all with deadlines, killed on drop.
struct Chain {
    // Field order = drop order: daemons die before the target stops.
    e: Daemon,
    d: Daemon,
    target: Target,
}

struct ChainSpec<'a> {
    case: &'a str,
    e: Impl,
    d: Impl,
    source: Transport,
    hop: Transport,
    target: Transport,
    e_args: &'a [&'a str],
    d_args: &'a [&'a str],
    mode: Mode,
}

fn chain(dir: &Path, s: ChainSpec<'_>) -> Chain {
    println!(
        "case {}: client -e = {} ({}), server -d = {} ({}); source {}, hop {}, target {}",
        s.case,
        s.e,
        spiped_bin(s.e).display(),
        s.d,
        spiped_bin(s.d).display(),
        s.source,
        s.hop,
        s.target
    );
    let key = key_arg(dir, "key", KEY);
    let label = |role: &str| format!("{}-{role}", s.case);
    let d_args = [&["-k", key.as_str()][..], s.d_args].concat();
    let server = Server::start_on(s.d, dir, &label("d"), (s.hop, s.target), s.mode, &d_args);
    let src = Addr::fresh(s.source, dir, &label("src"));
    let e_args = [&["-e"][..], s.e_args].concat();
    let e = Daemon::pipe(
        s.e,
        &label("e"),
        dir,
        &src,
        &server.hop.arg(),
        &key,
        &e_args,
    );
    let Server { d, target, .. } = server;
    Chain { e, d, target }
}

fn spec<'a>(case: &'a str, e: Impl, d: Impl, t: Transport, mode: Mode) -> ChainSpec<'a> {
    ChainSpec {
        case,
        e,
        d,
        source: t,
        hop: t,
        target: t,
        e_args: &[],
        d_args: &[],
        mode,
    }
}

/// Payloads of several sizes in both directions at once, hashed at both ends.
fn payloads(e: Impl, d: Impl, t: Transport) {
    if !available(&[e, d]) {
        return;
    }
    let dir = temp_dir();
    let mut c = chain(
        dir.path(),
        spec("payloads", e, d, t, Mode::Duplex(Arc::new(Vec::new()))),
    );
    let sizes: &[(usize, usize)] = &[
        (0, 0),
        (1, 1),
        (1023, 1023),
        (1024, 1024),
        (1025, 1025),
        (0, 1025),
        (3000, 0),
        (BIG + 7, BIG + 3),
    ];
    for (i, &(up, down)) in sizes.iter().enumerate() {
        let case = format!("{e} -e -> {d} -d over {t}: {up} bytes up, {down} bytes down");
        let up_data = payload(up, 1000 + i as u64);
        let down_data = payload(down, 2000 + i as u64);
        c.target.set_mode(Mode::Duplex(Arc::new(down_data.clone())));
        let x = exchange(&c.e.source, &up_data, EXCHANGE_DEADLINE)
            .unwrap_or_else(|err| panic!("{case}: {err}"));
        assert_eq!(x.write_error, None, "{case}: client write failed");
        assert_eq!(x.read_error, None, "{case}: client read failed");
        assert_eq!(
            (x.received.len(), sha(&x.received)),
            (down, sha(&down_data)),
            "{case}: client received wrong bytes"
        );
        c.target.assert_received(&case, &up_data);
        println!("{case}: ok");
    }
    c.e.assert_running();
    c.d.assert_running();
}

/// The client finishes sending while still receiving: the target reads until EOF and
/// only then sends a large reply. Source and target are UNIX, the hop is TCP (and the
/// other way round), so mixed transports are covered too.
fn half_close(e: Impl, d: Impl) {
    if !available(&[e, d]) {
        return;
    }
    let dir = temp_dir();
    for (src, hop, tgt) in [
        (Transport::Unix, Transport::Tcp, Transport::Unix),
        (Transport::Tcp, Transport::Unix, Transport::Tcp),
    ] {
        let case = format!("half-close {e} -e -> {d} -d (source {src}, hop {hop}, target {tgt})");
        let request = payload(1024 * 1024 + 5, 7);
        let reply = Arc::new(payload(BIG + 1, 8));
        let mut s = spec("halfclose", e, d, src, Mode::ReplyAfterEof(reply.clone()));
        s.hop = hop;
        s.target = tgt;
        let c = chain(dir.path(), s);
        let x = exchange(&c.e.source, &request, EXCHANGE_DEADLINE)
            .unwrap_or_else(|err| panic!("{case}: {err}"));
        assert_eq!(x.write_error, None, "{case}: client write failed");
        assert_eq!(x.read_error, None, "{case}: client read failed");
        assert_eq!(
            (x.received.len(), sha(&x.received)),
            (reply.len(), sha(&reply)),
            "{case}: client did not receive the reply"
        );
        c.target.assert_received(&case, &request);
        println!("{case}: ok");
    }
}

/// `-f`/`-g` combinations between two daemons.
fn fast_and_pfs(e: Impl, d: Impl) {
    if !available(&[e, d]) {
        return;
    }
    let dir = temp_dir();
    let cases: &[(&[&str], &[&str], bool)] = &[
        (&["-f"], &["-g"], false),
        (&["-g"], &["-f"], false),
        (&["-f"], &["-f"], true),
        (&["-f"], &[], true),
        (&[], &["-f"], true),
        (&["-g"], &["-g"], true),
        (&["-g"], &[], true),
    ];
    for (i, &(ef, df, works)) in cases.iter().enumerate() {
        let case = format!("{e} -e {ef:?} -> {d} -d {df:?}");
        let up = payload(1500, 30 + i as u64);
        let down = Arc::new(payload(2500, 40 + i as u64));
        let mut s = spec("fg", e, d, Transport::Tcp, Mode::Duplex(down.clone()));
        s.e_args = ef;
        s.d_args = df;
        let c = chain(dir.path(), s);
        let x = exchange(&c.e.source, &up, EXCHANGE_DEADLINE)
            .unwrap_or_else(|err| panic!("{case}: {err}"));
        if works {
            assert_eq!(x.read_error, None, "{case}: client read failed");
            assert_eq!(sha(&x.received), sha(&down), "{case}: wrong reply");
            c.target.assert_received(&case, &up);
        } else {
            assert!(
                x.was_dropped(),
                "{case}: expected the connection to be dropped, got {} bytes",
                x.received.len()
            );
            println!("{case}: dropped as expected ({x:?})", x = x.read_error);
            let Chain {
                e: de,
                d: dd,
                target,
            } = c;
            drop(de);
            drop(dd);
            target.assert_received_nothing(&case);
        }
        println!("{case}: ok");
    }
}

/// A client with the wrong key is rejected (nothing reaches the target), and the daemon
/// still serves the next correct connection; for both `spiped -e` and `spipe` clients.
fn wrong_key(e: Impl, d: Impl) {
    if !available(&[e, d]) {
        return;
    }
    let dir = temp_dir();
    let dpath = dir.path();
    let reply = Arc::new(payload(1100, 51));
    let c = chain(
        dpath,
        spec(
            "wrongkey",
            e,
            d,
            Transport::Tcp,
            Mode::Duplex(reply.clone()),
        ),
    );
    let bad_key = key_file(dpath, "badkey", WRONG_KEY);
    let bad_key = bad_key.to_str().unwrap();
    let hop = c.d.source.arg();
    let bad_src = Addr::fresh(Transport::Tcp, dpath, "badsrc");
    let bad_e = Daemon::pipe(e, "wrongkey-bad-e", dpath, &bad_src, &hop, bad_key, &["-e"]);
    let bad_payload = payload(5000, 52);

    let case = format!("{e} -e with wrong key -> {d} -d");
    let x = exchange(&bad_src, &bad_payload, EXCHANGE_DEADLINE)
        .unwrap_or_else(|err| panic!("{case}: {err}"));
    assert!(
        x.was_dropped(),
        "{case}: expected rejection, got {} bytes",
        x.received.len()
    );
    println!(
        "{case}: rejected ({:?} / {:?})",
        x.write_error, x.read_error
    );

    let case = format!("{e} spipe with wrong key -> {d} -d");
    let mut cmd = spipe_cmd(e);
    cmd.args(["-t", &hop, "-k", bad_key]);
    println!("{case}: {cmd:?}");
    let out = run_with_stdin(cmd, &bad_payload, EXCHANGE_DEADLINE);
    assert!(out.status.is_some(), "{case}: spipe hung");
    assert_ne!(out.code(), Some(0), "{case}: spipe must fail");
    assert!(out.stdout.is_empty(), "{case}: spipe printed data");
    assert!(!out.stderr.is_empty(), "{case}: spipe printed no warning");
    println!("{case}: exit {:?}, stderr {:?}", out.code(), out.stderr);

    // The daemon still works for a correct client, through -e and through spipe.
    let case = format!("{e} -e with the right key after a wrong one -> {d} -d");
    let good = payload(7000, 53);
    let x = exchange(&c.e.source, &good, EXCHANGE_DEADLINE)
        .unwrap_or_else(|err| panic!("{case}: {err}"));
    assert_eq!(sha(&x.received), sha(&reply), "{case}: wrong reply");
    c.target.assert_received(&case, &good);

    let case = format!("{e} spipe with the right key after a wrong one -> {d} -d");
    let good2 = payload(3333, 54);
    let mut cmd = spipe_cmd(e);
    cmd.args(["-t", &hop, "-k", &dpath.join("key").to_string_lossy()]);
    let out = run_with_stdin(cmd, &good2, EXCHANGE_DEADLINE);
    assert_eq!(out.code(), Some(0), "{case}: stderr {}", out.stderr);
    assert_eq!(sha(&out.stdout), sha(&reply), "{case}: wrong reply");
    c.target.assert_received(&case, &good2);

    // Nothing from the wrong-key clients ever reached the target.
    let Chain {
        e: de,
        d: mut dd,
        target,
    } = c;
    dd.assert_running();
    drop(bad_e);
    drop(de);
    drop(dd);
    target
        .wait_idle(Duration::from_secs(10))
        .unwrap_or_else(|err| panic!("wrong key {e} -> {d}: {err}"));
    let allowed = [sha(&good), sha(&good2), sha(b"")];
    for r in target.records() {
        assert!(
            allowed.contains(&r.received_sha),
            "wrong key {e} -> {d}: unexpected data at the target: {r:?}"
        );
    }
}

/// `-n 1`: with one connection open a second is not served until the first closes.
fn conn_limit(e: Impl, d: Impl) {
    if !available(&[e, d]) {
        return;
    }
    let dir = temp_dir();
    for limited in ["-e", "-d"] {
        let case = format!("-n 1 on {limited}: {e} -e -> {d} -d");
        let mut s = spec("limit", e, d, Transport::Tcp, Mode::Echo);
        if limited == "-e" {
            s.e_args = &["-n", "1"];
        } else {
            s.d_args = &["-n", "1"];
        }
        let c = chain(dir.path(), s);
        let a_data = payload(1000, 61);
        let b_data = payload(1000, 62);
        let ready = Duration::from_secs(10);

        let mut a = c.e.source.connect().expect("connect A");
        std::io::Write::write_all(&mut a, &a_data).expect("A write");
        let got = a
            .read_exact_within(a_data.len(), ready)
            .unwrap_or_else(|err| panic!("{case}: first connection not served: {err}"));
        assert_eq!(sha(&got), sha(&a_data), "{case}: A echo");

        let mut b = c.e.source.connect().expect("connect B");
        std::io::Write::write_all(&mut b, &b_data).expect("B write");
        b.silent_for(Duration::from_millis(500))
            .unwrap_or_else(|err| {
                panic!("{case}: second connection was served while the first was open: {err}")
            });

        // Close A; B must now be served.
        a.shutdown(Shutdown::Write).expect("A shutdown");
        a.set_read_timeout(Some(ready)).unwrap();
        let (rest, err) = a.read_to_eof();
        assert!(
            rest.is_empty() && err.is_none(),
            "{case}: A did not end cleanly: {} bytes, {err:?}",
            rest.len()
        );
        drop(a);
        let got = b
            .read_exact_within(b_data.len(), ready)
            .unwrap_or_else(|err| {
                panic!("{case}: second connection not served after the first closed: {err}")
            });
        assert_eq!(sha(&got), sha(&b_data), "{case}: B echo");
        b.shutdown(Shutdown::Write).expect("B shutdown");
        b.set_read_timeout(Some(ready)).unwrap();
        let (rest, err) = b.read_to_eof();
        assert!(
            rest.is_empty() && err.is_none(),
            "{case}: B did not end cleanly"
        );
        let stderr = if limited == "-e" {
            c.e.stderr()
        } else {
            c.d.stderr()
        };
        println!("{case}: ok; limited daemon stderr: {stderr:?}");
    }
}

/// spipe (one implementation) against spiped -d (the other): stdin through to a target
/// that replies with a different payload, stdout hashed, exit 0.
fn spipe_data(client: Impl, d: Impl) {
    if !available(&[client, d]) {
        return;
    }
    let dir = temp_dir();
    let dpath = dir.path();
    let key = key_arg(dpath, "key", KEY);
    for t in [Transport::Tcp, Transport::Unix] {
        let silent = Mode::Duplex(Arc::new(Vec::new()));
        let server = Server::start_on(d, dpath, "spipe-d", (t, t), silent, &["-k", &key]);
        let (hop_arg, target) = (server.hop.arg(), &server.target);
        for (i, &(up, down)) in [(0, 1025), (1025, 0), (1024, 1023), (BIG + 9, BIG + 11)]
            .iter()
            .enumerate()
        {
            let case = format!(
                "{client} spipe ({}) -> {d} -d over {t}: {up} up, {down} down",
                spipe_bin(client).display()
            );
            let up_data = payload(up, 70 + i as u64);
            let down_data = payload(down, 80 + i as u64);
            target.set_mode(Mode::Duplex(Arc::new(down_data.clone())));
            let mut cmd = spipe_cmd(client);
            cmd.args(["-t", &hop_arg, "-k", &key]);
            let out = run_with_stdin(cmd, &up_data, EXCHANGE_DEADLINE);
            assert_eq!(out.code(), Some(0), "{case}: stderr {}", out.stderr);
            assert_eq!(
                (out.stdout.len(), sha(&out.stdout)),
                (down, sha(&down_data)),
                "{case}: stdout"
            );
            target.assert_received(&case, &up_data);
            println!("{case}: ok");
        }
    }
}

/// spipe with `-f`/`-g` against spiped -d with `-f`/`-g`.
fn spipe_fast_and_pfs(client: Impl, d: Impl) {
    if !available(&[client, d]) {
        return;
    }
    let dir = temp_dir();
    let dpath = dir.path();
    let key = key_arg(dpath, "key", KEY);
    let reply = Arc::new(payload(1200, 91));
    let cases: &[(&str, &str, bool)] = &[
        ("-f", "-g", false),
        ("-g", "-f", false),
        ("-f", "-f", true),
        ("-f", "", true),
        ("", "-f", true),
        ("-g", "-g", true),
    ];
    for (i, &(cf, df, works)) in cases.iter().enumerate() {
        let case = format!("{client} spipe {cf:?} -> {d} -d {df:?}");
        let mut args = vec!["-k", key.as_str()];
        if !df.is_empty() {
            args.push(df);
        }
        let label = format!("spipe-fg{i}-d");
        let server = Server::start(d, dpath, &label, Mode::Duplex(reply.clone()), &args);
        let up = payload(800, 92 + i as u64);
        let mut cmd = spipe_cmd(client);
        cmd.args(["-t", &server.hop.arg(), "-k", &key]);
        if !cf.is_empty() {
            cmd.arg(cf);
        }
        let out = run_with_stdin(cmd, &up, EXCHANGE_DEADLINE);
        assert!(out.status.is_some(), "{case}: spipe hung");
        if works {
            assert_eq!(out.code(), Some(0), "{case}: stderr {}", out.stderr);
            assert_eq!(sha(&out.stdout), sha(&reply), "{case}: stdout");
            server.target.assert_received(&case, &up);
        } else {
            assert_ne!(out.code(), Some(0), "{case}: spipe must fail");
            assert!(out.stdout.is_empty(), "{case}: spipe printed data");
            assert!(!out.stderr.is_empty(), "{case}: spipe printed no warning");
            println!(
                "{case}: rejected: exit {:?}, stderr {:?}",
                out.code(),
                out.stderr
            );
            let Server { d, target, .. } = server;
            drop(d);
            target.assert_received_nothing(&case);
        }
        println!("{case}: ok");
    }
}

macro_rules! role_tests {
    ($($name:ident: $e:expr, $d:expr;)*) => {$(
        /// Tests for one assignment of implementations to roles
        /// (client = spiped -e / spipe, server = spiped -d).
        mod $name {
            use super::*;
            #[test]
            fn payloads_tcp() {
                payloads($e, $d, Transport::Tcp);
            }
            #[test]
            fn payloads_unix() {
                payloads($e, $d, Transport::Unix);
            }
            #[test]
            fn half_close() {
                super::half_close($e, $d);
            }
            #[test]
            fn fast_and_pfs() {
                super::fast_and_pfs($e, $d);
            }
            #[test]
            fn wrong_key() {
                super::wrong_key($e, $d);
            }
            #[test]
            fn conn_limit() {
                super::conn_limit($e, $d);
            }
            #[test]
            fn spipe_data() {
                super::spipe_data($e, $d);
            }
            #[test]
            fn spipe_fast_and_pfs() {
                super::spipe_fast_and_pfs($e, $d);
            }
        }
    )*};
}

role_tests! {
    c_to_c: Impl::C, Impl::C;
    ours_to_c: Impl::Ours, Impl::C;
    c_to_ours: Impl::C, Impl::Ours;
    ours_to_ours: Impl::Ours, Impl::Ours;
}

/// Proves the C roles really run Debian's C spiped 1.6 (not a stand-in).
#[test]
fn c_binaries_are_debian_1_6() {
    if !c_available() {
        return;
    }
    for (bin, name) in [(C_SPIPED, "spiped"), (C_SPIPE, "spipe")] {
        let mut cmd = std::process::Command::new(bin);
        cmd.arg("-v");
        let out = run(cmd);
        assert_eq!(out.code(), Some(0), "{bin} -v");
        // The C build prints its version on stderr, not stdout.
        let v = out.stderr.clone();
        assert!(
            v.starts_with(name) && v.contains("1.6"),
            "{bin} -v printed {v:?}"
        );
        println!("{bin}: {}", v.trim());
    }
}
