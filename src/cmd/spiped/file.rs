//! Reading a configuration file (TOML): process-wide settings at the top, one
//! `[[pipe]]` table per pipe under the command line's long option names (`pipe_table.rs`). Every error is
//! one line naming the file, the line and the key, worded as the command line words the
//! same mistake.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::args::{ConfigOptions, parse_drain_timeout, parse_metrics, parse_user};
use crate::config::{Config, PipeConfig, Process};
use crate::daemon::ConfigErrors;
use crate::sandbox::{Mode, UnknownMode};
use pipe_table::{RawPipe, pipe};

/// The pidfile of a configuration without `pidfile` and without `-p`, in the working
/// directory as C spiped's default pidfile is.
const DEFAULT_PIDFILE: &str = "spiped.pid";

/// The largest configuration file read: far more than any real one, and little enough
/// that `-c /dev/zero`'s like cannot exhaust memory.
pub(crate) const MAX_CONFIG_FILE: u64 = 1 << 20;

/// Reads and checks the file `opts` names, letting the command line's `-D`, `-F`, `-p`,
/// `-u` and `--syslog` override the file. `Err` holds every error found, each a line.
pub(crate) fn load(opts: &ConfigOptions) -> Result<Config, ConfigErrors> {
    let text = read_file(&opts.path)?;
    let mut config = parse(&opts.path, &text).map_err(ConfigErrors::new)?;
    let p = &mut config.process;
    p.wait_dns |= opts.wait_dns;
    p.foreground |= opts.foreground;
    p.syslog |= opts.syslog;
    if let Some(pidfile) = &opts.pidfile {
        p.pidfile = pidfile.clone();
    }
    if opts.user.is_some() {
        p.user = opts.user.clone();
    }
    if opts.drain_timeout.is_some() {
        p.drain_timeout = opts.drain_timeout;
    }
    if let Some(mode) = opts.sandbox {
        p.sandbox = mode;
    }
    if opts.metrics.is_some() {
        p.metrics = opts.metrics.clone();
    }
    Ok(config)
}

/// The text of the configuration file at `path`: a regular file (opened without
/// blocking, so that a FIFO there cannot stall a reload) of at most
/// [`MAX_CONFIG_FILE`] bytes. One that its group or everyone may write draws a
/// warning: it says what root does (the pidfile it writes, the user it becomes).
fn read_file(path: &Path) -> Result<String, ConfigErrors> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let shown = path.display();
    let cannot = |e: std::io::Error| {
        format!(
            "cannot read configuration file {shown}: {}",
            crate::errors::describe(&e)
        )
    };
    let one = |line| ConfigErrors::new(vec![line]);
    let (file, meta) = crate::keyfile::open_regular(path)
        .map_err(|e| ConfigErrors {
            denied: e.kind() == std::io::ErrorKind::PermissionDenied,
            lines: vec![cannot(e)],
        })?
        .map_err(|what| {
            one(format!(
                "configuration file {shown} is {what}, not a regular file"
            ))
        })?;
    let mode = meta.permissions().mode();
    if let Some(who) = crate::keyfile::who(mode, 0o002, 0o020) {
        crate::log::warn(&format!(
            "warning: configuration file {shown} is writable by {who} (mode {:03o}), and it \
             says what spiped does as root (the pidfile, the user, the keys); chmod go-w it",
            mode & 0o777
        ));
    }
    let mut bytes = Vec::new();
    // One byte past the cap tells a file that is too large from one just at it.
    (file.take(MAX_CONFIG_FILE + 1).read_to_end(&mut bytes)).map_err(|e| one(cannot(e)))?;
    if bytes.len() as u64 > MAX_CONFIG_FILE {
        return Err(one(format!(
            "configuration file {shown} is larger than 1 MiB: is it the right file?"
        )));
    }
    String::from_utf8(bytes).map_err(|_| {
        one(cannot(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )))
    })
}

/// The configuration that `text`, the contents of the file at `path`, describes.
pub(crate) fn parse(path: &Path, text: &str) -> Result<Config, Vec<String>> {
    let at = Locator { path, text };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        vec![at.error(&span, at.key_on_line(&span), e.message())]
    })?;
    let mut errors = Vec::new();
    let drain_timeout = match &raw.drain_timeout {
        None => None,
        Some(t) => {
            let span = t.span();
            number_words(t.get_ref())
                .and_then(|w| {
                    parse_drain_timeout(Some(&w)).map_err(|(_, m)| m.message().to_owned())
                })
                .unwrap_or_else(|m| {
                    errors.push(at.error(&span, Some("drain-timeout"), &m));
                    None
                })
        }
    };
    let sandbox = match &raw.sandbox {
        None => Mode::On,
        Some(v) => sandbox_mode(v.get_ref()).unwrap_or_else(|m| {
            errors.push(at.error(&v.span(), Some("sandbox"), &m));
            Mode::On
        }),
    };
    let metrics = match &raw.metrics {
        None => None,
        Some(m) => parse_metrics(Some(m.get_ref())).unwrap_or_else(|(key, e)| {
            errors.push(at.error(&m.span(), Some(key), e.message()));
            None
        }),
    };
    let process = Process {
        sandbox,
        drain_timeout,
        metrics,
        wait_dns: raw.wait_dns.is_some_and(|b| b.into_inner()),
        foreground: raw.foreground.is_some_and(|b| b.into_inner()),
        pidfile: raw
            .pidfile
            .map_or_else(|| PathBuf::from(DEFAULT_PIDFILE), |p| p.into_inner().into()),
        syslog: raw.syslog.is_some_and(|b| b.into_inner()),
        user: match &raw.user {
            None => None,
            Some(u) => parse_user(Some(u.get_ref())).unwrap_or_else(|(key, m)| {
                errors.push(at.error(&u.span(), Some(key), m.message()));
                None
            }),
        },
    };
    if raw.pipe.is_empty() {
        errors.push(format!(
            "{}: no [[pipe]] table: the file must describe at least one pipe",
            path.display()
        ));
    }
    let mut pipes: Vec<(PipeConfig, Range<usize>)> = Vec::new();
    for raw_pipe in raw.pipe {
        let span = raw_pipe.span();
        match pipe(&at, raw_pipe.into_inner(), span.clone()) {
            Ok(p) => {
                for (other, other_span) in &pipes {
                    if other.name == p.name {
                        errors.push(at.error(
                            &span,
                            Some("name"),
                            &format!(
                                "pipe name '{}' is also used on line {}: give each pipe its own",
                                p.name,
                                at.line(other_span)
                            ),
                        ));
                    } else if other.source == p.source {
                        errors.push(at.error(
                            &span,
                            Some("source"),
                            &format!(
                                "pipe '{}' listens on the same source as pipe '{}' (line {})",
                                p.name,
                                other.name,
                                at.line(other_span)
                            ),
                        ));
                    }
                }
                pipes.push((p, span));
            }
            Err(e) => errors.push(e),
        }
    }
    match errors.is_empty() {
        true => Ok(Config {
            process,
            pipes: pipes.into_iter().map(|(p, _)| p).collect(),
        }),
        false => Err(errors),
    }
}

/// The top level of the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFile {
    wait_dns: Option<Spanned<bool>>,
    foreground: Option<Spanned<bool>>,
    pidfile: Option<Spanned<String>>,
    syslog: Option<Spanned<bool>>,
    user: Option<Spanned<String>>,
    drain_timeout: Option<Spanned<toml::Value>>,
    sandbox: Option<Spanned<toml::Value>>,
    metrics: Option<Spanned<String>>,
    #[serde(default)]
    pipe: Vec<Spanned<RawPipe>>,
}

/// Turns positions in the file into `FILE:LINE: KEY: message` errors.
struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    /// The 1-based line on which `span` starts.
    fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// `FILE:LINE` of `span`.
    fn place(&self, span: &Range<usize>) -> String {
        format!("{}:{}", self.path.display(), self.line(span))
    }

    /// One error line.
    fn error(&self, span: &Range<usize>, key: Option<&str>, msg: &str) -> String {
        match key {
            Some(k) => format!("{}: {k}: {msg}", self.place(span)),
            None => format!("{}: {msg}", self.place(span)),
        }
    }

    /// The key assigned on the line where `span` starts, when the span lies in its
    /// value (TOML's own errors point at values, not at keys).
    fn key_on_line<'t>(&'t self, span: &Range<usize>) -> Option<&'t str> {
        let start = span.start.min(self.text.len());
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let (key, _) = self.text[line_start..start].split_once('=')?;
        let key = key.trim();
        let bare = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        (!key.is_empty() && key.chars().all(bare)).then_some(key)
    }
}

/// The `sandbox` setting: `true` (the default), `false`, or `"on"` / `"strict"` as
/// `--sandbox` takes them.
fn sandbox_mode(v: &toml::Value) -> Result<Mode, String> {
    match v {
        toml::Value::Boolean(true) => Ok(Mode::On),
        toml::Value::Boolean(false) => Ok(Mode::Off),
        toml::Value::String(s) => s.parse().map_err(|e: UnknownMode| e.to_string()),
        other => Err(format!(
            "expected true, false, \"on\" or \"strict\", found {}",
            other.type_str()
        )),
    }
}

/// A TOML number as the command line would spell it, so that its checks apply.
fn number_words(v: &toml::Value) -> Result<String, String> {
    match v {
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        other => Err(format!("expected a number, found {}", other.type_str())),
    }
}

mod pipe_table;
#[cfg(test)]
mod tests;
