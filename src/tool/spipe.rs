//! `spipe`: connect to an `spiped -d`, and pipe standard input and output through it.

use spiped_transports::Stdio;
use spiped_transports::event_loop::block_on;

use crate::cli::spipe::{SpipeOptions, parse};
use crate::conn::connect_any;
use crate::offload::Offload;
use crate::{keyfile, pump, resolve, sandbox, session};
use spiped_proto::handshake::{Mode, Role};

/// Entry point of `spipe`; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    crate::log::set_program("spipe");
    super::parsed_or_exit(parse(args), |opts| match run(&opts) {
        Ok(()) => 0,
        Err(e) => super::fail(&e),
    })
}

fn run(opts: &SpipeOptions) -> Result<(), String> {
    let key = keyfile::load(&opts.key_file)?;
    let (targets, bind) = block_on(async {
        let targets = resolve::resolve(&opts.target).await?;
        let bind = match &opts.bind {
            Some(b) => Some(resolve::resolve_bind(b).await?),
            None => None,
        };
        Ok::<_, String>((targets, bind))
    })
    .map_err(super::event_loop_failed)??;
    let mode = Mode {
        fast: opts.fast,
        require_pfs: opts.require_pfs,
        x25519: opts.x25519,
    };
    let stream_opts = spiped_transports::StreamOptions {
        keepalive: opts.keepalive,
    };
    let hs = session::start(Role::Client, mode, &key, &[])
        .map_err(|e| format!("cannot get random bytes from the OS: {e}"))?;
    drop(key);
    // One connection: nothing to offload, no spare key pairs.
    let offload = Offload::default();
    block_on(async {
        let setup = async {
            let stream = connect_any(&targets, bind, stream_opts, opts.timeout)
                .await
                .map_err(|e| format!("cannot connect to {}: {e}", opts.target))?;
            // Connected: from here on, spipe needs no file and no new connection.
            // Silent, as spipe is on success; --sandbox strict fails when incomplete.
            sandbox::confine(&sandbox::Needs::default(), opts.sandbox)?;
            let keys = session::handshake(&offload, &stream, hs, None)
                .await
                .map_err(|e| format!("{}: {e}", opts.target))?;
            Ok::<_, String>((stream, keys))
        };
        let timed_out = |_| {
            let hint = if opts.x25519 {
                format!("; {}", session::X25519_HINT)
            } else {
                String::new()
            };
            format!(
                "{}: connection timed out before the handshake completed{hint}",
                opts.target
            )
        };
        let (stream, keys) = tokio::time::timeout(opts.timeout, setup)
            .await
            .map_err(timed_out)??;
        let stdio = Stdio::new().map_err(|e| format!("cannot use standard input/output: {e}"))?;
        let traffic = pump::Traffic::default();
        pump::pipe(
            &stdio,
            &stream,
            keys.sealer,
            keys.opener,
            &traffic,
            &offload,
        )
        .await
        .map_err(|e| format!("{}: connection broken: {e}", opts.target))
    })
    .map_err(super::event_loop_failed)?
}
