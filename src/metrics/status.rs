//! The open connections, as the status page's JSON and as SIGUSR1's log lines.

use serde_json::{Value, json};

use super::Metrics;
use super::live::Snapshot;

/// The status page: process facts, then each pipe with its settings and open
/// connections (oldest first).
pub(super) fn json(m: &Metrics) -> String {
    let pipes: Vec<Value> = m
        .pipes()
        .iter()
        .map(|p| {
            let open = p.open();
            let conns: Vec<Value> = open.iter().map(|c| conn(&c.snapshot())).collect();
            json!({
                "pipe": p.label(),
                "settings": p.settings(),
                "target_addresses": p.target_addresses(),
                "open_connections": conns,
            })
        })
        .collect();
    let status = json!({
        "version": super::VERSION,
        "revision": super::REVISION,
        "uptime_seconds": m.uptime().as_secs_f64(),
        "sandbox": crate::sandbox::in_force().map(ToString::to_string),
        // Whether every layer asked for is in force: the start-up line is then silent.
        "sandbox_as_asked": crate::sandbox::in_force().map(|c| c.as_asked()),
        "pipes": pipes,
    });
    let mut text = status.to_string();
    text.push('\n');
    text
}

fn conn(s: &Snapshot<'_>) -> Value {
    json!({
        "id": s.id,
        "peer": s.peer,
        "target": s.target,
        "age_seconds": s.age.as_secs_f64(),
        "bytes_from_peer": s.from_peer,
        "bytes_to_peer": s.to_peer,
        "state": s.state.label(),
        "handshake": s.handshake.map(|(e, _)| super::reason::kind_label(e)),
        "key": s.handshake.map(|(_, k)| k),
    })
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
            json!({"direction": "encrypt"}),
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
             \"settings\":{{\"direction\":\"encrypt\"}},\"target_addresses\":[]}}],\
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
