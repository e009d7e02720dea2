//! One pipe at work: its name, its live settings (which a reload replaces) and the
//! counts of what happened to its connections. The accept loop (`dispatch.rs`)
//! reads the settings afresh for every connection it accepts; a connection keeps the
//! settings it was accepted with until it closes.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::daemon::conn_settings::ConnConfig;
use crate::daemon::counters::Counters;
use crate::resolve::Targets;

/// A pipe's settings for the connections accepted from now on.
pub struct Settings {
    /// What each connection does, with the pipe's configuration (its name,
    /// `max-connections`, `allow`).
    pub conn: Arc<ConnConfig>,
    /// The target addresses of each key (one entry when all keys share the target),
    /// kept fresh by the pipe's re-resolution.
    pub routes: Vec<Targets>,
}

impl Settings {
    /// Whether a client at `peer` (an address as the listener reports it) is served:
    /// `allow` lists it, or lists nothing.
    pub fn allows(&self, peer: &str) -> bool {
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

/// A running pipe's state, shared by its accept loop and whoever reloads it.
pub struct PipeState {
    settings: RwLock<Arc<Settings>>,
    /// Set when a reload removes the pipe: its keys then admit no more sessions.
    removed: AtomicBool,
    /// What happened to its connections.
    pub counters: Arc<Counters>,
}

impl PipeState {
    /// A pipe starting with `settings`, counting into the counters they hold; later
    /// settings must hold the same.
    pub fn new(settings: Settings) -> Arc<PipeState> {
        Arc::new(PipeState {
            counters: settings.conn.counters.clone(),
            settings: RwLock::new(Arc::new(settings)),
            removed: AtomicBool::new(false),
        })
    }

    /// The settings for a connection accepted now.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the settings for connections accepted from now on; open ones keep
    /// theirs. The old settings are dropped here unless a connection still holds them
    /// (the accept loop holds none while it waits), so that keys a reload removed are
    /// wiped as soon as no session uses them.
    pub fn replace(&self, settings: Settings) {
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(settings);
        // The limit may have changed: an accept loop waiting for room looks again.
        self.counters.room.notify_one();
    }

    /// Whether `key` is still one of the pipe's keys: a session whose handshake ends
    /// with a key that a reload removed meanwhile (with the pipe, or from it) is not
    /// admitted.
    pub fn holds(&self, key: &spiped_proto::key::Key) -> bool {
        !self.removed.load(Ordering::Relaxed) && self.settings().conn.holds(key)
    }

    /// A reload removed the pipe: handshakes under way on it admit no session.
    pub fn remove(&self) {
        self.removed.store(true, Ordering::Relaxed);
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
                counters: Default::default(),
                label: None,
                metrics: crate::metrics::Metrics::new().pipe(
                    "t".into(),
                    Direction::Decrypt,
                    1,
                    Vec::new(),
                    serde_json::Value::Null,
                ),
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
