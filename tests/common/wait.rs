//! Waiting without sleeping as synchronisation: every wait polls (every few
//! milliseconds) or blocks with a deadline, and says what it waited for when the
//! deadline passes.

use std::process::{Child, ExitStatus};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a daemon may take to start accepting.
pub const READY_DEADLINE: Duration = Duration::from_secs(10);
/// Deadline for one data exchange (generous: our binary may run as a debug build).
pub const EXCHANGE_DEADLINE: Duration = Duration::from_secs(60);

/// Waits for `child` up to `deadline`; kills it (and reaps it) when the deadline passes.
/// Returns `None` on timeout.
pub fn wait_deadline(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + deadline;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if Instant::now() >= end => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for child: {e}"),
        }
    }
}

/// Joins a thread, giving up (and leaking it) after `deadline`.
pub fn join_deadline<T: Send + 'static>(h: JoinHandle<T>, deadline: Duration) -> Option<T> {
    let end = Instant::now() + deadline;
    while !h.is_finished() {
        if Instant::now() >= end {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
    h.join().ok()
}
