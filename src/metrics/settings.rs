//! What the status page shows of a pipe's configuration: its serialized form, which
//! leaves key material out (key files are named, never read out).

use serde_json::Value;

use crate::config::PipeConfig;

/// The settings of `pipe`, as a JSON object.
pub(crate) fn settings(pipe: &PipeConfig) -> Value {
    // Text, numbers and lists only: nothing here can fail to serialize.
    serde_json::to_value(pipe).unwrap_or(Value::Null)
}
