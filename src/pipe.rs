//! One pipe at work: its name, its live settings (which a reload replaces) and the
//! counts of what happened to its connections. The accept loop ([`crate::dispatch`])
//! reads the settings afresh for every connection it accepts; a connection keeps the
//! settings it was accepted with until it closes.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use async_lock::Semaphore;
use ipnet::IpNet;

use crate::conn::ConnConfig;
use crate::resolve::Targets;

/// What happened to a pipe's connections since it started; kept across reloads.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections accepted and served (not refused by `allow`).
    pub accepted: AtomicU64,
    /// Connections closed at once because `allow` does not list the client.
    pub refused: AtomicU64,
    /// Sessions closed by `idle-timeout`.
    pub idle_closed: AtomicU64,
    /// Connections open now.
    pub open: AtomicUsize,
}

/// Counts a connection of a pipe as open for as long as it lives.
pub struct OpenGuard(Arc<Counters>);

impl OpenGuard {
    /// Counts one more open connection of the pipe with `counters`.
    pub fn new(counters: &Arc<Counters>) -> OpenGuard {
        counters.open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(counters.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A pipe's settings for the connections accepted from now on.
pub struct Settings {
    /// How logs (and metrics) name the pipe.
    pub name: String,
    /// What each connection does.
    pub conn: Arc<ConnConfig>,
    /// The target addresses of each key (one entry when all keys share the target),
    /// kept fresh by the pipe's re-resolution.
    pub routes: Vec<Targets>,
    /// `max-connections`, and the permits that enforce it.
    pub limit: Option<(usize, Arc<Semaphore>)>,
    /// `allow`: the networks served; empty serves all.
    pub allow: Vec<IpNet>,
}

impl Settings {
    /// Whether a client at `peer` (an address as the listener reports it) is served.
    pub fn allows(&self, peer: &str) -> bool {
        if self.allow.is_empty() {
            return true;
        }
        let ip = peer
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip())
            .or_else(|_| peer.parse::<IpAddr>());
        ip.is_ok_and(|ip| {
            let ip = ip.to_canonical();
            self.allow.iter().any(|net| net.contains(&ip))
        })
    }
}

/// A running pipe's state, shared by its accept loop and whoever reloads it.
pub struct PipeState {
    settings: RwLock<Arc<Settings>>,
    /// What happened to its connections.
    pub counters: Arc<Counters>,
}

impl PipeState {
    /// A pipe starting with `settings`, whose connections count into `counters`.
    pub fn new(settings: Settings, counters: Arc<Counters>) -> Arc<PipeState> {
        Arc::new(PipeState {
            settings: RwLock::new(Arc::new(settings)),
            counters,
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
    /// theirs.
    pub fn replace(&self, settings: Settings) {
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(settings);
    }
}
