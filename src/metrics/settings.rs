//! What the status page shows of a pipe's configuration: every setting except key
//! material (key files are named, never read out).

use serde_json::{Value, json};

use crate::config::Direction;
use crate::config::PipeConfig;

/// The settings of `pipe`, as a JSON object. Key files appear as paths only, each with
/// its target: nothing derived from their contents is ever shown.
pub fn settings(pipe: &PipeConfig) -> Value {
    let secs = |d: std::time::Duration| d.as_secs_f64();
    let keys: Vec<Value> = (pipe.keys.iter())
        .map(|k| json!({ "file": k.file, "target": k.target.to_string() }))
        .collect();
    json!({
        "name": pipe.name,
        "direction": match pipe.direction {
            Direction::Encrypt => "encrypt",
            Direction::Decrypt => "decrypt",
        },
        "source": pipe.source.as_ref().map(|a| a.to_string()),
        "keys": keys,
        "bind": pipe.bind.as_ref().map(|a| a.to_string()),
        "fast": pipe.fast,
        "require_pfs": pipe.require_pfs,
        "x25519": pipe.x25519,
        "max_connections": pipe.max_connections,
        "timeout_seconds": secs(pipe.timeout),
        "resolve_interval_seconds": pipe.resolve_interval.map(secs),
        "idle_timeout_seconds": pipe.idle_timeout.map(secs),
        "keepalive": pipe.keepalive,
        "proxy": pipe.proxy.map(|p| match p {
            crate::session::proxy::Version::V1 => "v1",
            crate::session::proxy::Version::V2 => "v2",
        }),
        "connect_after_handshake": pipe.connect_after_handshake,
        "log_connections": pipe.log_connections,
        "allow": pipe.allow.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
    })
}
