//! The open connections, as the status page's JSON and as SIGUSR1's log lines.

use serde::Serialize;

use super::Metrics;
use super::live::{LiveConn, Snapshot};
use crate::targets::TargetSnapshot;

// The fields of each object are in alphabetical order: the order of the page's keys since
// it was first served (it was built as a `serde_json` map, which sorts them).

/// The status page: process facts and the pipes.
#[derive(Serialize)]
struct Status<'a> {
    pipes: Vec<PipeStatus<'a>>,
    revision: &'static str,
    sandbox: Option<String>,
    /// Whether every layer asked for is in force: the start-up line is then silent.
    sandbox_as_asked: Option<bool>,
    uptime_seconds: f64,
    version: &'static str,
}

/// A pipe: its settings, where it connects now, and its open connections.
#[derive(Serialize)]
struct PipeStatus<'a> {
    open_connections: Vec<ConnStatus<'a>>,
    pipe: &'a str,
    settings: serde_json::Value,
    target_addresses: Vec<String>,
    targets: Vec<TargetStatus>,
}

/// A target of a pipe: its health, sessions and connects.
#[derive(Serialize)]
struct TargetStatus {
    connect_failures: u64,
    connections: u64,
    /// The last failed connect or check: why, and how many seconds ago.
    last_failure: Option<LastFailure>,
    open: u64,
    target: String,
    up: bool,
}

/// A target's last failure.
#[derive(Serialize)]
struct LastFailure {
    reason: String,
    seconds_ago: f64,
}

impl From<TargetSnapshot> for TargetStatus {
    fn from(t: TargetSnapshot) -> TargetStatus {
        TargetStatus {
            connect_failures: t.connect_failures,
            connections: t.connections,
            last_failure: t.last_failure.map(|(reason, ago)| LastFailure {
                reason,
                seconds_ago: ago.as_secs_f64(),
            }),
            open: t.open,
            target: t.target,
            up: t.up,
        }
    }
}

/// An open connection (see [`Snapshot`]).
#[derive(Serialize)]
struct ConnStatus<'a> {
    age_seconds: f64,
    bytes_from_peer: u64,
    bytes_to_peer: u64,
    /// The key agreement, in the words of the metrics' `kind` label.
    handshake: Option<&'static str>,
    id: u64,
    /// The key number, from 1 in `-k` order.
    key: Option<usize>,
    peer: &'a str,
    state: &'static str,
    target: Option<&'a str>,
}

impl<'a> From<Snapshot<'a>> for ConnStatus<'a> {
    fn from(s: Snapshot<'a>) -> ConnStatus<'a> {
        ConnStatus {
            age_seconds: s.age.as_secs_f64(),
            bytes_from_peer: s.from_peer,
            bytes_to_peer: s.to_peer,
            handshake: s.handshake.map(|(e, _)| super::reason::kind_label(e)),
            id: s.id,
            key: s.handshake.map(|(_, k)| k),
            peer: s.peer,
            state: s.state.label(),
            target: s.target,
        }
    }
}

/// The status page: process facts, then each pipe with its settings and open
/// connections (oldest first).
pub(super) fn json(m: &Metrics) -> String {
    let pipes = m.pipes();
    // Taken first: each connection's object borrows from its record.
    let open: Vec<Vec<std::sync::Arc<LiveConn>>> = pipes.iter().map(|p| p.open()).collect();
    let status = Status {
        pipes: (pipes.iter().zip(&open))
            .map(|(p, open)| PipeStatus {
                open_connections: open.iter().map(|c| c.snapshot().into()).collect(),
                pipe: p.label(),
                settings: p.settings(),
                target_addresses: p.target_addresses(),
                targets: p.targets().into_iter().map(Into::into).collect(),
            })
            .collect(),
        revision: super::REVISION,
        sandbox: crate::sandbox::in_force().map(ToString::to_string),
        sandbox_as_asked: crate::sandbox::in_force().map(|c| c.as_asked()),
        uptime_seconds: m.uptime().as_secs_f64(),
        version: super::VERSION,
    };
    // Cannot fail: every field serializes, and no map has keys that are not strings.
    let mut text = serde_json::to_string(&status).unwrap_or_default();
    text.push('\n');
    text
}

/// One line per pipe (`pipe P: open connections: N`), then one per open connection, in the words
/// of the `--log-connections` lines so the two can be matched by connection number.
pub(super) fn lines(m: &Metrics) -> Vec<String> {
    let mut out = Vec::new();
    for p in m.pipes() {
        let open = p.open();
        out.push(format!(
            "pipe {}: open connections: {}",
            p.label(),
            open.len()
        ));
        for c in open {
            let s = c.snapshot();
            let to = s.target.map(|t| format!(" to {t}")).unwrap_or_default();
            let how = match s.handshake {
                Some((e, k)) => format!(", handshake {e}, key {k}"),
                None => String::new(),
            };
            out.push(format!(
                "connection #{} from {}{to}: {}{how}, {} bytes from peer, {} bytes to peer, {:.3} s",
                s.id,
                s.peer,
                s.state.label(),
                s.from_peer,
                s.to_peer,
                s.age.as_secs_f64()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use spiped_proto::handshake::Exchange;

    use super::*;
    use crate::config::Direction;

    /// The page's bytes, its uptime left out: keys in the order clients have seen them
    /// (alphabetical), nulls for what is not known yet.
    #[test]
    fn status_page_bytes() {
        let m = Metrics::new();
        let p = m.pipe(
            "p".into(),
            Direction::Encrypt,
            1,
            Vec::new(),
            serde_json::json!({"direction": "encrypt"}),
        );
        m.show(&p);
        let (a, b) = (
            p.accepted(7, "peer-a".into()),
            p.accepted(8, "peer-b".into()),
        );
        a.conn().traffic.sent.fetch_add(3, Ordering::Relaxed);
        a.established("target".into(), Exchange::X25519, 1, Default::default());
        let text = json(&m);
        let (head, rest) = text.split_once("\"uptime_seconds\":").unwrap();
        let tail = &rest[rest.find(',').unwrap()..];
        let sandbox = match crate::sandbox::in_force() {
            Some(c) => format!("\"{c}\",\"sandbox_as_asked\":{}", c.as_asked()),
            None => "null,\"sandbox_as_asked\":null".to_owned(),
        };
        let conn = |id, peer, sent, state, kind: &str, key: &str| {
            format!(
                "{{\"age_seconds\":AGE,\"bytes_from_peer\":{sent},\"bytes_to_peer\":0,\
                 \"handshake\":{kind},\"id\":{id},\"key\":{key},\"peer\":\"{peer}\",\
                 \"state\":\"{state}\",{target}}}",
                target = match state {
                    "handshake" => "\"target\":null",
                    _ => "\"target\":\"target\"",
                }
            )
        };
        let want = format!(
            "{{\"pipes\":[{{\"open_connections\":[{},{}],\"pipe\":\"p\",\
             \"settings\":{{\"direction\":\"encrypt\"}},\"target_addresses\":[],\"targets\":[]}}],\
             \"revision\":\"{}\",\"sandbox\":{sandbox},\"uptime_seconds\":UP,\"version\":\"{}\"}}\n",
            conn(7, "peer-a", 3, "open", "\"x25519\"", "2"),
            conn(8, "peer-b", 0, "handshake", "null", "null"),
            super::super::REVISION,
            super::super::VERSION,
        );
        let ages = |s: &str| {
            s.split("\"age_seconds\":")
                .enumerate()
                .map(|(i, part)| match i {
                    0 => part.to_owned(),
                    _ => format!("AGE{}", &part[part.find(',').unwrap()..]),
                })
                .collect::<Vec<_>>()
                .join("\"age_seconds\":")
        };
        assert_eq!(ages(&format!("{head}\"uptime_seconds\":UP{tail}")), want);
        drop((a, b));
    }
}
