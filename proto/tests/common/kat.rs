//! The known-answer vectors in `proto/tests/vectors/spiped-kat.json`.
//!
//! The file is compiled in so the tests do not depend on the working directory.

use serde_json::Value;

const KAT_JSON: &str = include_str!("../vectors/spiped-kat.json");

/// The parsed vector file.
pub(crate) fn kat() -> Value {
    serde_json::from_str(KAT_JSON).expect("KAT file is valid JSON")
}

/// Decodes a hex string field of `v`.
pub(crate) fn hex_field(v: &Value, name: &str) -> Vec<u8> {
    let s = v[name]
        .as_str()
        .unwrap_or_else(|| panic!("KAT field {name} missing"));
    hex::decode(s).expect("KAT field is hex")
}

/// Decodes a hex string field that must be exactly `N` bytes long.
pub(crate) fn hex_array<const N: usize>(v: &Value, name: &str) -> [u8; N] {
    hex_field(v, name)
        .try_into()
        .unwrap_or_else(|_| panic!("KAT field {name} has the wrong length"))
}

/// The vectors for one mode: `"fast"` or `"pfs"`.
pub(crate) fn mode(all: &Value, pfs: bool) -> Value {
    all["modes"]
        .as_array()
        .expect("modes is an array")
        .iter()
        .find(|m| {
            m["mode"]
                .as_str()
                .is_some_and(|s| s.starts_with("pfs") == pfs)
        })
        .expect("mode present")
        .clone()
}
