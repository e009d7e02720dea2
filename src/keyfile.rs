//! Loading the pre-shared key file (a path, or `-` for standard input).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt as _;

use zeroize::Zeroizing;

use crate::proto::key::Key;

/// Reads the key file whole and hashes it into the protocol key `K`.
///
/// Any length and any bytes are accepted, as in spiped; an empty file is refused because
/// both ends would then share a key that anyone can guess. The raw file contents are
/// wiped from memory after hashing. Errors name the file.
///
/// A key file that its group or others may read draws a warning on standard error (as
/// ssh does for private keys) but is still used: refusing would break existing setups.
pub fn load(path: &str) -> Result<Key, String> {
    let name = if path == "-" { "standard input" } else { path };
    let read = if path == "-" {
        // Straight from descriptor 0: the buffered `Stdin` would keep a copy of the key
        // in its internal buffer for the life of the process.
        io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .and_then(|fd| read_wiped(File::from(fd), 0))
    } else {
        File::open(path).and_then(|f| {
            let meta = f.metadata()?;
            if let Some(w) = exposure_warning(path, meta.permissions().mode()) {
                crate::log::warn(&w);
            }
            read_wiped(f, usize::try_from(meta.len()).unwrap_or(0))
        })
    };
    let contents = read.map_err(|e| {
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

/// Reads `r` to its end into a buffer that is wiped when dropped, growing it by hand:
/// a `Vec` growing itself would free each smaller copy of the key unwiped.
fn read_wiped(mut r: impl Read, size_hint: usize) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(size_hint.saturating_add(1).max(256)));
    loop {
        if buf.len() == buf.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(buf.capacity() * 2));
            bigger.extend_from_slice(&buf);
            buf = bigger;
        }
        let len = buf.len();
        // Within the capacity, so this never reallocates.
        let cap = buf.capacity();
        buf.resize(cap, 0);
        let got = r.read(&mut buf[len..]);
        buf.truncate(len + *got.as_ref().unwrap_or(&0));
        match got {
            Ok(0) => return Ok(buf),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The warning for a key file at `path` with permission bits `mode`, if its group or
/// others may read it.
fn exposure_warning(path: &str, mode: u32) -> Option<String> {
    (mode & 0o044 != 0).then(|| {
        format!(
            "warning: key file {path} is readable by others (mode {:03o}); chmod 600 it",
            mode & 0o777
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_only_when_group_or_others_can_read() {
        for mode in [0o600, 0o400, 0o700, 0o622, 0o100600] {
            assert_eq!(exposure_warning("k", mode), None, "{mode:o}");
        }
        for mode in [0o640, 0o604, 0o644, 0o100644] {
            let w = exposure_warning("/etc/k", mode).expect("warning");
            assert!(w.contains("/etc/k") && w.contains("chmod 600"), "{w}");
        }
        assert!(
            exposure_warning("k", 0o100644)
                .unwrap()
                .contains("mode 644")
        );
    }
}
