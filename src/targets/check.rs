//! Active health checks (`health-interval`): each target probed at most once per
//! interval and never twice at a time, the results reported into the target set.

use std::sync::Arc;
use std::time::Instant;

use spiped_proto::handshake::{Mode, Role};
use spiped_proto::key::Key;
use tokio::task::JoinSet;

use super::connect::{Shared, connect_target, lock};
use super::health::Failure;
use super::set::{Pick, Transition};
use crate::session::client::Dial;
use crate::session::handshake;
use crate::session::offload::Offload;

/// What a check proves.
#[derive(Clone)]
pub(crate) enum Check {
    /// For a `-d` pipe: the target accepts a TCP (or UNIX) connection, closed at once.
    Connect,
    /// For an `-e` pipe, whose targets are `spiped -d` servers: a full handshake with
    /// the pipe's key and mode, then close; proves the far end holds our key.
    Handshake {
        /// The pipe's key (`-k`, the one `-e` uses).
        key: Key,
        /// `-f` / `-g` / `--x25519`.
        mode: Mode,
    },
}

/// How a pipe's targets are checked.
#[derive(Clone)]
pub(crate) struct Checker {
    /// What a check proves.
    pub check: Check,
    /// How the check connects; its `timeout` bounds a whole check (connect plus
    /// handshake), as `-o` bounds a connection's.
    pub dial: Dial,
    /// The off-loop policy the handshake's costly steps follow.
    pub offload: Arc<Offload>,
}

/// Checks `pick` once, as `checker` says: `Ok` when the target passed; `None` when the
/// check could not be made for a fault of ours (out of descriptors, memory or random
/// numbers), which tells nothing of the target.
pub(crate) async fn check_once(checker: &Checker, pick: &Pick) -> Option<Result<(), Failure>> {
    let dial = checker.dial;
    let checked = async {
        let stream = match connect_target(pick, dial, dial.timeout).await {
            Ok(s) => s,
            Err(e) => return Failure::of_connect(&e).map(Err),
        };
        if let Check::Handshake { key, mode } = &checker.check {
            let hs = handshake::start(Role::Client, *mode, key, &[]).ok()?;
            let shaken = handshake::handshake(&checker.offload, &stream, hs, None).await;
            if let Err(e) = shaken {
                return Some(Err(Failure::Check(e.to_string())));
            }
        }
        Some(Ok(()))
    };
    tokio::time::timeout(dial.timeout, checked)
        .await
        .unwrap_or(Some(Err(Failure::TimedOut)))
}

impl Checker {
    /// Checks `set`'s targets as their checks fall due, for as long as the pipe has
    /// `health-interval`; `changed` hears of each target going down or up, to log.
    /// Runs until dropped (a reload drops it and starts the next): checks in flight
    /// then end with it, and the set forgets them after the check's bound.
    pub(crate) async fn run(self, set: Shared, changed: impl Fn(Transition)) {
        let mut running = JoinSet::new();
        loop {
            let now = Instant::now();
            let (due, next) = {
                let mut s = lock(&set);
                (s.due_checks(now, self.dial.timeout), s.next_check(now))
            };
            let Some(next) = next else {
                return;
            };
            for pick in due {
                let checker = self.clone();
                running.spawn(async move {
                    let outcome = check_once(&checker, &pick).await;
                    (pick, outcome)
                });
            }
            tokio::select! {
                Some(done) = running.join_next() => {
                    // A check that told nothing is forgotten: the next is due one
                    // interval after it anyway.
                    let Ok((pick, Some(outcome))) = done else { continue };
                    let change = lock(&set).checked(&pick, outcome, Instant::now());
                    if let Some(change) = change {
                        changed(change);
                    }
                }
                () = tokio::time::sleep_until(next.into()) => {}
            }
        }
    }
}
