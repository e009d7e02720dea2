//! The tools of the multi-call binary, each an entry point taking its arguments (without
//! the program name) and returning the process exit status.

pub mod spipe;
pub mod spiped;

use std::io::Write;

use crate::cli::Parsed;

/// Runs `run` on successfully parsed options, or prints what the parser asked for.
pub(crate) fn parsed_or_exit<T>(parsed: Parsed<T>, run: impl FnOnce(T) -> i32) -> i32 {
    match parsed {
        Parsed::Run(opts) => run(opts),
        Parsed::Exit {
            stdout,
            stderr,
            status,
        } => {
            let _ = std::io::stdout().write_all(stdout.as_bytes());
            let _ = std::io::stderr().write_all(stderr.as_bytes());
            status
        }
    }
}

/// Prints `msg` as a one-line error and returns exit status 1.
pub(crate) fn fail(msg: &str) -> i32 {
    crate::log::warn(msg);
    1
}
