//! The transports against real sockets on the event loop: every wait here must end, so
//! each test runs under a deadline and a hang fails instead of blocking the suite.

use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::time::Duration;

use sha2::{Digest, Sha256};
use socket2::{Domain, Socket, Type};

use crate::event_loop::block_on;
use crate::{Endpoint, Listener, SocketFile, SocketStream, StreamOptions, Transport, connect};

const DEADLINE: Duration = Duration::from_secs(20);

/// Runs `test` on a fresh event loop; fails if it takes longer than [`DEADLINE`].
fn within_deadline<T>(test: impl Future<Output = T>) -> T {
    block_on(async { tokio::time::timeout(DEADLINE, test).await })
        .expect("event loop")
        .expect("test hung")
}

/// A connected TCP pair through a listener on an ephemeral loopback port.
async fn tcp_pair() -> (SocketStream, SocketStream) {
    let listener = Listener::bind(&Endpoint::Tcp("127.0.0.1:0".parse().unwrap())).unwrap();
    let ep = listener.endpoint().clone();
    let (client, server) = tokio::join!(
        connect(&ep, None, StreamOptions::default(), None),
        listener.accept(StreamOptions::default()),
    );
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

/// The case an edge-triggered loop gets wrong: data and end of stream both arrive
/// before the first read, the read is short (which forgets the readiness), and no
/// further edge will come.
#[test]
fn end_of_stream_arriving_with_the_last_data_is_seen() {
    within_deadline(async {
        let (client, server) = tcp_pair().await;
        client.write_all(b"last words").await.unwrap();
        client.shutdown_write().await.unwrap();
        // Let both arrive before the first read.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(read_to_end(&server).await, b"last words");
    });
}

/// A peer that resets (SO_LINGER 0, then close) before our end of stream goes out:
/// the half-close succeeds (the kernel's ENOTCONN is no error here), and the read
/// reports the reset.
#[test]
fn half_close_after_the_peer_reset_is_no_error() {
    within_deadline(async {
        let (client, server) = tcp_pair().await;
        server.socket().set_linger(Some(Duration::ZERO)).unwrap();
        drop(server);
        let mut buf = [0u8; 16];
        let got = client.read(&mut buf).await;
        assert_eq!(
            got.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionReset)
        );
        client.shutdown_write().await.unwrap();
    });
}

#[test]
fn megabytes_both_ways_at_once_arrive_intact() {
    let data: Vec<u8> = (0..4 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
    let want = Sha256::digest(&data);
    within_deadline(async {
        for (a, b) in [tcp_pair().await, unix_pair()] {
            let ((), (), got_a, got_b) = tokio::join!(
                send_all(&a, &data),
                send_all(&b, &data),
                read_to_end(&a),
                read_to_end(&b),
            );
            assert_eq!(Sha256::digest(&got_a), want);
            assert_eq!(Sha256::digest(&got_b), want);
        }
    });
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

/// A socket outside any event loop is an error the caller sees, not a socket that
/// silently never becomes ready.
#[test]
fn a_socket_outside_the_event_loop_fails_to_register() {
    let (a, _b) = Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
    let outside = std::panic::catch_unwind(|| SocketStream::new(a, false, "a".into()));
    assert!(outside.is_err(), "registered without a reactor");
}

/// A listener whose descriptor lives on elsewhere (as systemd keeps its copy of an
/// activated socket) is deregistered when dropped: connections queued on it afterwards
/// do not wake a socket registered after it, which a reused registration would.
#[test]
fn a_dropped_listener_whose_socket_lives_on_wakes_nothing() {
    within_deadline(async {
        let listener = Listener::bind(&Endpoint::Tcp("127.0.0.1:0".parse().unwrap())).unwrap();
        let ep = listener.endpoint().clone();
        // Another owner of the same listening socket, like systemd's.
        // SAFETY: dup returns a new descriptor that nothing else owns, or -1.
        let kept = unsafe { libc::dup(listener.socket().as_raw_fd()) };
        assert!(kept >= 0);
        drop(listener);
        let (quiet, other) = unix_pair();
        // A connection queued on the still-open listening socket.
        let queued = std::net::TcpStream::connect(ep.to_string()).unwrap();
        let woke = tokio::time::timeout(
            Duration::from_millis(200),
            std::future::poll_fn(|cx| quiet.poll_readable(cx)),
        )
        .await;
        assert!(woke.is_err(), "an idle socket became readable");
        other.write_all(b"x").await.unwrap();
        std::future::poll_fn(|cx| quiet.poll_readable(cx))
            .await
            .unwrap();
        drop(queued);
        // SAFETY: `kept` is ours alone, closed once.
        unsafe { libc::close(kept) };
    });
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
                tokio::join!(connect(&ep, None, wanted, None), listener.accept(wanted));
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

/// The tokio traits (the metrics endpoint's HTTP server reads and writes through them)
/// move megabytes intact both ways, half-close included, and a UNIX peer's user is the
/// kernel's word for it.
#[test]
fn tokio_reads_and_writes_arrive_intact() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let data: Vec<u8> = (0..2 << 20).map(|i: u32| (i * 13 % 251) as u8).collect();
    let want = Sha256::digest(&data);
    within_deadline(async {
        for (mut a, mut b) in [tcp_pair().await, unix_pair()] {
            let send = async {
                a.write_all(&data).await.unwrap();
                a.shutdown().await.unwrap();
                let mut back = Vec::new();
                a.read_to_end(&mut back).await.unwrap();
                back
            };
            let echo = async {
                let mut got = Vec::new();
                b.read_to_end(&mut got).await.unwrap();
                b.write_all(&got).await.unwrap();
                b.shutdown().await.unwrap();
                got
            };
            let (back, got) = tokio::join!(send, echo);
            assert_eq!(Sha256::digest(&got), want);
            assert_eq!(Sha256::digest(&back), want);
        }
        let (a, _b) = unix_pair();
        // SAFETY: geteuid only reads the process's effective user id.
        assert_eq!(a.peer_uid().unwrap(), unsafe { libc::geteuid() });
    });
}
