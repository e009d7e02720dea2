//! `spiped`: the daemon. Listens on the source, and for each connection opens the
//! target and pipes between them, encrypting one side.

use std::sync::Arc;

use smol::LocalExecutor;
use spiped_transports::{Listener, SocketFile, StreamOptions};

use crate::cli::spiped::{SpipedOptions, parse};
use crate::conn::ConnConfig;
use crate::proto::handshake::Mode;
use crate::resolve::{self, Targets};
use crate::{dispatch, keyfile, systemd};

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
    // Sockets passed by systemd come first: they are descriptors 3 and up only until
    // this process opens a file of its own.
    let inherited = systemd::inherited_listeners()?;
    let key = keyfile::load(&opts.key_file)?;
    let extra_keys =
        (opts.extra_key_files.iter().map(|f| keyfile::load(f))).collect::<Result<Vec<_>, _>>()?;
    let listener = listen(&opts, inherited)?;
    let targets = Targets::new(resolve::resolve(&opts.target)?);
    let bind = opts.bind.as_ref().map(resolve::resolve_bind).transpose()?;
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
    if let Err(e) = systemd::notify("READY=1") {
        crate::log::warn(&format!("cannot notify systemd of readiness: {e}"));
    }
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

/// The socket to serve: the one systemd passed (named by `-s`, or the only one), or else
/// `-s` bound here, its file given `--socket-mode`.
fn listen(opts: &SpipedOptions, inherited: Vec<Listener>) -> Result<Listener, String> {
    let source = opts.source.as_ref().map(resolve::resolve).transpose()?;
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
    let file = SocketFile {
        mode: opts.socket_mode,
        ..SocketFile::default()
    };
    Listener::bind_with(&ep, file).map_err(|e| {
        let unix_in_use = e.kind() == std::io::ErrorKind::AddrInUse
            && matches!(ep, spiped_transports::Endpoint::Unix(_));
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
