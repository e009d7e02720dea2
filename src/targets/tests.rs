//! The target set's policies and health rules on a fake clock, and its connect and
//! checks against real loopback listeners.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spiped_proto::handshake::{Mode, Role};
use spiped_proto::key::Key;
use spiped_transports::event_loop::block_on;
use spiped_transports::{Address, Endpoint, SocketStream, StreamOptions, Transport};

use super::*;
use crate::session::client::Dial;
use crate::session::offload::Offload;

const SECOND: Duration = Duration::from_secs(1);

fn addr(port: u16) -> Address {
    Address::Ip {
        ip: [127, 0, 0, 1].into(),
        port,
    }
}

fn targets(ports: &[u16]) -> Vec<(Address, Vec<Endpoint>)> {
    ports
        .iter()
        .map(|&p| {
            let ep = Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], p)));
            (addr(p), vec![ep])
        })
        .collect()
}

fn settings(balance: Balance, health_interval: Option<Duration>) -> Settings {
    Settings {
        balance,
        connect_timeout: SECOND,
        health_interval,
    }
}

fn set(ports: &[u16], balance: Balance) -> TargetSet {
    TargetSet::new(targets(ports), settings(balance, None))
}

/// The port of a test target.
fn port_of(pick: &Pick) -> u16 {
    match pick.address() {
        Address::Ip { port, .. } => *port,
        a => panic!("not a test address: {a}"),
    }
}

/// The ports of `picks`, in order.
fn ports(picks: &[Pick]) -> Vec<u16> {
    picks.iter().map(port_of).collect()
}

fn refused() -> io::Error {
    io::Error::from(io::ErrorKind::ConnectionRefused)
}

/// Fails a connect to the target on `port`, as the connection that tried it would.
fn fail(s: &mut TargetSet, port: u16, now: Instant) -> Option<Transition> {
    let pick = s.candidates(now).into_iter().find(|p| port_of(p) == port);
    s.failed(&pick.unwrap(), &refused(), now)
}

fn first(s: &mut TargetSet, now: Instant) -> u16 {
    ports(&s.candidates(now))[0]
}

#[test]
fn round_robin_is_fair_over_3000_picks() {
    let mut s = set(&[1, 2, 3], Balance::RoundRobin);
    let now = Instant::now();
    let mut counts = [0; 3];
    for _ in 0..3000 {
        let picks = s.candidates(now);
        assert_eq!(picks.len(), 3, "every target is a candidate");
        s.connected(&picks[0], now);
        s.closed(&picks[0]);
        counts[usize::from(ports(&picks)[0]) - 1] += 1;
    }
    assert_eq!(counts, [1000, 1000, 1000]);
    // A down target is skipped and the others share its turns.
    fail(&mut s, 2, now);
    let mut counts = [0; 3];
    for _ in 0..3000 {
        counts[usize::from(first(&mut s, now)) - 1] += 1;
    }
    assert_eq!(counts, [1500, 0, 1500]);
}

#[test]
fn failover_returns_to_the_primary_once_its_backoff_ends() {
    let mut s = set(&[1, 2, 3], Balance::Failover);
    let t0 = Instant::now();
    assert_eq!(ports(&s.candidates(t0)), [1, 2, 3]);
    let down = fail(&mut s, 1, t0).expect("going down is told");
    assert_eq!(
        down.to_string(),
        "target [127.0.0.1]:1 is down (connection refused); retrying it in 1 s"
    );
    // Skipped first during the back-off, but still a last resort.
    assert_eq!(ports(&s.candidates(t0 + SECOND / 2)), [2, 3, 1]);
    // Back-off over: one connection retries it first; others skip it while that runs.
    let retry = s.candidates(t0 + SECOND);
    assert_eq!(ports(&retry), [1, 2, 3]);
    assert_eq!(first(&mut s, t0 + SECOND), 2);
    let up = s.connected(&retry[0], t0 + SECOND + SECOND / 10);
    assert_eq!(
        up.expect("coming up is told").to_string(),
        "target [127.0.0.1]:1 is up again after 1.1 s down"
    );
    assert_eq!(first(&mut s, t0 + 2 * SECOND), 1);
}

#[test]
fn a_retry_never_reported_frees_the_target_after_the_connect_timeout() {
    let mut s = set(&[1, 2], Balance::Failover);
    let t0 = Instant::now();
    fail(&mut s, 1, t0);
    assert_eq!(first(&mut s, t0 + SECOND), 1);
    assert_eq!(first(&mut s, t0 + SECOND), 2, "its retry is in flight");
    assert_eq!(
        first(&mut s, t0 + 2 * SECOND),
        1,
        "the retry's bound passed"
    );
}

#[test]
fn backoff_doubles_on_each_failed_retry_and_caps_at_30_s() {
    let mut s = set(&[1, 2], Balance::Failover);
    let mut now = Instant::now();
    let mut seen = Vec::new();
    for _ in 0..8 {
        let told = fail(&mut s, 1, now);
        let retry_in = s.snapshot(now)[0].retry_in.unwrap();
        seen.push(retry_in.as_secs());
        // Only the first failure is a transition; the target stays down after.
        assert_eq!(told.is_some(), seen.len() == 1);
        now += retry_in;
    }
    assert_eq!(seen, [1, 2, 4, 8, 16, 30, 30, 30]);
    // A success resets it: the next failure skips the target for 1 s again.
    let picks = s.candidates(now);
    s.connected(&picks[0], now);
    fail(&mut s, 1, now);
    assert_eq!(s.snapshot(now)[0].retry_in, Some(SECOND));
}

#[test]
fn failures_of_connects_started_together_count_once() {
    let mut s = set(&[1, 2], Balance::Failover);
    let t0 = Instant::now();
    let burst: Vec<_> = (0..10).map(|_| s.candidates(t0)).collect();
    let told: Vec<_> = burst
        .iter()
        .filter_map(|picks| s.failed(&picks[0], &refused(), t0))
        .collect();
    assert_eq!(told.len(), 1, "one log line for the target going down");
    assert_eq!(s.snapshot(t0)[0].retry_in, Some(SECOND));
    assert_eq!(s.snapshot(t0)[0].connect_failures, 10);
}

#[test]
fn with_all_down_all_are_tried_in_order() {
    for balance in [
        Balance::Failover,
        Balance::RoundRobin,
        Balance::LeastConnections,
    ] {
        let mut s = set(&[1, 2, 3], balance);
        let t0 = Instant::now();
        for port in [2, 3, 1] {
            fail(&mut s, port, t0);
        }
        assert_eq!(ports(&s.candidates(t0)), [1, 2, 3], "{balance}");
        assert!(s.snapshot(t0).iter().all(|t| !t.up));
    }
}

#[test]
fn least_connections_picks_the_fewest_open() {
    let mut s = set(&[1, 2, 3], Balance::LeastConnections);
    let now = Instant::now();
    let all = s.candidates(now);
    let mut open = |i: usize, n: usize| (0..n).for_each(|_| drop(s.connected(&all[i], now)));
    open(0, 2);
    open(1, 1);
    open(2, 3);
    assert_eq!(ports(&s.candidates(now)), [2, 1, 3]);
    // Closing two on the first makes it the one with the fewest.
    s.closed(&all[0]);
    s.closed(&all[0]);
    assert_eq!(ports(&s.candidates(now)), [1, 2, 3]);
    assert_eq!(s.snapshot(now)[2].open, 3);
    // Ties go round, so idle targets share the first sessions.
    let mut s = set(&[1, 2, 3], Balance::LeastConnections);
    let firsts: Vec<_> = (0..3).map(|_| first(&mut s, now)).collect();
    assert_eq!(firsts, [1, 2, 3]);
}

#[test]
fn a_failed_check_holds_a_target_down_until_a_check_succeeds() {
    let interval = 10 * SECOND;
    let mut s = TargetSet::new(
        targets(&[1, 2]),
        settings(Balance::Failover, Some(interval)),
    );
    let t0 = Instant::now();
    let due = s.due_checks(t0, SECOND);
    assert_eq!(ports(&due), [1, 2]);
    assert!(s.due_checks(t0, SECOND).is_empty(), "one check at a time");
    let told = s.checked(&due[0], Err(Failure::Check("wrong key".into())), t0);
    assert_eq!(
        told.unwrap().to_string(),
        "target [127.0.0.1]:1 is down (health check failed: wrong key); skipped until a \
         health check succeeds"
    );
    s.checked(&due[1], Ok(()), t0);
    // A connect that succeeds does not lift a check's hold; no back-off ends it.
    let picks = s.candidates(t0 + 60 * SECOND);
    assert_eq!(ports(&picks), [2, 1]);
    s.connected(&picks[1], t0 + 60 * SECOND);
    assert_eq!(first(&mut s, t0 + 60 * SECOND), 2);
    // Not due again before the interval; then a good check brings it back.
    assert!(s.due_checks(t0 + interval / 2, SECOND).is_empty());
    assert_eq!(s.next_check(t0), Some(t0 + interval));
    let due = s.due_checks(t0 + interval, SECOND);
    let up = s.checked(&due[0], Ok(()), t0 + interval);
    assert_eq!(up.unwrap().change, Change::Up { down_for: interval });
    assert_eq!(first(&mut s, t0 + interval), 1);
}

#[test]
fn a_check_that_succeeds_ends_a_backoff() {
    let mut s = TargetSet::new(targets(&[1, 2]), settings(Balance::Failover, Some(SECOND)));
    let t0 = Instant::now();
    fail(&mut s, 1, t0);
    let due = s.due_checks(t0, SECOND);
    assert!(s.checked(&due[0], Ok(()), t0).is_some());
    assert_eq!(first(&mut s, t0), 1);
    // A check never reported is due again once its bound has passed.
    assert_eq!(ports(&s.due_checks(t0 + SECOND, SECOND)), [1, 2]);
    assert!(s.due_checks(t0 + 3 * SECOND / 2, SECOND).is_empty());
    assert_eq!(ports(&s.due_checks(t0 + 2 * SECOND, SECOND)), [1, 2]);
}

#[test]
fn a_reload_keeps_the_state_of_the_targets_it_keeps() {
    let mut s = TargetSet::new(
        targets(&[1, 2, 3]),
        settings(Balance::Failover, Some(SECOND)),
    );
    let t0 = Instant::now();
    let before = s.candidates(t0);
    s.connected(&before[1], t0);
    s.connected(&before[1], t0);
    fail(&mut s, 1, t0);
    let due = s.due_checks(t0, SECOND);
    s.checked(&due[2], Err(Failure::Check("wrong key".into())), t0);
    s.reload(
        targets(&[4, 2, 1, 3]),
        settings(Balance::RoundRobin, Some(SECOND)),
    );
    let now = t0 + SECOND / 2;
    let snap = s.snapshot(now);
    let seen: Vec<_> = snap
        .iter()
        .map(|t| (t.target.as_str(), t.up, t.open))
        .collect();
    assert_eq!(
        seen,
        [
            ("[127.0.0.1]:4", true, 0),
            ("[127.0.0.1]:2", true, 2),
            ("[127.0.0.1]:1", false, 0),
            ("[127.0.0.1]:3", false, 0),
        ]
    );
    assert_eq!(snap[2].retry_in, Some(SECOND / 2), "its back-off runs on");
    assert_eq!(snap[1].connections, 2);
    assert_eq!(snap[1].endpoints, ["127.0.0.1:2"]);
    // A re-resolution changes where a kept target's connections go, nothing else.
    s.resolved(
        &addr(2),
        targets(&[7, 8]).into_iter().flat_map(|t| t.1).collect(),
    );
    let picks = s.candidates(now);
    let kept = picks.iter().find(|p| port_of(p) == 2).unwrap();
    assert_eq!(kept.endpoints.len(), 2);
    assert_eq!(s.snapshot(now)[1].endpoints, ["127.0.0.1:7", "127.0.0.1:8"]);
    assert_eq!(s.snapshot(now)[1].open, 2);
    // Reports from connections made before the reload still land on their target.
    s.closed(&before[1]);
    assert_eq!(s.snapshot(now)[1].open, 1);
    // A reload without checks lifts their hold: nothing would lift it otherwise.
    s.reload(targets(&[3]), settings(Balance::Failover, None));
    assert!(s.snapshot(now)[0].up);
    // A target the reload removed is forgotten; a late report about it is ignored.
    assert!(s.connected(&before[0], now).is_none());
    assert_eq!(s.snapshot(now).len(), 1);
}

#[test]
fn a_single_target_is_always_tried_and_tells_nothing() {
    let mut s = set(&[1], Balance::Failover);
    let t0 = Instant::now();
    assert!(fail(&mut s, 1, t0).is_none());
    assert_eq!(ports(&s.candidates(t0)), [1]);
    let pick = s.candidates(t0).remove(0);
    assert!(s.connected(&pick, t0).is_none());
}

#[test]
fn our_own_failures_leave_the_target_up() {
    let mut s = set(&[1, 2], Balance::Failover);
    let t0 = Instant::now();
    let pick = s.candidates(t0).remove(0);
    let emfile = io::Error::from_raw_os_error(libc::EMFILE);
    assert!(s.failed(&pick, &emfile, t0).is_none());
    assert!(s.snapshot(t0)[0].up);
    assert_eq!(s.snapshot(t0)[0].connect_failures, 1);
    let timed_out = io::Error::from(io::ErrorKind::TimedOut);
    assert!(s.failed(&pick, &timed_out, t0).is_some());
    let snap = &s.snapshot(t0 + SECOND / 4)[0];
    let (what, ago) = snap.last_failure.clone().unwrap();
    assert_eq!((what.as_str(), ago), ("connect timed out", SECOND / 4));
}

#[test]
fn balance_names_and_the_connect_timeout() {
    for name in ["failover", "round-robin", "least-connections"] {
        assert_eq!(name.parse::<Balance>().unwrap().to_string(), name);
    }
    assert_eq!(
        "random".parse::<Balance>().unwrap_err().to_string(),
        "invalid balance 'random' (expected failover, round-robin or least-connections)"
    );
    let minute = 60 * SECOND;
    assert_eq!(connect_timeout(minute, None, true), 5 * SECOND);
    assert_eq!(connect_timeout(2 * SECOND, None, true), 2 * SECOND);
    assert_eq!(connect_timeout(minute, Some(SECOND), true), SECOND);
    assert_eq!(connect_timeout(SECOND, Some(9 * SECOND), true), SECOND);
    // One target: each attempt may take all of -o, as before.
    assert_eq!(connect_timeout(minute, None, false), minute);
    assert_eq!(connect_timeout(minute, Some(SECOND), false), SECOND);
}

/// A loopback port nothing listens on (bound, then closed).
fn refused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn dial(timeout: Duration) -> Dial {
    Dial {
        bind: None,
        stream: StreamOptions::default(),
        timeout,
    }
}

#[test]
fn a_connect_moves_past_a_refused_target_and_then_skips_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (dead, live) = (refused_port(), listener.local_addr().unwrap().port());
    let shared: Shared = Arc::new(Mutex::new(set(&[dead, live], Balance::Failover)));
    let told = Mutex::new(Vec::new());
    let changed = |t: Transition| told.lock().unwrap().push(t.to_string());
    block_on(async {
        let (stream, open) = connect(&shared, dial(10 * SECOND), changed).await.unwrap();
        assert_eq!(port_of(open.pick()), live);
        assert_eq!(stream.peer(), format!("127.0.0.1:{live}"));
        let again = connect(&shared, dial(10 * SECOND), |_| {}).await.unwrap();
        let snap = super::connect::lock(&shared).snapshot(Instant::now());
        assert_eq!((snap[0].connect_failures, snap[1].connections), (1, 2));
        assert_eq!(snap[1].open, 2);
        drop((again, open));
        let snap = super::connect::lock(&shared).snapshot(Instant::now());
        assert_eq!(snap[1].open, 0, "a dropped session is closed on its target");
    })
    .unwrap();
    assert_eq!(
        *told.lock().unwrap(),
        [format!(
            "target [127.0.0.1]:{dead} is down (connection refused); retrying it in 1 s"
        )]
    );
}

#[test]
fn a_connect_that_no_target_accepts_names_each() {
    let (a, b) = (refused_port(), refused_port());
    assert_eq!(
        connect_error(&[a, b]),
        format!(
            "cannot connect to target: [127.0.0.1]:{a}: Connection refused; \
             [127.0.0.1]:{b}: Connection refused"
        )
    );
}

/// One target that refuses reads as a pipe of one `-t` always has: its address and why.
#[test]
fn a_single_refused_target_reads_as_before() {
    let a = refused_port();
    assert_eq!(
        connect_error(&[a]),
        format!("cannot connect to target: 127.0.0.1:{a}: Connection refused")
    );
}

/// What a connect over targets at `ports`, none of which accepts, says.
fn connect_error(ports: &[u16]) -> String {
    let shared: Shared = Arc::new(Mutex::new(set(ports, Balance::Failover)));
    let e = block_on(connect(&shared, dial(10 * SECOND), |_| {}))
        .unwrap()
        .err()
        .unwrap();
    e.to_string()
}

/// Serves one handshake with `key` on a loopback listener, from a thread of its own;
/// returns the listener's port and the thread.
fn handshake_peer(key: &[u8]) -> (u16, std::thread::JoinHandle<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let key = Key::from_file_contents(key);
    let served = std::thread::spawn(move || {
        let (accepted, _) = listener.accept().unwrap();
        block_on(async {
            let t = SocketStream::new(accepted.into(), true, "client".into()).unwrap();
            let hs =
                crate::session::handshake::start(Role::Server, Mode::default(), &key, &[]).unwrap();
            crate::session::handshake::handshake(&Offload::default(), &t, hs, None)
                .await
                .is_ok()
        })
        .unwrap()
    });
    (port, served)
}

fn checker(check: Check) -> Checker {
    Checker {
        check,
        dial: dial(10 * SECOND),
        offload: Offload::new(),
    }
}

fn pick_of(port: u16) -> Pick {
    set(&[port], Balance::Failover)
        .candidates(Instant::now())
        .remove(0)
}

#[test]
fn a_connect_check_tells_a_refused_port_from_a_listening_one() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let live = listener.local_addr().unwrap().port();
    let c = checker(Check::Connect);
    let (dead, live) = block_on(async {
        (
            check_once(&c, &pick_of(refused_port())).await,
            check_once(&c, &pick_of(live)).await,
        )
    })
    .unwrap();
    assert_eq!(dead, Some(Err(Failure::Refused)));
    assert_eq!(live, Some(Ok(())));
}

#[test]
fn a_handshake_check_passes_with_our_key_and_fails_with_another() {
    let key = b"the pipe's key";
    let c = checker(Check::Handshake {
        key: Key::from_file_contents(key),
        mode: Mode::default(),
    });
    let (good, good_peer) = handshake_peer(key);
    assert_eq!(
        block_on(check_once(&c, &pick_of(good))).unwrap(),
        Some(Ok(()))
    );
    assert!(good_peer.join().unwrap());
    let (wrong, wrong_peer) = handshake_peer(b"another key");
    let outcome = block_on(check_once(&c, &pick_of(wrong))).unwrap();
    assert!(!wrong_peer.join().unwrap());
    assert!(
        matches!(outcome, Some(Err(Failure::Check(_)))),
        "{outcome:?}"
    );
}

#[test]
fn the_checker_marks_a_wrong_key_target_down_and_keeps_it_skipped() {
    let key = b"the pipe's key";
    let (wrong, wrong_peer) = handshake_peer(b"another key");
    let (good, good_peer) = handshake_peer(key);
    let shared: Shared = Arc::new(Mutex::new(TargetSet::new(
        targets(&[wrong, good]),
        settings(Balance::Failover, Some(60 * SECOND)),
    )));
    let c = checker(Check::Handshake {
        key: Key::from_file_contents(key),
        mode: Mode::default(),
    });
    let told = Mutex::new(Vec::new());
    block_on(async {
        let run = c.run(shared.clone(), |t| told.lock().unwrap().push(t));
        // Both checks are due at once; the run goes on sleeping after them.
        let both_checked = async {
            loop {
                tokio::task::yield_now().await;
                let snap = super::connect::lock(&shared).snapshot(Instant::now());
                if snap[0].last_failure.is_some() && good_peer.is_finished() {
                    return snap;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let snap = tokio::select! {
            () = run => panic!("the checker stopped"),
            snap = tokio::time::timeout(10 * SECOND, both_checked) => snap.unwrap(),
        };
        assert!(!snap[0].up && snap[1].up, "{snap:?}");
    })
    .unwrap();
    assert!(!wrong_peer.join().unwrap());
    assert!(good_peer.join().unwrap());
    let told = told.lock().unwrap();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(matches!(
        &told[0].change,
        Change::Down {
            why: Failure::Check(_),
            retry_in: None
        }
    ));
    let candidates = super::connect::lock(&shared).candidates(Instant::now() + 120 * SECOND);
    assert_eq!(ports(&candidates), [good, wrong]);
}

/// A loopback listener that never accepts and whose backlog is full, so that a connect
/// to it hangs (its SYN is dropped) until the connector gives up; kept with the
/// connections that filled it.
fn hung_listener() -> (u16, socket2::Socket, Vec<std::net::TcpStream>) {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    listener.listen(0).unwrap();
    let at = listener.local_addr().unwrap().as_socket().unwrap();
    let mut filling = Vec::new();
    for _ in 0..16 {
        match std::net::TcpStream::connect_timeout(&at, Duration::from_millis(200)) {
            Ok(s) => filling.push(s),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return (at.port(), listener, filling),
            Err(e) => panic!("filling the backlog: {e}"),
        }
    }
    panic!("the backlog of a listener that never accepts never filled");
}

#[test]
fn a_hung_target_costs_one_connect_timeout_then_is_skipped() {
    let (hung, _listener, _filling) = hung_listener();
    let live = TcpListener::bind("127.0.0.1:0").unwrap();
    let live_port = live.local_addr().unwrap().port();
    let each = Duration::from_millis(300);
    let shared: Shared = Arc::new(Mutex::new(TargetSet::new(
        targets(&[hung, live_port]),
        Settings {
            balance: Balance::Failover,
            connect_timeout: each,
            health_interval: None,
        },
    )));
    block_on(async {
        let started = Instant::now();
        let (_, first) = connect(&shared, dial(60 * SECOND), |_| {}).await.unwrap();
        let took = started.elapsed();
        assert_eq!(port_of(first.pick()), live_port);
        assert!(took >= each && took < 20 * each, "took {took:?}");
        let snap = super::connect::lock(&shared).snapshot(Instant::now());
        assert!(!snap[0].up, "{snap:?}");
        assert_eq!(
            snap[0].last_failure.as_ref().unwrap().0,
            "connect timed out"
        );
        // Skipped now: the next connection goes straight to the live target.
        let (_, next) = connect(&shared, dial(60 * SECOND), |_| {}).await.unwrap();
        assert_eq!(port_of(next.pick()), live_port);
        let snap = super::connect::lock(&shared).snapshot(Instant::now());
        assert_eq!(
            snap[0].connect_failures, 1,
            "not tried again during its back-off"
        );
    })
    .unwrap();
}

#[test]
fn the_connect_and_the_checker_run_on_spawned_tasks() {
    fn spawnable<T: Send + 'static>(_: &T) {}
    fn sendable<T: Send>(_: &T) {}
    let shared: Shared = Arc::new(Mutex::new(set(&[1], Balance::Failover)));
    let run = checker(Check::Connect).run(shared.clone(), |t| drop(t.to_string()));
    spawnable(&run);
    sendable(&connect(&shared, dial(SECOND), |t| drop(t.to_string())));
}
