//! The event loop against real sockets: every wait here must end, so each test runs
//! under a deadline timer and a hang fails instead of blocking the suite.

use std::io::IoSlice;
use std::time::{Duration, Instant};

use futures_lite::future;
use sha2::{Digest, Sha256};
use socket2::{Domain, Socket, Type};

use super::{Timer, block_on};
use crate::{Endpoint, Listener, SocketFile, SocketStream, StreamOptions, Transport, connect};

const DEADLINE: Duration = Duration::from_secs(20);

/// Runs `test` on the event loop; fails if it takes longer than [`DEADLINE`].
fn within_deadline<T>(test: impl Future<Output = T>) -> T {
    let outcome = block_on(future::or(async { Some(test.await) }, async {
        Timer::after(DEADLINE).await;
        None
    }));
    outcome.expect("event loop").expect("test hung")
}

/// A connected TCP pair through a listener on an ephemeral loopback port.
async fn tcp_pair() -> (SocketStream, SocketStream) {
    let listener = Listener::bind(&Endpoint::Tcp("127.0.0.1:0".parse().unwrap())).unwrap();
    let ep = listener.endpoint().clone();
    let (client, server) = future::zip(
        connect(&ep, None, StreamOptions::default(), None),
        listener.accept(StreamOptions::default()),
    )
    .await;
    (client.unwrap(), server.unwrap())
}

fn unix_pair() -> (SocketStream, SocketStream) {
    let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
    (
        SocketStream::new(a, false, "a".into()).unwrap(),
        SocketStream::new(b, false, "b".into()).unwrap(),
    )
}

async fn read_to_end(t: &dyn Transport) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match t.read(&mut buf).await.unwrap() {
            0 => return all,
            n => all.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn timer_fires_after_its_duration_not_before() {
    let start = Instant::now();
    within_deadline(Timer::after(Duration::from_millis(30)));
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[test]
fn a_dropped_timer_is_forgotten() {
    within_deadline(async {
        // The shorter timer wins; the longer one is dropped by `or` and must not keep
        // anything alive or fire into a stale waker.
        future::or(
            Timer::after(Duration::from_millis(5)),
            Timer::after(DEADLINE),
        )
        .await;
        Timer::after(Duration::from_millis(5)).await;
    });
}

#[test]
fn a_wake_up_from_another_thread_rouses_the_sleeping_loop() {
    let got = within_deadline(blocking::unblock(|| {
        std::thread::sleep(Duration::from_millis(20));
        42
    }));
    assert_eq!(got, 42);
}

/// The case an edge-triggered loop gets wrong: data and end of stream both arrive
/// before the first read, the read is short, and no further edge will come.
#[test]
fn end_of_stream_arriving_with_the_last_data_is_seen() {
    within_deadline(async {
        let (client, server) = tcp_pair().await;
        client.write_all(b"last words").await.unwrap();
        client.shutdown_write().await.unwrap();
        // Let both arrive before the first read.
        Timer::after(Duration::from_millis(20)).await;
        assert_eq!(read_to_end(&server).await, b"last words");
    });
}

#[test]
fn megabytes_both_ways_at_once_arrive_intact() {
    let data: Vec<u8> = (0..4 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
    let want = Sha256::digest(&data);
    for (a, b) in [within_deadline(tcp_pair()), unix_pair()] {
        within_deadline(async {
            let ((_, _), (got_a, got_b)) = future::zip(
                future::zip(send_all(&a, &data), send_all(&b, &data)),
                future::zip(read_to_end(&a), read_to_end(&b)),
            )
            .await;
            assert_eq!(Sha256::digest(&got_a), want);
            assert_eq!(Sha256::digest(&got_b), want);
        });
    }
}

/// Sends `data` in vectored writes of two halves per chunk, then end of stream.
async fn send_all(t: &SocketStream, data: &[u8]) {
    for chunk in data.chunks(100_000) {
        let halves = chunk.split_at(chunk.len() / 2);
        let mut n = (t
            .write_vectored(&[IoSlice::new(halves.0), IoSlice::new(halves.1)])
            .await)
            .unwrap();
        while n < chunk.len() {
            n += t
                .write_vectored(&[IoSlice::new(&chunk[n..])])
                .await
                .unwrap();
        }
    }
    t.shutdown_write().await.unwrap();
}

#[test]
fn a_refused_connect_fails_instead_of_waiting() {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    // Bound but not listening: connecting is refused.
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let r = within_deadline(connect(
        &Endpoint::Tcp(addr),
        None,
        StreamOptions::default(),
        None,
    ));
    assert_eq!(
        r.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
}

#[test]
fn a_socket_made_on_one_thread_works_on_that_thread_loop_again() {
    // Two block_on calls in a row on one thread share its reactor.
    let (a, b) = unix_pair();
    within_deadline(a.write_all(b"x")).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(within_deadline(b.read(&mut buf)).unwrap(), 1);
}

#[test]
fn executor_runs_tasks_woken_from_other_threads_and_cancels_dropped_ones() {
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let ex = super::Executor::new();
    // Tasks that finish on wake-ups from the blocking pool, one after another.
    let tasks: Vec<_> = (0..8u64)
        .map(|i| ex.spawn(blocking::unblock(move || i * i)))
        .collect();
    // A task whose handle is dropped never runs; its future is dropped.
    let ran = Rc::new(AtomicUsize::new(0));
    let r = ran.clone();
    drop(ex.spawn(async move {
        r.fetch_add(1, Ordering::SeqCst);
    }));
    // A detached task that keeps yielding must not starve the others.
    let spins = Arc::new(AtomicUsize::new(0));
    let s = spins.clone();
    ex.spawn(async move {
        loop {
            s.fetch_add(1, Ordering::SeqCst);
            future::yield_now().await;
        }
    })
    .detach();
    let sum = within_deadline(ex.run(async {
        let mut sum = 0;
        for t in tasks {
            sum += t.await;
        }
        // A timer still fires while the spinning task runs.
        Timer::after(Duration::from_millis(20)).await;
        sum
    }));
    assert_eq!(sum, (0..8u64).map(|i| i * i).sum::<u64>());
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert!(spins.load(Ordering::SeqCst) > 0);
}

#[test]
fn tcp_connections_get_nodelay_and_the_keepalive_asked_for() {
    let on = StreamOptions { keepalive: true };
    let off = StreamOptions { keepalive: false };
    within_deadline(async {
        // Accepted connections inherit the listener's options, or get their own when
        // accepted with others; connecting ones always get their own.
        for (listening, wanted) in [(on, on), (off, off), (on, off), (off, on)] {
            let ep = Endpoint::Tcp("127.0.0.1:0".parse().unwrap());
            let listener = Listener::bind_with(&ep, SocketFile::default(), listening).unwrap();
            let ep = listener.endpoint().clone();
            let (client, server) =
                future::zip(connect(&ep, None, wanted, None), listener.accept(wanted)).await;
            for s in [client.unwrap(), server.unwrap()] {
                let socket = s.socket();
                assert!(socket.tcp_nodelay().unwrap(), "{listening:?} {wanted:?}");
                assert_eq!(
                    socket.keepalive().unwrap(),
                    wanted.keepalive,
                    "{listening:?}"
                );
            }
        }
    });
}
