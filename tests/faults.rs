//! Fault injection through the real binaries: resets, damaged encrypted streams, dead
//! and silent peers, a target that never reads, and running out of file descriptors.
//! Every test ends by checking that the daemons survived: most by serving another client
//! in full, the rest (where the target itself is broken) by accepting and running on.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use spiped_proto::dh;
use spiped_proto::key::{SessionKeys, session_keys};
use spiped_proto::{Handshake, Key, Mode as HsMode, Next, Opener, PACKET_LEN, PAYLOAD_MAX, Role};

const KEY: &[u8] = b"fault injection key file contents";

impl Chain {
    /// Our or C's daemons, both with `extra` arguments.
    fn of(enc: Impl, dec: Impl, mode: Mode, extra: &[&str]) -> Chain {
        Chain::start((enc, extra), (dec, extra), mode, None)
    }

    /// A full exchange through both daemons to an echo target succeeds byte for byte.
    fn assert_serving(&mut self, seed: u64) {
        self.enc.assert_running();
        self.dec.assert_running();
        self.target.set_mode(Mode::Echo);
        let data = payload(100_000, seed);
        let ex = exchange(&self.enc.source, &data, EXCHANGE_DEADLINE).expect("exchange");
        assert_eq!(sha(&ex.received), sha(&data), "echo through the chain");
    }
}

/// The implementation pairs (encrypting, decrypting) that fault tests run against:
/// ours on both ends, and ours facing the C spiped in each role.
fn pairs() -> Vec<(Impl, Impl)> {
    let mut v = vec![(Impl::Ours, Impl::Ours)];
    if c_available() {
        v.extend([(Impl::Ours, Impl::C), (Impl::C, Impl::Ours)]);
    }
    v
}

/// The decrypting daemons whose reaction to a broken peer or target is tested: ours
/// and, when installed, the C spiped.
fn decs() -> Vec<Impl> {
    let mut v = vec![Impl::Ours];
    if c_available() {
        v.push(Impl::C);
    }
    v
}

/// A client that resets its connection (SO_LINGER 0) in the middle of sending, and one
/// that half-closes and resets at once (FIN and RST together, the spiped 1.6.4 crash):
/// the connection is torn down through to the target and both daemons keep serving.
#[test]
fn client_reset_mid_transfer() {
    for (e, d) in pairs() {
        for fin_first in [false, true] {
            let mut c = Chain::of(e, d, Mode::Duplex(Arc::new(Vec::new())), &[]);
            let mut conn = c.enc.source.connect().expect("connect");
            let data = payload(300_000, 1);
            conn.write_all(&data).expect("write");
            if fin_first {
                conn.shutdown(Shutdown::Write).expect("FIN");
            }
            conn.reset();
            c.target
                .wait_idle(EXCHANGE_DEADLINE)
                .expect("target connection torn down");
            let recs = c.target.records();
            assert!(
                recs.iter().all(|r| r.received_len <= data.len()),
                "{recs:?}"
            );
            c.assert_serving(2);
        }
    }
}

/// A target that resets mid-transfer, and one that sends a reply, half-closes and resets
/// at once: the client's connection ends (no hang) and both daemons keep serving.
#[test]
fn target_reset_mid_transfer() {
    for (e, d) in pairs() {
        for reply in [None, Some(Arc::new(payload(50_000, 3)))] {
            let mode = Mode::Reset {
                after: 20_000,
                reply: reply.clone(),
            };
            let mut c = Chain::of(e, d, mode, &[]);
            let data = payload(2_000_000, 4);
            let ex = exchange(&c.enc.source, &data, EXCHANGE_DEADLINE)
                .expect("the client's connection ends");
            // Whatever arrived is an intact prefix of what the target sent.
            let sent = reply.as_deref().map_or(&[][..], |r| &r[..]);
            assert!(sent.starts_with(&ex.received), "{e}->{d}: corrupted reply");
            c.assert_serving(5);
        }
    }
}

/// How the proxy damages the client-to-server packet stream at data packet `k`.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Flip a bit of packet `k`.
    Tamper,
    /// Send half of packet `k`, then end the stream.
    Truncate,
    /// Send packet `k - 1` again in place of packet `k`.
    Replay,
    /// Swap packets `k` and `k + 1`.
    Reorder,
    /// Send packet `k` twice.
    Duplicate,
}

impl Fault {
    /// How many packets reach the server intact and in order before the bad one.
    fn good_packets(self, k: usize) -> usize {
        match self {
            Fault::Duplicate => k + 1,
            _ => k,
        }
    }

    /// The stream the server gets instead of `packets`.
    fn apply(self, packets: &[Vec<u8>], k: usize) -> Vec<u8> {
        let mut out: Vec<u8> = packets[..k].concat();
        match self {
            Fault::Tamper => {
                let mut p = packets[k].clone();
                p[PACKET_LEN / 2] ^= 0x10;
                out.extend_from_slice(&p);
                out.extend(packets[k + 1..].concat());
            }
            Fault::Truncate => out.extend_from_slice(&packets[k][..PACKET_LEN / 2]),
            Fault::Replay => out.extend(packets[k - 1..].concat()),
            Fault::Reorder => {
                out.extend_from_slice(&packets[k + 1]);
                out.extend_from_slice(&packets[k]);
                out.extend(packets[k + 2..].concat());
            }
            Fault::Duplicate => {
                out.extend_from_slice(&packets[k]);
                out.extend(packets[k..].concat());
            }
        }
        out
    }
}

/// Reads exactly `n` bytes or fails (EOF, error, or nothing for the exchange deadline).
fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    s.set_read_timeout(Some(EXCHANGE_DEADLINE)).unwrap();
    let mut b = vec![0u8; n];
    s.read_exact(&mut b).expect("proxy read");
    b
}

/// A man in the middle on the encrypted hop. Both daemons run in fast mode (`-f`), so
/// knowing the key file and seeing both nonces, it derives the client's packet keys and
/// opens each packet to learn its payload. The first connection that carries enough
/// packets it damages with `fault`, sending that connection's payloads, in order, on
/// the returned channel; every other connection (such as a readiness probe) it forwards
/// untouched.
fn damaging_proxy(upstream: Addr, fault: Fault, k: usize) -> (Addr, mpsc::Receiver<Vec<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let addr = Addr::Tcp(listener.local_addr().unwrap());
    let Addr::Tcp(up) = upstream else {
        unreachable!()
    };
    let (tx, rx) = mpsc::channel();
    let armed = Arc::new(AtomicBool::new(true));
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let (tx, armed) = (tx.clone(), armed.clone());
            thread::spawn(move || proxy_one(client, up, (fault, k), &armed, &tx));
        }
    });
    (addr, rx)
}

fn proxy_one(
    mut client: TcpStream,
    up: SocketAddr,
    (fault, k): (Fault, usize),
    armed: &AtomicBool,
    tx: &mpsc::Sender<Vec<Vec<u8>>>,
) {
    let mut server = TcpStream::connect(up).expect("proxy connect");
    // Server to client, untouched; the server's nonce is reported on the way.
    let (mut s_in, mut c_out) = (server.try_clone().unwrap(), client.try_clone().unwrap());
    let (ntx, nrx) = mpsc::channel();
    thread::spawn(move || {
        let nonce = read_n(&mut s_in, 32);
        let _ = c_out.write_all(&nonce);
        let _ = ntx.send(nonce);
        let _ = std::io::copy(&mut s_in, &mut c_out);
        let _ = c_out.shutdown(Shutdown::Write);
    });
    // Client to server: the handshake (nonce and DH message) passes as it is.
    let hello = read_n(&mut client, 32 + 288);
    server.write_all(&hello).expect("forward handshake");
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest);
    let packets: Vec<Vec<u8>> = rest.chunks(PACKET_LEN).map(<[u8]>::to_vec).collect();
    assert_eq!(rest.len() % PACKET_LEN, 0, "whole packets from -e");
    let damage = packets.len() > k + 2 && armed.swap(false, Ordering::SeqCst);
    let stream = if damage {
        fault.apply(&packets, k)
    } else {
        rest.clone()
    };
    let _ = server.write_all(&stream);
    let _ = server.shutdown(Shutdown::Write);
    if !damage {
        return;
    }
    // Open the genuine packets, as the server would have, to learn their payloads.
    let nonce_s: [u8; 32] = nrx
        .recv_timeout(EXCHANGE_DEADLINE)
        .unwrap()
        .try_into()
        .unwrap();
    let nonce_c: [u8; 32] = hello[..32].try_into().unwrap();
    let key = Key::from_file_contents(CHAIN_KEY);
    let keys = session_keys(&key, &nonce_c, &nonce_s, &dh::ONE);
    let mut opener = Opener::new(&keys.enc_c, &keys.mac_c);
    let payloads = packets
        .into_iter()
        .map(|p| {
            let mut p: [u8; PACKET_LEN] = p.try_into().unwrap();
            let n = opener.open_in_place(&mut p).expect("genuine packet opens");
            p[..n].to_vec()
        })
        .collect();
    let _ = tx.send(payloads);
}

/// A tampered, truncated, replayed, reordered or duplicated packet on the encrypted hop:
/// our decrypting daemon delivers every byte before the bad packet intact and nothing
/// after it (the C spiped: an intact prefix of those bytes), drops the connection, and
/// keeps serving.
#[test]
fn damaged_packet_stream() {
    for d in decs() {
        for fault in [
            Fault::Tamper,
            Fault::Truncate,
            Fault::Replay,
            Fault::Reorder,
            Fault::Duplicate,
        ] {
            let k = 3;
            let rx = std::cell::OnceCell::new();
            let proxy = |up: &Addr| {
                let (a, r) = damaging_proxy(up.clone(), fault, k);
                rx.set(r).unwrap();
                a
            };
            let mut c = Chain::start(
                (Impl::Ours, &["-f"]),
                (d, &["-f"]),
                Mode::Duplex(Arc::new(Vec::new())),
                Some(&proxy),
            );
            let data = payload(200_000, 7);
            exchange(&c.enc.source, &data, EXCHANGE_DEADLINE).expect("client connection ends");
            let payloads = rx.get().unwrap().recv_timeout(EXCHANGE_DEADLINE).unwrap();
            assert_eq!(
                payloads.concat(),
                data,
                "the proxy saw what the client sent"
            );
            let good = payloads[..fault.good_packets(k)].concat();
            if d == Impl::Ours {
                c.target
                    .wait_received(&good, EXCHANGE_DEADLINE)
                    .unwrap_or_else(|e| panic!("{d} -d, {fault:?}: {e}"));
            }
            c.target
                .wait_idle(EXCHANGE_DEADLINE)
                .expect("target closed");
            // The C spiped drops the connection as soon as it meets the bad packet, even
            // when the packets before it are authenticated but not yet written: what it
            // delivers is an intact prefix, possibly short of the last good packets.
            let longest = c
                .target
                .records()
                .into_iter()
                .max_by_key(|r| r.received_len);
            let longest = longest.expect("the target saw the connection");
            assert!(
                longest.received_len <= good.len()
                    && longest.received_sha == sha(&good[..longest.received_len]),
                "{d} -d, {fault:?}: delivered {longest:?}, not a prefix of the {} good bytes",
                good.len()
            );
            println!(
                "{d} -d, {fault:?}: delivered {} of {} good bytes",
                longest.received_len,
                good.len()
            );
            c.assert_serving(8);
        }
    }
}

/// `d`'s `spiped -d` (with `args`) on a fresh TCP address in front of `target`, under the
/// key [`KEY`], in a fresh directory (returned too, since it must outlive the daemon).
fn dec_to(d: Impl, target: &str, args: &[&str]) -> (tempfile::TempDir, Daemon) {
    let dir = temp_dir();
    let key = key_arg(dir.path(), "key", KEY);
    let src = Addr::fresh(Transport::Tcp, dir.path(), "d");
    let args = [&["-d"][..], args].concat();
    let dec = Daemon::pipe(d, "dec", dir.path(), &src, target, &key, &args);
    (dir, dec)
}

/// The target refuses connections: each client is dropped promptly, and the daemon
/// keeps running and accepting.
#[test]
fn target_refuses() {
    for d in decs() {
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let t = format!("[127.0.0.1]:{}", closed.local_addr().unwrap().port());
        drop(closed);
        let (_dir, mut dec) = dec_to(d, &t, &[]);
        let src = dec.source.clone();
        for _ in 0..3 {
            let mut conn = src.connect().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let start = Instant::now();
            let (got, _) = conn.read_to_eof();
            assert!(got.len() <= 32, "{d}: at most its nonce, then a close");
            assert!(
                start.elapsed() < Duration::from_secs(4),
                "{d}: dropped promptly"
            );
        }
        dec.assert_running();
    }
}

/// A target whose listen queue is full and which never accepts: with `-o 1` the client
/// is dropped after about a second, not left hanging, and the daemons keep running.
#[test]
fn target_never_accepts() {
    for d in decs() {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        sock.listen(0).unwrap();
        let taddr: SocketAddr = sock.local_addr().unwrap().as_socket().unwrap();
        // Fill the queue; once it is full the kernel ignores further SYNs.
        let fillers: Vec<TcpStream> = (0..4)
            .filter_map(|_| TcpStream::connect_timeout(&taddr, Duration::from_millis(300)).ok())
            .collect();
        let t = format!("[127.0.0.1]:{}", taddr.port());
        let (_dir, mut dec) = dec_to(d, &t, &["-o", "1"]);
        let src = dec.source.clone();
        let mut conn = src.connect().unwrap();
        let start = Instant::now();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // Our nonce comes first (the daemon sends its own at once); then the close.
        let (got, err) = conn.read_to_eof();
        let took = start.elapsed();
        assert!(
            got.len() <= 32,
            "{d}: only the nonce, got {} bytes ({err:?})",
            got.len()
        );
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_secs(5),
            "{d}: dropped after {took:?}, expected about -o 1"
        );
        dec.assert_running();
        drop(fillers);
    }
}

/// Clients that never send their nonce, or stall half way through the handshake, are
/// dropped after `-o`; meanwhile other clients are served at once.
#[test]
fn silent_and_stalled_handshakes_time_out() {
    for (e, d) in pairs() {
        let mut c = Chain::of(e, d, Mode::Echo, &["-o", "4"]);
        let start = Instant::now();
        let mut idle: Vec<Stream> = Vec::new();
        for i in 0..16 {
            let mut s = c.dec.source.connect().unwrap();
            if i % 2 == 1 {
                // Our nonce and part of a DH message, then silence.
                s.write_all(&payload(32 + 100, i)).unwrap();
            }
            idle.push(s);
        }
        // Served while the stalled ones hang on, well inside their -o.
        let t = Instant::now();
        let data = payload(10_000, 11);
        let ex = exchange(&c.enc.source, &data, EXCHANGE_DEADLINE).unwrap();
        assert_eq!(sha(&ex.received), sha(&data));
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{e}->{d}: a legitimate client waited {:?}",
            t.elapsed()
        );
        for mut s in idle {
            s.set_read_timeout(Some(Duration::from_secs(12))).unwrap();
            let mut buf = Vec::new();
            let r = s.read_to_end(&mut buf);
            let at = start.elapsed();
            assert!(
                r.is_ok()
                    || r.as_ref()
                        .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
                "{e}->{d}: not dropped: {r:?} after {at:?}"
            );
            assert!(buf.len() <= 32 + 288, "{d}: sent only handshake bytes");
            assert!(
                at >= Duration::from_millis(3500) && at < Duration::from_secs(10),
                "{d}: dropped after {at:?}, expected about -o 4"
            );
        }
        c.assert_serving(12);
    }
}

/// The target accepts but never reads, and the client pushes 256 MiB (x
/// SPIPED_SOAK_SCALE): the push stalls on TCP flow control instead of the daemons
/// buffering it, and neither daemon's RSS grows by more than 32 MiB over idle.
#[test]
fn peer_that_stops_reading_keeps_memory_bounded() {
    const GROWTH_BOUND_KIB: u64 = 32 * 1024;
    let push: usize = 256 * 1024 * 1024 * soak_scale();
    let sink = TcpListener::bind("127.0.0.1:0").unwrap();
    let taddr = sink.local_addr().unwrap();
    let (htx, hrx) = mpsc::channel();
    thread::spawn(move || {
        // Hold every connection open without ever reading.
        for s in sink.incoming() {
            let _ = htx.send(s);
        }
    });
    let dir = temp_dir();
    let key = key_file(dir.path(), "key", KEY);
    let key = key.to_str().unwrap();
    let dsrc = Addr::fresh(Transport::Tcp, dir.path(), "d");
    let (ds, dt) = (dsrc.arg(), format!("[127.0.0.1]:{}", taddr.port()));
    let dec = Daemon::pipe(Impl::Ours, "dec", dir.path(), &dsrc, &dt, key, &["-d"]);
    let esrc = Addr::fresh(Transport::Tcp, dir.path(), "e");
    let enc = Daemon::pipe(Impl::Ours, "enc", dir.path(), &esrc, &ds, key, &["-e"]);
    let idle = (enc.rss_kib(), dec.rss_kib());

    let mut conn = esrc.connect().unwrap();
    conn.set_write_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let (wtx, wrx) = mpsc::channel();
    thread::spawn(move || {
        let chunk = payload(1 << 20, 13);
        let mut written = 0usize;
        while written < push {
            match conn.write(&chunk[..(push - written).min(chunk.len())]) {
                Ok(n) => written += n,
                Err(_) => break,
            }
        }
        let _ = wtx.send(written);
        conn
    });
    let mut peak = idle;
    let written = loop {
        peak = (peak.0.max(enc.rss_kib()), peak.1.max(dec.rss_kib()));
        match wrx.recv_timeout(Duration::from_millis(25)) {
            Ok(w) => break w,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("writer: {e}"),
        }
    };
    peak = (peak.0.max(enc.rss_kib()), peak.1.max(dec.rss_kib()));
    println!("pushed {written} of {push} bytes; RSS KiB idle {idle:?}, peak {peak:?}");
    assert!(
        written < push,
        "all {push} bytes went somewhere though nobody reads"
    );
    assert!(
        peak.0 < idle.0 + GROWTH_BOUND_KIB && peak.1 < idle.1 + GROWTH_BOUND_KIB,
        "RSS grew past the bound: idle {idle:?} KiB, peak {peak:?} KiB"
    );
    drop(hrx);
}

/// Under a small RLIMIT_NOFILE the daemon runs out of descriptors: it warns, keeps
/// running, and serves again once descriptors are freed.
#[test]
fn fd_exhaustion_recovers() {
    let dir = temp_dir();
    let key = key_file(dir.path(), "key", KEY);
    let key = key.to_str().unwrap();
    let target = Target::start(Transport::Tcp, dir.path(), Mode::Echo);
    let dsrc = Addr::fresh(Transport::Tcp, dir.path(), "d");
    let (ds, dt) = (dsrc.arg(), target.addr.arg());
    let mut dec = Daemon::spawn_limited(
        Impl::Ours,
        "dec",
        dir.path(),
        &dsrc,
        &["-d", "-s", &ds, "-t", &dt, "-k", key, "-o", "60"],
        32,
    );
    let esrc = Addr::fresh(Transport::Tcp, dir.path(), "e");
    let mut enc = Daemon::pipe(Impl::Ours, "enc", dir.path(), &esrc, &ds, key, &["-e"]);
    let idle = dec.idle_sockets();

    // Each silent client holds two of the daemon's descriptors (it and its target
    // connection) for the whole -o.
    let hogs: Vec<Stream> = (0..40).map(|_| dsrc.connect().expect("connect")).collect();
    dec.wait_stderr("Too many open files", Duration::from_secs(10))
        .expect("warns about running out of descriptors");
    dec.assert_running();
    drop(hogs);
    // The descriptors are free once the daemon has taken the closed clients off its
    // queue and let them go (a client queued among them may still find none left, as
    // with C; that is not what this test is about).
    dec.wait_stderr("again after", Duration::from_secs(10))
        .expect("accepts again");
    assert_eq!(
        dec.wait_sockets_at_most(idle, Duration::from_secs(10)),
        idle,
        "back to its idle sockets: {}",
        dec.stderr()
    );

    let data = payload(50_000, 21);
    let ex = exchange(&esrc, &data, EXCHANGE_DEADLINE).expect("served again");
    assert_eq!(sha(&ex.received), sha(&data));
    dec.assert_running();
    enc.assert_running();
    let warnings = dec.stderr().matches("Too many open files").count();
    println!("{warnings} descriptor warnings");
    // The accept loop says it is failing once per episode, not at every retry.
    let err = dec.stderr();
    let accept_failures = err.matches("failed: Too many open files; retrying").count();
    assert!(
        (1..=3).contains(&accept_failures),
        "accept failures reported {accept_failures} times: {err}"
    );
    assert!(err.contains("again after"), "no recovery line: {err}");
}

/// Runs a fast-mode (`-f`) handshake in `role` with the key file [`KEY`] over `s`; the
/// session keys, derived from the nonces seen on the way. `None` if the peer went away.
fn fast_handshake(s: &mut TcpStream, role: Role) -> Option<SessionKeys> {
    let key = Key::from_file_contents(KEY);
    let fast = HsMode {
        fast: true,
        ..HsMode::default()
    };
    let mut hs = Handshake::new(role, fast, &key).unwrap();
    let (mut ours, mut theirs) = (None::<[u8; 32]>, None::<[u8; 32]>);
    s.set_read_timeout(Some(READY_DEADLINE)).unwrap();
    loop {
        match hs.next() {
            Next::Send(out) => {
                ours.get_or_insert_with(|| out.bytes[..32].try_into().unwrap());
                s.write_all(out.bytes).ok()?;
                hs.sent();
            }
            Next::Recv(r) => {
                let mut b = vec![0u8; r.len];
                s.read_exact(&mut b).ok()?;
                theirs.get_or_insert_with(|| b[..32].try_into().unwrap());
                hs.received(&b).ok()?;
            }
            Next::Done => break,
        }
    }
    let (nonce_c, nonce_s) = match role {
        Role::Client => (ours?, theirs?),
        Role::Server => (theirs?, ours?),
    };
    Some(session_keys(&key, &nonce_c, &nonce_s, &dh::ONE))
}

/// Packet `pnum` carrying `payload` but claiming `len` bytes, sealed by hand (AES-256-CTR
/// then HMAC-SHA256, as the protocol says) so that its length field can be anything.
fn crafted_packet(enc: &[u8; 32], mac: &[u8; 32], pnum: u64, payload: &[u8], len: u32) -> Vec<u8> {
    use ctr::cipher::{KeyIvInit, StreamCipher};
    use hmac::{KeyInit, Mac};
    let mut body = vec![0u8; PAYLOAD_MAX + 4];
    body[..payload.len()].copy_from_slice(payload);
    body[PAYLOAD_MAX..].copy_from_slice(&len.to_be_bytes());
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(&pnum.to_be_bytes());
    ctr::Ctr64BE::<aes::Aes256>::new(enc.into(), &iv.into()).apply_keystream(&mut body);
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(mac).unwrap();
    m.update(&body);
    m.update(&pnum.to_be_bytes());
    body.extend_from_slice(&m.finalize().into_bytes());
    body
}

/// Two packets from an authenticated peer: the first claims 0 bytes, the second carries
/// "after". Checks first that the hand sealing is right (a 1-byte packet opens), so a
/// drop below cannot come from a bad MAC.
fn empty_then_data(enc: &[u8; 32], mac: &[u8; 32]) -> Vec<u8> {
    let mut probe: [u8; PACKET_LEN] = crafted_packet(enc, mac, 0, b"x", 1).try_into().unwrap();
    assert_eq!(Opener::new(enc, mac).open_in_place(&mut probe), Ok(1));
    [
        crafted_packet(enc, mac, 0, b"", 0),
        crafted_packet(enc, mac, 1, b"after", 5),
    ]
    .concat()
}

/// A packet whose decrypted length field is 0 drops the connection, as in C, in both
/// roles: a `-d` given it by a client delivers nothing to its target, and a `-e` given
/// it by a server delivers nothing to its client; both close the connection.
#[test]
fn zero_length_packet_drops_the_connection() {
    let dir = temp_dir();
    let k = key_file(dir.path(), "key", KEY);
    let k = k.to_str().unwrap();
    for d in decs() {
        // Server role: we are the client of a -d.
        let target = Target::start(
            Transport::Tcp,
            dir.path(),
            Mode::Duplex(Arc::new(Vec::new())),
        );
        let src = Addr::fresh(Transport::Tcp, dir.path(), "d");
        let _dec = Daemon::pipe(
            d,
            "dec",
            dir.path(),
            &src,
            &target.addr.arg(),
            k,
            &["-d", "-f"],
        );
        let Addr::Tcp(at) = src else { unreachable!() };
        let mut s = TcpStream::connect(at).unwrap();
        let keys = fast_handshake(&mut s, Role::Client).expect("handshake with -d");
        s.write_all(&empty_then_data(&keys.enc_c, &keys.mac_c))
            .unwrap();
        let mut got = Vec::new();
        let r = s.read_to_end(&mut got);
        assert!(
            r.is_ok()
                || r.as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "{d} -d kept the connection: {r:?}"
        );
        target
            .wait_idle(EXCHANGE_DEADLINE)
            .expect("target connection closed");
        assert!(
            target.records().iter().all(|r| r.received_len == 0),
            "{d} -d delivered data after an empty packet: {:?}",
            target.records()
        );
    }
    for e in decs() {
        // Client role: we are the server a -e connects to; every connection it opens
        // (the readiness probe's too) gets the two packets.
        let fake = TcpListener::bind("127.0.0.1:0").unwrap();
        let fake_at = fake.local_addr().unwrap();
        thread::spawn(move || {
            for conn in fake.incoming() {
                let Ok(mut conn) = conn else { return };
                thread::spawn(move || {
                    if let Some(keys) = fast_handshake(&mut conn, Role::Server) {
                        let _ = conn.write_all(&empty_then_data(&keys.enc_s, &keys.mac_s));
                        let _ = conn.read_to_end(&mut Vec::new());
                    }
                });
            }
        });
        let src = Addr::fresh(Transport::Tcp, dir.path(), "e");
        let t = format!("[{}]:{}", fake_at.ip(), fake_at.port());
        let _enc = Daemon::pipe(e, "enc", dir.path(), &src, &t, k, &["-e", "-f"]);
        let mut c = src.connect().unwrap();
        c.set_read_timeout(Some(READY_DEADLINE)).unwrap();
        let (got, err) = c.read_to_eof();
        assert!(
            err.as_ref()
                .is_none_or(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "{e} -e kept the connection: {err:?}"
        );
        assert!(
            got.is_empty(),
            "{e} -e delivered {got:?} after an empty packet"
        );
    }
}
