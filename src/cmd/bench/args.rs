//! `spiped bench`'s command line.

use std::time::Duration;

use argh::{ArgsInfo, FromArgs};

use crate::cmd::parse::{Parsed, Tool, ToolDoc};

const TOOL: Tool = Tool {
    name: "spiped bench",
    usage: "\
usage: spiped bench [--seconds <seconds>] [--json]
",
};

/// Time spent on each figure when `--seconds` is not given.
const DEFAULT_SECONDS: Duration = Duration::from_secs(1);

/// Upper bound for `--seconds`: the whole run takes about ten times this.
const MAX_SECONDS: Duration = Duration::from_secs(60);

/// A validated `spiped bench` command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BenchOptions {
    /// `--seconds`: how long each figure is measured.
    pub seconds: Duration,
    /// `--json`: print one JSON object instead of a table.
    pub json: bool,
}

/// Parses `spiped bench`'s arguments (after `bench`).
pub(crate) fn parse(args: &[String]) -> Parsed<BenchOptions> {
    let raw: Args = match TOOL.parse_args(args) {
        Ok(raw) => raw,
        Err(exit) => return exit,
    };
    let seconds = match raw.seconds {
        None => DEFAULT_SECONDS,
        Some(s) => match crate::cmd::values::seconds(&s, "--seconds") {
            Ok(d) if d <= MAX_SECONDS => d,
            Ok(_) => {
                return TOOL.mistake(crate::cmd::parse::Mistake::Value(format!(
                    "invalid value '{s}' for --seconds: at most {} seconds per figure",
                    MAX_SECONDS.as_secs()
                )));
            }
            Err(e) => return TOOL.mistake(crate::cmd::parse::Mistake::Value(e)),
        },
    };
    Parsed::Run(BenchOptions {
        seconds,
        json: raw.json,
    })
}

/// `spiped bench`'s options, for completions and documentation checks.
pub(crate) fn doc() -> ToolDoc {
    TOOL.doc::<Args>(&[])
}

/// spiped bench: measure this machine's spiped throughput and handshake rate.
#[derive(FromArgs, ArgsInfo, Debug, Default)]
struct Args {
    /// time per figure, seconds (default 1, at most 60)
    #[argh(option, arg_name = "seconds")]
    seconds: Option<String>,

    /// print one JSON object instead of a table
    #[argh(switch)]
    json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(s: &[&str]) -> Parsed<BenchOptions> {
        parse(&crate::cmd::parse::testing::args(s))
    }

    #[test]
    fn seconds_are_bounded() {
        assert_eq!(
            parse_strs(&["--seconds", "0.2", "--json"]),
            Parsed::Run(BenchOptions {
                seconds: Duration::from_millis(200),
                json: true
            })
        );
        for bad in ["0", "61", "x", "inf"] {
            let Parsed::Exit { stderr, status, .. } = parse_strs(&["--seconds", bad]) else {
                panic!("--seconds {bad} accepted");
            };
            assert_eq!(status, 1);
            assert!(stderr.contains("--seconds"), "{bad}: {stderr}");
        }
    }
}
