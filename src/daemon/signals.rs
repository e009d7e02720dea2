//! The signals the daemon acts on: SIGTERM and SIGINT stop it, SIGHUP reloads it,
//! SIGUSR1 logs its open connections.

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::metrics::Metrics;

/// The signals the daemon acts on, caught on the event loop.
pub(super) struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    usr1: Signal,
}

/// What a signal asks of the daemon.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Request {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP.
    Reload,
}

impl Signals {
    /// Catches SIGTERM, SIGINT, SIGHUP and SIGUSR1 from now on.
    pub(super) fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
        })
    }

    /// Waits for the next stop or reload; logs the open connections of `metrics` at
    /// each SIGUSR1 meanwhile.
    pub(super) async fn next(&mut self, metrics: &Metrics) -> Request {
        loop {
            tokio::select! {
                _ = self.term.recv() => return Request::Stop,
                _ = self.int.recv() => return Request::Stop,
                _ = self.hup.recv() => return Request::Reload,
                _ = self.usr1.recv() => metrics.log_status(),
            }
        }
    }
}
