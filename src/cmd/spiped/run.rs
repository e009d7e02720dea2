//! `spiped`: the daemon. Serves one pipe from the command line, or the pipes of a
//! configuration file (`-c`): listens on each source, and for each connection opens the
//! target and pipes between them, encrypting one side. SIGHUP reloads the
//! configuration and every key file.

use std::path::PathBuf;
use std::sync::Arc;

use spiped_transports::event_loop::block_on;
use spiped_transports::{Address, Endpoint};
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::args::{ConfigOptions, Invocation, parse};
use super::file;
use crate::config::Config;
use crate::config::keys::KeyLoader;
use crate::daemon::{self, Readiness, RemoveOnDrop};
use crate::metrics::{self, Metrics};
use crate::pipes::Pipes;
use crate::{log, sandbox, systemd};

/// Entry point of `spiped`; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    crate::cmd::run_tool("spiped", args, parse, run)
}

/// Where the configuration comes from, and so what a reload reads again.
#[derive(Clone)]
enum Source {
    /// The command line: a reload reads its key files again.
    CommandLine(Config),
    /// A configuration file (its path absolute), and the directory spiped started in,
    /// which its relative paths are taken from (see [`Config::anchor`]): a reload
    /// reads it and its key files again.
    File(ConfigOptions, PathBuf),
}

impl Source {
    /// The configuration as it reads now; `Err` holds every error, one line each.
    fn read(&self) -> Result<Config, Vec<String>> {
        match self {
            Source::CommandLine(c) => Ok(c.clone()),
            Source::File(opts, base) => file::load(opts).map(|mut c| {
                c.anchor(base);
                c
            }),
        }
    }
}

impl Source {
    /// What serving `config` needs once confined: the key files (and the configuration
    /// file), UNIX sockets, pidfile, TCP ports, and DNS when `-r` re-resolves a name.
    fn sandbox_needs(&self, config: &Config) -> sandbox::Needs {
        let mut n = sandbox::Needs {
            pidfile: (!config.process.foreground).then(|| config.process.pidfile.clone()),
            syslog: config.process.syslog,
            // A file's reload may add pipes on any port; a command line's pipe keeps its
            // ports for life.
            any_tcp_port: matches!(self, Source::File(..)),
            ..sandbox::Needs::default()
        };
        if let Source::File(opts, _) = self {
            n.read_files.push(opts.path.clone());
        }
        // The metrics endpoint's socket file is removed at exit, as a source's is.
        if let Some(Address::Unix(p)) = &config.process.metrics {
            n.unix_sources.push(p.clone());
        }
        for pipe in &config.pipes {
            match &pipe.source {
                Some(Address::Unix(p)) => n.unix_sources.push(p.clone()),
                Some(Address::Ip { port, .. } | Address::Name { port, .. }) => {
                    n.bind_ports.push(*port)
                }
                None => {}
            }
            if let Some(Address::Ip { port, .. } | Address::Name { port, .. }) = &pipe.bind {
                n.bind_ports.push(*port);
            }
            for key in &pipe.keys {
                if key.file != "-" {
                    n.read_files.push(PathBuf::from(&key.file));
                }
                match &key.target {
                    Address::Unix(p) => n.unix_targets.push(p.clone()),
                    Address::Ip { port, .. } => n.connect_ports.push(*port),
                    Address::Name { port, .. } => {
                        n.connect_ports.push(*port);
                        n.dns |= pipe.resolve_interval.is_some();
                    }
                }
            }
        }
        n
    }
}

fn run(inv: Invocation) -> Result<(), String> {
    // Relative paths mean this directory, for reloads too (see Config::anchor). Without
    // one (it was removed) they stay as written.
    let base = std::env::current_dir().unwrap_or_default();
    let mut source = match inv {
        Invocation::Pipe(config) => Source::CommandLine(*config),
        Invocation::Config(opts) if opts.check => return check(&opts),
        Invocation::Config(opts) => Source::File(
            ConfigOptions {
                path: base.join(&opts.path),
                ..opts
            },
            base.clone(),
        ),
    };
    // Sockets passed by systemd come first: they are descriptors 3 and up only until
    // this process opens a file of its own.
    let inherited = systemd::inherited_sockets().map_err(|e| e.to_string())?;
    let mut config = source.read().map_err(|e| e.join("\n"))?;
    // The keys are read next: with `-k -` the key comes from the caller's standard input.
    let mut loader = KeyLoader::default();
    let keys = loader.load(&config).map_err(|e| e.join("\n"))?;
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
        false => Some(daemon::daemonize().map_err(|e| e.to_string())?),
    };
    // One event loop, as in spiped: a connection's events are handled on the thread that
    // sees them, with no hand-off between threads (each costs tens of microseconds of
    // latency on a busy machine). The cryptography of bulk batches and Diffie-Hellman
    // runs on the blocking pool (see offload), which is what uses other cores.
    block_on(async move {
        // Installed first, so a SIGTERM during start-up already shuts down cleanly, and
        // a SIGHUP does not kill a daemon that is still starting.
        let signals = Signals::install()?;
        // Sockets belong to the event loop they are registered with: made inside.
        let passed = systemd::listeners(inherited).map_err(|e| e.to_string())?;
        let command_line = matches!(source, Source::CommandLine(_));
        let metrics = Arc::new(Metrics::new());
        let daemon = Daemon {
            source,
            loader,
            pipes: Pipes::new(passed, command_line, metrics.clone()),
            config,
            metrics,
        };
        daemon.serve(keys, readiness, signals).await
    })
    .map_err(crate::cmd::event_loop_failed)?
}

/// The signals the daemon acts on, caught on the event loop.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    usr1: Signal,
}

/// What a signal asks of the daemon.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP.
    Reload,
}

impl Signals {
    /// Catches SIGTERM, SIGINT, SIGHUP and SIGUSR1 from now on.
    fn install() -> Result<Signals, String> {
        let catch = |kind| signal(kind).map_err(|e| format!("cannot install signal handlers: {e}"));
        Ok(Signals {
            term: catch(SignalKind::terminate())?,
            int: catch(SignalKind::interrupt())?,
            hup: catch(SignalKind::hangup())?,
            usr1: catch(SignalKind::user_defined1())?,
        })
    }

    /// Waits for the next stop or reload; logs the open connections of `metrics` at
    /// each SIGUSR1 meanwhile.
    async fn next(&mut self, metrics: &Metrics) -> Asked {
        loop {
            tokio::select! {
                _ = self.term.recv() => return Asked::Stop,
                _ = self.int.recv() => return Asked::Stop,
                _ = self.hup.recv() => return Asked::Reload,
                _ = self.usr1.recv() => metrics.log_status(),
            }
        }
    }
}

/// Where to bind the metrics endpoint: `addr` resolved (patiently with `-D`).
async fn look_up_metrics(addr: &Address, patient: bool) -> Result<Endpoint, String> {
    let found =
        (crate::resolve::resolve_or_wait(addr, patient).await).map_err(|e| e.to_string())?;
    (found.into_iter().next())
        .ok_or_else(|| format!("cannot resolve {addr} (--metrics): no addresses found"))
}

/// `--check`: reads the file and every key file it names, parses every address; prints
/// what is wrong, or that all is well.
fn check(opts: &ConfigOptions) -> Result<(), String> {
    let config = file::load(opts).map_err(|e| e.join("\n"))?;
    KeyLoader::default()
        .load(&config)
        .map_err(|e| e.join("\n"))?;
    // The check confines itself as the daemon would once serving, so that what this
    // kernel (or container) cannot enforce shows now, and `strict` fails here too.
    let here = std::env::current_dir().unwrap_or_default();
    let needs = Source::File(opts.clone(), here).sandbox_needs(&config);
    let confinement = sandbox::confine(&needs, config.process.sandbox)?;
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

/// The running daemon: where its configuration comes from, the one applied, and the
/// pipes serving it.
struct Daemon {
    source: Source,
    loader: KeyLoader,
    pipes: Pipes,
    config: Config,
    /// What the process counts, served with `--metrics`.
    metrics: Arc<Metrics>,
}

impl Daemon {
    /// Everything after forking: pidfile, look-ups, sockets, privileges, sandbox, then
    /// serving until SIGTERM or SIGINT, reloading on SIGHUP.
    ///
    /// Nothing is accepted, and no thread but this one runs, before the process is
    /// confined: capabilities and a Landlock domain below ABI 8 hold for the thread that
    /// set them and those it starts later, not for threads already running.
    async fn serve(
        mut self,
        keys: Vec<Vec<spiped_proto::key::Key>>,
        mut readiness: Option<Readiness>,
        mut signals: Signals,
    ) -> Result<(), String> {
        let process = self.config.process.clone();
        let metrics = self.metrics.clone();
        let _pidfile = match readiness {
            Some(_) => Some(daemon::write_pidfile(&process.pidfile).map_err(|e| e.to_string())?),
            None => None,
        };
        if process.wait_dns {
            // -D: the caller is released before look-ups that may take a long time.
            announce_ready(readiness.take(), process.syslog)?;
        }
        // Like C, with -D nothing listens before every address resolves. A signal
        // meanwhile (-D may wait for ever) ends the daemon cleanly.
        let config = self.config.clone();
        let pipes = &self.pipes;
        let looking_up = async {
            let found = pipes.look_up(&config, process.wait_dns).await?;
            let endpoint = match &process.metrics {
                Some(addr) => Some(look_up_metrics(addr, process.wait_dns).await?),
                None => None,
            };
            Ok::<_, String>((found, endpoint))
        };
        // SIGHUP cannot reload what is not serving yet; said, since a reload the operator
        // asked for is not done (the configuration read at start is served).
        let stopped = async {
            while signals.next(&metrics).await == Asked::Reload {
                log::warn(
                    "SIGHUP ignored: not serving yet (waiting for every address to resolve, \
                     -D); send it again once serving",
                );
            }
        };
        let (found, endpoint) = tokio::select! {
            biased;
            () = stopped => return Ok(()),
            r = looking_up => r?,
        };
        // Bound before privileges are dropped, as the sources are.
        let staged = self.pipes.stage(&config, found, keys)?;
        let endpoint = match (&process.metrics, endpoint) {
            (Some(addr), Some(ep)) => Some(metrics::bind(addr, &ep)?),
            _ => None,
        };
        let _metrics_file = endpoint
            .as_ref()
            .and_then(|e| e.unix_file())
            .map(|(path, id)| RemoveOnDrop::socket(path, id));
        if let Some(user) = &process.user {
            daemon::drop_privileges(user).map_err(|e| e.to_string())?;
            self.loader.running_as(user);
        }
        let needs = self.source.sandbox_needs(&self.config);
        let confinement = sandbox::confine(&needs, process.sandbox)?;
        // Accepting, and worker threads, start from here on, inside the sandbox.
        self.pipes.start(staged);
        self.pipes.prime_keypairs();
        if let Some(endpoint) = endpoint {
            tokio::spawn(endpoint.serve(metrics.clone()));
        }
        announce_ready(readiness, process.syslog)?;
        // After readiness, so that with --syslog the line is in syslog.
        confinement
            .log_startup(process.syslog || self.config.pipes.iter().any(|p| p.log_connections));
        if let Some(every) = systemd::watchdog_interval() {
            // On the event loop, so that a loop that stops turning stops the pings too.
            tokio::spawn(async move {
                loop {
                    notify_systemd("WATCHDOG=1");
                    tokio::time::sleep(every).await;
                }
            });
        }
        while signals.next(&metrics).await == Asked::Reload {
            self.reload().await;
        }
        // The first SIGTERM or SIGINT starts the drain of every pipe at once; a second
        // one (as in C) or the drain timeout ends it, closing what is still open.
        notify_systemd("STOPPING=1");
        let again = async {
            while signals.next(&metrics).await == Asked::Reload {
                log::warn("SIGHUP ignored: draining connections before exiting");
            }
        };
        let give_up = async {
            match self.config.process.drain_timeout {
                Some(t) => drop(tokio::time::timeout(t, again).await),
                None => again.await,
            }
        };
        tokio::select! {
            biased;
            () = give_up => {}
            () = self.pipes.drain() => {}
        }
        Ok(())
    }

    /// SIGHUP: reads the configuration and every key file again and applies them, or
    /// changes nothing and says why in one line.
    async fn reload(&mut self) {
        notify_systemd(&systemd::reloading_message());
        // A configuration file replaced where the sandbox allows only the old one is
        // named as such, rather than as a permission error.
        let allowed = match &self.source {
            Source::File(opts, _) => sandbox::admits(&sandbox::Needs {
                read_files: vec![opts.path.clone()],
                ..sandbox::Needs::default()
            }),
            Source::CommandLine(_) => Ok(()),
        };
        // Off the event loop, which serves on meanwhile: a slow disk or a large key file
        // stalls nothing (and what is not a regular file is refused without waiting).
        let (source, mut loader) = (self.source.clone(), std::mem::take(&mut self.loader));
        let (loader, loaded) = off_loop(move || {
            let read = allowed.and_then(|()| source.read().map_err(|e| e.join("; ")));
            // Before any new key file is read: what the sandbox refuses is named as such.
            let read = read.and_then(|c| sandbox::admits(&source.sandbox_needs(&c)).map(|()| c));
            let loaded = read.and_then(|c| {
                let keys = loader.load(&c).map_err(|e| e.join("; "))?;
                Ok((c, keys))
            });
            (loader, loaded)
        })
        .await;
        self.loader = loader;
        let outcome = match loaded {
            Ok((config, keys)) => self
                .pipes
                .apply(&config, keys)
                .await
                .map(|changes| (config, changes)),
            Err(e) => Err(e),
        };
        match outcome {
            Ok((config, changes)) => {
                // drain-timeout applies as reloaded; the others only at the next start.
                let fixed = |p: &crate::config::Process| crate::config::Process {
                    drain_timeout: None,
                    ..p.clone()
                };
                if fixed(&config.process) != fixed(&self.config.process) {
                    log::warn(
                        "reload: the process-wide settings pidfile, user, syslog, foreground, \
                         wait-dns and sandbox changed; they take effect at the next start",
                    );
                }
                log::info(&format!(
                    "reloaded: {} pipes ({} added, {} kept, {} removed)",
                    config.pipes.len(),
                    changes.added,
                    changes.kept,
                    changes.removed
                ));
                self.config = config;
                // A pipe added with group-14 handshakes gets its spare key pair now.
                self.pipes.prime_keypairs();
                self.metrics.reloaded(true);
                notify_systemd("READY=1");
            }
            Err(e) => {
                log::warn(&format!(
                    "reload failed, still serving the previous configuration: {e}"
                ));
                self.metrics.reloaded(false);
                notify_systemd(&format!("READY=1\nSTATUS=reload failed: {e}"));
            }
        }
    }
}

/// Runs `read`, which reads files, on the blocking pool, and returns what it returns.
async fn off_loop<T: Send + 'static>(read: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(read).await {
        Ok(t) => t,
        // Not cancelled (nothing aborts it): it panicked, and so does the caller.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Releases the waiting parent (when daemonized) and, with `--syslog`, sends warnings to
/// syslog from now on; errors before this point reached the caller's terminal.
fn announce_ready(readiness: Option<Readiness>, syslog: bool) -> Result<(), String> {
    if let Some(r) = readiness {
        r.ready(syslog).map_err(|e| e.to_string())?;
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
