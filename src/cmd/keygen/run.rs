//! `spiped keygen`: a new random key, to standard output or to a private file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::args::{KeygenOptions, parse};
use crate::errors::describe;

/// Entry point of `spiped keygen`; returns the exit status.
pub(crate) fn main(args: &[String]) -> i32 {
    crate::cmd::run_tool("spiped keygen", args, parse, |opts| run(&opts))
}

fn run(opts: &KeygenOptions) -> Result<(), String> {
    let mut key = Zeroizing::new(vec![0u8; opts.bytes]);
    getrandom::fill(&mut key).map_err(|e| format!("cannot get random bytes from the OS: {e}"))?;
    match &opts.output {
        None => to_stdout(&key),
        Some(path) => to_file(path, &key, opts.force),
    }
}

fn to_stdout(key: &[u8]) -> Result<(), String> {
    let stdout = io::stdout();
    if stdout.is_terminal() {
        return Err("refusing to write raw key bytes to a terminal; \
                    redirect standard output (spiped keygen > keyfile) or use -o <file>"
            .to_owned());
    }
    // Written through a duplicate of the descriptor, unbuffered: Stdout's buffer would
    // keep a copy of the key that nothing wipes, and a late flush would hide write errors.
    let fail = |e: io::Error| format!("cannot write the key to standard output: {}", describe(&e));
    let mut out = File::from(stdout.as_fd().try_clone_to_owned().map_err(fail)?);
    out.write_all(key).map_err(fail)
}

/// Writes the key to a new file that only its owner can read.
///
/// The file is created with mode 0600 from the start, so the key is never readable by
/// others even for a moment. With `force`, the new file is written beside the old one
/// and renamed over it: a failure leaves the old key in place, and an old file's looser
/// permissions are not inherited.
fn to_file(path: &Path, key: &[u8], force: bool) -> Result<(), String> {
    let shown = path.display();
    let staging = if force {
        if let Ok(meta) = fs::symlink_metadata(path)
            && !meta.is_file()
        {
            return Err(format!(
                "{shown} exists and is not a regular file; not replacing it"
            ));
        }
        staging_path(path)?
    } else {
        path.to_path_buf()
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staging)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists if !force => {
                format!("{shown} already exists; use --force to replace it")
            }
            _ => format!("cannot create {}: {}", staging.display(), describe(&e)),
        })?;
    let written = file
        .write_all(key)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {}", staging.display(), describe(&e)))
        .and_then(|()| match force {
            true => fs::rename(&staging, path)
                .map_err(|e| format!("cannot replace {shown}: {}", describe(&e))),
            false => Ok(()),
        });
    if written.is_err() {
        // A partial key file is worse than none: spiped would accept it.
        let _ = fs::remove_file(&staging);
    }
    written
}

/// A fresh name in `path`'s directory for the replacement file (rename needs the same
/// file system).
fn staging_path(path: &Path) -> Result<PathBuf, String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} is not a file name", path.display()))?;
    let mut tag = [0u8; 8];
    getrandom::fill(&mut tag).map_err(|e| format!("cannot get random bytes from the OS: {e}"))?;
    let mut staged = std::ffi::OsString::from(".");
    staged.push(name);
    staged.push(format!(".keygen-{:016x}", u64::from_ne_bytes(tag)));
    Ok(path.with_file_name(staged))
}
