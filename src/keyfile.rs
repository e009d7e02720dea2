//! Loading the pre-shared key file (a path, or `-` for standard input).

use std::fs::File;
use std::io::{self, Read};

use zeroize::Zeroizing;

use crate::proto::key::Key;

/// Reads the key file whole and hashes it into the protocol key `K`.
///
/// Any length and any bytes are accepted, as in spiped; an empty file is refused because
/// both ends would then share a key that anyone can guess. The raw file contents are
/// wiped from memory after hashing. Errors name the file.
pub fn load(path: &str) -> Result<Key, String> {
    let name = if path == "-" { "standard input" } else { path };
    let mut contents = Zeroizing::new(Vec::new());
    let read = if path == "-" {
        io::stdin().lock().read_to_end(&mut contents)
    } else {
        File::open(path).and_then(|mut f| f.read_to_end(&mut contents))
    };
    read.map_err(|e| {
        format!(
            "cannot read key file {name}: {}",
            crate::errors::describe(&e)
        )
    })?;
    if contents.is_empty() {
        return Err(format!(
            "key file {name} is empty: create one with `spiped keygen > FILE` (32 random bytes)"
        ));
    }
    Ok(Key::from_file_contents(&contents))
}
