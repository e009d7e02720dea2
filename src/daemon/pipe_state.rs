//! One pipe at work: its name, its live settings (which a reload replaces), its open
//! connections (what `max-connections` limits) and the metrics its events go to. The
//! accept loop (`accept.rs`) reads the settings afresh for every connection it
//! accepts; a connection keeps the settings it was accepted with until it closes.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use crate::daemon::conn_settings::ConnConfig;
use crate::metrics::PipeMetrics;
use crate::targets;

/// A pipe's settings for the connections accepted from now on.
pub(crate) struct Settings {
    /// What each connection does, with the pipe's configuration (its name,
    /// `max-connections`, `allow`).
    pub conn: Arc<ConnConfig>,
    /// The targets of each key (one entry when all keys share them), their health and
    /// addresses kept by the pipe across reloads and re-resolutions.
    pub routes: Vec<targets::Shared>,
}

impl Settings {
    /// Whether a client at `peer` (an address as the listener reports it) is served:
    /// `allow` lists it, or lists nothing.
    pub(crate) fn allows(&self, peer: &str) -> bool {
        let allow = &self.conn.pipe.allow;
        if allow.is_empty() {
            return true;
        }
        let ip = peer
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip())
            .or_else(|_| peer.parse::<IpAddr>());
        ip.is_ok_and(|ip| {
            let ip = ip.to_canonical();
            allow.iter().any(|net| net.contains(&ip))
        })
    }
}

/// A running pipe's state, shared by its accept loop, its connections and whoever
/// reloads it.
pub(crate) struct PipeState {
    settings: RwLock<Arc<Settings>>,
    /// Set when a reload removes the pipe: its keys then admit no more sessions.
    removed: AtomicBool,
    /// Connections open now, whatever the settings of the moment: a reload that keeps
    /// the pipe keeps the count.
    open: AtomicUsize,
    /// Signalled when there may be room under `max-connections` again: a connection
    /// closed, or a reload changed the limit.
    room: Notify,
    /// Where the pipe's events are counted, and read back for its stop report.
    pub events: Arc<PipeMetrics>,
}

impl PipeState {
    /// A pipe starting with `settings`, telling `events` what its connections do.
    pub(crate) fn new(settings: Settings, events: Arc<PipeMetrics>) -> Arc<PipeState> {
        Arc::new(PipeState {
            settings: RwLock::new(Arc::new(settings)),
            removed: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            room: Notify::new(),
            events,
        })
    }

    /// Counts one more open connection of the pipe, until the value is dropped.
    pub(crate) fn opened(self: &Arc<Self>) -> Open {
        self.open.fetch_add(1, Ordering::Relaxed);
        Open(self.clone())
    }

    /// How many of its connections are open now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Completes when there may be room under `max-connections` again; made before
    /// looking at [`PipeState::open`], so that a close between the look and the wait
    /// still wakes it.
    pub(crate) fn room(&self) -> Notified<'_> {
        self.room.notified()
    }

    /// The settings for a connection accepted now.
    pub(crate) fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the settings for connections accepted from now on; open ones keep
    /// theirs. The old settings are dropped here unless a connection still holds them
    /// (the accept loop holds none while it waits), so that keys a reload removed are
    /// wiped as soon as no session uses them.
    pub(crate) fn replace(&self, settings: Settings) {
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(settings);
        // The limit may have changed: an accept loop waiting for room looks again.
        self.room.notify_one();
    }

    /// Whether `key` is still one of the pipe's keys: a session whose handshake ends
    /// with a key that a reload removed meanwhile (with the pipe, or from it) is not
    /// admitted.
    pub(crate) fn holds(&self, key: &spiped_proto::key::Key) -> bool {
        !self.removed.load(Ordering::Relaxed) && self.settings().conn.holds(key)
    }

    /// A reload removed the pipe: handshakes under way on it admit no session.
    pub(crate) fn remove(&self) {
        self.removed.store(true, Ordering::Relaxed);
    }

    /// With `log-connections`: says what the pipe, which `what` (stopped, removed), has
    /// done since it started.
    pub(crate) fn report(&self, what: &str) {
        let settings = self.settings();
        if !settings.conn.pipe.log_connections {
            return;
        }
        let t = self.events.tally();
        crate::log::info(&format!(
            "pipe {} {what}: {} connections served, {} refused by allow, {} closed by idle-timeout",
            settings.conn.pipe.name, t.served, t.refused, t.idle_closed
        ));
    }
}

/// One open connection of a pipe (see [`PipeState::opened`]).
pub(crate) struct Open(Arc<PipeState>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        // One stored permit if the accept loop is not waiting yet: it cannot miss it.
        self.0.room.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Direction, PipeConfig};
    use crate::daemon::conn_settings::ConnConfig;
    use spiped_proto::key::Key;

    fn allowing(nets: &[&str]) -> Settings {
        let mut pipe = PipeConfig::new("t".into(), Direction::Decrypt);
        pipe.allow = nets.iter().map(|n| n.parse().unwrap()).collect();
        Settings {
            conn: Arc::new(ConnConfig {
                pipe: Arc::new(pipe),
                keys: vec![Key::from_file_contents(b"k")],
                bind: None,
                label: None,
            }),
            routes: Vec::new(),
        }
    }

    #[test]
    fn allow_list_matches_networks_and_mapped_addresses() {
        let s = allowing(&["10.0.0.0/8", "::1/128"]);
        for peer in ["10.1.2.3:5", "[::ffff:10.9.9.9]:5", "[::1]:7"] {
            assert!(s.allows(peer), "{peer}");
        }
        for peer in ["11.0.0.1:5", "[::2]:5", "127.0.0.1:1", "/unix/path", ""] {
            assert!(!s.allows(peer), "{peer}");
        }
        assert!(allowing(&[]).allows("anything"));
    }
}
