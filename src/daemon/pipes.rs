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

use std::sync::Arc;

use spiped_transports::{Address, Endpoint, Listener, SocketFile};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::config::{Config, PipeConfig};
use crate::daemon::accept;
use crate::daemon::conn_settings::ConnConfig;
use crate::daemon::pipe::{PipeState, Settings};
use crate::metrics::{self, Metrics, PipeMetrics};
use crate::process::daemonize::{self, RemoveOnDrop};
use crate::process::systemd;
use crate::resolve::{self, Targets};
use crate::session::offload::Offload;
use spiped_proto::handshake::Handshake;
use spiped_proto::key::Key;

/// The pipes being served, and what they share.
pub struct Pipes {
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
    accepting: Accepting,
}

/// A pipe's accept loop, stopped (and its listener closed) when this is dropped.
struct Accepting(AbortHandle);

impl Drop for Accepting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How a configuration changed the running pipes.
#[derive(Debug, Default)]
pub struct Changes {
    /// Pipes started.
    pub added: usize,
    /// Pipes kept, with their listening socket, under new settings.
    pub kept: usize,
    /// Pipes stopped.
    pub removed: usize,
}

/// The listening socket of a pipe being prepared.
enum Socket {
    /// The running pipe at this index has the same source: its socket is kept.
    Keep(usize),
    /// A socket of its own: bound here (with its file, for a UNIX socket), or passed
    /// by systemd.
    New(Listener, Option<RemoveOnDrop>, Passed),
}

/// Whether a listener is one that systemd passed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Passed {
    Yes,
    No,
}

/// What the look-ups of a configuration found, pipe by pipe (see [`Pipes::look_up`]).
pub struct LookedUp(Vec<Found>);

/// What the look-ups of one pipe found.
struct Found {
    /// The target addresses, one list per route.
    routes: Vec<Targets>,
    /// The target addresses to re-resolve, and how often.
    refresh: Vec<(Targets, Address, std::time::Duration)>,
    /// The local address of outgoing connections (`bind`).
    bind: Option<std::net::SocketAddr>,
    /// The source's addresses: `None` when the pipe keeps a running pipe's socket, or
    /// has no source (systemd passes it).
    source: Option<Vec<Endpoint>>,
}

/// A configuration whose sources are bound, ready to run (see [`Pipes::start`]).
pub struct Staged(Vec<Prepared>);

/// A pipe of the configuration being applied, ready to run.
struct Prepared {
    config: PipeConfig,
    settings: Settings,
    /// Where its events are counted: a running pipe's, when it keeps its socket.
    events: Arc<PipeMetrics>,
    /// Where it listens.
    socket: Socket,
    /// The target addresses to re-resolve, and how often.
    refresh: Vec<(Targets, Address, std::time::Duration)>,
}

impl Pipes {
    /// No pipes yet; `passed` are the sockets systemd passed; `command_line` says
    /// whether the configuration is a command line's; `metrics` counts for the pipes.
    pub fn new(passed: Vec<Listener>, command_line: bool, metrics: Arc<Metrics>) -> Pipes {
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
    pub fn prime_keypairs(&self) {
        self.offload.prime();
    }

    /// Makes the running pipes those of `config`, whose key files `keys` holds (in the
    /// order of its pipes and their keys): a reload. On error nothing changed, and the
    /// error says why, one line.
    pub async fn apply(&mut self, config: &Config, keys: Vec<Vec<Key>>) -> Result<Changes, String> {
        let found = self.look_up(config, false).await?;
        let staged = self.stage(config, found, keys)?;
        Ok(self.start(staged))
    }

    /// Resolves every address `config` names that [`Pipes::stage`] needs: targets,
    /// `bind`, and the sources of pipes that do not keep a running socket. Retries
    /// until each works when `wait_dns` (`-D`). Binds nothing.
    pub async fn look_up(&self, config: &Config, wait_dns: bool) -> Result<LookedUp, String> {
        let mut found = Vec::new();
        for pipe in &config.pipes {
            let f = self.look_up_pipe(pipe, wait_dns).await;
            found.push(f.map_err(|e| self.about(pipe, e))?);
        }
        Ok(LookedUp(found))
    }

    /// Binds the new sources of `config` (or takes them from systemd's), whose
    /// addresses `found` holds, and prepares each pipe's settings; accepts nothing yet.
    /// On error nothing is bound, and the error says why, one line.
    pub fn stage(
        &mut self,
        config: &Config,
        found: LookedUp,
        keys: Vec<Vec<Key>>,
    ) -> Result<Staged, String> {
        let mut prepared = Vec::new();
        for ((pipe, found), keys) in config.pipes.iter().zip(found.0).zip(keys) {
            match self.prepare(pipe, found, keys) {
                Ok(p) => prepared.push(p),
                Err(e) => {
                    // The sockets systemd passed go back for the next attempt.
                    for p in prepared {
                        if let Socket::New(l, _, Passed::Yes) = p.socket {
                            self.passed.push(l);
                        }
                    }
                    return Err(self.about(pipe, e));
                }
            }
        }
        Ok(Staged(prepared))
    }

    /// `e` about `pipe`, named unless it is a command line's one pipe (whose errors
    /// read as C's).
    fn about(&self, pipe: &PipeConfig, e: String) -> String {
        match self.command_line {
            true => e,
            false => format!("pipe {}: {e}", pipe.name),
        }
    }

    /// Starts accepting on the pipes `staged` holds, changes the settings of those it
    /// keeps and stops the others; the running pipes are those of its configuration
    /// from now on. `staged` must come from the last [`Pipes::stage`].
    pub fn start(&mut self, staged: Staged) -> Changes {
        let mut changes = Changes::default();
        let mut old: Vec<Option<Running>> = self.running.drain(..).map(Some).collect();
        for p in staged.0 {
            if Handshake::may_use_group14(p.config.direction.role(), p.settings.conn.pipe.mode()) {
                self.offload.keep_keypairs_ahead();
            }
            for (targets, addr, every) in p.refresh {
                let counted = p.events.clone();
                tokio::spawn(async move {
                    targets
                        .keep_fresh(&addr, every, move |ok| counted.looked_up(ok))
                        .await
                });
            }
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
                    changes.kept += 1;
                    r
                }
                Socket::New(listener, socket_file, _) => {
                    self.metrics.show(&p.events);
                    let state = PipeState::new(p.settings, p.events);
                    let (pipe, open) = (state.clone(), self.open.0.clone());
                    let offload = self.offload.clone();
                    let accepting = tokio::spawn(async move {
                        let _socket_file = socket_file;
                        accept::accept_loop(&listener, pipe, offload, open).await;
                    });
                    let accepting = Accepting(accepting.abort_handle());
                    changes.added += 1;
                    Running {
                        config: p.config,
                        state,
                        accepting,
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

    /// The look-ups of one pipe (see [`Pipes::look_up`]).
    async fn look_up_pipe(&self, pipe: &PipeConfig, wait_dns: bool) -> Result<Found, String> {
        let mut refresh = Vec::new();
        let mut routes = Vec::new();
        let routed = pipe.routes_by_key();
        for k in &pipe.keys[..if routed { pipe.keys.len() } else { 1 }] {
            let targets = Targets::new(look_up(&k.target, wait_dns).await?);
            if let Some(every) = pipe.resolve_interval {
                refresh.push((targets.clone(), k.target.clone(), every));
            }
            routes.push(targets);
        }
        let bind = match &pipe.bind {
            Some(b) => Some(
                resolve::bind_address(b, look_up(b, wait_dns).await?).map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let source = match (&pipe.source, self.kept(pipe)) {
            (Some(s), None) => Some(look_up(s, wait_dns).await?),
            _ => None,
        };
        Ok(Found {
            routes,
            refresh,
            bind,
            source,
        })
    }

    /// The running pipe with the same source as `pipe`, whose socket it keeps.
    fn kept(&self, pipe: &PipeConfig) -> Option<usize> {
        self.running
            .iter()
            .position(|r| r.config.source == pipe.source)
    }

    /// Everything a pipe needs to start (or to take over a running pipe's socket).
    fn prepare(
        &mut self,
        pipe: &PipeConfig,
        found: Found,
        keys: Vec<Key>,
    ) -> Result<Prepared, String> {
        let Found {
            routes,
            refresh,
            bind,
            source,
        } = found;
        // Like C, with -D nothing listens before every address resolves.
        let kept = self.kept(pipe);
        let socket = match kept {
            Some(i) => Socket::Keep(i),
            None => self.listen(pipe, source)?,
        };
        if keys.is_empty() {
            return Err("no key file".to_owned());
        }
        // Counted from the first look-up on; listed once the pipe serves (see apply).
        let events = match kept {
            Some(i) => self.running[i].state.events.clone(),
            None => self.metrics.pipe(
                pipe.name.clone(),
                pipe.direction,
                pipe.keys.len(),
                routes.clone(),
                metrics::settings(pipe),
            ),
        };
        for k in &pipe.keys[..routes.len()] {
            if matches!(k.target, Address::Name { .. }) {
                events.looked_up(true);
            }
        }
        let conn = ConnConfig {
            pipe: Arc::new(pipe.clone()),
            // As loaded: taking the first out would shift the others down and leave a
            // copy of the last behind the vector's end, where no drop wipes it.
            keys,
            bind,
            label: (!self.command_line).then(|| pipe.name.clone()),
        };
        Ok(Prepared {
            config: pipe.clone(),
            settings: Settings {
                conn: Arc::new(conn),
                routes,
            },
            events,
            socket,
            refresh,
        })
    }

    /// The socket to serve `pipe` on: one systemd passed, or its source bound here,
    /// a UNIX socket's file given `socket-mode` and `socket-owner` (and removed when
    /// the pipe stops). `source` holds its source's addresses (none without a source).
    fn listen(
        &mut self,
        pipe: &PipeConfig,
        source: Option<Vec<Endpoint>>,
    ) -> Result<Socket, String> {
        let taken = systemd::take(&mut self.passed, source.as_deref(), self.command_line);
        if let Some(l) = taken.map_err(|e| e.to_string())? {
            return Ok(Socket::New(l, None, Passed::Yes));
        }
        let (Some(addr), Some(source)) = (&pipe.source, source) else {
            return Err(
                "no -s/--source given, and systemd passed no socket (LISTEN_FDS)".to_owned(),
            );
        };
        let ep = resolve::first(addr, "-s/--source", source)
            .ok_or_else(|| format!("cannot resolve {addr}: no addresses found"))?;
        let (uid, gid) = match &pipe.socket_owner {
            Some(spec) => daemonize::socket_owner(spec).map_err(|e| e.to_string())?,
            None => (None, None),
        };
        let file = SocketFile {
            mode: pipe.socket_mode,
            uid,
            gid,
        };
        let listener = Listener::bind_with(&ep, file, pipe.stream()).map_err(|e| {
            let unix_in_use =
                e.kind() == std::io::ErrorKind::AddrInUse && matches!(ep, Endpoint::Unix(_));
            let why = match unix_in_use {
                true => {
                    " (a process listens there, or the path is not a socket; only a stale \
                     socket file is replaced)"
                }
                false => "",
            };
            format!(
                "cannot listen on {addr}: {}{why}",
                crate::errors::describe(&e)
            )
        })?;
        let file = listener
            .unix_file()
            .map(|(path, id)| RemoveOnDrop::socket(path, id));
        Ok(Socket::New(listener, file, Passed::No))
    }

    /// Stops accepting on every pipe, then waits until every open connection of every
    /// pipe (those of pipes removed earlier included) has ended.
    pub async fn drain(mut self) {
        let stopped: Vec<_> = self.running.drain(..).map(|r| r.state).collect();
        let (tx, mut rx) = self.open;
        drop(tx);
        let _ = rx.recv().await;
        for state in stopped {
            state.report("stopped");
        }
    }
}

/// Resolves `addr`, retrying until it works when `wait_dns` (`-D`).
async fn look_up(addr: &Address, wait_dns: bool) -> Result<Vec<Endpoint>, String> {
    (resolve::resolve_or_wait(addr, wait_dns).await).map_err(|e| e.to_string())
}
