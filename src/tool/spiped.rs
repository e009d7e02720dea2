//! `spiped`: the daemon. Listens on the source, and for each connection opens the
//! target and pipes between them, encrypting one side.

use std::sync::Arc;

use async_signal::{Signal, Signals};
use futures_lite::StreamExt;
use smol::LocalExecutor;
use spiped_transports::{Address, Endpoint, Listener, StreamOptions};

use crate::cli::spiped::{SpipedOptions, parse};
use crate::conn::ConnConfig;
use crate::daemon::{self, Readiness, RemoveOnDrop};
use crate::proto::handshake::Mode;
use crate::proto::key::Key;
use crate::resolve::{self, Targets};
use crate::{dispatch, keyfile, log};

/// Entry point of `spiped`; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    crate::log::set_program("spiped");
    super::parsed_or_exit(parse(args), |opts| match run(opts) {
        Ok(()) => 0,
        Err(e) => super::fail(&e),
    })
}

fn run(opts: SpipedOptions) -> Result<(), String> {
    // The key is read first: with `-k -` it comes from the caller's standard input.
    let key = keyfile::load(&opts.key_file)?;
    // Forking is only sound while this is the sole thread, so it comes before anything
    // that may start one (the executor, async-io's reactor, the resolver). The parent
    // waits in there until the child reports it is serving or has failed.
    let readiness = match opts.foreground {
        true => None,
        false => Some(daemon::daemonize()?),
    };
    // Installed early so a SIGTERM during start-up already shuts down cleanly.
    let signals = Signals::new([Signal::Term, Signal::Int])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    // One event loop, as in spiped: a connection's events are handled on the thread that
    // sees them, with no hand-off between threads (each costs tens of microseconds of
    // latency on a busy machine). The cryptography of bulk batches and Diffie-Hellman
    // runs on the blocking pool (see pump and session), which is what uses other cores.
    let ex = LocalExecutor::new();
    smol::block_on(ex.run(serve(&ex, opts, key, readiness, signals)))
}

/// Everything after forking: pidfile, source, privileges, target, then the accept loop
/// until SIGTERM or SIGINT.
async fn serve(
    ex: &LocalExecutor<'_>,
    opts: SpipedOptions,
    key: Key,
    mut readiness: Option<Readiness>,
    signals: Signals,
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
        let source = look_up(&opts.source, opts.wait_dns)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| format!("cannot resolve {}: no addresses found", opts.source))?;
        let targets = Targets::new(look_up(&opts.target, opts.wait_dns).await?);
        let bind = match &opts.bind {
            Some(b) => Some(resolve::bind_address(b, look_up(b, opts.wait_dns).await?)?),
            None => None,
        };
        Ok::<_, String>(Some((source, targets, bind)))
    };
    let mut signals = signals;
    let stopped = async {
        let _ = signals.next().await;
        Ok(None)
    };
    let Some((source, targets, bind)) = futures_lite::future::or(resolving, stopped).await? else {
        return Ok(());
    };
    let listener = Listener::bind(&source).map_err(|e| {
        format!(
            "cannot listen on {}: {}",
            opts.source,
            crate::errors::describe(&e)
        )
    })?;
    let _socket_file = listener.unix_path().map(|p| RemoveOnDrop::new(p));
    if let Some(user) = &opts.user {
        daemon::drop_privileges(user)?;
    }
    announce_ready(readiness, opts.syslog)?;
    if let Some(every) = opts.resolve_interval {
        let (targets, addr) = (targets.clone(), opts.target.clone());
        ex.spawn(async move { targets.keep_fresh(&addr, every).await })
            .detach();
    }
    let cfg = Arc::new(ConnConfig {
        direction: opts.direction,
        key,
        mode: Mode {
            fast: opts.fast,
            require_pfs: opts.require_pfs,
            x25519: opts.x25519,
        },
        timeout: opts.timeout,
        stream: StreamOptions {
            keepalive: opts.keepalive,
        },
        bind,
    });
    let shutdown = async {
        let _ = signals.next().await;
    };
    dispatch::serve(ex, listener, cfg, targets, opts.max_connections, shutdown).await;
    Ok(())
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
    Ok(())
}
