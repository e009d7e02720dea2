//! What the daemon says about each connection: with `--log-connections` one line when
//! it is established and one when it ends; always a warning when one fails, rate-limited
//! so that a flood of bad clients cannot flood the log.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::log;
use crate::targets::{Change, Transition};
use spiped_proto::handshake::Exchange;

/// Failure warnings printed back to back before rate limiting starts.
const BURST: u32 = 20;
/// Under a flood, one failure warning per this interval gets through, telling how many
/// were left out since the last one.
const REFILL: Duration = Duration::from_secs(1);

/// Numbers connections in the log, so a close line can be matched to its open line.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The failure-warning budget shared by all connections of the process.
static LIMITER: Mutex<Limiter> = Mutex::new(Limiter {
    tokens: BURST,
    refilled: None,
    suppressed: 0,
});

/// A token bucket: [`BURST`] tokens, one more every [`REFILL`].
struct Limiter {
    tokens: u32,
    /// When a token was last added; `None` until the first warning.
    refilled: Option<Instant>,
    /// Warnings dropped since the last one printed.
    suppressed: u64,
}

impl Limiter {
    /// Whether a warning may be printed now; if so, how many were dropped before it.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        let last = *self.refilled.get_or_insert(now);
        let due = now.saturating_duration_since(last).as_nanos() / REFILL.as_nanos();
        if due > 0 {
            self.tokens = BURST.min(self.tokens.saturating_add(due.try_into().unwrap_or(BURST)));
            self.refilled = Some(now);
        }
        if self.tokens == 0 {
            self.suppressed += 1;
            return None;
        }
        self.tokens -= 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Prints a connection-failure warning unless the rate limit is exhausted.
fn warn_limited(msg: &str) {
    let admitted = match LIMITER.lock() {
        Ok(mut l) => l.admit(Instant::now()),
        // A panic elsewhere while holding the lock: warn rather than go silent.
        Err(_) => Some(0),
    };
    match admitted {
        None => {}
        Some(0) => log::warn(msg),
        Some(n) => log::warn(&format!(
            "{msg} ({n} similar messages suppressed before this one)"
        )),
    }
}

/// One connection's log state, from accept to close.
pub(crate) struct ConnLog {
    id: u64,
    peer: String,
    start: Instant,
    /// `--log-connections`.
    verbose: bool,
    /// Whether the daemon has more than one key, so lines name the one used.
    rotating: bool,
    /// The target connected to, once known.
    target: Option<String>,
    /// The handshake's outcome, once established.
    agreed: Option<(Exchange, usize)>,
}

impl ConnLog {
    /// Starts the record of a connection accepted from `peer` now.
    pub(crate) fn accepted(peer: String, verbose: bool, rotating: bool) -> ConnLog {
        ConnLog {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            peer,
            start: Instant::now(),
            verbose,
            rotating,
            target: None,
            agreed: None,
        }
    }

    /// The number the connection's lines carry (`connection #N`).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Records that the connection is established: connected to `target`, handshake
    /// done with `exchange` using key number `key_index`. Logs the open line when
    /// verbose.
    pub(crate) fn established(&mut self, target: String, exchange: Exchange, key_index: usize) {
        self.target = Some(target);
        self.agreed = Some((exchange, key_index));
        if self.verbose {
            log::info(&format!("{}: open, {}", self.who(), self.how()));
        }
    }

    /// `connection #N from PEER to TARGET`.
    fn who(&self) -> String {
        match &self.target {
            Some(t) => format!("connection #{} from {} to {t}", self.id, self.peer),
            None => format!("connection #{} from {}", self.id, self.peer),
        }
    }

    /// `handshake MODE[, key K]`; key numbers count from 1, in `-k` order.
    fn how(&self) -> String {
        match self.agreed {
            None => "no handshake".to_owned(),
            Some((exchange, _)) if !self.rotating => format!("handshake {exchange}"),
            Some((exchange, k)) => format!("handshake {exchange}, key {}", k + 1),
        }
    }

    /// Logs the end of the connection: `from_peer`/`to_peer` plaintext bytes moved, and
    /// `outcome` (an error is why it ended). A failure is always warned about
    /// (rate-limited); with `--log-connections` every connection gets a close line.
    pub(crate) fn closed(
        self,
        from_peer: u64,
        to_peer: u64,
        outcome: Result<(), &dyn std::fmt::Display>,
    ) {
        let elapsed = self.start.elapsed().as_secs_f64();
        match (self.verbose, outcome) {
            (true, Ok(())) => log::info(&format!(
                "{}: closed, {}, {from_peer} bytes from peer, {to_peer} bytes to peer, \
                 {elapsed:.3} s, ended: both directions finished",
                self.who(),
                self.how()
            )),
            (true, Err(e)) => warn_limited(&format!(
                "{}: closed, {}, {from_peer} bytes from peer, {to_peer} bytes to peer, \
                 {elapsed:.3} s, ended: {e}",
                self.who(),
                self.how()
            )),
            (false, Ok(())) => {}
            (false, Err(e)) => warn_limited(&format!("connection from {}: {e}", self.peer)),
        }
    }
}

/// Logs a target of pipe `pipe` going down (a warning) or coming back up: one line.
pub(crate) fn target_changed(pipe: &str, t: &Transition) {
    let line = format!("pipe {pipe}: {t}");
    match t.change {
        Change::Down { .. } => log::warn(&line),
        Change::Up { .. } => log::info(&line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_allows_a_burst_then_one_per_interval() {
        let t0 = Instant::now();
        let mut l = Limiter {
            tokens: BURST,
            refilled: None,
            suppressed: 0,
        };
        for _ in 0..BURST {
            assert_eq!(l.admit(t0), Some(0));
        }
        for _ in 0..50 {
            assert_eq!(l.admit(t0 + REFILL / 2), None);
        }
        // One interval later one more gets through, counting those left out.
        assert_eq!(l.admit(t0 + REFILL), Some(50));
        assert_eq!(l.admit(t0 + REFILL), None);
        // A long quiet spell refills the whole burst, no more.
        let later = t0 + REFILL * 1000;
        for _ in 0..BURST {
            assert!(l.admit(later).is_some());
        }
        assert_eq!(l.admit(later), None);
    }
}
