//! `spipe`: connect to an `spiped -d`, and pipe standard input and output through it.

use spiped_transports::Stdio;
use spiped_transports::event_loop::block_on;

use super::args::{SpipeOptions, parse};
use crate::session::client::Dial;
use crate::session::client::{ConnError, open_client, within};
use crate::session::offload::Offload;
use crate::session::{handshake, pump};
use crate::{keyfile, resolve, sandbox};
use spiped_proto::handshake::Role;

/// Entry point of `spipe`; returns the exit status.
pub(crate) fn main(args: &[String]) -> i32 {
    crate::cmd::run_tool("spipe", args, parse, |opts| run(&opts))
}

/// Why the connection could not be set up: as a daemon's connection fails, or the
/// sandbox (entered once connected) could not be.
enum SetupError {
    Conn(ConnError),
    Sandbox(sandbox::NotEnforced),
}

impl From<ConnError> for SetupError {
    fn from(e: ConnError) -> SetupError {
        SetupError::Conn(e)
    }
}

fn run(opts: &SpipeOptions) -> Result<(), String> {
    let shared = &opts.shared;
    let key = keyfile::load(&shared.key_file, keyfile::Opening::Any).map_err(|e| e.to_string())?;
    let (targets, bind) = block_on(async {
        let targets = resolve::resolve(&shared.target).await?;
        let bind = match &shared.bind {
            Some(b) => Some(resolve::resolve_bind(b).await?),
            None => None,
        };
        Ok::<_, resolve::ResolveError>((targets, bind))
    })
    .map_err(crate::cmd::event_loop_failed)?
    .map_err(|e| e.to_string())?;
    let dial = Dial {
        bind,
        stream: spiped_transports::StreamOptions {
            keepalive: shared.keepalive,
        },
        timeout: shared.timeout,
    };
    let hs = handshake::start(Role::Client, shared.mode, &key, &[])
        .map_err(|e| format!("cannot get random bytes from the OS: {e}"))?;
    drop(key);
    // One connection: nothing to offload, no spare key pairs.
    let offload = Offload::default();
    block_on(async {
        // Connected: from here on, spipe needs no file and no new connection.
        // Silent, as spipe is on success; --sandbox strict fails when incomplete.
        let confine = || {
            sandbox::confine(&sandbox::Needs::default(), opts.sandbox)
                .map(drop)
                .map_err(SetupError::Sandbox)
        };
        let opened = open_client(&targets, dial, &offload, hs, None, confine);
        let opened = within(shared.timeout, shared.mode.x25519, opened);
        let (stream, keys) = opened.await.map_err(|e| match e {
            SetupError::Conn(ConnError::Connect(e)) => {
                format!("cannot connect to {}: {e}", shared.target)
            }
            SetupError::Conn(e) => format!("{}: {e}", shared.target),
            SetupError::Sandbox(e) => e.to_string(),
        })?;
        let stdio = Stdio::new().map_err(|e| format!("cannot use standard input/output: {e}"))?;
        let traffic = pump::Traffic::default();
        pump::run(
            &stdio,
            &stream,
            keys.sealer,
            keys.opener,
            &traffic,
            &offload,
        )
        .await
        .map_err(|e| format!("{}: connection broken: {e}", shared.target))
    })
    .map_err(crate::cmd::event_loop_failed)?
}
