//! Reading a configuration file (TOML): process-wide settings at the top, one
//! `[[pipe]]` table per pipe under the command line's long option names. Every error is
//! one line naming the file, the line and the key, worded as the command line words the
//! same mistake.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::args::{Args, ConfigOptions, parse_drain_timeout, parse_metrics, parse_user};
use crate::config::{Config, Direction, KeyRoute, PipeConfig, Process};
use crate::sandbox::{Mode, UnknownMode};

/// The pidfile of a configuration without `pidfile` and without `-p`, in the working
/// directory as C spiped's default pidfile is.
const DEFAULT_PIDFILE: &str = "spiped.pid";

/// The largest configuration file read: far more than any real one, and little enough
/// that `-c /dev/zero`'s like cannot exhaust memory.
pub const MAX_CONFIG_FILE: u64 = 1 << 20;

/// Reads and checks the file `opts` names, letting the command line's `-D`, `-F`, `-p`,
/// `-u` and `--syslog` override the file. `Err` holds every error found, each a line.
pub fn load(opts: &ConfigOptions) -> Result<Config, Vec<String>> {
    let text = read_file(&opts.path).map_err(|e| vec![e])?;
    let mut config = parse(&opts.path, &text)?;
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
fn read_file(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let shown = path.display();
    let cannot = |e: std::io::Error| {
        format!(
            "cannot read configuration file {shown}: {}",
            crate::errors::describe(&e)
        )
    };
    let (file, meta) = crate::keyfile::open_regular(path)
        .map_err(cannot)?
        .map_err(|what| format!("configuration file {shown} is {what}, not a regular file"))?;
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
    (file.take(MAX_CONFIG_FILE + 1).read_to_end(&mut bytes)).map_err(cannot)?;
    if bytes.len() as u64 > MAX_CONFIG_FILE {
        return Err(format!(
            "configuration file {shown} is larger than 1 MiB: is it the right file?"
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        cannot(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })
}

/// The configuration that `text`, the contents of the file at `path`, describes.
pub fn parse(path: &Path, text: &str) -> Result<Config, Vec<String>> {
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

/// One `[[pipe]]` table: the command line's long option names, plus what only a file
/// can say. Numbers and `key` stay raw TOML values so that their errors are ours.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPipe {
    name: Option<Spanned<String>>,
    encrypt: Option<Spanned<bool>>,
    decrypt: Option<Spanned<bool>>,
    source: Option<Spanned<String>>,
    target: Option<Spanned<String>>,
    key: Option<Spanned<toml::Value>>,
    keys: Option<Spanned<Vec<RawKey>>>,
    bind: Option<Spanned<String>>,
    no_keepalive: Option<Spanned<bool>>,
    fast: Option<Spanned<bool>>,
    require_pfs: Option<Spanned<bool>>,
    x25519: Option<Spanned<bool>>,
    max_connections: Option<Spanned<toml::Value>>,
    timeout: Option<Spanned<toml::Value>>,
    resolve_interval: Option<Spanned<toml::Value>>,
    no_resolve: Option<Spanned<bool>>,
    proxy: Option<Spanned<String>>,
    connect_after_handshake: Option<Spanned<bool>>,
    log_connections: Option<Spanned<bool>>,
    socket_mode: Option<Spanned<String>>,
    socket_owner: Option<Spanned<String>>,
    allow: Option<Spanned<Vec<Spanned<String>>>>,
    idle_timeout: Option<Spanned<toml::Value>>,
}

/// An entry of `keys`: a key file and, for routing by key, its own target.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    file: Spanned<String>,
    target: Option<Spanned<String>>,
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

/// Collects a raw pipe's values as command-line words, remembering where each was.
struct Words<'a> {
    at: &'a Locator<'a>,
    spans: HashMap<&'static str, Range<usize>>,
}

impl Words<'_> {
    fn flag(&mut self, key: &'static str, v: Option<Spanned<bool>>) -> bool {
        v.is_some_and(|v| {
            self.spans.insert(key, v.span());
            v.into_inner()
        })
    }

    fn text(&mut self, key: &'static str, v: Option<Spanned<String>>) -> Option<String> {
        v.map(|v| {
            self.spans.insert(key, v.span());
            v.into_inner()
        })
    }

    /// A number as the command line would spell it, so that its checks apply.
    fn number(
        &mut self,
        key: &'static str,
        v: Option<Spanned<toml::Value>>,
    ) -> Result<Option<String>, String> {
        let Some(v) = v else { return Ok(None) };
        let span = v.span();
        self.spans.insert(key, span.clone());
        number_words(v.get_ref())
            .map(Some)
            .map_err(|e| self.at.error(&span, Some(key), &e))
    }
}

/// A TOML number as the command line would spell it, so that its checks apply.
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

fn number_words(v: &toml::Value) -> Result<String, String> {
    match v {
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        other => Err(format!("expected a number, found {}", other.type_str())),
    }
}

/// Checks one `[[pipe]]` table (at `span`, its header) into a pipe's configuration.
fn pipe(at: &Locator, raw: RawPipe, span: Range<usize>) -> Result<PipeConfig, String> {
    let mut w = Words {
        at,
        spans: HashMap::new(),
    };
    let error = |w: &Words, key: &'static str, msg: &str| {
        at.error(w.spans.get(key).unwrap_or(&span), Some(key), msg)
    };
    let name = w.text("name", raw.name);
    let source = w.text("source", raw.source);
    let target = w.text("target", raw.target);
    // A file never relies on systemd's LISTEN_FDS to stand for a missing source.
    if source.is_none() {
        return Err(error(&w, "source", "missing required option -s/--source"));
    }
    let (key_files, key_targets) = key_list(&mut w, raw.key, raw.keys)?;
    let default_target = target
        .clone()
        .or_else(|| key_targets.iter().flatten().next().cloned());
    let args = Args {
        encrypt: w.flag("encrypt", raw.encrypt),
        decrypt: w.flag("decrypt", raw.decrypt),
        source: source.clone(),
        target: default_target,
        key: key_files.iter().map(|(f, _)| f.clone()).collect(),
        bind: w.text("bind", raw.bind),
        no_keepalive: w.flag("no-keepalive", raw.no_keepalive),
        fast: w.flag("fast", raw.fast),
        require_pfs: w.flag("require-pfs", raw.require_pfs),
        x25519: w.flag("x25519", raw.x25519),
        max_connections: w.number("max-connections", raw.max_connections)?,
        timeout: w.number("timeout", raw.timeout)?,
        resolve_interval: w.number("resolve-interval", raw.resolve_interval)?,
        no_resolve: w.flag("no-resolve", raw.no_resolve),
        proxy: w.text("proxy", raw.proxy),
        connect_after_handshake: w.flag("connect-after-handshake", raw.connect_after_handshake),
        log_connections: w.flag("log-connections", raw.log_connections),
        socket_mode: w.text("socket-mode", raw.socket_mode),
        socket_owner: w.text("socket-owner", raw.socket_owner),
        ..Args::default()
    };
    let idle = w.number("idle-timeout", raw.idle_timeout)?;
    let (o, _) = args
        .pipe()
        .map_err(|(key, m)| error(&w, key, m.message()))?;
    if key_files.iter().any(|(f, _)| f == "-") {
        return Err(error(
            &w,
            "key",
            "a key from standard input (-) is for the command line; name a key file",
        ));
    }
    if key_targets.iter().any(Option::is_some) && o.direction != Direction::Decrypt {
        return Err(error(
            &w,
            "keys",
            "a key's own target (routing by key) is for -d/--decrypt pipes",
        ));
    }
    let mut keys = Vec::new();
    for ((file, file_span), key_target) in key_files.into_iter().zip(key_targets) {
        let target = match key_target.as_deref().or(target.as_deref()) {
            None => {
                return Err(at.error(
                    &file_span,
                    Some("keys"),
                    &format!(
                        "key {file} has no target, and the pipe has none: \
                         missing required option -t/--target"
                    ),
                ));
            }
            Some(t) => spiped_transports::Address::parse(t)
                .map_err(|e| at.error(&file_span, Some("target"), &format!("-t/--target: {e}")))?,
        };
        keys.push(KeyRoute {
            file,
            target,
            at: Some(at.place(&file_span)),
        });
    }
    let mut allow = Vec::new();
    if let Some(list) = raw.allow {
        if o.source.as_ref().is_some_and(|s| s.is_unix()) {
            return Err(at.error(
                &list.span(),
                Some("allow"),
                "allow lists client IP addresses: it is for TCP sources, not a UNIX socket",
            ));
        }
        if list.get_ref().is_empty() {
            return Err(at.error(
                &list.span(),
                Some("allow"),
                "the list is empty: list the clients to serve, or leave allow out to serve \
                 every client",
            ));
        }
        for entry in list.into_inner() {
            allow.push(
                parse_net(entry.get_ref())
                    .map_err(|e| at.error(&entry.span(), Some("allow"), &e))?,
            );
        }
    }
    let idle_timeout = idle
        .map(|s| crate::cmd::parse::seconds(&s, "idle-timeout"))
        .transpose()
        .map_err(|e| error(&w, "idle-timeout", &e))?;
    let name = name.or(source).unwrap_or_default();
    Ok(PipeConfig {
        allow,
        idle_timeout,
        name,
        keys,
        ..o
    })
}

/// A key file with where it is written.
type Located = (String, Range<usize>);

/// The key files of `key` (a path or a list) or `keys` (tables with a `file` and maybe a
/// `target`), with each one's own target if it has one.
fn key_list(
    w: &mut Words,
    key: Option<Spanned<toml::Value>>,
    keys: Option<Spanned<Vec<RawKey>>>,
) -> Result<(Vec<Located>, Vec<Option<String>>), String> {
    let at = w.at;
    match (key, keys) {
        (Some(_), Some(keys)) => Err(at.error(
            &keys.span(),
            Some("keys"),
            "key and keys cannot be used together: list every key under one of them",
        )),
        (Some(key), None) => {
            let span = key.span();
            w.spans.insert("key", span.clone());
            let bad = |found: &str| {
                at.error(
                    &span,
                    Some("key"),
                    &format!("expected a key file path or a list of them, found {found}"),
                )
            };
            let files = match key.into_inner() {
                toml::Value::String(s) => vec![s],
                toml::Value::Array(list) => list
                    .into_iter()
                    .map(|v| match v {
                        toml::Value::String(s) => Ok(s),
                        other => Err(bad(&format!("a list holding {}", other.type_str()))),
                    })
                    .collect::<Result<_, _>>()?,
                other => return Err(bad(other.type_str())),
            };
            let n = files.len();
            Ok((
                files.into_iter().map(|f| (f, span.clone())).collect(),
                vec![None; n],
            ))
        }
        (None, Some(keys)) => {
            w.spans.insert("keys", keys.span());
            Ok(keys
                .into_inner()
                .into_iter()
                .map(|k| {
                    let span = k.file.span();
                    (
                        (k.file.into_inner(), span),
                        k.target.map(Spanned::into_inner),
                    )
                })
                .unzip())
        }
        (None, None) => Ok((Vec::new(), Vec::new())),
    }
}

/// Parses an `allow` entry: an address (`127.0.0.1`, `::1`, `[::1]`) or a network in
/// CIDR notation (`10.0.0.0/8`). An IPv4-mapped IPv6 entry (`::ffff:127.0.0.1`,
/// `::ffff:10.0.0.0/104`) is taken as the IPv4 address or network it maps, as a peer's
/// address is before it is matched: kept mapped, it could never match.
fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    let net = bare
        .parse::<ipnet::IpNet>()
        .or_else(|_| bare.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            format!("invalid address '{s}': expected an IP address or network, such as 10.0.0.0/8 or [::1]")
        })?;
    Ok(match net {
        ipnet::IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, ipnet::IpNet::V4),
            None => net,
        },
        _ => net,
    })
}

#[cfg(test)]
mod tests;
