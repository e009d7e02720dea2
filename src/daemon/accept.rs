//! The accept loop of a pipe: takes connections off its listening socket, at most `-n`
//! at a time, and runs each ([`conn::run`]) as a task of the event loop, until stopped.

use std::sync::Arc;

use spiped_transports::{Listener, Transport};
use tokio::sync::mpsc;

use crate::daemon::conn;
use crate::daemon::pipe_state::PipeState;
use crate::errors::accept_trouble;
use crate::log;
use crate::session::offload::Offload;

/// Accepts connections on `listener` for `pipe` until dropped, running each as a task
/// with the pipe's settings of the moment; each holds a clone of `open` until it ends,
/// and is counted open in `offload`, the process's off-loop policy.
///
/// With a limit, a connection over it is not accepted: it waits in the kernel's listen
/// queue until one of ours closes, and a warning is printed once each time the limit
/// is reached. A client that the pipe's `allow` does not list is closed as soon as it
/// is accepted, before any handshake work. Each of these events is told to the pipe's
/// metrics here, once.
pub(crate) async fn accept_loop(
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
        let options = pipe.settings().conn.pipe.stream();
        let stream = (listener.accept_retrying(options, |trouble| {
            log::warn(&accept_trouble(listener.endpoint(), trouble));
        }))
        .await;
        // The settings of the moment the connection arrived: a reload while this task
        // waited in accept must apply to it.
        let settings = pipe.settings();
        if !settings.conn.pipe.allow.is_empty() {
            let peer = stream.peer();
            if !settings.allows(&peer) {
                pipe.events.refused();
                if settings.conn.pipe.log_connections {
                    log::info(&format!(
                        "{}: connection from {peer} refused: not in the pipe's allow list",
                        settings.conn.pipe.name
                    ));
                }
                continue;
            }
        }
        let cfg = settings.conn.clone();
        let routes = settings.routes.clone();
        // Open until the task ends: for the drain, `max-connections` and the process's
        // off-loop policy.
        let open = (open.clone(), pipe.opened());
        let process = offload.count();
        let pipe = pipe.clone();
        drop(settings);
        tokio::spawn(async move {
            let current = |key: &_| pipe.holds(key);
            let events = &pipe.events;
            conn::run(&stream, &cfg, &routes, process.offload(), events, current).await;
            drop((stream, open, process));
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
        let room = pipe.room();
        {
            let settings = pipe.settings();
            let full = (settings.conn.pipe.max_connections).filter(|&limit| pipe.open() >= limit);
            let Some(limit) = full else {
                *at_limit &= !first_look;
                return;
            };
            if !*at_limit {
                pipe.events.limit_reached();
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
