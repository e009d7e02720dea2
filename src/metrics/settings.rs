//! What the status page shows of a pipe's configuration: every setting except key
//! material (key files are named, never read out).

use serde_json::{Value, json};

use crate::cli::spiped::{Direction, SpipedOptions};

/// The settings of the pipe `opts` describes, as a JSON object. Key files appear as
/// paths only: nothing derived from their contents is ever shown.
pub fn settings(opts: &SpipedOptions) -> Value {
    let secs = |d: std::time::Duration| d.as_secs_f64();
    json!({
        "direction": match opts.direction {
            Direction::Encrypt => "encrypt",
            Direction::Decrypt => "decrypt",
        },
        "source": opts.source.as_ref().map(|a| a.to_string()),
        "target": opts.target.to_string(),
        "key_files": std::iter::once(&opts.key_file)
            .chain(&opts.extra_key_files)
            .collect::<Vec<_>>(),
        "bind": opts.bind.as_ref().map(|a| a.to_string()),
        "fast": opts.fast,
        "require_pfs": opts.require_pfs,
        "x25519": opts.x25519,
        "max_connections": opts.max_connections,
        "timeout_seconds": secs(opts.timeout),
        "resolve_interval_seconds": opts.resolve_interval.map(secs),
        "keepalive": opts.keepalive,
        "proxy": opts.proxy.map(|p| match p {
            crate::proxy::Version::V1 => "v1",
            crate::proxy::Version::V2 => "v2",
        }),
        "connect_after_handshake": opts.connect_after_handshake,
        "log_connections": opts.log_connections,
        "drain_timeout_seconds": opts.drain_timeout.map(secs),
    })
}
