//! One target's health: what made it fail, how long it is skipped (the back-off), and
//! whether an active check holds it down.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

/// How long a target is skipped after its first failed connect.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest back-off: each failed retry doubles it up to this.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a target could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Nothing listens there (TCP refused, no UNIX socket, or reset while connecting).
    Refused,
    /// No route to the host or its network.
    Unreachable,
    /// The connect did not finish within `connect-timeout`.
    TimedOut,
    /// Any other reason the target's end gave, as the system names it.
    Other(String),
    /// An active health check reached the target but failed after that (for `-e`: the
    /// handshake, so the far end does not hold our key or is not spiped).
    Check(String),
}

impl Failure {
    /// The failure a connect error means for the target; `None` when the fault is ours
    /// (out of descriptors, memory or local ports), which says nothing of the target's
    /// health and must not mark it down.
    pub(crate) fn of_connect(e: &io::Error) -> Option<Failure> {
        let ours = [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EADDRINUSE,
            libc::EADDRNOTAVAIL,
        ];
        if e.raw_os_error().is_some_and(|code| ours.contains(&code)) {
            return None;
        }
        Some(match e.kind() {
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::NotFound
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted => Failure::Refused,
            io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::NetworkDown => Failure::Unreachable,
            io::ErrorKind::TimedOut => Failure::TimedOut,
            _ => Failure::Other(crate::errors::describe(e)),
        })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused => f.write_str("connection refused"),
            Failure::Unreachable => f.write_str("unreachable"),
            Failure::TimedOut => f.write_str("connect timed out"),
            Failure::Other(why) => f.write_str(why),
            Failure::Check(why) => write!(f, "health check failed: {why}"),
        }
    }
}

/// A target's health. Down while a connect failure is not yet answered by a success,
/// or while an active check has failed and none has succeeded since; skipped while its
/// back-off runs or its check has failed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Health {
    /// Set while down from a failed connect: when the target may be tried again.
    retry_at: Option<Instant>,
    /// The back-off that set `retry_at`: the next failed retry doubles it.
    backoff: Duration,
    /// An active check failed and none has succeeded since: only a check brings the
    /// target back, since a connect that succeeds proves nothing of the key.
    check_failed: bool,
    /// Since when the target is down.
    down_since: Option<Instant>,
    /// The last failure and when it happened.
    pub(crate) last_failure: Option<(Failure, Instant)>,
    /// Until when one connection's retry of this down target is in flight: others skip
    /// it meanwhile, so that a target still dead costs one connection a retry, not all.
    /// A time rather than a flag, so that an attempt never reported frees it anyway.
    trial_until: Option<Instant>,
}

impl Health {
    /// Whether the target counts as up (for metrics and transitions).
    pub(crate) fn is_up(&self) -> bool {
        self.retry_at.is_none() && !self.check_failed
    }

    /// Whether a new connection may try the target now, before any that is not.
    pub(crate) fn eligible(&self, now: Instant) -> bool {
        !self.check_failed
            && self.retry_at.is_none_or(|t| now >= t)
            && self.trial_until.is_none_or(|t| now >= t)
    }

    /// When a down target may be tried again; `None` when up or held down by a check.
    pub(crate) fn retry_in(&self, now: Instant) -> Option<Duration> {
        match self.check_failed {
            true => None,
            false => self.retry_at.map(|t| t.saturating_duration_since(now)),
        }
    }

    /// A connection is about to try this down target: others skip it for `hold`.
    pub(crate) fn trying(&mut self, now: Instant, hold: Duration) {
        if !self.is_up() {
            self.trial_until = Some(now + hold);
        }
    }

    /// A connect failed (or, with `check`, a health check did). Returns whether the
    /// target went down with it.
    pub(crate) fn failed(&mut self, why: Failure, check: bool, now: Instant) -> bool {
        let was_up = self.is_up();
        self.last_failure = Some((why, now));
        self.trial_until = None;
        if check {
            self.check_failed = true;
        } else {
            // Failures of connects that started together (a burst against a target just
            // gone) count once: the back-off doubles only when a retry made after it
            // ended fails.
            match self.retry_at {
                Some(t) if now < t => {}
                Some(_) => {
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    self.retry_at = Some(now + self.backoff);
                }
                None => {
                    self.backoff = FIRST_BACKOFF;
                    self.retry_at = Some(now + FIRST_BACKOFF);
                }
            }
        }
        if was_up {
            self.down_since = Some(now);
        }
        was_up
    }

    /// A connect succeeded (or, with `check`, a health check did; that also ends a
    /// check's hold). Returns how long the target was down if it came up with it.
    pub(crate) fn succeeded(&mut self, check: bool, now: Instant) -> Option<Duration> {
        let was_up = self.is_up();
        self.retry_at = None;
        self.backoff = Duration::ZERO;
        self.trial_until = None;
        self.check_failed &= !check;
        match !was_up && self.is_up() {
            true => Some(
                self.down_since
                    .take()
                    .map_or(Duration::ZERO, |t| now.saturating_duration_since(t)),
            ),
            false => None,
        }
    }

    /// Active checks stopped (a reload removed `health-interval`): nothing would ever
    /// lift a check's hold.
    pub(crate) fn unchecked(&mut self) {
        self.check_failed = false;
        if self.is_up() {
            self.down_since = None;
        }
    }
}
