//! The daemon's running pipes, and applying a configuration to them: at start-up, and
//! again on each reload (SIGHUP).
//!
//! Applying is all or nothing, in three steps: every look-up ([`Pipes::look_up`]),
//! then every new source bound ([`Pipes::stage`]), then pipes started, changed and
//! stopped ([`Pipes::start`]), which cannot fail. At start-up the daemon drops its
//! privileges and confines itself between the second and the third step, so that no
//! connection is accepted before; a reload does all three at once ([`Pipes::apply`]).
//! A pipe whose source did not change keeps its listening socket and only gets new
//! settings, for the connections it accepts from then on. A stopped pipe closes its
//! listener; its open connections run on to their end.

mod prepare;

use std::sync::Arc;

use spiped_transports::Listener;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::config::{Config, Direction, PipeConfig};
use crate::daemon::pipe_state::PipeState;
use crate::daemon::{accept, conn_log};
use crate::metrics::{self, Metrics};
use crate::resolve;
use crate::session::offload::Offload;
use crate::targets::{self, Check, Checker};
pub(crate) use prepare::{PipeError, Staged};
use prepare::{Prepared, Socket};
use spiped_proto::handshake::Handshake;
use spiped_proto::key::Key;

/// The pipes being served, and what they share.
pub(crate) struct Pipes {
    running: Vec<Running>,
    /// Sockets passed by systemd and not yet served.
    passed: Vec<Listener>,
    /// Whether the configuration came from the command line, whose source must be
    /// among the sockets systemd passed, if it passed any.
    command_line: bool,
    /// Held by every connection; closed once all have ended (see [`Pipes::drain`]).
    open: (mpsc::Sender<()>, mpsc::Receiver<()>),
    /// What the process counts: each pipe's counters live as long as the pipe.
    metrics: Arc<Metrics>,
    /// The process's off-loop policy, shared by the connections of every pipe.
    offload: Arc<Offload>,
}

/// A pipe being served.
struct Running {
    /// Its configuration, as last applied.
    config: PipeConfig,
    /// Its live settings, open connections and metrics.
    state: Arc<PipeState>,
    /// The accept loop, which owns the listener: dropping it stops accepting.
    accepting: Task,
    /// What keeps its targets current: re-resolution (`-r`) and active checks
    /// (`health-interval`), replaced by each reload.
    upkeep: Vec<Task>,
}

/// A task of a pipe (its accept loop, which owns the listener, or its targets' upkeep),
/// stopped when this is dropped.
struct Task(AbortHandle);

impl Task {
    /// Runs `f` as a task of the event loop until the returned value is dropped.
    fn spawn(f: impl Future<Output = ()> + Send + 'static) -> Task {
        Task(tokio::spawn(f).abort_handle())
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How a configuration changed the running pipes.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Pipes started.
    pub added: usize,
    /// Pipes kept, with their listening socket, under new settings.
    pub kept: usize,
    /// Pipes stopped.
    pub removed: usize,
}

impl Pipes {
    /// No pipes yet; `passed` are the sockets systemd passed; `command_line` says
    /// whether the configuration is a command line's; `metrics` counts for the pipes.
    pub(crate) fn new(passed: Vec<Listener>, command_line: bool, metrics: Arc<Metrics>) -> Pipes {
        Pipes {
            running: Vec::new(),
            passed,
            command_line,
            open: mpsc::channel(1),
            metrics,
            offload: Offload::new(),
        }
    }

    /// Starts computing the spare key pair now, if a pipe has use for one; after the
    /// sandbox, so that the worker thread runs inside it.
    pub(crate) fn prime_keypairs(&self) {
        self.offload.prime();
    }

    /// Makes the running pipes those of `config`, whose key files `keys` holds (in the
    /// order of its pipes and their keys): a reload. On error nothing changed, and the
    /// error says why.
    pub(crate) async fn apply(
        &mut self,
        config: &Config,
        keys: Vec<Vec<Key>>,
    ) -> Result<Changes, PipeError> {
        let found = self.look_up(config, false).await?;
        let staged = self.stage(config, found, keys)?;
        Ok(self.start(staged))
    }

    /// Starts accepting on the pipes `staged` holds, changes the settings of those it
    /// keeps and stops the others; the running pipes are those of its configuration
    /// from now on. `staged` must come from the last [`Pipes::stage`].
    pub(crate) fn start(&mut self, staged: Staged) -> Changes {
        let mut changes = Changes::default();
        let mut old: Vec<Option<Running>> = self.running.drain(..).map(Some).collect();
        for p in staged.0 {
            if Handshake::may_use_group14(p.config.direction.role(), p.settings.conn.pipe.mode()) {
                self.offload.keep_keypairs_ahead();
            }
            let upkeep = self.upkeep(&p);
            let running = match p.socket {
                Socket::Keep(i) => {
                    let mut r = old[i].take().expect("each running pipe is kept once");
                    p.events.reconfigure(
                        p.config.direction,
                        p.config.keys.len(),
                        p.settings.routes.clone(),
                        metrics::settings(&p.config),
                    );
                    r.state.replace(p.settings);
                    r.config = p.config;
                    r.upkeep = upkeep;
                    changes.kept += 1;
                    r
                }
                Socket::New(listener, socket_file, _) => {
                    self.metrics.show(&p.events);
                    let state = PipeState::new(p.settings, p.events);
                    let (pipe, open) = (state.clone(), self.open.0.clone());
                    let offload = self.offload.clone();
                    let accepting = Task::spawn(async move {
                        let _socket_file = socket_file;
                        accept::accept_loop(&listener, pipe, offload, open).await;
                    });
                    changes.added += 1;
                    Running {
                        config: p.config,
                        state,
                        accepting,
                        upkeep,
                    }
                }
            };
            self.running.push(running);
        }
        for gone in old.into_iter().flatten() {
            gone.state.remove();
            self.metrics.hide(&gone.state.events);
            // Stops accepting first: the report's counts are final for new connections.
            drop(gone.accepting);
            gone.state.report("removed");
            changes.removed += 1;
        }
        changes
    }

    /// Gives `p`'s target sets their new targets and settings (a kept target keeps its
    /// health), and starts what keeps them current: a re-resolution of each host name
    /// (`-r`), and with `health-interval` the active checks of each route.
    fn upkeep(&self, p: &Prepared) -> Vec<Task> {
        let mut tasks = Vec::new();
        let pipe = &p.settings.conn.pipe;
        for (set, route, settings) in &p.routes {
            targets::lock(set).reload(route.clone(), *settings);
            for (addr, _) in route.iter().filter(|_| pipe.resolve_interval.is_some()) {
                let (counted, set, addr) = (p.events.clone(), set.clone(), addr.clone());
                let every = pipe.resolve_interval.unwrap_or_default();
                tasks.push(Task::spawn(async move {
                    let found = |list| targets::lock(&set).resolved(&addr, list);
                    resolve::keep_fresh(&addr, every, |ok| counted.looked_up(ok), found).await
                }));
            }
            if settings.health_interval.is_some() {
                let check = match pipe.direction {
                    Direction::Decrypt => Check::Connect,
                    Direction::Encrypt => Check::Handshake {
                        key: p.settings.conn.keys[0].clone(),
                        mode: pipe.mode(),
                    },
                };
                let checker = Checker {
                    check,
                    dial: p.settings.conn.dial(),
                    offload: self.offload.clone(),
                };
                let (set, name) = (set.clone(), pipe.name.clone());
                tasks.push(Task::spawn(async move {
                    checker
                        .run(set, |t| conn_log::target_changed(&name, &t))
                        .await
                }));
            }
        }
        tasks
    }

    /// Stops accepting on every pipe, then waits until every open connection of every
    /// pipe (those of pipes removed earlier included) has ended.
    pub(crate) async fn drain(mut self) {
        let stopped: Vec<_> = self.running.drain(..).map(|r| r.state).collect();
        let (tx, mut rx) = self.open;
        drop(tx);
        let _ = rx.recv().await;
        for state in stopped {
            state.report("stopped");
        }
    }
}
