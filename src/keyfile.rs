//! Loading the pre-shared key file (a path, or `-` for standard input).

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use zeroize::Zeroizing;

use spiped_proto::key::{Key, KeyHasher};

/// The largest key file hashed. C spiped has no limit but reads the file whole; past this
/// size a "key file" is a mistake (`-k /dev/zero`, a disk image), not a key.
pub(crate) const MAX_KEY_FILE: u64 = 1 << 30;

/// How much of the key file is read (and hashed) at a time: memory use stays at this,
/// whatever the file's size.
const CHUNK: usize = 64 * 1024;

/// Which files a key may be read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Opening {
    /// Start-up and `--check`: any file, as C spiped's `fopen` reads one (a FIFO from
    /// `-k <(command)`, `/dev/stdin`), waiting for its writer as long as it takes:
    /// nothing is served yet.
    Any,
    /// A reload: regular files only, opened without blocking, so that a FIFO or a
    /// device put where a key was cannot stall a daemon that is serving.
    RegularOnly,
}

/// Hashes the key file as a stream into the protocol key `K`.
///
/// Any bytes and any length up to [`MAX_KEY_FILE`] are accepted, as in spiped; a file
/// shorter than 32 bytes (even empty) draws one warning, since such a key may be
/// guessed. Reading stops with an error past [`MAX_KEY_FILE`] bytes, so neither
/// `/dev/zero` nor a huge sparse file can exhaust memory. Every chunk read is wiped
/// from memory after hashing. Errors name the file. `opening` says which files may be
/// read at all.
///
/// A regular key file that its group or everyone may read or write draws a warning on
/// standard error (as ssh does for private keys) but is still used: refusing would
/// break existing setups. Devices, FIFOs and standard input draw none: their modes say
/// nothing about who can read the key.
pub(crate) fn load(path: &str, opening: Opening) -> Result<Key, KeyFileError> {
    let name = if path == "-" { "standard input" } else { path };
    let error = |source| KeyFileError::Read {
        name: name.to_owned(),
        source,
    };
    let read = if path == "-" {
        // Straight from descriptor 0: the buffered `Stdin` would keep a copy of the key
        // in its internal buffer for the life of the process.
        io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .and_then(|fd| hash_stream(File::from(fd)))
    } else {
        let opened = match opening {
            Opening::Any => File::open(path).and_then(|f| Ok((f.metadata()?, f))),
            Opening::RegularOnly => match open_regular(Path::new(path)).map_err(error)? {
                Ok((f, meta)) => Ok((meta, f)),
                Err(what) => {
                    return Err(KeyFileError::NotRegular {
                        name: name.to_owned(),
                        what,
                    });
                }
            },
        };
        opened.and_then(|(meta, f)| {
            if meta.is_file() {
                if meta.len() > MAX_KEY_FILE {
                    return Ok(None);
                }
                if let Some(w) = exposure_warning(path, meta.permissions().mode()) {
                    crate::log::warn(&w);
                }
            }
            hash_stream(f)
        })
    };
    let Some((key, len)) = read.map_err(error)? else {
        return Err(KeyFileError::TooLarge {
            name: name.to_owned(),
        });
    };
    if len < 32 {
        crate::log::warn(&format!(
            "warning: key file {name} holds {len} bytes; use 32 random bytes \
             (`spiped keygen > FILE`)"
        ));
    }
    Ok(key)
}

/// Opens `path` for reading without ever blocking (a FIFO without a writer opens at
/// once) and, if it is a regular file, returns it with its metadata, taken from the
/// open file so that nothing can swap it in between. Otherwise the inner `Err` says
/// what it is ("a FIFO", "a directory"...), and nothing was read from it.
pub(crate) fn open_regular(path: &Path) -> io::Result<Result<(File, Metadata), &'static str>> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    let t = meta.file_type();
    Ok(match t {
        _ if t.is_file() => Ok((f, meta)),
        _ if t.is_fifo() => Err("a FIFO"),
        _ if t.is_dir() => Err("a directory"),
        _ if t.is_char_device() => Err("a character device"),
        _ if t.is_block_device() => Err("a block device"),
        _ if t.is_socket() => Err("a socket"),
        _ => Err("something else"),
    })
}

/// Why a key file could not be loaded; its message names the file (`standard input`
/// for `-k -`).
#[derive(Debug)]
pub(crate) enum KeyFileError {
    /// Opening or reading it failed.
    Read {
        /// The file as the user named it.
        name: String,
        /// What the system said.
        source: io::Error,
    },
    /// It holds more than [`MAX_KEY_FILE`] bytes.
    TooLarge {
        /// The file as the user named it.
        name: String,
    },
    /// A reload found something other than a regular file there ([`Opening`]).
    NotRegular {
        /// The file as the user named it.
        name: String,
        /// What it is instead ("a FIFO").
        what: &'static str,
    },
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileError::Read { name, source } => write!(
                f,
                "cannot read key file {name}: {}",
                crate::errors::describe(source)
            ),
            KeyFileError::TooLarge { name } => write!(
                f,
                "key file {name} is larger than 1 GiB: give -k a file of 32 random bytes \
                 (`spiped keygen > FILE`)"
            ),
            KeyFileError::NotRegular { name, what } => write!(
                f,
                "key file {name} is {what}, not a regular file: a reload reads key files \
                 that are regular files only (any file is read at start-up, as C spiped does)"
            ),
        }
    }
}

impl std::error::Error for KeyFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyFileError::Read { source, .. } => Some(source),
            KeyFileError::TooLarge { .. } | KeyFileError::NotRegular { .. } => None,
        }
    }
}

/// Hashes `r` to its end in chunks through a buffer that is wiped when dropped: the key
/// and how many bytes it had, or `None` once more than [`MAX_KEY_FILE`] bytes came.
fn hash_stream(mut r: impl Read) -> io::Result<Option<(Key, u64)>> {
    let mut buf = Zeroizing::new(vec![0u8; CHUNK]);
    let mut hasher = KeyHasher::new();
    let mut total = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(Some((hasher.finish(), total))),
            Ok(n) => {
                total += n as u64;
                if total > MAX_KEY_FILE {
                    return Ok(None);
                }
                hasher.update(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The warning for a regular key file at `path` with permission bits `mode`, if its
/// group or everyone may read or write it: one line, naming both if both.
fn exposure_warning(path: &str, mode: u32) -> Option<String> {
    let read = who(mode, 0o004, 0o040).map(|who| format!("readable by {who}"));
    let write = who(mode, 0o002, 0o020).map(|who| format!("writable by {who}"));
    let how = match (read, write) {
        (None, None) => return None,
        (Some(r), Some(w)) => format!("{r} and {w}"),
        (r, w) => r.or(w).unwrap_or_default(),
    };
    Some(format!(
        "warning: key file {path} is {how} (mode {:03o}); chmod 600 it",
        mode & 0o777
    ))
}

/// Who besides the owner has the permission whose bit for others is `others` and for
/// the group `group`, in `mode`: "everyone", "its group", or nobody.
pub(crate) fn who(mode: u32, others: u32, group: u32) -> Option<&'static str> {
    match mode {
        m if m & others != 0 => Some("everyone"),
        m if m & group != 0 => Some("its group"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_only_when_group_or_others_can_read() {
        for mode in [0o600, 0o400, 0o700, 0o100600] {
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

    #[test]
    fn names_who_can_read() {
        for (mode, who) in [
            (0o640, "its group"),
            (0o660, "its group"),
            (0o604, "everyone"),
            (0o644, "everyone"),
        ] {
            let w = exposure_warning("k", mode).unwrap();
            assert!(w.contains(&format!("readable by {who} ")), "{mode:o}: {w}");
        }
    }

    #[test]
    fn a_missing_file_is_named_with_the_system_error_as_source() {
        let e = load("/nonexistent/key", Opening::Any).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read key file /nonexistent/key: No such file or directory"
        );
        let source = std::error::Error::source(&e).expect("source");
        let io = source.downcast_ref::<io::Error>().expect("io::Error");
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn names_who_can_write_on_the_same_line() {
        let w = exposure_warning("k", 0o622).unwrap();
        assert_eq!(
            w,
            "warning: key file k is writable by everyone (mode 622); chmod 600 it"
        );
        let w = exposure_warning("k", 0o664).unwrap();
        assert!(
            w.contains("readable by everyone and writable by its group (mode 664)"),
            "{w}"
        );
    }

    #[test]
    fn a_reload_refuses_a_fifo_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("key");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = load(fifo.to_str().unwrap(), Opening::RegularOnly).unwrap_err();
        assert!(
            e.to_string().contains("is a FIFO, not a regular file"),
            "{e}"
        );
        let e = load(dir.path().to_str().unwrap(), Opening::RegularOnly).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
    }

    #[test]
    fn streamed_hash_equals_whole_hash() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i * 7) as u8).collect();
        let (k, n) = hash_stream(&data[..]).unwrap().unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(k.as_bytes(), Key::from_file_contents(&data).as_bytes());
    }
}
