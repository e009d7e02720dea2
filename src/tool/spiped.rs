//! `spiped`: the daemon. Listens on the source, and for each connection opens the
//! target and pipes between them, encrypting one side.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use spiped_transports::event_loop::block_on;
use spiped_transports::{Address, Endpoint, Listener, SocketFile, StreamOptions};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::cli::spiped::{SpipedOptions, parse};
use crate::conn::ConnConfig;
use crate::daemon::{self, Readiness, RemoveOnDrop};
use crate::proto::handshake::{Handshake, Mode};
use crate::proto::key::Key;
use crate::resolve::{self, Targets};
use crate::{dispatch, keyfile, log, sandbox, systemd};

/// Entry point of `spiped`; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    crate::log::set_program("spiped");
    super::parsed_or_exit(parse(args), |opts| match run(opts) {
        Ok(()) => 0,
        Err(e) => super::fail(&e),
    })
}

fn run(opts: SpipedOptions) -> Result<(), String> {
    // Sockets passed by systemd come first: they are descriptors 3 and up only until
    // this process opens a file of its own.
    let inherited = systemd::inherited_sockets()?;
    // The key is read next: with `-k -` it comes from the caller's standard input.
    let key = keyfile::load(&opts.key_file)?;
    let extra_keys =
        (opts.extra_key_files.iter().map(|f| keyfile::load(f))).collect::<Result<Vec<_>, _>>()?;
    // Forking is only sound while this is the sole thread, so it comes before anything
    // that may start one (the event loop's blocking pool). The parent waits in there
    // until the child reports it is serving or has failed.
    let readiness = match opts.foreground {
        true => None,
        false => Some(daemon::daemonize()?),
    };
    // One event loop, as in spiped: a connection's events are handled on the thread that
    // sees them, with no hand-off between threads (each costs tens of microseconds of
    // latency on a busy machine). The cryptography of bulk batches and Diffie-Hellman
    // runs on the blocking pool (see pump and session), which is what uses other cores.
    // The main task is a task of its own rather than `block_on`'s future, which is
    // polled on every turn of the loop; a task only when something woke it.
    block_on(async move {
        // Installed first, so a SIGTERM during start-up already shuts down cleanly.
        let signals = Stop::install()?;
        let keys = (key, extra_keys);
        match tokio::spawn(serve(opts, keys, inherited, readiness, signals)).await {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    })
    .map_err(super::event_loop_failed)?
}

/// SIGTERM and SIGINT, caught on the event loop: either asks the daemon to stop.
struct Stop {
    term: Signal,
    int: Signal,
}

impl Stop {
    /// Catches both signals from now on.
    fn install() -> Result<Stop, String> {
        let catch = |kind| signal(kind).map_err(|e| format!("cannot install signal handlers: {e}"));
        Ok(Stop {
            term: catch(SignalKind::terminate())?,
            int: catch(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next SIGTERM or SIGINT.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// Everything after forking: pidfile, source, privileges, target, the sandbox, then the
/// accept loop until SIGTERM or SIGINT.
async fn serve(
    opts: SpipedOptions,
    (key, extra_keys): (Key, Vec<Key>),
    inherited: Vec<OwnedFd>,
    mut readiness: Option<Readiness>,
    mut signals: Stop,
) -> Result<(), String> {
    let _pidfile = match readiness {
        Some(_) => Some(daemon::write_pidfile(&opts.pidfile)?),
        None => None,
    };
    if opts.wait_dns {
        // -D: the caller is released before look-ups that may take a long time.
        announce_ready(readiness.take(), opts.syslog)?;
    }
    // Like C, with -D nothing listens before the target resolves. A signal meanwhile
    // (-D may wait for ever) ends the daemon cleanly.
    let resolving = async {
        let source = match &opts.source {
            Some(s) => Some(look_up(s, opts.wait_dns).await?),
            None => None,
        };
        let targets = Targets::new(look_up(&opts.target, opts.wait_dns).await?);
        let bind = match &opts.bind {
            Some(b) => Some(resolve::bind_address(b, look_up(b, opts.wait_dns).await?)?),
            None => None,
        };
        Ok::<_, String>(Some((source, targets, bind)))
    };
    let resolved = tokio::select! {
        biased;
        () = signals.next() => None,
        r = resolving => r?,
    };
    let Some((source, targets, bind)) = resolved else {
        return Ok(());
    };
    let listener = listen(&opts, inherited, source)?;
    let _socket_file = listener
        .unix_file()
        .map(|(path, id)| RemoveOnDrop::socket(path, id));
    if let Some(user) = &opts.user {
        daemon::drop_privileges(user)?;
    }
    let wrote_pidfile = _pidfile.is_some();
    let needs = sandbox_needs(&opts, &targets, bind, &listener, wrote_pidfile);
    let confinement = sandbox::confine(&needs, opts.sandbox)?;
    announce_ready(readiness, opts.syslog)?;
    // After readiness, so that with --syslog the line is in syslog.
    log::info(&format!("sandbox: {confinement}"));
    let mode = Mode {
        fast: opts.fast,
        require_pfs: opts.require_pfs,
        x25519: opts.x25519,
    };
    if Handshake::may_use_group14(opts.direction.role(), mode) {
        crate::session::compute_keypairs_ahead();
    }
    if let Some(every) = opts.resolve_interval {
        let (targets, addr) = (targets.clone(), opts.target.clone());
        tokio::spawn(async move { targets.keep_fresh(&addr, every).await });
    }
    let cfg = Arc::new(ConnConfig {
        direction: opts.direction,
        key,
        extra_keys,
        proxy: opts.proxy,
        connect_after_handshake: opts.connect_after_handshake,
        log_connections: opts.log_connections,
        mode,
        timeout: opts.timeout,
        stream: stream_options(&opts),
        bind,
    });
    // The first signal starts the drain; a second one (as in C) or the drain timeout
    // ends it. The lock hands the signals to `give_up` once `shutdown` has taken the
    // first.
    let stop = Arc::new(tokio::sync::Mutex::new(signals));
    let first = stop.clone();
    let shutdown = async move {
        first.lock().await.next().await;
        notify_systemd("STOPPING=1");
    };
    let drain_timeout = opts.drain_timeout;
    let give_up = async move {
        let again = async { stop.lock().await.next().await };
        match drain_timeout {
            Some(t) => {
                let _ = tokio::time::timeout(t, again).await;
            }
            None => again.await,
        }
    };
    let limit = opts.max_connections;
    dispatch::serve(listener, cfg, targets, limit, shutdown, give_up).await;
    Ok(())
}

/// What the daemon still needs once serving, for the sandbox: the key files, the UNIX
/// sockets, the pidfile, the TCP ports, and DNS when `-r` re-resolves a host name.
fn sandbox_needs(
    opts: &SpipedOptions,
    targets: &Targets,
    bind: Option<SocketAddr>,
    listener: &Listener,
    wrote_pidfile: bool,
) -> sandbox::Needs {
    let key_files = std::iter::once(&opts.key_file).chain(&opts.extra_key_files);
    let (mut unix_targets, mut connect_ports) = (Vec::new(), Vec::new());
    for ep in targets.current().iter() {
        match ep {
            Endpoint::Unix(p) => unix_targets.push(p.clone()),
            Endpoint::Tcp(a) => connect_ports.push(a.port()),
        }
    }
    let source_port = match listener.endpoint() {
        Endpoint::Tcp(a) => Some(a.port()),
        Endpoint::Unix(_) => None,
    };
    sandbox::Needs {
        read_files: key_files.filter(|k| *k != "-").map(PathBuf::from).collect(),
        unix_targets,
        unix_sources: listener
            .unix_file()
            .map(|(p, _)| p.to_owned())
            .into_iter()
            .collect(),
        pidfile: wrote_pidfile.then(|| opts.pidfile.clone()),
        bind_ports: source_port
            .into_iter()
            .chain(bind.map(|b| b.port()))
            .collect(),
        connect_ports,
        // A command line's pipe keeps its ports for life.
        any_tcp_port: false,
        dns: matches!(opts.target, Address::Name { .. }) && opts.resolve_interval.is_some(),
        syslog: opts.syslog,
    }
}

/// The socket options of every connection, both accepted and opened (`-j`).
fn stream_options(opts: &SpipedOptions) -> StreamOptions {
    StreamOptions {
        keepalive: opts.keepalive,
    }
}

/// Resolves `addr`, retrying until it works when `patient` (`-D`).
async fn look_up(addr: &Address, patient: bool) -> Result<Vec<Endpoint>, String> {
    match patient {
        true => Ok(resolve::resolve_patiently(addr).await),
        false => resolve::resolve(addr).await,
    }
}

/// Releases the waiting parent (when daemonized) and, with `--syslog`, sends warnings to
/// syslog from now on; errors before this point reached the caller's terminal.
fn announce_ready(readiness: Option<Readiness>, syslog: bool) -> Result<(), String> {
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
fn notify_systemd(state: &str) {
    if let Err(e) = systemd::notify(state) {
        log::warn(&format!("cannot notify systemd ({state}): {e}"));
    }
}

/// The socket to serve: the one systemd passed (named by `-s`, or the only one), or else
/// `-s` (resolved to `source`) bound here, its file given `--socket-mode` and
/// `--socket-owner`.
fn listen(
    opts: &SpipedOptions,
    inherited: Vec<OwnedFd>,
    source: Option<Vec<Endpoint>>,
) -> Result<Listener, String> {
    if let Some(l) = systemd::choose(inherited, source.as_deref())? {
        return Ok(l);
    }
    let (Some(addr), Some(source)) = (&opts.source, source) else {
        return Err("no -s/--source given, and systemd passed no socket (LISTEN_FDS)".to_owned());
    };
    let ep = source
        .into_iter()
        .next()
        .ok_or_else(|| format!("cannot resolve {addr}: no addresses found"))?;
    let (uid, gid) = match &opts.socket_owner {
        Some(spec) => daemon::socket_owner(spec)?,
        None => (None, None),
    };
    let file = SocketFile {
        mode: opts.socket_mode,
        uid,
        gid,
    };
    Listener::bind_with(&ep, file, stream_options(opts)).map_err(|e| {
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
    })
}
