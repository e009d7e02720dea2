//! `spiped`: the daemon. Listens on the source, and for each connection opens the
//! target and pipes between them, encrypting one side.

use std::sync::Arc;

use smol::LocalExecutor;
use spiped_transports::{Listener, StreamOptions};

use crate::cli::spiped::{SpipedOptions, parse};
use crate::conn::ConnConfig;
use crate::proto::handshake::Mode;
use crate::resolve::{self, Targets};
use crate::{dispatch, keyfile};

/// Entry point of `spiped`; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    crate::log::set_program("spiped");
    super::parsed_or_exit(parse(args), |opts| match run(opts) {
        Ok(()) => 0,
        Err(e) => super::fail(&e),
    })
}

fn run(opts: SpipedOptions) -> Result<(), String> {
    // Everything that can fail because of the command line or the environment happens
    // here, before any connection is served, so mistakes surface as one error and exit 1.
    let key = keyfile::load(&opts.key_file)?;
    let extra_keys =
        (opts.extra_key_files.iter().map(|f| keyfile::load(f))).collect::<Result<Vec<_>, _>>()?;
    let source = resolve::resolve(&opts.source)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("cannot resolve {}: no addresses found", opts.source))?;
    let targets = Targets::new(resolve::resolve(&opts.target)?);
    let bind = opts.bind.as_ref().map(resolve::resolve_bind).transpose()?;
    let listener = Listener::bind(&source).map_err(|e| {
        format!(
            "cannot listen on {}: {}",
            opts.source,
            crate::errors::describe(&e)
        )
    })?;
    if !opts.foreground {
        crate::log::warn("daemonizing is not yet supported; staying in the foreground (use -F)");
    }
    let cfg = Arc::new(ConnConfig {
        direction: opts.direction,
        key,
        extra_keys,
        proxy: opts.proxy,
        connect_after_handshake: opts.connect_after_handshake,
        log_connections: opts.log_connections,
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
    // One event loop, as in spiped: a connection's events are handled on the thread that
    // sees them, with no hand-off between threads (each costs tens of microseconds of
    // latency on a busy machine). The cryptography of bulk batches and Diffie-Hellman
    // runs on the blocking pool (see pump and session), which is what uses other cores.
    let ex = LocalExecutor::new();
    smol::block_on(ex.run(dispatch::serve(
        &ex,
        &listener,
        cfg,
        targets,
        opts.max_connections,
    )));
    Ok(())
}
