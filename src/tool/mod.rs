//! The tools of the multi-call binary, each an entry point taking its arguments (without
//! the program name) and returning the process exit status.

pub mod bench;
pub mod completions;
pub mod keygen;
pub mod spipe;
pub mod spiped;

use std::io::Write;

use crate::cli::{Parsed, ToolDoc};

/// One tool of the multi-call binary.
pub struct Entry {
    /// The name it answers to: as `spiped NAME ...`, and for `spiped`/`spipe` also as
    /// the program's own name.
    pub name: &'static str,
    /// Runs the tool on its arguments (without the name) and returns the exit status.
    pub main: fn(&[String]) -> i32,
    /// Describes its options, for the shell completions.
    pub doc: fn() -> ToolDoc,
}

/// Every tool, in the order usage texts and completions list them. `spiped` comes first:
/// it is what the binary does when no tool is named.
pub const TOOLS: &[Entry] = &[
    Entry {
        name: "spiped",
        main: spiped::main,
        doc: crate::cli::spiped::doc,
    },
    Entry {
        name: "spipe",
        main: spipe::main,
        doc: crate::cli::spipe::doc,
    },
    Entry {
        name: "keygen",
        main: keygen::main,
        doc: crate::cli::keygen::doc,
    },
    Entry {
        name: "bench",
        main: bench::main,
        doc: crate::cli::bench::doc,
    },
    Entry {
        name: "completions",
        main: completions::main,
        doc: crate::cli::completions::doc,
    },
];

/// The tool called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Entry> {
    TOOLS.iter().find(|t| t.name == name)
}

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

/// The message for an event loop that could not start or stopped working: epoll found
/// no descriptor or memory left, which the user can act on.
pub(crate) fn event_loop_failed(e: std::io::Error) -> String {
    format!(
        "event loop failed: {} (out of file descriptors or memory? check ulimit -n)",
        crate::errors::describe(&e)
    )
}
