//! Turning system errors into short messages for the one-line errors users see.

use std::io;

use spiped_transports::{ACCEPT_BACKOFF, AcceptTrouble, Endpoint};

/// The OS's description of an I/O error without Rust's "(os error N)" suffix.
pub(crate) fn describe(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// The warning for a change in a listener's run of failed accepts (said once when it
/// starts and once when it ends: out of descriptors, accept fails every back-off
/// period, and ten lines a second would bury everything else).
pub(crate) fn accept_trouble(on: &Endpoint, trouble: AcceptTrouble<'_>) -> String {
    match trouble {
        AcceptTrouble::Failing(e) => format!(
            "accept on {on} failed: {}; retrying every {} ms",
            describe(e),
            ACCEPT_BACKOFF.as_millis()
        ),
        AcceptTrouble::Recovered(n) => format!("accepting on {on} again after {n} failed attempts"),
    }
}
