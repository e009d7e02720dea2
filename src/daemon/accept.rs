//! The accept loop of a pipe: takes connections off its listening socket, at most `-n`
//! at a time, and runs each ([`conn::run`]) as a task of the event loop, until stopped.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use spiped_transports::{Listener, Transport};
use tokio::sync::mpsc;

use crate::daemon::conn;
use crate::daemon::counters::OpenGuard;
use crate::daemon::pipe::PipeState;
use crate::log;
use crate::resolve::Targets;
use crate::session::offload::Offload;

/// How long to back off when accept fails for lack of resources (EMFILE, ENOBUFS):
/// long enough not to spin, short enough that service resumes promptly.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections on `listener` for `pipe` until dropped, running each as a task
/// with the pipe's settings of the moment; each holds a clone of `open` until it ends,
/// and is counted open in `offload`, the process's off-loop policy.
///
/// With a limit, a connection over it is not accepted: it waits in the kernel's listen
/// queue until one of ours closes, and a warning is printed once each time the limit
/// is reached. A client that the pipe's `allow` does not list is closed as soon as it
/// is accepted, before any handshake work, and counted.
pub async fn accept_loop(
    listener: &Listener,
    pipe: Arc<PipeState>,
    offload: Arc<Offload>,
    open: mpsc::Sender<()>,
) {
    let mut at_limit = false;
    // Accept failures in a row; warned about once, when the first one happens.
    let mut failures = 0u64;
    loop {
        room(&pipe, &mut at_limit).await;
        // No settings are held while waiting in accept: keys a reload removed meanwhile
        // are wiped then, not when the next client comes.
        let options = pipe.settings().conn.pipe.stream();
        let stream = match listener.accept(options).await {
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
        // The settings of the moment the connection arrived: a reload while this task
        // waited in accept must apply to it.
        let settings = pipe.settings();
        if !settings.conn.pipe.allow.is_empty() {
            let peer = stream.peer();
            if !settings.allows(&peer) {
                pipe.counters.refused.fetch_add(1, Ordering::Relaxed);
                settings.conn.metrics.refused();
                if settings.conn.pipe.log_connections {
                    log::info(&format!(
                        "{}: connection from {peer} refused: not in the pipe's allow list",
                        settings.conn.pipe.name
                    ));
                }
                continue;
            }
        }
        pipe.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let cfg = settings.conn.clone();
        let routes: Vec<_> = settings.routes.iter().map(Targets::current).collect();
        let open = (open.clone(), OpenGuard::new(&pipe.counters));
        let counted = offload.count();
        let pipe = pipe.clone();
        drop(settings);
        tokio::spawn(async move {
            let current = |key: &_| pipe.holds(key);
            conn::run(&stream, &cfg, &routes, counted.offload(), current).await;
            drop((stream, open, counted));
        });
    }
}

/// Returns once the pipe has room for one more connection under its `max-connections`
/// of the moment (at once without a limit). Its count is the pipe's, kept across
/// reloads; a reload that changes the limit wakes the wait, which then looks again. A
/// warning is printed once each time the limit is reached (`at_limit` remembers, until
/// a connection finds room without waiting).
async fn room(pipe: &PipeState, at_limit: &mut bool) {
    let mut first_look = true;
    loop {
        // Made before looking, so that a close between the look and the wait still
        // wakes it.
        let room = pipe.counters.room.notified();
        {
            let settings = pipe.settings();
            let full = (settings.conn.pipe.max_connections)
                .filter(|&limit| pipe.counters.open.load(Ordering::Relaxed) >= limit);
            let Some(limit) = full else {
                *at_limit &= !first_look;
                return;
            };
            if !*at_limit {
                settings.conn.metrics.limit_reached();
                log::warn(&format!(
                    "{}: connection limit reached ({limit} open); new connections wait until one closes",
                    settings.conn.pipe.name
                ));
                *at_limit = true;
            }
        }
        first_look = false;
        room.await;
    }
}
