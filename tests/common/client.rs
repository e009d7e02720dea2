//! The client side of a test: send bytes into a pipe and read the answer at once, with
//! a deadline ([`exchange`]), and the round trips most tests assert (bytes in through
//! `spipe` or a `spiped -e`, the target got them, the answer came back whole).

use std::io::Write;
use std::net::Shutdown;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::{Addr, EXCHANGE_DEADLINE, Impl, Stream, Target, run_with_stdin, sha, spipe_cmd};

/// What a client saw over one connection.
#[derive(Debug)]
pub(crate) struct Exchange {
    /// Everything read until EOF or the read error.
    pub received: Vec<u8>,
    /// Error from connect, write or shutdown (a dropped connection may cause one).
    pub write_error: Option<String>,
    /// Error while reading (e.g. connection reset); `None` means a clean EOF.
    pub read_error: Option<String>,
}

impl Exchange {
    /// The peer dropped us: nothing received, and the read ended (EOF or error).
    pub(crate) fn was_dropped(&self) -> bool {
        self.received.is_empty()
    }
}

/// Connects to `addr`, sends `data` (then half-closes) in a writer thread while the
/// reader reads until EOF, both at once. Everything is bounded by `deadline`: on expiry
/// the socket is shut down and this returns an error.
pub(crate) fn exchange(addr: &Addr, data: &[u8], deadline: Duration) -> Result<Exchange, String> {
    let conn = addr
        .connect()
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    exchange_on(conn, data, deadline)
}

/// Sends `data` through the pipe at `addr` (an echo target behind it) and asserts that
/// exactly `data` comes back; returns the exchange for further checks.
pub(crate) fn assert_echo(addr: &Addr, data: &[u8]) -> Exchange {
    let ex = exchange(addr, data, EXCHANGE_DEADLINE).unwrap();
    assert_eq!(sha(&ex.received), sha(data), "echo through {addr}: {ex:?}");
    ex
}

/// Like [`exchange`] on an already connected stream.
pub(crate) fn exchange_on(
    conn: Stream,
    data: &[u8],
    deadline: Duration,
) -> Result<Exchange, String> {
    let mut w = conn.try_clone().map_err(|e| e.to_string())?;
    let mut r = conn.try_clone().map_err(|e| e.to_string())?;
    let data = data.to_vec();
    let (tx, rx) = mpsc::channel();
    let txw = tx.clone();
    thread::spawn(move || {
        let mut res = w.write_all(&data);
        if res.is_ok() {
            res = w.shutdown(Shutdown::Write);
        }
        let _ = txw.send(Err(res.err().map(|e| e.to_string())));
    });
    thread::spawn(move || {
        let _ = tx.send(Ok(r.read_to_eof()));
    });
    let end = Instant::now() + deadline;
    let mut write_result = None;
    let mut read_result = None;
    while write_result.is_none() || read_result.is_none() {
        let now = Instant::now();
        let msg = if now < end {
            rx.recv_timeout(end - now).ok()
        } else {
            None
        };
        match msg {
            Some(Ok(r)) => read_result = Some(r),
            Some(Err(w)) => write_result = Some(w),
            None => {
                let _ = conn.shutdown(Shutdown::Both);
                return Err(format!(
                    "exchange did not finish within {deadline:?} (sent all: {}, got EOF: {})",
                    write_result.is_some(),
                    read_result.is_some()
                ));
            }
        }
    }
    let (received, read_error) = read_result.unwrap();
    Ok(Exchange {
        received,
        write_error: write_result.unwrap(),
        read_error: read_error.map(|e| e.to_string()),
    })
}

/// Runs `spipe ARGS` (of `which`) with `up` on stdin and asserts it exits 0 having
/// printed exactly `down`, and that `target` finished a connection that received `up`.
pub(crate) fn spipe_round_trip(
    which: Impl,
    case: &str,
    args: &[&str],
    up: &[u8],
    down: &[u8],
    target: &Target,
) {
    let mut cmd = spipe_cmd(which);
    cmd.args(args);
    let out = run_with_stdin(cmd, up, EXCHANGE_DEADLINE);
    assert_eq!(out.code(), Some(0), "{case}: stderr {}", out.stderr);
    assert_eq!(
        (out.stdout.len(), sha(&out.stdout)),
        (down.len(), sha(down)),
        "{case}: stdout"
    );
    target.assert_received(case, up);
}

/// Sends `up` into a `spiped -e` listening on `source` and asserts the answer is exactly
/// `down` and that `target` finished a connection that received `up`.
pub(crate) fn e_round_trip(case: &str, source: &Addr, up: &[u8], down: &[u8], target: &Target) {
    let x = exchange(source, up, EXCHANGE_DEADLINE).unwrap_or_else(|err| panic!("{case}: {err}"));
    assert_eq!(x.write_error, None, "{case}: client write failed");
    assert_eq!(x.read_error, None, "{case}: client read failed");
    assert_eq!(
        (x.received.len(), sha(&x.received)),
        (down.len(), sha(down)),
        "{case}: client received wrong bytes"
    );
    target.assert_received(case, up);
}
