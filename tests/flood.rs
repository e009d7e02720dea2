//! Floods and soak through the real daemons: hostile handshakes while legitimate clients
//! keep being served, more clients than `-n`, and hundreds of concurrent two-way
//! streams, after which no descriptor has leaked and memory has come back down.
//!
//! Sizes scale with env `SPIPED_SOAK_SCALE` (default 1, the CI size); for the manual
//! run, see SECURITY.md.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use spiped_proto::{Handshake, Key, Mode as HsMode, Next, Role};

/// Our `spiped -d` in front of a target, and our `spiped -e` in front of that.
fn chain(mode: Mode, enc_extra: &[&str], dec_extra: &[&str]) -> Chain {
    Chain::start((Impl::Ours, enc_extra), (Impl::Ours, dec_extra), mode, None)
}

/// One hostile handshake attempt on `addr`: garbage, or a genuine handshake under the
/// wrong key. Returns how many bytes the daemon sent before dropping us.
fn hostile_attempt(addr: &Addr, i: u64) -> usize {
    let mut s = addr.connect().expect("connect");
    s.set_read_timeout(Some(EXCHANGE_DEADLINE)).unwrap();
    if i.is_multiple_of(2) {
        let _ = s.write_all(&payload(32 + 288, i));
    } else {
        let wrong = Key::from_file_contents(b"not the key");
        let fast = HsMode {
            fast: true,
            ..HsMode::default()
        };
        let mut hs = Handshake::new(Role::Client, fast, &wrong).unwrap();
        let mut got = 0;
        loop {
            match hs.next() {
                Next::Send(out) => {
                    if s.write_all(out.bytes).is_err() {
                        break;
                    }
                    hs.sent();
                }
                Next::Recv(r) => {
                    let mut b = vec![0u8; r.len];
                    if s.read_exact(&mut b).is_err() {
                        return got;
                    }
                    got += r.len;
                    if hs.received(&b).is_err() {
                        break;
                    }
                }
                Next::Done => panic!("a wrong key completed the handshake"),
            }
        }
    }
    let (got, _) = s.read_to_eof();
    got.len()
}

/// 1,000 (x scale) handshakes with a wrong key or garbage, from four threads, while
/// legitimate clients keep getting through: every hostile one is dropped after at most
/// the daemon's nonce, every legitimate transfer arrives intact within 5 s, and the
/// daemon ends with no more sockets open than when idle.
#[test]
fn hostile_handshake_flood() {
    const LATENCY_BOUND: Duration = Duration::from_secs(5);
    let attempts = 1000 * soak_scale() as u64;
    let mut c = chain(Mode::Echo, &[], &[]);
    let idle = c.dec.idle_sockets();
    let done = Arc::new(AtomicBool::new(false));
    let flooders: Vec<_> = (0..4)
        .map(|t| {
            let addr = c.dec.source.clone();
            thread::spawn(move || {
                (0..attempts / 4)
                    .map(|i| hostile_attempt(&addr, i * 4 + t))
                    .max()
                    .unwrap_or(0)
            })
        })
        .collect();
    let watcher = {
        let done = done.clone();
        thread::spawn(move || {
            let most = flooders.into_iter().map(|h| h.join().unwrap()).max();
            done.store(true, Ordering::SeqCst);
            most
        })
    };
    let mut legit = 0u64;
    let mut slowest = Duration::ZERO;
    while !done.load(Ordering::SeqCst) || legit < 5 {
        let data = payload(64 * 1024, 100 + legit);
        let t = Instant::now();
        let ex = exchange(&c.enc.source, &data, LATENCY_BOUND).expect("legitimate client served");
        assert_eq!(sha(&ex.received), sha(&data), "legitimate transfer {legit}");
        slowest = slowest.max(t.elapsed());
        legit += 1;
    }
    let most = watcher.join().unwrap().unwrap_or(0);
    println!("{attempts} hostile attempts; {legit} legitimate transfers, slowest {slowest:?}");
    assert!(
        most <= 32,
        "a hostile client got {most} bytes: more than the nonce"
    );
    c.dec.assert_running();
    let sockets = c.dec.wait_sockets_at_most(idle, Duration::from_secs(10));
    assert_eq!(sockets, idle, "sockets leaked: {:?}", c.dec.fds());
}

/// With `-n 2` and two connections held open, further clients wait in the listen queue
/// (nothing comes back for them) instead of being refused; once the two close, every
/// queued client is served in full.
#[test]
fn clients_beyond_the_limit_queue() {
    let c = chain(Mode::Echo, &["-n", "2"], &[]);
    let holders: Vec<Stream> = (0..2)
        .map(|i| {
            let mut s = c.enc.source.connect().unwrap();
            s.write_all(&[i]).unwrap();
            assert_eq!(s.read_exact_within(1, EXCHANGE_DEADLINE).unwrap(), [i]);
            s
        })
        .collect();
    let (tx, rx) = mpsc::channel();
    for i in 0..4u64 {
        let (addr, tx) = (c.enc.source.clone(), tx.clone());
        thread::spawn(move || {
            let data = payload(100_000, 200 + i);
            let r =
                exchange(&addr, &data, EXCHANGE_DEADLINE).map(|ex| (sha(&ex.received), sha(&data)));
            let _ = tx.send(r);
        });
    }
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "a client beyond -n 2 was served while two were open"
    );
    for h in holders {
        h.shutdown(Shutdown::Both).unwrap();
    }
    for _ in 0..4 {
        let (got, want) = rx
            .recv_timeout(EXCHANGE_DEADLINE)
            .expect("queued client finished")
            .expect("queued client served");
        assert_eq!(got, want);
    }
    assert!(c.enc.stderr().contains("connection limit reached"));
}

/// 200 concurrent connections, each moving 64 KiB (x scale) both ways at once: every
/// stream arrives intact at its far end within the deadline; afterwards both daemons
/// are back to the sockets and descriptors they had idle, and within 16 MiB of their
/// idle RSS.
#[test]
fn soak_concurrent_two_way() {
    const CONNS: u64 = 200;
    const RSS_SLACK_KIB: u64 = 16 * 1024;
    let size = 64 * 1024 * soak_scale();
    let down = Arc::new(payload(size, 1));
    let mut c = chain(Mode::Duplex(down.clone()), &["-n", "0"], &["-n", "0"]);
    // Warm up (the event loop and the allocator set up on first use), then take the
    // idle measures once the warm-up connection is gone.
    let ex = exchange(&c.enc.source, b"warm-up", EXCHANGE_DEADLINE).unwrap();
    assert_eq!(sha(&ex.received), sha(&down));
    c.target.wait_idle(EXCHANGE_DEADLINE).unwrap();
    let idle_sockets = (c.enc.idle_sockets(), c.dec.idle_sockets());
    let idle_fds = (c.enc.fds().len(), c.dec.fds().len());
    let idle_rss = (c.enc.rss_kib(), c.dec.rss_kib());

    let start = Instant::now();
    let clients: Vec<_> = (0..CONNS)
        .map(|i| {
            let addr = c.enc.source.clone();
            thread::spawn(move || {
                let up = payload(size, 1000 + i);
                let ex = exchange(&addr, &up, EXCHANGE_DEADLINE)?;
                Ok::<_, String>((sha(&up), sha(&ex.received)))
            })
        })
        .collect();
    let mut sent = HashSet::new();
    for h in clients {
        let (up, got) = h.join().unwrap().expect("soak client");
        assert_eq!(got, sha(&down), "a client's download was corrupted");
        sent.insert(up);
    }
    let took = start.elapsed();
    c.target.wait_idle(EXCHANGE_DEADLINE).unwrap();
    let received: HashSet<String> = c
        .target
        .records()
        .into_iter()
        .map(|r| r.received_sha)
        .collect();
    assert!(sent.is_subset(&received), "an upload was corrupted or lost");
    let busy_rss = (c.enc.rss_kib(), c.dec.rss_kib());

    let sockets = (
        c.enc
            .wait_sockets_at_most(idle_sockets.0, Duration::from_secs(10)),
        c.dec
            .wait_sockets_at_most(idle_sockets.1, Duration::from_secs(10)),
    );
    let fds = (c.enc.fds().len(), c.dec.fds().len());
    let rss = (c.enc.rss_kib(), c.dec.rss_kib());
    println!(
        "{CONNS} connections x {size} bytes each way in {took:?}; fds idle {idle_fds:?} after {fds:?}; \
         RSS KiB idle {idle_rss:?}, just after {busy_rss:?}, settled {rss:?}"
    );
    assert_eq!(sockets, idle_sockets, "sockets leaked");
    assert_eq!(fds, idle_fds, "descriptors leaked");
    assert!(
        rss.0 < idle_rss.0 + RSS_SLACK_KIB && rss.1 < idle_rss.1 + RSS_SLACK_KIB,
        "RSS did not come back near idle"
    );
    c.enc.assert_running();
    c.dec.assert_running();
}
