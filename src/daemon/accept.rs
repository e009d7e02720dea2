//! The accept loop of a pipe: takes connections off its listening socket, at most `-n`
//! at a time, and runs each ([`conn::run`]) as a task of the event loop, until stopped.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use spiped_transports::{Listener, Transport};
use tokio::sync::mpsc;

use crate::daemon::conn;
use crate::daemon::counters::OpenGuard;
use crate::daemon::pipe::PipeState;
use crate::errors::accept_trouble;
use crate::log;
use crate::resolve::Targets;
use crate::session::offload::Offload;

/// Accepts connections, running each as a task of the event loop this runs in, until
/// `shutdown` completes; then closes the listener at once (new connections are refused;
/// its registration is removed first, so a listening socket that lives on in another
/// process, as systemd's does, can no longer wake anything here) and returns when every
/// open connection has finished, or as soon as `give_up` completes (a second signal, the
/// drain timeout), leaving the connections still open for the caller to end by exiting.
pub async fn serve(
    listener: Listener,
    pipe: Arc<PipeState>,
    offload: Arc<Offload>,
    shutdown: impl Future<Output = ()>,
    give_up: impl Future<Output = ()>,
) {
    // Every connection task holds a sender; when the last one is dropped, recv ends.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    tokio::select! {
        biased;
        () = shutdown => {}
        () = accept_loop(&listener, pipe, offload, open_tx) => {}
    }
    drop(listener);
    tokio::select! {
        biased;
        _ = open_rx.recv() => {}
        () = give_up => {}
    }
}

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
    loop {
        room(&pipe, &mut at_limit).await;
        // No settings are held while waiting in accept: keys a reload removed meanwhile
        // are wiped then, not when the next client comes.
        let options = pipe.settings().conn.stream;
        let stream = (listener.accept_retrying(options, |trouble| {
            log::warn(&accept_trouble(listener.endpoint(), trouble));
        }))
        .await;
        // The settings of the moment the connection arrived: a reload while this task
        // waited in accept must apply to it.
        let settings = pipe.settings();
        if !settings.allow.is_empty() {
            let peer = stream.peer();
            if !settings.allows(&peer) {
                pipe.counters.refused.fetch_add(1, Ordering::Relaxed);
                settings.conn.metrics.refused();
                if settings.conn.log_connections {
                    log::info(&format!(
                        "{}: connection from {peer} refused: not in the pipe's allow list",
                        settings.name
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
            let full = settings
                .limit
                .filter(|&limit| pipe.counters.open.load(Ordering::Relaxed) >= limit);
            let Some(limit) = full else {
                *at_limit &= !first_look;
                return;
            };
            if !*at_limit {
                settings.conn.metrics.limit_reached();
                log::warn(&format!(
                    "{}: connection limit reached ({limit} open); new connections wait until one closes",
                    settings.name
                ));
                *at_limit = true;
            }
        }
        first_look = false;
        room.await;
    }
}
