//! Getting a configuration ready to run: looking up the addresses it names, binding
//! its new sources (or taking systemd's), and preparing each pipe's settings; the
//! first two steps of applying it (see [`super::Pipes`]).

use std::fmt;
use std::io;
use std::sync::Arc;

use spiped_transports::{Address, Endpoint, Listener, SocketFile};

use super::Pipes;
use crate::config::{Config, PipeConfig};
use crate::daemon::conn_settings::ConnConfig;
use crate::daemon::pipe_state::Settings;
use crate::metrics::{self, PipeMetrics};
use crate::process::account::AccountError;
use crate::process::daemonize::{self, RemoveOnDrop};
use crate::process::systemd::{self, SystemdError};
use crate::resolve::{self, ResolveError};
use crate::targets::{self, TargetSet};
use spiped_proto::key::Key;

/// Why a configuration could not be made ready: which pipe, and what went wrong.
#[derive(Debug)]
pub(crate) struct PipeError {
    /// The pipe's name; `None` for a command line's one pipe, whose errors read as C's.
    pipe: Option<String>,
    /// What went wrong.
    problem: Problem,
}

/// What went wrong making a pipe ready.
#[derive(Debug)]
pub(crate) enum Problem {
    /// An address (target, `bind` or source) did not resolve.
    Resolve(ResolveError),
    /// The sockets systemd passed do not fit the pipe.
    Systemd(SystemdError),
    /// There is no source to listen on.
    NoSource,
    /// The source resolved to no address it can listen on.
    NoAddress(Address),
    /// `socket-owner` names no account.
    SocketOwner(AccountError),
    /// The source could not be bound.
    Listen {
        /// The source as given.
        addr: Address,
        /// Why.
        error: io::Error,
        /// Whether it is a UNIX socket, whose path may be in use.
        unix: bool,
    },
    /// The pipe has no key.
    NoKey,
}

impl fmt::Display for PipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.pipe {
            write!(f, "pipe {name}: ")?;
        }
        write!(f, "{}", self.problem)
    }
}

impl std::error::Error for PipeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.problem.source()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Resolve(e) => write!(f, "{e}"),
            Problem::Systemd(e) => write!(f, "{e}"),
            Problem::NoSource => {
                f.write_str("no -s/--source given, and systemd passed no socket (LISTEN_FDS)")
            }
            Problem::NoAddress(addr) => write!(f, "cannot resolve {addr}: no addresses found"),
            Problem::SocketOwner(e) => write!(f, "{e}"),
            Problem::Listen { addr, error, unix } => {
                let in_use = *unix && error.kind() == io::ErrorKind::AddrInUse;
                let why = match in_use {
                    true => {
                        " (a process listens there, or the path is not a socket; only a stale \
                         socket file is replaced)"
                    }
                    false => "",
                };
                write!(
                    f,
                    "cannot listen on {addr}: {}{why}",
                    crate::errors::describe(error)
                )
            }
            Problem::NoKey => f.write_str("no key file"),
        }
    }
}

impl std::error::Error for Problem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Problem::Resolve(e) => Some(e),
            Problem::Systemd(e) => Some(e),
            Problem::SocketOwner(e) => Some(e),
            Problem::Listen { error, .. } => Some(error),
            Problem::NoSource | Problem::NoAddress(_) | Problem::NoKey => None,
        }
    }
}

impl From<ResolveError> for Problem {
    fn from(e: ResolveError) -> Problem {
        Problem::Resolve(e)
    }
}

/// The listening socket of a pipe being prepared.
pub(super) enum Socket {
    /// The running pipe at this index has the same source: its socket is kept.
    Keep(usize),
    /// A socket of its own: bound here (with its file, for a UNIX socket), or passed
    /// by systemd.
    New(Listener, Option<RemoveOnDrop>, Passed),
}

/// Whether a listener is one that systemd passed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Passed {
    Yes,
    No,
}

/// What the look-ups of a configuration found, pipe by pipe (see [`Pipes::look_up`]).
pub(crate) struct LookedUp(Vec<Found>);

/// What the look-ups of one pipe found.
struct Found {
    /// The targets of each route, each with the addresses it resolves to.
    routes: Vec<Route>,
    /// The local address of outgoing connections (`bind`).
    bind: Option<std::net::SocketAddr>,
    /// The source's addresses: `None` when the pipe keeps a running pipe's socket, or
    /// has no source (systemd passes it).
    source: Option<Vec<Endpoint>>,
}

/// A configuration whose sources are bound, ready to run (see [`Pipes::start`]).
pub(crate) struct Staged(pub(super) Vec<Prepared>);

/// A pipe of the configuration being applied, ready to run.
pub(super) struct Prepared {
    pub(super) config: PipeConfig,
    pub(super) settings: Settings,
    /// Where its events are counted: a running pipe's, when it keeps its socket.
    pub(super) events: Arc<PipeMetrics>,
    /// Where it listens.
    pub(super) socket: Socket,
    /// Each route's target set with what it becomes: a running pipe's sets, kept
    /// with their health, take their new targets and settings when the pipe starts.
    pub(super) routes: Vec<(targets::Shared, Route, targets::Settings)>,
}

/// One route's targets as configured, each with the endpoints it resolves to.
pub(super) type Route = Vec<(Address, Vec<Endpoint>)>;

impl Pipes {
    /// Resolves every address `config` names that [`Pipes::stage`] needs: targets,
    /// `bind`, and the sources of pipes that do not keep a running socket. Retries
    /// until each works when `wait_dns` (`-D`). Binds nothing.
    pub(crate) async fn look_up(
        &self,
        config: &Config,
        wait_dns: bool,
    ) -> Result<LookedUp, PipeError> {
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
    pub(crate) fn stage(
        &mut self,
        config: &Config,
        found: LookedUp,
        keys: Vec<Vec<Key>>,
    ) -> Result<Staged, PipeError> {
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
    fn about(&self, pipe: &PipeConfig, problem: Problem) -> PipeError {
        PipeError {
            pipe: (!self.command_line).then(|| pipe.name.clone()),
            problem,
        }
    }

    /// The look-ups of one pipe (see [`Pipes::look_up`]).
    async fn look_up_pipe(&self, pipe: &PipeConfig, wait_dns: bool) -> Result<Found, Problem> {
        let mut routes = Vec::new();
        let routed = pipe.routes_by_key();
        for k in &pipe.keys[..if routed { pipe.keys.len() } else { 1 }] {
            let mut route = Vec::new();
            for target in &k.targets {
                route.push((target.clone(), look_up(target, wait_dns).await?));
            }
            routes.push(route);
        }
        let bind = match &pipe.bind {
            Some(b) => Some(resolve::bind_address(b, look_up(b, wait_dns).await?)?),
            None => None,
        };
        let source = match (&pipe.source, self.kept(pipe)) {
            (Some(s), None) => Some(look_up(s, wait_dns).await?),
            _ => None,
        };
        Ok(Found {
            routes,
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
    ) -> Result<Prepared, Problem> {
        let Found {
            routes,
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
            return Err(Problem::NoKey);
        }
        // A kept pipe keeps its routes' target sets (their health), route by route;
        // they change when it starts, since staging may yet fail.
        let old = kept.map(|i| self.running[i].state.settings());
        let routes: Vec<_> = (routes.into_iter().enumerate())
            .map(|(i, route)| {
                let settings = pipe.target_settings(route.len() > 1);
                let set = match old.as_ref().and_then(|o| o.routes.get(i)) {
                    Some(set) => set.clone(),
                    None => Arc::new(std::sync::Mutex::new(TargetSet::new(
                        route.clone(),
                        settings,
                    ))),
                };
                (set, route, settings)
            })
            .collect();
        let sets: Vec<_> = routes.iter().map(|(set, ..)| set.clone()).collect();
        // Counted from the first look-up on; listed once the pipe serves (see apply).
        let events = match kept {
            Some(i) => self.running[i].state.events.clone(),
            None => self.metrics.pipe(
                pipe.name.clone(),
                pipe.direction,
                pipe.keys.len(),
                sets.clone(),
                metrics::settings(pipe),
            ),
        };
        for (_, route, _) in &routes {
            for (target, _) in route {
                if matches!(target, Address::Name { .. }) {
                    events.looked_up(true);
                }
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
                routes: sets,
            },
            events,
            socket,
            routes,
        })
    }

    /// The socket to serve `pipe` on: one systemd passed, or its source bound here,
    /// a UNIX socket's file given `socket-mode` and `socket-owner` (and removed when
    /// the pipe stops). `source` holds its source's addresses (none without a source).
    fn listen(
        &mut self,
        pipe: &PipeConfig,
        source: Option<Vec<Endpoint>>,
    ) -> Result<Socket, Problem> {
        let taken = systemd::take(&mut self.passed, source.as_deref(), self.command_line);
        if let Some(l) = taken.map_err(Problem::Systemd)? {
            return Ok(Socket::New(l, None, Passed::Yes));
        }
        let (Some(addr), Some(source)) = (&pipe.source, source) else {
            return Err(Problem::NoSource);
        };
        let ep = resolve::first(addr, "-s/--source", source)
            .ok_or_else(|| Problem::NoAddress(addr.clone()))?;
        let (uid, gid) = match &pipe.socket_owner {
            Some(spec) => daemonize::socket_owner(spec).map_err(Problem::SocketOwner)?,
            None => (None, None),
        };
        let file = SocketFile {
            mode: pipe.socket_mode,
            uid,
            gid,
        };
        let listener =
            Listener::bind_with(&ep, file, pipe.stream()).map_err(|error| Problem::Listen {
                addr: addr.clone(),
                error,
                unix: matches!(ep, Endpoint::Unix(_)),
            })?;
        let file = listener
            .unix_file()
            .map(|(path, id)| RemoveOnDrop::socket(path, id));
        Ok(Socket::New(listener, file, Passed::No))
    }
}

/// Resolves `addr`, retrying until it works when `wait_dns` (`-D`).
async fn look_up(addr: &Address, wait_dns: bool) -> Result<Vec<Endpoint>, ResolveError> {
    resolve::resolve_or_wait(addr, wait_dns).await
}
