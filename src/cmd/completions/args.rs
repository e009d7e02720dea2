//! `spiped completions`'s command line: one operand, the shell.

use argh::{ArgsInfo, FromArgs};

use crate::cmd::parse::{Parsed, Tool, ToolDoc};

const TOOL: Tool = Tool {
    name: "spiped completions",
    usage: "\
usage: spiped completions {bash | zsh | fish}
",
};

/// The shells a completion script can be printed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shell {
    /// GNU bash (with or without the bash-completion package).
    Bash,
    /// zsh's completion system (`compinit`).
    Zsh,
    /// fish.
    Fish,
}

/// The operand words, for the completion of `completions` itself.
const SHELL_NAMES: &[&str] = &["bash", "zsh", "fish"];

/// Parses `spiped completions`'s arguments (after `completions`).
pub(crate) fn parse(args: &[String]) -> Parsed<Shell> {
    // The getopt normaliser takes no operands; options (only -h) go through it, the
    // operand is checked here.
    let (operands, options): (Vec<String>, Vec<String>) =
        args.iter().cloned().partition(|a| !a.starts_with('-'));
    if let Err(exit) = TOOL.parse_args::<Args, Shell>(&options) {
        return exit;
    }
    match operands.as_slice() {
        [one] => match one.as_str() {
            "bash" => Parsed::Run(Shell::Bash),
            "zsh" => Parsed::Run(Shell::Zsh),
            "fish" => Parsed::Run(Shell::Fish),
            _ => TOOL.usage_error(format!("unknown shell '{one}'")),
        },
        [] => TOOL.usage_error("which shell? give one of bash, zsh or fish"),
        [_, extra, ..] => TOOL.usage_error(format!("unexpected argument '{extra}'")),
    }
}

/// `spiped completions`'s options and operands, for completions and documentation checks.
pub(crate) fn doc() -> ToolDoc {
    TOOL.doc::<Args>(SHELL_NAMES)
}

/// spiped completions: print a shell completion script for spiped and spipe.
#[derive(FromArgs, ArgsInfo, Debug, Default)]
struct Args {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(s: &[&str]) -> Parsed<Shell> {
        parse(&crate::cmd::parse::testing::args(s))
    }

    #[test]
    fn one_known_shell() {
        assert_eq!(parse_strs(&["zsh"]), Parsed::Run(Shell::Zsh));
        for name in SHELL_NAMES {
            assert!(matches!(parse_strs(&[name]), Parsed::Run(_)), "{name}");
        }
        for (bad, want) in [
            (&["csh"][..], "unknown shell 'csh'"),
            (&[], "which shell?"),
            (&["bash", "zsh"], "unexpected argument 'zsh'"),
            (&["bash", "-x"], "unknown option '-x'"),
        ] {
            let Parsed::Exit { stderr, status, .. } = parse_strs(bad) else {
                panic!("{bad:?} accepted");
            };
            assert_eq!(status, 1);
            assert!(stderr.contains(want), "{bad:?}: {stderr}");
        }
        let Parsed::Exit { stdout, status, .. } = parse_strs(&["-h"]) else {
            panic!("-h ran");
        };
        assert_eq!(status, 0);
        assert!(stdout.contains("{bash | zsh | fish}"));
    }
}
