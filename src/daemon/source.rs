//! Where the daemon's configuration comes from, and so what a reload reads again and
//! what the sandbox must let the daemon read.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use spiped_transports::Address;

use crate::config::Config;
use crate::sandbox;

/// How a configuration file is read: the command layer's parser, with the command
/// line's overrides; `Err` holds every error.
pub(crate) type ReadConfig = Arc<dyn Fn() -> Result<Config, ConfigErrors> + Send + Sync>;

/// Why a configuration file could not be read: every error, one line each.
#[derive(Debug)]
pub(crate) struct ConfigErrors {
    /// The errors, one line each.
    pub(crate) lines: Vec<String>,
    /// Whether the file itself could not be opened for lack of permission: a file only
    /// root could read, at start, fails so at a reload under `-u`.
    pub(crate) denied: bool,
}

impl ConfigErrors {
    /// `lines`, none of them a refused open.
    pub(crate) fn new(lines: Vec<String>) -> ConfigErrors {
        ConfigErrors {
            lines,
            denied: false,
        }
    }

    /// One error a line, as the command line prints them.
    pub(crate) fn lines(&self) -> String {
        self.lines.join("\n")
    }
}

impl fmt::Display for ConfigErrors {
    /// Every error on one line, as a reload's failure says them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines.join("; "))
    }
}

impl std::error::Error for ConfigErrors {}

/// Where the configuration comes from, and so what a reload reads again.
#[derive(Clone)]
pub(crate) enum Source {
    /// The command line: a reload reads its key files again.
    CommandLine(Config),
    /// A configuration file: a reload reads it and its key files again.
    File {
        /// Its path, absolute.
        path: PathBuf,
        /// The directory spiped started in, which its relative paths are taken from
        /// (see [`Config::anchor`]).
        base: PathBuf,
        /// How to read it.
        read: ReadConfig,
    },
}

impl Source {
    /// The configuration as it reads now; `Err` holds every error.
    pub(crate) fn read(&self) -> Result<Config, ConfigErrors> {
        match self {
            Source::CommandLine(c) => Ok(c.clone()),
            Source::File { base, read, .. } => read().map(|mut c| {
                c.anchor(base);
                c
            }),
        }
    }

    /// What serving `config` from this source needs once confined (see
    /// [`sandbox_needs`]).
    pub(crate) fn sandbox_needs(&self, config: &Config) -> sandbox::Needs {
        let file = match self {
            Source::File { path, .. } => Some(path.as_path()),
            Source::CommandLine(_) => None,
        };
        sandbox_needs(config, file)
    }
}

/// What serving `config` needs once confined: the key files (and the configuration
/// `file` it came from, if any), UNIX sockets, pidfile, TCP ports, and DNS when `-r`
/// re-resolves a name.
pub(crate) fn sandbox_needs(config: &Config, file: Option<&Path>) -> sandbox::Needs {
    let mut n = sandbox::Needs {
        pidfile: (!config.process.foreground).then(|| config.process.pidfile.clone()),
        syslog: config.process.syslog,
        // A file's reload may add pipes on any port; a command line's pipe keeps its
        // ports for life.
        any_tcp_port: file.is_some(),
        ..sandbox::Needs::default()
    };
    n.read_files.extend(file.map(Path::to_path_buf));
    // The metrics endpoint's socket file is removed at exit, as a source's is.
    if let Some(Address::Unix(p)) = &config.process.metrics {
        n.unix_sources.push(p.clone());
    }
    for pipe in &config.pipes {
        match &pipe.source {
            Some(Address::Unix(p)) => n.unix_sources.push(p.clone()),
            Some(Address::Ip { port, .. } | Address::Name { port, .. }) => n.bind_ports.push(*port),
            None => {}
        }
        if let Some(Address::Ip { port, .. } | Address::Name { port, .. }) = &pipe.bind {
            n.bind_ports.push(*port);
        }
        for key in &pipe.keys {
            if key.file != "-" {
                n.read_files.push(PathBuf::from(&key.file));
            }
            for target in &key.targets {
                match target {
                    Address::Unix(p) => n.unix_targets.push(p.clone()),
                    Address::Ip { port, .. } => n.connect_ports.push(*port),
                    Address::Name { port, .. } => {
                        n.connect_ports.push(*port);
                        n.dns |= pipe.resolve_interval.is_some();
                    }
                }
            }
        }
    }
    n
}
