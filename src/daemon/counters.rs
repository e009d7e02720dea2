//! What happened to a pipe's connections, counted as it happens: kept across reloads
//! (a reload's settings point at the same counters) and logged when the pipe stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// What happened to a pipe's connections since it started; kept across reloads.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections accepted and served (not refused by `allow`).
    pub accepted: AtomicU64,
    /// Connections closed at once because `allow` does not list the client.
    pub refused: AtomicU64,
    /// Sessions closed by `idle-timeout`.
    pub idle_closed: AtomicU64,
    /// Connections open now: what `max-connections` limits, whatever the settings of
    /// the moment (a reload that keeps the pipe keeps the count).
    pub open: AtomicUsize,
    /// Signalled when there may be room under `max-connections` again: a connection
    /// closed, or a reload changed the limit.
    pub room: Notify,
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
        // One stored permit if the accept loop is not waiting yet: it cannot miss it.
        self.0.room.notify_one();
    }
}
