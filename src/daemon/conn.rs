//! One connection's life in the daemon: open the other side, handshake, pipe, close;
//! and the client's way of opening a connection, which `spipe` shares.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use spiped_transports::{SocketStream, Transport};

use crate::config::Direction;
use crate::daemon::conn_log;
use crate::daemon::conn_log::ConnLog;
use crate::daemon::conn_settings::ConnConfig;
use crate::metrics::{PipeMetrics, Tracked};
use crate::session::client::{ConnError, ConnectError, client_handshake, handshake_failed, within};
use crate::session::handshake::{self, Established};
use crate::session::offload::Offload;
use crate::session::proxy;
use crate::session::pump::{self, PumpError, Traffic};
use crate::targets::{self, Open};
use spiped_proto::key::Key;

/// The targets of each key of a pipe, in key order, as they were when a connection was
/// accepted; without routing by key, one set for every key.
pub(crate) type Routes = [targets::Shared];

/// Runs a connection just accepted on a pipe (`socket`) to its end, telling `events`
/// (the pipe's metrics) of the accept first, the one count of it, and logging and
/// counting how it went (see [`ConnLog`], [`Tracked::closed`]).
/// Borrows what it can: a future that owned an argument would hold it twice for the
/// connection's life (rustc keeps an `async fn`'s argument beside the local it is moved
/// into). `current` tells whether a key is still the pipe's when the handshake
/// completes: a key that a reload removed meanwhile admits no session.
pub(crate) async fn run(
    socket: &SocketStream,
    cfg: &ConnConfig,
    routes: &Routes,
    offload: &Offload,
    events: &Arc<PipeMetrics>,
    current: impl Fn(&Key) -> bool,
) {
    let peer = socket.peer();
    let named = match &cfg.label {
        Some(name) => format!("{peer} on pipe {name}"),
        None => peer.clone(),
    };
    let mut log = ConnLog::accepted(named, cfg.pipe.log_connections, cfg.keys.len() > 1);
    let tracked = events.accepted(log.id(), peer);
    let outcome = serve(socket, cfg, routes, offload, &current, &mut log, &tracked).await;
    let (from_peer, to_peer) = tracked.conn().bytes();
    log.closed(
        from_peer,
        to_peer,
        outcome
            .as_ref()
            .map_err(|e| e as &dyn fmt::Display)
            .copied(),
    );
    tracked.closed(outcome.as_ref().map(|_| ()));
}

/// Connects, handshakes (admitting only a key that is still `current`) and pipes,
/// counting in `tracked`.
async fn serve(
    accepted: &SocketStream,
    cfg: &ConnConfig,
    routes: &Routes,
    offload: &Offload,
    current: &impl Fn(&Key) -> bool,
    log: &mut ConnLog,
    tracked: &Tracked,
) -> Result<(), ConnError> {
    let traffic = &tracked.conn().traffic;
    let pipe = &cfg.pipe;
    // Every pipe has a route; a connection whose routes were lost connects nowhere.
    let first = routes
        .first()
        .ok_or(ConnError::Connect(ConnectError::NoTargets))?;
    let hs = handshake::start(
        pipe.direction.role(),
        pipe.mode(),
        &cfg.keys[0],
        &cfg.keys[1..],
    )
    .map_err(ConnError::Random)?;
    // Checked once the handshake has told which key the peer holds, before the target
    // hears of it where it waits for that.
    let admit = |keys: Established| match current(&cfg.keys[keys.key_index]) {
        true => Ok(keys),
        false => Err(ConnError::Retired),
    };
    // The PROXY header goes first: with the DH message when data can, else right after.
    let header = match pipe.proxy {
        Some(version) => {
            let (client, destination) = accepted.ends().map_err(ConnError::Proxy)?;
            proxy::header(version, &client, &destination)
        }
        None => Vec::new(),
    };
    // Boxed, so that its state (handshake, connects, the read buffer) is freed once it
    // is done: inline, the task of every connection would keep room for it, and twice
    // (rustc keeps a moved-from local beside the future it moved into) for its life.
    let setup = Box::pin(async {
        match pipe.direction {
            Direction::Encrypt => {
                let early = handshake::Early {
                    prefix: &header,
                    source: accepted,
                };
                let target = connect_target(first, cfg).await?;
                let keys = client_handshake(&target.0, offload, hs, Some(early)).await?;
                Ok((target, admit(keys)?))
            }
            Direction::Decrypt if pipe.connect_after_handshake || pipe.routes_by_key() => {
                // The target hears of nobody who has not proved to hold a key; with
                // routing, which target it is depends on that key.
                let keys = handshake::handshake(offload, accepted, hs, None)
                    .await
                    .map_err(handshake_failed)
                    .and_then(admit)?;
                let route = routes.get(keys.key_index).unwrap_or(first);
                Ok((connect_target(route, cfg).await?, keys))
            }
            Direction::Decrypt => {
                // Like spiped: connect to the target while the handshake runs, so a slow
                // target does not add to the handshake's latency. The handshake goes
                // first, so our nonce is out before the connect's system calls; one that
                // fails at once yields before it returns, so that the connect starts
                // anyway, and every client reaches the target (as with spiped) however
                // soon it gives up.
                let (keys, target) = tokio::try_join!(
                    biased;
                    async {
                        let keys = handshake::handshake(offload, accepted, hs, None).await;
                        if keys.is_err() {
                            tokio::task::yield_now().await;
                        }
                        keys.map_err(handshake_failed).and_then(admit)
                    },
                    connect_target(first, cfg),
                )?;
                Ok((target, keys))
            }
        }
    });
    let x25519 = pipe.direction == Direction::Encrypt && pipe.x25519;
    // `_on` counts the session among its target's open ones until it ends.
    let ((other, _on), keys) = within(pipe.timeout, x25519, setup).await?;
    let (plain, encrypted): (&dyn Transport, &dyn Transport) = match pipe.direction {
        Direction::Encrypt => (accepted, &other),
        Direction::Decrypt => (&other, accepted),
    };
    // A block of its own: what the session no longer needs once established (the
    // target's name, the rest of the handshake's result) takes no room in this future,
    // which lives as long as the connection.
    let (sealer, opener) = {
        let mut keys = keys;
        let target = other.peer();
        tracked.established(target.clone(), keys.exchange, keys.key_index, keys.took);
        log.established(target, keys.exchange, keys.key_index);
        let early = keys
            .send_prefix(encrypted, &header)
            .await
            .map_err(|e| ConnError::Broken(PumpError::Write(e)))?;
        traffic.sent.fetch_add(early as u64, Ordering::Relaxed);
        (keys.sealer, keys.opener)
    };
    let piped = pump::run(plain, encrypted, sealer, opener, traffic, offload);
    match pipe.idle_timeout {
        None => piped.await.map_err(ConnError::Broken),
        // Boxed, so that connections without an idle timeout keep no room for its timer.
        Some(idle) => tokio::select! {
            r = piped => r.map_err(ConnError::Broken),
            r = Box::pin(idle_watch(traffic, idle)) => r,
        },
    }
}

/// Connects to the first target of `route` that accepts, as `cfg` says; a target going
/// down or up on the way is logged.
async fn connect_target(
    route: &targets::Shared,
    cfg: &ConnConfig,
) -> Result<(SocketStream, Open), ConnError> {
    let pipe = &cfg.pipe.name;
    targets::connect(route, cfg.dial(), |t| conn_log::target_changed(pipe, &t)).await
}

/// Returns once `traffic` has not moved for `idle`. Looks a few times per period, so a
/// session is closed at most a quarter period late, and costs nothing per packet.
async fn idle_watch(traffic: &Traffic, idle: Duration) -> Result<(), ConnError> {
    let moved = || traffic.sent.load(Ordering::Relaxed) + traffic.received.load(Ordering::Relaxed);
    let tick = idle / 4;
    let (mut last, mut since) = (moved(), Instant::now());
    loop {
        tokio::time::sleep(tick).await;
        let now = moved();
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= idle {
            return Err(ConnError::Idle(idle));
        }
    }
}
