//! The counters of one pipe, and the table of its open connections; what counts into
//! them is in `events.rs`.
//!
//! Counting stays off the packet path: events (accept, handshake, close) touch a
//! counter once per connection, and bytes are counted only by the pumps' per-batch
//! [`Traffic`](crate::session::pump::Traffic) update that the connection log needs anyway.
//! A scrape adds up the open connections' counters and those of the closed ones.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::live::LiveConn;
use super::reason::{self, Cause, Closed};
use crate::config::Direction;
use crate::targets;

/// Label set `{pipe}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PipeLabel {
    pub(super) pipe: String,
}

/// Label set `{pipe, NAME}` for a per-pipe family split by one more label.
macro_rules! pipe_and {
    ($name:ident, $label:ident) => {
        #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
        pub(super) struct $name {
            pub(super) pipe: String,
            pub(super) $label: String,
        }
    };
}
pipe_and!(PipeReason, reason);
pipe_and!(PipeCause, cause);
pipe_and!(PipeKey, key);
pipe_and!(PipeKind, kind);
pipe_and!(PipeResult, result);

/// Upper bounds of the handshake duration buckets, in seconds: an X25519 handshake on
/// loopback takes about 0.2 ms, a group-14 one a few ms, a slow network hundreds.
const HANDSHAKE_BUCKETS: [f64; 14] = [
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

fn handshake_histogram() -> Histogram {
    Histogram::new(HANDSHAKE_BUCKETS)
}

/// Declares [`Families`] from a table: each family's field, type and constructor with
/// the name and help text it is registered under, in registration order.
macro_rules! families {
    ($($field:ident: $ty:ty = $new:expr, $name:literal, $help:literal;)*) => {
        /// The per-pipe metric families, registered once; each pipe takes its series
        /// from them.
        #[derive(Clone)]
        pub(super) struct Families {
            $($field: $ty,)*
        }

        impl Families {
            /// Empty families, registered in `registry`.
            pub(super) fn register(registry: &mut Registry) -> Families {
                let f = Families { $($field: $new,)* };
                $(registry.register($name, $help, f.$field.clone());)*
                f
            }
        }
    };
}

families! {
    accepted: Family<PipeLabel, Counter> = Family::default(),
        "connections_accepted", "Connections accepted on the pipe's source";
    closed: Family<PipeReason, Counter> = Family::default(),
        "connections_closed", "Connections closed, by why they ended";
    failures: Family<PipeCause, Counter> = Family::default(),
        "handshake_failures", "Handshakes that failed, by cause";
    duration: Family<PipeLabel, Histogram, fn() -> Histogram> =
        Family::new_with_constructor(handshake_histogram),
        "handshake_duration_seconds", "Time from the first handshake message to the packet keys";
    by_key: Family<PipeKey, Counter> = Family::default(),
        "connections_by_key", "Established connections by the key they used (1 = the first -k)";
    by_kind: Family<PipeKind, Counter> = Family::default(),
        "handshakes", "Established connections by key agreement (pfs, fast, x25519)";
    lookups: Family<PipeResult, Counter> = Family::default(),
        "target_lookups", "Look-ups of the target's address, by result";
    limit_waits: Family<PipeLabel, Counter> = Family::default(),
        "connection_limit_waits", "Times the -n limit was reached and new connections had to wait";
    refused: Family<PipeLabel, Counter> = Family::default(),
        "connections_refused",
        "Connections closed at accept because the client is not in the pipe's allow list";
}

/// What a pipe's connections came to since the pipe started (reloads that keep the
/// pipe keep counting): what its stop report says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Connections accepted and served (not refused by `allow`).
    pub served: u64,
    /// Connections closed at accept because `allow` does not list the client.
    pub refused: u64,
    /// Sessions closed by `idle-timeout`.
    pub idle_closed: u64,
}

/// Bytes of connections that have closed, and the connections still open.
#[derive(Default)]
pub(super) struct Table {
    pub(super) open: BTreeMap<u64, Arc<LiveConn>>,
    /// Plaintext bytes (from the peer, to the peer) of every closed connection.
    pub(super) retired: (u64, u64),
}

/// What a reload may change of a pipe that keeps its counters.
struct Current {
    direction: Direction,
    settings: serde_json::Value,
    routes: Vec<targets::Shared>,
}

/// Everything counted about one pipe. Shared (in an `Arc`) by the daemon's pipe, its
/// connections and the metrics endpoint; kept across reloads that keep the pipe.
pub(crate) struct PipeMetrics {
    label: String,
    current: RwLock<Current>,
    pub(super) accepted: Counter,
    pub(super) closed: [Counter; Closed::ALL.len()],
    pub(super) failures: [Counter; Cause::ALL.len()],
    pub(super) duration: Histogram,
    pub(super) by_key: Family<PipeKey, Counter>,
    pub(super) by_kind: [Counter; reason::KINDS.len()],
    pub(super) lookups_ok: Counter,
    pub(super) lookups_failed: Counter,
    pub(super) limit_waits: Counter,
    pub(super) refused: Counter,
    table: Mutex<Table>,
    /// The tally when this pipe started: a pipe that takes the name of one removed
    /// before continues its series, but its stop report counts its own connections.
    pub(super) since: Tally,
}

/// What a scrape reads of a pipe besides its counters.
pub(super) struct Totals {
    pub(super) open: usize,
    pub(super) from_peer: u64,
    pub(super) to_peer: u64,
}

impl PipeMetrics {
    /// The series of pipe `label` from `families`, every label value present from the
    /// start (at 0). `keys` is how many keys the pipe has; `routes` the target
    /// addresses of its keys; `settings` what the status page shows of its
    /// configuration.
    pub(super) fn new(
        families: &Families,
        label: String,
        direction: Direction,
        keys: usize,
        routes: Vec<targets::Shared>,
        settings: serde_json::Value,
    ) -> PipeMetrics {
        let pipe = || label.clone();
        let of_pipe =
            |f: &Family<PipeLabel, Counter>| f.get_or_create_owned(&PipeLabel { pipe: pipe() });
        let by = |f: &Family<PipeResult, Counter>, result: &str| {
            f.get_or_create_owned(&PipeResult {
                pipe: pipe(),
                result: result.to_owned(),
            })
        };
        let mut p = PipeMetrics {
            accepted: of_pipe(&families.accepted),
            closed: Closed::ALL.map(|c| {
                families.closed.get_or_create_owned(&PipeReason {
                    pipe: pipe(),
                    reason: c.label().to_owned(),
                })
            }),
            failures: Cause::ALL.map(|c| {
                families.failures.get_or_create_owned(&PipeCause {
                    pipe: pipe(),
                    cause: c.label().to_owned(),
                })
            }),
            duration: families
                .duration
                .get_or_create_owned(&PipeLabel { pipe: pipe() }),
            by_key: families.by_key.clone(),
            by_kind: reason::KINDS.map(|e| {
                families.by_kind.get_or_create_owned(&PipeKind {
                    pipe: pipe(),
                    kind: reason::kind_label(e).to_owned(),
                })
            }),
            lookups_ok: by(&families.lookups, "ok"),
            lookups_failed: by(&families.lookups, "failed"),
            limit_waits: of_pipe(&families.limit_waits),
            refused: of_pipe(&families.refused),
            label,
            current: RwLock::new(Current {
                direction,
                settings,
                routes,
            }),
            table: Mutex::default(),
            since: Tally::default(),
        };
        p.since = p.counted();
        p.show_keys(keys);
        p
    }

    /// Takes the settings of a reload that kept the pipe: its counts go on.
    pub(crate) fn reconfigure(
        &self,
        direction: Direction,
        keys: usize,
        routes: Vec<targets::Shared>,
        settings: serde_json::Value,
    ) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Current {
            direction,
            settings,
            routes,
        };
        self.show_keys(keys);
    }

    /// Exports the counter of each of `keys` keys (at 0 until used).
    fn show_keys(&self, keys: usize) {
        for k in 0..keys {
            drop(self.by_key.get_or_create(&self.key_label(k)));
        }
    }

    /// The label set of key number `index` (from 0; labelled from 1, in `-k` order).
    pub(super) fn key_label(&self, index: usize) -> PipeKey {
        PipeKey {
            pipe: self.label.clone(),
            key: (index + 1).to_string(),
        }
    }

    fn current(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The direction the pipe plays now.
    pub(super) fn direction(&self) -> Direction {
        self.current().direction
    }

    /// The `pipe` label: the config name, or the source address.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// The pipe's settings as the status page shows them (no key material).
    pub(crate) fn settings(&self) -> serde_json::Value {
        self.current().settings.clone()
    }

    /// The target addresses new connections use now, of every key.
    pub(crate) fn target_addresses(&self) -> Vec<String> {
        let now = std::time::Instant::now();
        let mut all: Vec<String> = (self.current().routes.iter())
            .flat_map(|set| targets::lock(set).snapshot(now))
            .flat_map(|t| t.endpoints)
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Each target of the pipe as seen now, in the order configured (a target of
    /// several keys' routes once).
    pub(crate) fn targets(&self) -> Vec<targets::TargetSnapshot> {
        let now = std::time::Instant::now();
        let mut all: Vec<targets::TargetSnapshot> = Vec::new();
        for set in self.current().routes.iter() {
            for t in targets::lock(set).snapshot(now) {
                if !all.iter().any(|seen| seen.target == t.target) {
                    all.push(t);
                }
            }
        }
        all
    }

    pub(super) fn table(&self) -> MutexGuard<'_, Table> {
        // A panic elsewhere while holding the lock leaves consistent numbers behind.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The open connections, oldest first.
    pub(crate) fn open(&self) -> Vec<Arc<LiveConn>> {
        self.table().open.values().cloned().collect()
    }

    /// Open connections and bytes moved so far, closed connections' included.
    pub(super) fn totals(&self) -> Totals {
        let t = self.table();
        let (mut from_peer, mut to_peer) = t.retired;
        for c in t.open.values() {
            let (f, o) = c.bytes();
            from_peer += f;
            to_peer += o;
        }
        Totals {
            open: t.open.len(),
            from_peer,
            to_peer,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use spiped_transports::Endpoint;

    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn bytes_move_from_open_to_closed_exactly_once() {
        let m = Metrics::new();
        let targets = targets::one(Endpoint::Unix("/t".into()), Duration::from_secs(5));
        let p = m.pipe(
            "p".into(),
            Direction::Encrypt,
            1,
            vec![targets],
            serde_json::Value::Null,
        );
        m.show(&p);
        let a = p.accepted(1, "a".into());
        let b = p.accepted(2, "b".into());
        // -e: sealed bytes came from the peer.
        a.conn().traffic.sent.fetch_add(100, Ordering::Relaxed);
        a.conn().traffic.received.fetch_add(7, Ordering::Relaxed);
        b.conn().traffic.sent.fetch_add(5, Ordering::Relaxed);
        let t = p.totals();
        assert_eq!((t.open, t.from_peer, t.to_peer), (2, 105, 7));
        a.closed(Ok(()));
        let t = p.totals();
        assert_eq!((t.open, t.from_peer, t.to_peer), (1, 105, 7));
        drop(b);
        let t = p.totals();
        assert_eq!((t.open, t.from_peer, t.to_peer), (0, 105, 7));
        let scrape = m.scrape();
        assert!(scrape.contains("spiped_bytes_total{pipe=\"p\",direction=\"from_peer\"} 105\n"));
        assert!(scrape.contains("spiped_connections_closed_total{pipe=\"p\",reason=\"eof\"} 1\n"));
        assert!(scrape.contains("spiped_connections_accepted_total{pipe=\"p\"} 2\n"));
    }
}
