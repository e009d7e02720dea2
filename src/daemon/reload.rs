//! A reload (SIGHUP): the configuration and every key file read again off the event
//! loop, then applied to the running pipes all at once, or not at all.

use std::fmt;

use super::pipes::PipeError;
use super::serve::{Daemon, notify_systemd};
use super::source::{ConfigErrors, Source};
use crate::config::keys::KeyErrors;
use crate::log;
use crate::process::account::UserSpec;
use crate::process::systemd;
use crate::sandbox::{self, Refused};

/// Why a reload changed nothing.
#[derive(Debug)]
enum ReloadError {
    /// The sandbox set up at start does not allow what the new configuration needs.
    Sandbox(Refused),
    /// The configuration file did not read; with the `-u` user the process runs as
    /// when that user may not open it (root could, at start).
    Config(ConfigErrors, Option<UserSpec>),
    /// A key file did not load.
    Keys(KeyErrors),
    /// A pipe could not be made ready.
    Pipe(PipeError),
}

impl fmt::Display for ReloadError {
    /// One line: a reload's failure is logged, and told to systemd, as one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadError::Sandbox(e) => write!(f, "{e}"),
            ReloadError::Config(e, None) => write!(f, "{e}"),
            ReloadError::Config(e, Some(user)) => write!(
                f,
                "{e}; spiped runs as -u {user} since start, so the configuration file must \
                 be readable by that user"
            ),
            ReloadError::Keys(e) => write!(f, "{e}"),
            ReloadError::Pipe(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReloadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReloadError::Sandbox(e) => Some(e),
            ReloadError::Config(e, _) => Some(e),
            ReloadError::Keys(e) => Some(e),
            ReloadError::Pipe(e) => Some(e),
        }
    }
}

impl Daemon {
    /// SIGHUP: reads the configuration and every key file again and applies them, or
    /// changes nothing and says why in one line.
    pub(super) async fn reload(&mut self) {
        notify_systemd(&systemd::reloading_message());
        // A configuration file replaced where the sandbox allows only the old one is
        // named as such, rather than as a permission error.
        let allowed = match &self.source {
            Source::File { path, .. } => sandbox::admits(&sandbox::Needs {
                read_files: vec![path.clone()],
                ..sandbox::Needs::default()
            }),
            Source::CommandLine(_) => Ok(()),
        };
        // Off the event loop, which serves on meanwhile: a slow disk or a large key file
        // stalls nothing (and what is not a regular file is refused without waiting).
        let (source, mut loader) = (self.source.clone(), std::mem::take(&mut self.loader));
        let (loader, loaded) = off_loop(move || {
            let read = match allowed {
                Err(refused) => Err(ReloadError::Sandbox(refused)),
                Ok(()) => source.read().map_err(|e| {
                    let user = loader.user().filter(|_| e.denied).cloned();
                    ReloadError::Config(e, user)
                }),
            };
            // Before any new key file is read: what the sandbox refuses is named as such.
            let read = read.and_then(|c| {
                let needs = source.sandbox_needs(&c);
                sandbox::admits(&needs).map_err(ReloadError::Sandbox)?;
                Ok(c)
            });
            let loaded = read.and_then(|c| {
                let keys = loader.load(&c).map_err(ReloadError::Keys)?;
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
                .map(|changes| (config, changes))
                .map_err(ReloadError::Pipe),
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
