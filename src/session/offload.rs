//! What a process does off its event loop: the policy that sends costly work (group-14
//! exponentiations, large batches of packets) to the blocking pool when other
//! connections could use the loop meanwhile, the count of open connections that policy
//! needs, and the spare Diffie-Hellman key pair a daemon keeps computed ahead.
//!
//! One [`Offload`] per process, created by whoever owns its connections (the pipes of
//! a daemon, `spipe`'s one connection) and handed down to each of them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use spiped_proto::dh;

/// The off-loop policy of one process and what it needs: its open connections, and
/// (for a daemon) its spare key pair.
#[derive(Default)]
pub(crate) struct Offload {
    /// Connections of this process between accept and close.
    open: AtomicUsize,
    /// Whether this process keeps a spare key pair at all: a daemon with a group-14
    /// pipe does; `spipe`, with its one connection, would only waste the work.
    keep_spare: AtomicBool,
    /// The spare key pair, shared with the blocking-pool task that computes the next.
    spare: Arc<Spare>,
}

/// A group-14 key pair computed ahead on the blocking pool, so that `2^x` (about
/// 0.3 ms) is off the next handshake's critical path: each side would otherwise compute
/// it between receiving a message and answering it. Each pair serves one handshake;
/// taking one starts computing the next.
#[derive(Default)]
struct Spare {
    pair: Mutex<Option<dh::Keypair>>,
    /// Whether a pair is being computed.
    refilling: AtomicBool,
}

impl Offload {
    /// A process that keeps no spare key pair (until [`Offload::keep_keypairs_ahead`])
    /// and has no connection open yet.
    pub(crate) fn new() -> Arc<Offload> {
        Arc::new(Offload::default())
    }

    /// Counts one more open connection until the value is dropped.
    pub(crate) fn count(self: &Arc<Self>) -> OpenConnection {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
    }

    /// Whether work that is `costly` goes to the blocking pool now: only when other
    /// connections could use the event loop meanwhile.
    pub(crate) fn pools(&self, costly: bool) -> bool {
        costly && self.open.load(Ordering::Relaxed) > 1
    }

    /// Runs `work` on the blocking pool when it is `costly` and other connections could
    /// use the event loop meanwhile (see [`Offload::pools`]); otherwise right here,
    /// since alone the hand-off would only add two thread wake-ups of latency. Decides
    /// now, so that the future holds no reference to `self`: it lives in every
    /// connection's pumps.
    pub(crate) fn run<R: Send + 'static, W: FnOnce() -> R + Send + 'static>(
        &self,
        costly: bool,
        work: W,
    ) -> impl Future<Output = R> + use<R, W> {
        let pool = self.pools(costly);
        async move {
            if !pool {
                return work();
            }
            match tokio::task::spawn_blocking(work).await {
                Ok(r) => r,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Cancelled: only when the runtime shuts down, which drops this task too.
                Err(_) => std::future::pending().await,
            }
        }
    }

    /// Keeps a group-14 key pair computed ahead for the handshakes of this process,
    /// from the next [`Offload::prime`] or handshake on; for daemons, which expect
    /// many connections. Starts no thread: a worker thread started before the sandbox
    /// would stay outside it.
    pub(crate) fn keep_keypairs_ahead(&self) {
        self.keep_spare.store(true, Ordering::Relaxed);
    }

    /// Starts computing the spare key pair now, if this process keeps one.
    pub(crate) fn prime(&self) {
        if self.keep_spare.load(Ordering::Relaxed) {
            self.refill();
        }
    }

    /// The spare key pair, if this process keeps one and it is ready; starts computing
    /// the next one.
    pub(crate) fn take_keypair(&self) -> Option<dh::Keypair> {
        if !self.keep_spare.load(Ordering::Relaxed) {
            return None;
        }
        let pair = self
            .spare
            .pair
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.refill();
        pair
    }

    /// Starts computing a spare key pair unless one is being computed.
    fn refill(&self) {
        if !self.spare.refilling.swap(true, Ordering::AcqRel) {
            let spare = self.spare.clone();
            // Detached: the pair lands in the spare slot whenever it is ready.
            drop(tokio::task::spawn_blocking(move || {
                // Without randomness the handshake itself fails and says so; no spare.
                if let Ok(pair) = dh::Keypair::generate() {
                    *spare.pair.lock().unwrap_or_else(PoisonError::into_inner) = Some(pair);
                }
                spare.refilling.store(false, Ordering::Release);
            }));
        }
    }
}

/// Counts a connection as open (see [`Offload::count`]) for as long as it lives.
pub(crate) struct OpenConnection(Arc<Offload>);

impl OpenConnection {
    /// The policy that counts this connection, for its handshake and pumps.
    pub(crate) fn offload(&self) -> &Offload {
        &self.0
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}
