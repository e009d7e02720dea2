//! One connection's connect over a target set: the targets in the order the set gives,
//! each attempt bounded by `connect-timeout` and reported, until one accepts.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use spiped_transports::{Address, Endpoint, SocketStream, connect as connect_endpoint};

use super::set::{Pick, TargetSet, Transition};
use super::settings::{Balance, Settings, connect_timeout};
use crate::session::client::{ConnError, ConnectError, Dial};

/// A pipe's target set, shared by its connections, its checker and its reloads. Held
/// only between awaits, never across one.
pub(crate) type Shared = Arc<Mutex<TargetSet>>;

/// A set of one target at `endpoint` (its address as written), connected to within
/// `timeout`, as a pipe of one `-t` is: for pipes made in code (the benchmark's).
pub(crate) fn one(endpoint: Endpoint, timeout: Duration) -> Shared {
    let address = match &endpoint {
        Endpoint::Unix(path) => Address::Unix(path.clone()),
        Endpoint::Tcp(a) => Address::Ip {
            ip: a.ip(),
            port: a.port(),
        },
    };
    let settings = Settings {
        balance: Balance::default(),
        connect_timeout: connect_timeout(timeout, None, false),
        health_interval: None,
    };
    Arc::new(Mutex::new(TargetSet::new(
        vec![(address, vec![endpoint])],
        settings,
    )))
}

/// Locks `set`; a panic elsewhere while it was held left plain counts, still usable.
pub(crate) fn lock(set: &Mutex<TargetSet>) -> MutexGuard<'_, TargetSet> {
    set.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A session open on a target, counted among its open sessions until dropped.
pub(crate) struct Open {
    set: Shared,
    pick: Pick,
}

impl Open {
    /// The target the session is on.
    #[cfg(test)]
    pub(crate) fn pick(&self) -> &Pick {
        &self.pick
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        lock(&self.set).closed(&self.pick);
    }
}

/// Connects to one target: its endpoints in order, each attempt bounded by `each`.
/// The error is the last endpoint's.
pub(crate) async fn connect_target(
    pick: &Pick,
    dial: Dial,
    each: Duration,
) -> io::Result<SocketStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no addresses");
    for ep in pick.endpoints.iter() {
        match connect_endpoint(ep, dial.bind, dial.stream, Some(each)).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Connects a new connection to the first of `set`'s candidates that accepts (see
/// [`TargetSet::candidates`]), each attempt bounded by the set's `connect-timeout` and
/// reported to it; `changed` hears of each target going down or up, to log. The caller
/// bounds the whole by `-o` (`session::client::within`). The error names every target
/// tried and why it failed.
pub(crate) async fn connect(
    set: &Shared,
    dial: Dial,
    changed: impl Fn(Transition),
) -> Result<(SocketStream, Open), ConnError> {
    let (candidates, each) = {
        let mut s = lock(set);
        (s.candidates(Instant::now()), s.settings().connect_timeout)
    };
    let single = candidates.len() == 1;
    let mut failures = Vec::new();
    let mut last_endpoint = None;
    for pick in candidates {
        last_endpoint = pick.endpoints.last().cloned();
        let outcome = connect_target(&pick, dial, each).await;
        let mut s = lock(set);
        let change = match &outcome {
            Ok(_) => s.connected(&pick, Instant::now()),
            Err(e) => s.failed(&pick, e, Instant::now()),
        };
        drop(s);
        if let Some(change) = change {
            changed(change);
        }
        match outcome {
            Ok(stream) => {
                let set = set.clone();
                return Ok((stream, Open { set, pick }));
            }
            Err(e) => failures.push((pick.address().clone(), e)),
        }
    }
    Err(ConnError::Connect(match (failures.len(), last_endpoint) {
        (0, _) => ConnectError::NoTargets,
        // One target reads as before targets had health: its last address and why.
        (1, Some(endpoint)) if single => ConnectError::Failed {
            endpoint,
            error: failures.remove(0).1,
        },
        _ => ConnectError::Each(failures),
    }))
}
