//! The multi-call binary: one folder per tool, each an `args.rs` (its command line, parsed
//! and validated) and a `run.rs` (its entry point, taking the arguments without the
//! program name and returning the process exit status); and the dispatch to them by
//! program name (`spiped`, `spipe`) or first argument (`spiped keygen`).
//!
//! [`argv`] and [`parse`] hold what every command line shares; `shared_options` the options
//! `spiped` and `spipe` share.

pub mod argv;
pub mod parse;
pub(crate) mod shared_options;
pub(crate) mod values;

/// `spiped`: the daemon.
pub mod spiped {
    pub mod args;
    pub(crate) mod file;
    mod pipe_args;
    pub(crate) mod run;
    #[cfg(test)]
    mod tests;
}

/// `spipe`: standard input and output through an encrypted connection.
pub mod spipe {
    pub mod args;
    pub(crate) mod run;
}

/// `spiped keygen`: a new random key.
pub(crate) mod keygen {
    pub(crate) mod args;
    pub(crate) mod run;
}

/// `spiped bench`: this machine's throughput and handshake rate.
pub(crate) mod bench {
    pub(crate) mod args;
    mod crypto;
    mod loopback;
    pub(crate) mod run;
}

/// `spiped completions`: shell completion scripts generated from every tool's options.
pub(crate) mod completions {
    pub(crate) mod args;
    pub(crate) mod run;
}

use std::io::Write;
use std::path::Path;

use parse::{Parsed, ToolDoc};

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
        main: spiped::run::main,
        doc: spiped::args::doc,
    },
    Entry {
        name: "spipe",
        main: spipe::run::main,
        doc: spipe::args::doc,
    },
    Entry {
        name: "keygen",
        main: keygen::run::main,
        doc: keygen::args::doc,
    },
    Entry {
        name: "bench",
        main: bench::run::main,
        doc: bench::args::doc,
    },
    Entry {
        name: "completions",
        main: completions::run::main,
        doc: completions::args::doc,
    },
];

/// The tool called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Entry> {
    TOOLS.iter().find(|t| t.name == name)
}

/// The usage text for a program name or tool we do not know, listing every tool.
fn usage() -> String {
    let names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
    format!(
        "usage: spiped {{{}}} [OPTIONS...]
   or: spiped [OPTIONS...]     (the daemon)
   or: spipe [OPTIONS...]      (the binary installed or linked under the name spipe)
Run `spiped TOOL -h` for the options of each tool.
",
        names.join(" | ")
    )
}

/// Acts as the tool the process is named after (`spiped`, `spipe`), or as the tool its
/// first argument names (`spiped keygen`); returns the process exit status.
pub fn main() -> i32 {
    let args: Vec<String> = match std::env::args_os().map(|a| a.into_string()).collect() {
        Ok(v) => v,
        Err(bad) => {
            eprintln!(
                "spiped: argument is not valid UTF-8: {}",
                bad.to_string_lossy()
            );
            return 1;
        }
    };
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let rest = args.get(1..).unwrap_or(&[]);
    // The daemon takes no operands, so a first argument naming a tool is unambiguous.
    let first = rest.first().map(String::as_str);
    match (first.and_then(find), name) {
        (Some(t), _) => (t.main)(&rest[1..]),
        (None, "spiped") if first.is_some_and(|a| !a.starts_with('-')) => {
            eprint!(
                "spiped: unknown tool '{}'\n{}",
                first.unwrap_or(""),
                usage()
            );
            1
        }
        (None, "spiped") => spiped::run::main(rest),
        (None, "spipe") => spipe::run::main(rest),
        _ => {
            eprint!("{}", usage());
            1
        }
    }
}

/// Runs the tool called `program` (so its messages name it, from its command line's
/// warnings on): `run` on the options `parse` makes of `args`, exit 0 or its error as
/// one line and exit 1; or, when parsing ends it, prints what the parser asked for.
pub(crate) fn run_tool<T>(
    program: &'static str,
    args: &[String],
    parse: fn(&[String]) -> Parsed<T>,
    run: impl FnOnce(T) -> Result<(), String>,
) -> i32 {
    crate::log::set_program(program);
    match parse(args) {
        Parsed::Run(opts) => match run(opts) {
            Ok(()) => 0,
            Err(e) => {
                crate::log::warn(&e);
                1
            }
        },
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

/// The message for an event loop that could not start or stopped working: epoll found
/// no descriptor or memory left, which the user can act on.
pub(crate) fn event_loop_failed(e: std::io::Error) -> String {
    format!(
        "event loop failed: {} (out of file descriptors or memory? check ulimit -n)",
        crate::errors::describe(&e)
    )
}
