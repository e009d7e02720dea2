//! `spiped`: the daemon. Serves one pipe from the command line, or the pipes of a
//! configuration file (`-c`): listens on each source, and for each connection opens the
//! target and pipes between them, encrypting one side. SIGHUP reloads the
//! configuration and every key file.

use std::sync::Arc;

use spiped_transports::event_loop::block_on;

use super::args::{ConfigOptions, Invocation, parse};
use super::file;
use crate::config::keys::KeyLoader;
use crate::daemon::{self, Source, Start};
use crate::process::{daemonize, systemd};
use crate::sandbox;

/// Entry point of `spiped`; returns the exit status.
pub(crate) fn main(args: &[String]) -> i32 {
    crate::cmd::run_tool("spiped", args, parse, run)
}

fn run(inv: Invocation) -> Result<(), String> {
    // Relative paths mean this directory, for reloads too (see Config::anchor). Without
    // one (it was removed) they stay as written.
    let base = std::env::current_dir().unwrap_or_default();
    let mut source = match inv {
        Invocation::Pipe(config) => Source::CommandLine(*config),
        Invocation::Config(opts) if opts.check => return check(&opts),
        Invocation::Config(opts) => {
            let opts = ConfigOptions {
                path: base.join(&opts.path),
                ..opts
            };
            Source::File {
                path: opts.path.clone(),
                base: base.clone(),
                read: Arc::new(move || file::load(&opts)),
            }
        }
    };
    // Sockets passed by systemd come first: they are descriptors 3 and up only until
    // this process opens a file of its own.
    let inherited = systemd::inherited_sockets().map_err(|e| e.to_string())?;
    let mut config = source.read().map_err(|e| e.lines())?;
    // The keys are read next: with `-k -` the key comes from the caller's standard input.
    let mut loader = KeyLoader::default();
    let keys = loader.load(&config).map_err(|e| e.lines())?;
    // Once its keys are read, so that start-up errors name the paths as typed (as C's).
    if let Source::CommandLine(c) = &mut source {
        c.anchor(&base);
        config = c.clone();
    }
    // Forking is only sound while this is the sole thread, so it comes before anything
    // that may start one (the event loop's blocking pool). The parent waits in there
    // until the child reports it is serving or has failed.
    let readiness = match config.process.foreground {
        true => None,
        false => Some(daemonize::daemonize().map_err(|e| e.to_string())?),
    };
    // One event loop, as in spiped: a connection's events are handled on the thread that
    // sees them, with no hand-off between threads (each costs tens of microseconds of
    // latency on a busy machine). The cryptography of bulk batches and Diffie-Hellman
    // runs on the blocking pool (see offload), which is what uses other cores.
    block_on(daemon::run(Start {
        source,
        config,
        loader,
        keys,
        readiness,
        inherited,
    }))
    .map_err(crate::cmd::event_loop_failed)?
    .map_err(|e| e.to_string())
}

/// `--check`: reads the file and every key file it names, parses every address; prints
/// what is wrong, or that all is well.
fn check(opts: &ConfigOptions) -> Result<(), String> {
    let config = file::load(opts).map_err(|e| e.lines())?;
    KeyLoader::default().load(&config).map_err(|e| e.lines())?;
    // The check confines itself as the daemon would once serving, so that what this
    // kernel (or container) cannot enforce shows now, and `strict` fails here too.
    let needs = daemon::sandbox_needs(&config, Some(&opts.path));
    let confinement =
        sandbox::confine(&needs, config.process.sandbox).map_err(|e| e.to_string())?;
    println!(
        "{}: configuration OK ({} pipe{})\nsandbox: {confinement}{}",
        opts.path.display(),
        config.pipes.len(),
        if config.pipes.len() == 1 { "" } else { "s" },
        if confinement.as_asked() {
            ""
        } else {
            " (not every layer is in force)"
        }
    );
    Ok(())
}
