//! Waiting without sleeping as synchronisation: every wait polls (every 10 ms unless
//! told otherwise) or blocks, always up to a deadline; a wait that panics at the
//! deadline says what it waited for. The deadlines tests share are here too.

use std::fs;
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a daemon may take to start accepting.
pub(crate) const READY_DEADLINE: Duration = Duration::from_secs(10);
/// Deadline for one data exchange (generous: our binary may run as a debug build).
pub(crate) const EXCHANGE_DEADLINE: Duration = Duration::from_secs(60);

/// How often a poll looks again: a test waits at most this long past the moment what
/// it waits for has happened.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Polls `check` every 10 ms until it returns a value, up to `deadline` (and once more
/// when the deadline has passed); `None` if it never did.
pub(crate) fn poll<T>(deadline: Duration, check: impl FnMut() -> Option<T>) -> Option<T> {
    poll_every(deadline, POLL_EVERY, check)
}

/// [`poll`], looking again every `every` (for a check that costs, or acts).
pub(crate) fn poll_every<T>(
    deadline: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        thread::sleep(every);
    }
}

/// Polls `cond` every 10 ms until it holds; panics naming `what` if it still does not
/// after `deadline`.
pub(crate) fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    if poll(deadline, || cond().then_some(())).is_none() {
        panic!("timed out after {deadline:?} waiting for {what}");
    }
}

/// Polls the file at `path` (a process's stderr, say) every 10 ms until it contains
/// `needle`, up to `deadline`; returns all of it, or an error quoting what it held at
/// the deadline.
pub(crate) fn wait_file_contains(
    path: &Path,
    needle: &str,
    deadline: Duration,
) -> Result<String, String> {
    let mut text = String::new();
    let found = poll(deadline, || {
        text = fs::read_to_string(path).unwrap_or_default();
        text.contains(needle).then_some(())
    });
    match found {
        Some(()) => Ok(text),
        None => Err(format!(
            "{} lacks {needle:?} after {deadline:?}: {text:?}",
            path.display()
        )),
    }
}

/// Waits for `child` up to `deadline`; kills it (and reaps it) when the deadline passes.
/// Returns `None` on timeout.
pub(crate) fn wait_deadline(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let status = poll(deadline, || {
        child
            .try_wait()
            .unwrap_or_else(|e| panic!("waiting for child: {e}"))
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// Joins a thread, giving up (and leaking it) after `deadline`.
pub(crate) fn join_deadline<T: Send + 'static>(h: JoinHandle<T>, deadline: Duration) -> Option<T> {
    poll(deadline, || h.is_finished().then_some(()))?;
    h.join().ok()
}
