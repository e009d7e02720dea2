//! Command-line parsing on arbitrary argument lists: the getopt normaliser and both
//! tools' full parsers never panic, and every refusal is a usage error (exit 1).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spiped::cmd::argv::{HELP, OptSpec, normalise};
use spiped::cmd::parse::Parsed;

const fn opt(short: char, long: &'static str, takes_value: bool, repeatable: bool) -> OptSpec {
    OptSpec {
        short: Some(short),
        long,
        takes_value,
        repeatable,
    }
}

/// A table with every kind of option the normaliser handles.
const SPEC: &[OptSpec] = &[
    opt('h', HELP, false, false),
    opt('k', "--key", true, false),
    opt('n', "--count", true, false),
    opt('D', "--dee", false, false),
    opt('r', "--repeat", true, true),
    OptSpec {
        short: None,
        long: "--long-only",
        takes_value: false,
        repeatable: false,
    },
];

fn status<T>(p: &Parsed<T>) -> i32 {
    match p {
        Parsed::Run(_) => 0,
        Parsed::Exit { status, stderr, .. } => {
            if *status != 0 {
                assert!(!stderr.is_empty());
            }
            *status
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let args: Vec<String> = data
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if let Ok(out) = normalise(&args, SPEC) {
        // Every token is a long option or the value just after one.
        assert!(out.iter().all(|t| !t.is_empty()));
    }
    assert!(matches!(
        status(&spiped::cmd::spiped::args::parse(&args)),
        0 | 1
    ));
    assert!(matches!(
        status(&spiped::cmd::spipe::args::parse(&args)),
        0 | 1
    ));
});
