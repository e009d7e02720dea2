//! Turning system errors into short messages for the one-line errors users see.

use std::io;

/// The OS's description of an I/O error without Rust's "(os error N)" suffix.
pub fn describe(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}
