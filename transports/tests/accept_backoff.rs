//! A listener out of descriptors: `accept_retrying` says so once, keeps trying, says
//! when it works again, and serves the client that waited. Alone in its own test binary
//! because it lowers the process's descriptor limit, which any test running beside it
//! would feel.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::time::Duration;

use spiped_transports::event_loop::block_on;
use spiped_transports::{ACCEPT_BACKOFF, AcceptTrouble, Endpoint, Listener, StreamOptions};

/// The process's descriptor limit (soft, hard).
fn nofile() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` to the live, writable struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim
}

fn set_nofile(lim: libc::rlimit) {
    // SAFETY: setrlimit only reads the live struct it is given.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

#[test]
fn out_of_descriptors_one_warning_each_way_then_served() {
    let saved = nofile();
    let heard = Mutex::new(Vec::new());
    let served = block_on(async {
        let listener = Listener::bind(&Endpoint::Tcp("127.0.0.1:0".parse().unwrap())).unwrap();
        let mut client = std::net::TcpStream::connect(listener.endpoint().to_string()).unwrap();
        client.write_all(b"waited").unwrap();
        // The lowest free descriptor becomes the limit: the next accept finds none.
        let probe = std::fs::File::open("/dev/null").unwrap();
        let lowest = probe.as_raw_fd() as libc::rlim_t;
        drop(probe);
        set_nofile(libc::rlimit {
            rlim_cur: lowest,
            ..saved
        });
        let (failing_tx, mut failing) = tokio::sync::mpsc::unbounded_channel();
        let accepting = listener.accept_retrying(StreamOptions::default(), |t| {
            heard.lock().unwrap().push(match t {
                AcceptTrouble::Failing(e) => {
                    failing_tx.send(()).unwrap();
                    format!("failing {}", e.raw_os_error() == Some(libc::EMFILE))
                }
                AcceptTrouble::Recovered(n) => format!("recovered after more than 2: {}", n > 2),
            });
        });
        let relief = async {
            failing.recv().await.unwrap();
            // Time for a few retries, none of which may be reported.
            tokio::time::sleep(ACCEPT_BACKOFF * 4).await;
            set_nofile(saved);
        };
        let deadline = Duration::from_secs(20);
        let (server, ()) =
            tokio::time::timeout(deadline, async { tokio::join!(accepting, relief) })
                .await
                .expect("accept_retrying never served the client");
        let mut buf = [0u8; 6];
        let n = spiped_transports::Transport::read(&server, &mut buf)
            .await
            .unwrap();
        drop(client);
        buf[..n].to_vec()
    });
    set_nofile(saved);
    assert_eq!(served.unwrap(), b"waited");
    assert_eq!(
        *heard.lock().unwrap(),
        ["failing true", "recovered after more than 2: true"]
    );
}
