//! A pipe's targets as a state machine over plain values: which to try for a new
//! connection, what each attempt and session did to their health and counts, and what
//! they look like from outside. The caller passes the time in; nothing here does I/O.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spiped_transports::{Address, Endpoint};

use super::health::{Failure, Health};
use super::settings::{Balance, Settings};

/// One configured target: its address as written (what its state is kept by), the
/// endpoints it resolves to, its health and its counts.
struct Target {
    address: Arc<Address>,
    endpoints: Arc<Vec<Endpoint>>,
    health: Health,
    /// Connects that succeeded.
    connections: u64,
    /// Connects that failed (checks not counted).
    connect_failures: u64,
    /// Sessions connected to it and not yet closed.
    open: u64,
    /// When an active check is next due, and until when one is in flight.
    next_check: Option<Instant>,
    checking_until: Option<Instant>,
}

impl Target {
    fn new(address: Address, endpoints: Vec<Endpoint>) -> Target {
        Target {
            address: Arc::new(address),
            endpoints: Arc::new(endpoints),
            health: Health::default(),
            connections: 0,
            connect_failures: 0,
            open: 0,
            next_check: None,
            checking_until: None,
        }
    }
}

/// A target chosen for an attempt (a connect, or an active check): the endpoints to try,
/// in order, and what to report the outcome against. Stays valid across a reload: a
/// report for a target the reload removed is ignored.
#[derive(Clone, Debug)]
pub(crate) struct Pick {
    index: usize,
    address: Arc<Address>,
    /// The endpoints the target's address resolves to now.
    pub endpoints: Arc<Vec<Endpoint>>,
}

impl Pick {
    /// The target's address as configured.
    pub(crate) fn address(&self) -> &Address {
        &self.address
    }
}

/// A target going down or coming back up, for the driver's one log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Transition {
    /// The target's address as configured.
    pub target: Arc<Address>,
    /// What happened to it.
    pub change: Change,
}

/// Which way a target's health changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// It failed: skipped for `retry_in`, or, when `None`, until a check succeeds.
    Down {
        /// Why.
        why: Failure,
        /// How long new connections skip it.
        retry_in: Option<Duration>,
    },
    /// It answered again after being down this long.
    Up {
        /// How long it was down.
        down_for: Duration,
    },
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.change {
            Change::Down {
                why,
                retry_in: Some(d),
            } => write!(
                f,
                "target {} is down ({why}); retrying it in {} s",
                self.target,
                d.as_secs_f64()
            ),
            Change::Down {
                why,
                retry_in: None,
            } => write!(
                f,
                "target {} is down ({why}); skipped until a health check succeeds",
                self.target
            ),
            Change::Up { down_for } => write!(
                f,
                "target {} is up again after {:.1} s down",
                self.target,
                down_for.as_secs_f64()
            ),
        }
    }
}

/// One target as seen from outside (metrics, `/status`), at the time asked.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TargetSnapshot {
    /// The address as configured.
    pub target: String,
    /// The endpoints it resolves to now, in the order they are tried.
    pub endpoints: Vec<String>,
    /// Whether it is up.
    pub up: bool,
    /// When a down target is tried again; `None` when up or held down by a check.
    pub retry_in: Option<Duration>,
    /// Connects that succeeded.
    pub connections: u64,
    /// Connects that failed.
    pub connect_failures: u64,
    /// Sessions open to it.
    pub open: u64,
    /// The last failure, and how long ago it was.
    pub last_failure: Option<(String, Duration)>,
}

/// A pipe's targets (or, with routing by key, one key's), in the order given.
pub(crate) struct TargetSet {
    targets: Vec<Target>,
    settings: Settings,
    /// Where round-robin starts next (and least-connections breaks ties).
    cursor: usize,
}

impl TargetSet {
    /// The targets in the order given, each its configured address with the endpoints
    /// it resolves to now; all up.
    pub(crate) fn new(targets: Vec<(Address, Vec<Endpoint>)>, settings: Settings) -> TargetSet {
        TargetSet {
            targets: targets
                .into_iter()
                .map(|(a, e)| Target::new(a, e))
                .collect(),
            settings,
            cursor: 0,
        }
    }

    /// A reload: the set becomes `targets` with `settings`; a target whose address it
    /// keeps keeps its health, counts and open sessions (with the endpoints given now).
    pub(crate) fn reload(&mut self, targets: Vec<(Address, Vec<Endpoint>)>, settings: Settings) {
        let mut old = std::mem::take(&mut self.targets);
        self.targets = targets
            .into_iter()
            .map(
                |(address, endpoints)| match old.iter().position(|t| *t.address == address) {
                    Some(i) => Target {
                        endpoints: Arc::new(endpoints),
                        ..old.swap_remove(i)
                    },
                    None => Target::new(address, endpoints),
                },
            )
            .collect();
        if settings.health_interval.is_none() {
            self.targets.iter_mut().for_each(|t| t.health.unchecked());
        }
        if settings.health_interval != self.settings.health_interval {
            self.targets.iter_mut().for_each(|t| t.next_check = None);
        }
        self.settings = settings;
    }

    /// A re-resolution found `endpoints` for the target at `address`.
    pub(crate) fn resolved(&mut self, address: &Address, endpoints: Vec<Endpoint>) {
        if let Some(t) = self.targets.iter_mut().find(|t| *t.address == *address) {
            t.endpoints = Arc::new(endpoints);
        }
    }

    /// The settings in force.
    pub(crate) fn settings(&self) -> Settings {
        self.settings
    }

    /// The targets a new connection tries, in order, the next when one fails: those the
    /// policy may use now, as it orders them, then every other (down) one in the order
    /// given, so that with all down all are tried, never none.
    pub(crate) fn candidates(&mut self, now: Instant) -> Vec<Pick> {
        let n = self.targets.len();
        let (mut ready, rest): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| self.targets[i].health.eligible(now));
        let from_cursor = |i: usize| (i + n - self.cursor % n.max(1)) % n.max(1);
        match self.settings.balance {
            Balance::Failover => {}
            Balance::RoundRobin => ready.sort_by_key(|&i| from_cursor(i)),
            Balance::LeastConnections => {
                ready.sort_by_key(|&i| (self.targets[i].open, from_cursor(i)));
            }
        }
        if let Some(&first) = ready.first() {
            self.cursor = first + 1;
        }
        let hold = self.settings.connect_timeout;
        ready
            .iter()
            .for_each(|&i| self.targets[i].health.trying(now, hold));
        ready
            .into_iter()
            .chain(rest)
            .map(|i| self.pick(i))
            .collect()
    }

    fn pick(&self, index: usize) -> Pick {
        let t = &self.targets[index];
        Pick {
            index,
            address: t.address.clone(),
            endpoints: t.endpoints.clone(),
        }
    }

    /// The target `pick` names, if a reload kept it.
    fn find(&mut self, pick: &Pick) -> Option<&mut Target> {
        let i = match self.targets.get(pick.index) {
            Some(t) if Arc::ptr_eq(&t.address, &pick.address) => pick.index,
            _ => self
                .targets
                .iter()
                .position(|t| *t.address == *pick.address)?,
        };
        Some(&mut self.targets[i])
    }

    /// Whether transitions are told: not for a single target without checks, whose
    /// pipe behaves (and logs) as before targets had health.
    fn tells(&self) -> bool {
        self.targets.len() > 1 || self.settings.health_interval.is_some()
    }

    /// A connect to `pick` succeeded: a session on it is open until [`TargetSet::closed`].
    pub(crate) fn connected(&mut self, pick: &Pick, now: Instant) -> Option<Transition> {
        let tells = self.tells();
        let t = self.find(pick)?;
        t.connections += 1;
        t.open += 1;
        let down_for = t.health.succeeded(false, now)?;
        let change = Change::Up { down_for };
        tells.then(|| Transition {
            target: t.address.clone(),
            change,
        })
    }

    /// A connect to `pick` failed with `e`. A failure that is ours (see
    /// [`Failure::of_connect`]) leaves the target's health alone.
    pub(crate) fn failed(
        &mut self,
        pick: &Pick,
        e: &std::io::Error,
        now: Instant,
    ) -> Option<Transition> {
        let tells = self.tells();
        let t = self.find(pick)?;
        t.connect_failures += 1;
        let why = Failure::of_connect(e)?;
        let went_down = t.health.failed(why.clone(), false, now);
        let change = Change::Down {
            why,
            retry_in: t.health.retry_in(now),
        };
        (went_down && tells).then(|| Transition {
            target: t.address.clone(),
            change,
        })
    }

    /// The session on `pick` ended.
    pub(crate) fn closed(&mut self, pick: &Pick) {
        if let Some(t) = self.find(pick) {
            t.open = t.open.saturating_sub(1);
        }
    }

    /// The targets whose active check is due now (with `health-interval`); each is
    /// then in flight, so asked again before its result it is not due, and its next is
    /// due one interval later. A check never reported (its task cancelled by a reload)
    /// stops counting as in flight after `hold`.
    pub(crate) fn due_checks(&mut self, now: Instant, hold: Duration) -> Vec<Pick> {
        let Some(interval) = self.settings.health_interval else {
            return Vec::new();
        };
        let due: Vec<usize> = (0..self.targets.len())
            .filter(|&i| {
                let t = &self.targets[i];
                t.next_check.is_none_or(|at| now >= at)
                    && t.checking_until.is_none_or(|until| now >= until)
            })
            .collect();
        for &i in &due {
            let t = &mut self.targets[i];
            t.next_check = Some(now + interval);
            t.checking_until = Some(now + hold);
        }
        due.into_iter().map(|i| self.pick(i)).collect()
    }

    /// When the next active check is due, for the checker to sleep until; `None` without
    /// `health-interval`.
    pub(crate) fn next_check(&self, now: Instant) -> Option<Instant> {
        self.settings.health_interval?;
        Some(
            self.targets
                .iter()
                .map(|t| {
                    t.next_check
                        .unwrap_or(now)
                        .max(t.checking_until.unwrap_or(now))
                })
                .min()
                .unwrap_or(now),
        )
    }

    /// An active check of `pick` ended: `Ok` when the target answered (and, for `-e`,
    /// holds our key).
    pub(crate) fn checked(
        &mut self,
        pick: &Pick,
        outcome: Result<(), Failure>,
        now: Instant,
    ) -> Option<Transition> {
        let tells = self.tells();
        let t = self.find(pick)?;
        t.checking_until = None;
        let change = match outcome {
            Ok(()) => Change::Up {
                down_for: t.health.succeeded(true, now)?,
            },
            Err(why) => {
                if !t.health.failed(why.clone(), true, now) {
                    return None;
                }
                Change::Down {
                    why,
                    retry_in: None,
                }
            }
        };
        tells.then(|| Transition {
            target: t.address.clone(),
            change,
        })
    }

    /// Each target as seen now, in the order given.
    pub(crate) fn snapshot(&self, now: Instant) -> Vec<TargetSnapshot> {
        self.targets
            .iter()
            .map(|t| TargetSnapshot {
                target: t.address.to_string(),
                endpoints: t.endpoints.iter().map(ToString::to_string).collect(),
                up: t.health.is_up(),
                retry_in: t.health.retry_in(now),
                connections: t.connections,
                connect_failures: t.connect_failures,
                open: t.open,
                last_failure: t
                    .health
                    .last_failure
                    .as_ref()
                    .map(|(why, at)| (why.to_string(), now.saturating_duration_since(*at))),
            })
            .collect()
    }
}
