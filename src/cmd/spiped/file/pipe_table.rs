//! One `[[pipe]]` table of a configuration file: its keys are the command line's long
//! option names (checked by the command line's own validation, so a mistake is worded
//! alike in both), plus what only a file can say: the pipe's name, keys with targets
//! of their own (routing by key), `allow` and `idle-timeout`.

use std::collections::HashMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::{Locator, number_words};
use crate::cmd::spiped::args::Args;
use crate::cmd::spiped::pipe_args::more_targets;
use crate::config::{Direction, KeyRoute, PipeConfig};

/// One `[[pipe]]` table: the command line's long option names, plus what only a file
/// can say. Numbers and `key` stay raw TOML values so that their errors are ours.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawPipe {
    name: Option<Spanned<String>>,
    encrypt: Option<Spanned<bool>>,
    decrypt: Option<Spanned<bool>>,
    source: Option<Spanned<String>>,
    target: Option<Spanned<toml::Value>>,
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
    balance: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<toml::Value>>,
    health_interval: Option<Spanned<toml::Value>>,
}

/// An entry of `keys`: a key file and, for routing by key, its own target.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    file: Spanned<String>,
    target: Option<Spanned<toml::Value>>,
}

/// Collects a raw pipe's values as command-line words, remembering where each was.
struct PipeValues<'a> {
    at: &'a Locator<'a>,
    spans: HashMap<&'static str, Range<usize>>,
}

impl PipeValues<'_> {
    fn flag(&mut self, key: &'static str, v: Option<Spanned<bool>>) -> bool {
        v.is_some_and(|v| {
            self.spans.insert(key, v.span());
            v.into_inner()
        })
    }

    /// `target`: an address or a list of them, none twice.
    fn targets(&mut self, v: Option<Spanned<toml::Value>>) -> Result<Vec<String>, String> {
        let Some(v) = v else { return Ok(Vec::new()) };
        let span = v.span();
        self.spans.insert("target", span.clone());
        let bad = |msg: &str| self.at.error(&span, Some("target"), msg);
        let list = match v.into_inner() {
            toml::Value::String(s) => vec![s],
            toml::Value::Array(list) => list
                .into_iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s),
                    other => Err(bad(&format!(
                        "expected an address or a list of them, found a list holding {}",
                        other.type_str()
                    ))),
                })
                .collect::<Result<_, _>>()?,
            other => {
                return Err(bad(&format!(
                    "expected an address or a list of them, found {}",
                    other.type_str()
                )));
            }
        };
        if list.is_empty() {
            return Err(bad("the list is empty: give at least one target"));
        }
        if let Some(twice) =
            (list.iter().enumerate()).find_map(|(i, t)| list[..i].contains(t).then_some(t))
        {
            return Err(bad(&format!(
                "{twice} is listed twice: list each target once"
            )));
        }
        Ok(list)
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

/// Checks one `[[pipe]]` table (at `span`, its header) into a pipe's configuration.
pub(super) fn pipe(at: &Locator, raw: RawPipe, span: Range<usize>) -> Result<PipeConfig, String> {
    let mut w = PipeValues {
        at,
        spans: HashMap::new(),
    };
    let error = |w: &PipeValues, key: &'static str, msg: &str| {
        at.error(w.spans.get(key).unwrap_or(&span), Some(key), msg)
    };
    let name = w.text("name", raw.name);
    let source = w.text("source", raw.source);
    let target = w.targets(raw.target)?;
    // A file never relies on systemd's LISTEN_FDS to stand for a missing source.
    if source.is_none() {
        return Err(error(&w, "source", "missing required option -s/--source"));
    }
    let (key_files, key_targets) = key_list(&mut w, raw.key, raw.keys)?;
    let default_target = match target.is_empty() {
        true => key_targets
            .iter()
            .flatten()
            .next()
            .cloned()
            .unwrap_or_default(),
        false => target.clone(),
    };
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
        balance: w.text("balance", raw.balance),
        connect_timeout: w.number("connect-timeout", raw.connect_timeout)?,
        health_interval: w.number("health-interval", raw.health_interval)?,
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
        let own = key_target.as_ref();
        let targets = match own.unwrap_or(&target).split_first() {
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
            Some((first, more)) => {
                let parsed = spiped_transports::Address::parse(first).map_err(|e| {
                    at.error(&file_span, Some("target"), &format!("-t/--target: {e}"))
                })?;
                more_targets(parsed, more, o.bind.as_ref())
                    .map_err(|(key, m)| at.error(&file_span, Some(key), m.message()))?
            }
        };
        keys.push(KeyRoute {
            file,
            targets,
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
        .map(|s| crate::cmd::values::seconds(&s, "idle-timeout"))
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
type KeyFileAt = (String, Range<usize>);

/// A key's own targets (routing by key), if it names any.
type OwnTargets = Option<Vec<String>>;

/// The key files of `key` (a path or a list) or `keys` (tables with a `file` and maybe a
/// `target`), with each one's own target if it has one.
fn key_list(
    w: &mut PipeValues,
    key: Option<Spanned<toml::Value>>,
    keys: Option<Spanned<Vec<RawKey>>>,
) -> Result<(Vec<KeyFileAt>, Vec<OwnTargets>), String> {
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
                    let targets = k.target.map(|t| w.targets(Some(t))).transpose()?;
                    Ok(((k.file.into_inner(), span), targets))
                })
                .collect::<Result<Vec<_>, String>>()?
                .into_iter()
                .unzip())
        }
        (None, None) => Ok((Vec::new(), Vec::new())),
    }
}

/// Parses an `allow` entry: an address (`127.0.0.1`, `::1`, `[::1]`) or a network in
/// CIDR notation (`10.0.0.0/8`). An IPv4-mapped IPv6 entry (`::ffff:127.0.0.1`,
/// `::ffff:10.0.0.0/104`) is taken as the IPv4 address or network it maps, as a peer's
/// address is before it is matched: kept mapped, it could never match.
pub(super) fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
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
