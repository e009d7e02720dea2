//! Races between the two ends of a pipe, as in spiped 1.6.4's fix: a target that resets
//! (SO_LINGER 0, then close) while the client half-closes (`shutdown(SHUT_WR)`), so a
//! daemon's half-close of one side meets a reset from the other. Run a thousand times
//! in a row through each pair of daemons (ours on both ends, ours facing Debian's C
//! spiped in each role), the daemons stay up, a connection kept open across the run
//! arrives byte-exact, and the daemons of ours end with the descriptors they had before.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::*;

/// Races per pair of daemons.
const ROUNDS: usize = 1000;
/// The long-lived connection sends a chunk and waits for its echo every this many races.
const CHECK_EVERY: usize = 100;
/// One race's deadline: the client's connection must end (EOF or reset) by then.
const RACE_DEADLINE: Duration = Duration::from_secs(10);

/// Our daemons of `chain` and their open descriptors, each count once it has held
/// still (a connection being torn down leaves it moving).
fn settled(chain: &Chain) -> Vec<(String, usize)> {
    ours(chain)
        .map(|d| (d.label.clone(), d.idle_fds()))
        .collect()
}

/// The daemons of `chain` that are ours (the C spiped's descriptors are not ours to
/// count).
fn ours(chain: &Chain) -> impl Iterator<Item = &Daemon> {
    [&chain.enc, &chain.dec]
        .into_iter()
        .filter(|d| d.which == Impl::Ours)
}

/// Polls up to 10 s until our daemons of `chain` hold the descriptor counts of `want`
/// again; panics with what they hold otherwise.
fn assert_fds(chain: &Chain, want: &[(String, usize)], case: &str, when: &str) {
    for (d, (label, want)) in ours(chain).zip(want) {
        let mut now = 0;
        let back = poll(Duration::from_secs(10), || {
            now = d.fds().len();
            (now == *want).then_some(())
        });
        assert!(
            back.is_some(),
            "{case}: {label} holds {now} descriptors, {want} before the races ({when}): {:?}",
            d.fds()
        );
    }
}

/// The connection kept open across the races: everything sent, and everything echoed.
struct LongLived {
    conn: Stream,
    sent: Vec<u8>,
    echoed: Vec<u8>,
}

impl LongLived {
    fn open(source: &Addr) -> LongLived {
        let mut l = LongLived {
            conn: source.connect().expect("connect the long-lived connection"),
            sent: Vec::new(),
            echoed: Vec::new(),
        };
        l.round_trip(0);
        l
    }

    /// Sends a chunk and reads its echo.
    fn round_trip(&mut self, seed: u64) {
        let chunk = payload(10_000 + seed as usize, 1000 + seed);
        self.conn.write_all(&chunk).expect("long-lived write");
        let back = (self.conn)
            .read_exact_within(chunk.len(), EXCHANGE_DEADLINE)
            .expect("long-lived echo");
        self.sent.extend_from_slice(&chunk);
        self.echoed.extend_from_slice(&back);
    }

    /// Half-closes, reads the rest to the end, and compares the hashes.
    fn finish(mut self, case: &str) {
        self.conn.shutdown(Shutdown::Write).expect("long-lived FIN");
        self.conn.set_read_timeout(Some(EXCHANGE_DEADLINE)).unwrap();
        let (rest, err) = self.conn.read_to_eof();
        assert!(
            err.is_none(),
            "{case}: long-lived connection ended with {err:?}"
        );
        self.echoed.extend_from_slice(&rest);
        assert_eq!(
            (self.echoed.len(), sha(&self.echoed)),
            (self.sent.len(), sha(&self.sent)),
            "{case}: the long-lived connection's echo differs"
        );
    }
}

/// One race: the target resets after reading `after` bytes; the client sends `data`
/// and half-closes at once, then reads until its connection ends, which must happen
/// (EOF or reset, never a hang).
fn race(source: &Addr, data: &[u8], case: &str, round: usize) {
    let mut c = source
        .connect()
        .unwrap_or_else(|e| panic!("{case}: race {round}: connect: {e}"));
    // A daemon that already dropped the connection may refuse the bytes or the FIN.
    let _ = c.write_all(data);
    let _ = c.shutdown(Shutdown::Write);
    c.set_read_timeout(Some(RACE_DEADLINE)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("{case}: race {round}: the connection still open after {RACE_DEADLINE:?}")
            }
            Err(_) => return,
        }
    }
}

/// The races through `enc` in front of `dec` in front of a resetting target.
fn races_between(enc: Impl, dec: Impl) {
    let case = format!("{enc} -e -> {dec} -d");
    let mut chain = Chain::start((enc, &[]), (dec, &[]), Mode::Echo, None);
    let idle = settled(&chain);
    let mut long = LongLived::open(&chain.enc.source);
    let with_long = settled(&chain);
    let start = Instant::now();
    for round in 0..ROUNDS {
        // The reset comes at once, or after the first byte (so once the session carries
        // data); the client sends nothing, a byte, or more than one packet (which the
        // far daemon may not have read when it closes, so it resets the near one).
        let after = round % 2;
        let data = payload([0, 1, 3000][round % 3], round as u64);
        chain.target.set_mode(Mode::Reset { after, reply: None });
        race(&chain.enc.source, &data, &case, round);
        if (round + 1) % CHECK_EVERY == 0 {
            long.round_trip(round as u64);
        }
    }
    println!("{case}: {ROUNDS} races in {:?}", start.elapsed());
    chain.enc.assert_running();
    chain.dec.assert_running();
    assert_fds(
        &chain,
        &with_long,
        &case,
        "with the long-lived connection open",
    );
    long.finish(&case);
    chain.target.set_mode(Mode::Echo);
    assert_echo(&chain.enc.source, &payload(50_000, 7));
    assert_fds(&chain, &idle, &case, "once every connection closed");
    // A half-close that met a reset is no failure: nothing to say about it.
    for d in ours(&chain) {
        let err = d.stderr();
        assert!(!err.contains("half-close"), "{case}: {}: {err}", d.label);
    }
}

/// Ours on both ends: a `-d` whose target resets as the client's FIN arrives through
/// the pipe, and an `-e` whose far end drops the session as its client half-closes.
#[test]
fn reset_meets_half_close_through_our_pair() {
    races_between(Impl::Ours, Impl::Ours);
}

/// Our `-e` in front of Debian's C `-d`.
#[test]
fn reset_meets_half_close_our_e_before_c_d() {
    if c_available() {
        races_between(Impl::Ours, Impl::C);
    }
}

/// Debian's C `-e` in front of our `-d`.
#[test]
fn reset_meets_half_close_c_e_before_our_d() {
    if c_available() {
        races_between(Impl::C, Impl::Ours);
    }
}
