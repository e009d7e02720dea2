//! The accept loop: takes connections off the listening socket, at most `-n` at a time,
//! and runs each ([`conn::run`]) as a task of the event loop, until told to shut down.

use std::sync::Arc;
use std::time::Duration;

use spiped_transports::Listener;
use tokio::sync::{Semaphore, mpsc};

use crate::conn::{self, ConnConfig};
use crate::log;
use crate::resolve::Targets;

/// How long to back off when accept fails for lack of resources (EMFILE, ENOBUFS):
/// long enough not to spin, short enough that service resumes promptly.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections, running each as a task of the event loop this runs in, until
/// `shutdown` completes; then closes the listener at once (new connections are refused;
/// its registration is removed first, so a listening socket that lives on in another
/// process, as systemd's does, can no longer wake anything here) and returns when every
/// open connection has finished, or as soon as `give_up` completes (a second signal, the
/// drain timeout), leaving the connections still open for the caller to end by exiting.
///
/// With a limit, a connection over it is not accepted: it waits in the kernel's listen
/// queue until one of ours closes, and a warning is printed once each time the limit
/// is reached.
pub async fn serve(
    listener: Listener,
    cfg: Arc<ConnConfig>,
    targets: Targets,
    limit: Option<usize>,
    shutdown: impl Future<Output = ()>,
    give_up: impl Future<Output = ()>,
) {
    // Every connection task holds a sender; when the last one is dropped, recv ends.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    tokio::select! {
        biased;
        () = shutdown => {}
        () = accept_loop(&listener, cfg, targets, limit, open_tx) => {}
    }
    drop(listener);
    tokio::select! {
        biased;
        _ = open_rx.recv() => {}
        () = give_up => {}
    }
}

async fn accept_loop(
    listener: &Listener,
    cfg: Arc<ConnConfig>,
    targets: Targets,
    limit: Option<usize>,
    open: mpsc::Sender<()>,
) {
    let slots = limit.map(|n| Arc::new(Semaphore::new(n)));
    let mut at_limit = false;
    // Accept failures in a row; warned about once, when the first one happens.
    let mut failures = 0u64;
    loop {
        let permit = match &slots {
            None => None,
            Some(s) => Some(match s.clone().try_acquire_owned() {
                Ok(p) => {
                    at_limit = false;
                    p
                }
                Err(_) => {
                    if !at_limit {
                        log::warn(&format!(
                            "connection limit reached ({} open); new connections wait until one closes",
                            limit.unwrap_or(0)
                        ));
                        at_limit = true;
                    }
                    match s.clone().acquire_owned().await {
                        Ok(p) => p,
                        // Never closed: the semaphore lives as long as this loop.
                        Err(_) => return,
                    }
                }
            }),
        };
        let stream = match listener.accept(cfg.stream).await {
            Ok(s) => {
                if failures > 0 {
                    log::warn(&format!(
                        "accepting on {} again after {failures} failed attempts",
                        listener.endpoint()
                    ));
                    failures = 0;
                }
                s
            }
            Err(e) => {
                // Out of descriptors, accept fails every back-off period: say so once per
                // episode, not ten times a second.
                if failures == 0 {
                    log::warn(&format!(
                        "accept on {} failed: {}; retrying every {} ms",
                        listener.endpoint(),
                        crate::errors::describe(&e),
                        ACCEPT_BACKOFF.as_millis()
                    ));
                }
                failures += 1;
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let cfg = cfg.clone();
        let list = targets.current();
        let open = (open.clone(), crate::session::OpenConnection::count());
        tokio::spawn(async move {
            conn::run(stream, &cfg, &list).await;
            drop((permit, open));
        });
    }
}
