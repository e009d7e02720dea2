//! The daemon at work: from start-up (pidfile, look-ups, sockets, privileges,
//! sandbox) through serving to the drain at exit.

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use spiped_proto::key::Key;
use spiped_transports::{Address, Endpoint};

use super::pipes::{PipeError, Pipes};
use super::signals::{Request, Signals};
use super::source::Source;
use crate::config::Config;
use crate::config::keys::KeyLoader;
use crate::log;
use crate::metrics::{self, Metrics};
use crate::process::daemonize::{self, DaemonError, Readiness, RemoveOnDrop};
use crate::process::systemd::{self, SystemdError};
use crate::resolve::ResolveError;
use crate::sandbox::{self, NotEnforced};

/// What the daemon starts with: read and checked before the event loop runs, and
/// before forking.
pub(crate) struct Start {
    /// Where the configuration comes from (what a reload reads again).
    pub source: Source,
    /// The configuration, as read.
    pub config: Config,
    /// What read the key files, and reads them again at a reload.
    pub loader: KeyLoader,
    /// The keys of `config`'s pipes, in the order of its pipes and their keys.
    pub keys: Vec<Vec<Key>>,
    /// The parent to release once serving, when daemonized.
    pub readiness: Option<Readiness>,
    /// The sockets systemd passed, taken before any file of ours was opened.
    pub inherited: Vec<OwnedFd>,
}

/// Why the daemon could not start.
#[derive(Debug)]
pub(crate) enum StartError {
    /// The signal handlers could not be installed.
    Signals(io::Error),
    /// The sockets systemd passed cannot serve.
    Systemd(SystemdError),
    /// Becoming a daemon failed: the pidfile, `-u`, or telling the parent.
    Process(DaemonError),
    /// A pipe could not be made ready.
    Pipe(PipeError),
    /// The metrics endpoint's address did not resolve.
    MetricsAddress(ResolveError),
    /// The metrics endpoint's address resolved to nothing.
    MetricsUnresolved(Address),
    /// The metrics endpoint could not listen.
    Metrics(metrics::BindError),
    /// `--sandbox strict`, and a layer could not be put in force.
    Sandbox(NotEnforced),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
            StartError::Systemd(e) => write!(f, "{e}"),
            StartError::Process(e) => write!(f, "{e}"),
            StartError::Pipe(e) => write!(f, "{e}"),
            StartError::MetricsAddress(e) => write!(f, "{e}"),
            StartError::MetricsUnresolved(addr) => {
                write!(f, "cannot resolve {addr} (--metrics): no addresses found")
            }
            StartError::Metrics(e) => write!(f, "{e}"),
            StartError::Sandbox(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Signals(e) => Some(e),
            StartError::Systemd(e) => Some(e),
            StartError::Process(e) => Some(e),
            StartError::Pipe(e) => Some(e),
            StartError::MetricsAddress(e) => Some(e),
            StartError::MetricsUnresolved(_) => None,
            StartError::Metrics(e) => Some(e),
            StartError::Sandbox(e) => Some(e),
        }
    }
}

impl From<DaemonError> for StartError {
    fn from(e: DaemonError) -> StartError {
        StartError::Process(e)
    }
}

impl From<PipeError> for StartError {
    fn from(e: PipeError) -> StartError {
        StartError::Pipe(e)
    }
}

/// Runs the daemon on the event loop this is called in: pidfile, look-ups, sockets,
/// privileges, sandbox, then serving until SIGTERM or SIGINT, reloading on SIGHUP.
/// Returns the error that stopped it starting.
pub(crate) async fn run(start: Start) -> Result<(), StartError> {
    // Installed first, so a SIGTERM during start-up already shuts down cleanly, and
    // a SIGHUP does not kill a daemon that is still starting.
    let signals = Signals::install().map_err(StartError::Signals)?;
    // Sockets belong to the event loop they are registered with: made inside.
    let passed = systemd::listeners(start.inherited).map_err(StartError::Systemd)?;
    let command_line = matches!(start.source, Source::CommandLine(_));
    let metrics = Arc::new(Metrics::new());
    let daemon = Daemon {
        source: start.source,
        loader: start.loader,
        pipes: Pipes::new(passed, command_line, metrics.clone()),
        config: start.config,
        metrics,
    };
    daemon.serve(start.keys, start.readiness, signals).await
}

/// The running daemon: where its configuration comes from, the one applied, and the
/// pipes serving it.
pub(super) struct Daemon {
    pub(super) source: Source,
    pub(super) loader: KeyLoader,
    pub(super) pipes: Pipes,
    pub(super) config: Config,
    /// What the process counts, served with `--metrics`.
    pub(super) metrics: Arc<Metrics>,
}

impl Daemon {
    /// Everything after forking: pidfile, look-ups, sockets, privileges, sandbox, then
    /// serving until SIGTERM or SIGINT, reloading on SIGHUP.
    ///
    /// Nothing is accepted, and no thread but this one runs, before the process is
    /// confined: capabilities and a Landlock domain below ABI 8 hold for the thread that
    /// set them and those it starts later, not for threads already running.
    async fn serve(
        mut self,
        keys: Vec<Vec<Key>>,
        mut readiness: Option<Readiness>,
        mut signals: Signals,
    ) -> Result<(), StartError> {
        let process = self.config.process.clone();
        let metrics = self.metrics.clone();
        let _pidfile = match readiness {
            Some(_) => Some(daemonize::write_pidfile(&process.pidfile)?),
            None => None,
        };
        if process.wait_dns {
            // -D: the caller is released before look-ups that may take a long time.
            announce_ready(readiness.take(), process.syslog)?;
        }
        // Like C, with -D nothing listens before every address resolves. A signal
        // meanwhile (-D may wait for ever) ends the daemon cleanly.
        let config = self.config.clone();
        let pipes = &self.pipes;
        let looking_up = async {
            let found = pipes.look_up(&config, process.wait_dns).await?;
            let endpoint = match &process.metrics {
                Some(addr) => Some(look_up_metrics(addr, process.wait_dns).await?),
                None => None,
            };
            Ok::<_, StartError>((found, endpoint))
        };
        // SIGHUP cannot reload what is not serving yet; said, since a reload the operator
        // asked for is not done (the configuration read at start is served).
        let stopped = async {
            while signals.next(&metrics).await == Request::Reload {
                log::warn(
                    "SIGHUP ignored: not serving yet (waiting for every address to resolve, \
                     -D); send it again once serving",
                );
            }
        };
        let (found, endpoint) = tokio::select! {
            biased;
            () = stopped => return Ok(()),
            r = looking_up => r?,
        };
        // Bound before privileges are dropped, as the sources are.
        let staged = self.pipes.stage(&config, found, keys)?;
        let endpoint = match (&process.metrics, endpoint) {
            (Some(addr), Some(ep)) => Some(metrics::bind(addr, &ep).map_err(StartError::Metrics)?),
            _ => None,
        };
        let _metrics_file = endpoint
            .as_ref()
            .and_then(|e| e.unix_file())
            .map(|(path, id)| RemoveOnDrop::socket(path, id));
        if let Some(user) = &process.user {
            daemonize::drop_privileges(user)?;
            self.loader.running_as(user);
        }
        let needs = self.source.sandbox_needs(&self.config);
        let confinement = sandbox::confine(&needs, process.sandbox).map_err(StartError::Sandbox)?;
        // Accepting, and worker threads, start from here on, inside the sandbox.
        self.pipes.start(staged);
        self.pipes.prime_keypairs();
        if let Some(endpoint) = endpoint {
            tokio::spawn(endpoint.serve(metrics.clone()));
        }
        announce_ready(readiness, process.syslog)?;
        // After readiness, so that with --syslog the line is in syslog.
        confinement
            .log_startup(process.syslog || self.config.pipes.iter().any(|p| p.log_connections));
        if let Some(every) = systemd::watchdog_interval() {
            // On the event loop, so that a loop that stops turning stops the pings too.
            tokio::spawn(async move {
                loop {
                    notify_systemd("WATCHDOG=1");
                    tokio::time::sleep(every).await;
                }
            });
        }
        while signals.next(&metrics).await == Request::Reload {
            self.reload().await;
        }
        // The first SIGTERM or SIGINT starts the drain of every pipe at once; a second
        // one (as in C) or the drain timeout ends it, closing what is still open.
        notify_systemd("STOPPING=1");
        let again = async {
            while signals.next(&metrics).await == Request::Reload {
                log::warn("SIGHUP ignored: draining connections before exiting");
            }
        };
        let give_up = async {
            match self.config.process.drain_timeout {
                Some(t) => drop(tokio::time::timeout(t, again).await),
                None => again.await,
            }
        };
        tokio::select! {
            biased;
            () = give_up => {}
            () = self.pipes.drain() => {}
        }
        Ok(())
    }
}

/// Where to bind the metrics endpoint: `addr` resolved (retried until it resolves with `-D`).
async fn look_up_metrics(addr: &Address, wait_dns: bool) -> Result<Endpoint, StartError> {
    let found = (crate::resolve::resolve_or_wait(addr, wait_dns).await)
        .map_err(StartError::MetricsAddress)?;
    (found.into_iter().next()).ok_or_else(|| StartError::MetricsUnresolved(addr.clone()))
}

/// Releases the waiting parent (when daemonized) and, with `--syslog`, sends warnings to
/// syslog from now on; errors before this point reached the caller's terminal.
pub(super) fn announce_ready(
    readiness: Option<Readiness>,
    syslog: bool,
) -> Result<(), DaemonError> {
    if let Some(r) = readiness {
        r.ready(syslog)?;
    }
    if syslog {
        log::use_syslog();
    }
    notify_systemd("READY=1");
    Ok(())
}

/// Tells systemd about our state when it asked to be told (see [`systemd::notify`]).
pub(super) fn notify_systemd(state: &str) {
    if let Err(e) = systemd::notify(state) {
        log::warn(&format!("cannot notify systemd ({state}): {e}"));
    }
}
