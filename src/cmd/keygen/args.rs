//! `spiped keygen`'s command line.

use std::path::PathBuf;

use argh::{ArgsInfo, FromArgs};

use crate::cmd::parse::{Parsed, Tool, ToolDoc};

const TOOL: Tool = Tool {
    name: "spiped keygen",
    usage: "\
usage: spiped keygen [-o <file> [--force]] [--bytes <n>]
",
};

/// The key length when `--bytes` is not given: the 256 bits spiped asks for.
pub(crate) const DEFAULT_BYTES: usize = 32;

/// Upper bound for `--bytes`: spiped hashes any key file to 256 bits, so more than this
/// is a typo, not more security.
pub(crate) const MAX_BYTES: usize = 1 << 20;

/// A validated `spiped keygen` command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeygenOptions {
    /// `-o`: the file to create; `None` writes to standard output.
    pub output: Option<PathBuf>,
    /// `--force`: replace an existing `-o` file.
    pub force: bool,
    /// `--bytes`: how many random bytes to write.
    pub bytes: usize,
}

/// Parses `spiped keygen`'s arguments (after `keygen`).
pub(crate) fn parse(args: &[String]) -> Parsed<KeygenOptions> {
    let raw: Args = match TOOL.parse_args(args) {
        Ok(raw) => raw,
        Err(exit) => return exit,
    };
    if raw.force && raw.output.is_none() {
        return TOOL.usage_error("--force only applies to a file written with -o/--output");
    }
    let bytes = match raw.bytes.as_deref().map(parse_bytes).transpose() {
        Ok(n) => n.unwrap_or(DEFAULT_BYTES),
        Err(e) => return TOOL.mistake(crate::cmd::parse::Mistake::Value(e)),
    };
    Parsed::Run(KeygenOptions {
        output: raw.output.map(PathBuf::from),
        force: raw.force,
        bytes,
    })
}

/// `spiped keygen`'s options, for completions and documentation checks.
pub(crate) fn doc() -> ToolDoc {
    TOOL.doc::<Args>(&[])
}

/// spiped keygen: write a new random key for spiped and spipe.
#[derive(FromArgs, ArgsInfo, Debug, Default)]
struct Args {
    /// write the key to file (mode 0600), not stdout
    #[argh(option, short = 'o', arg_name = "file")]
    output: Option<String>,

    /// replace the -o file if it exists
    #[argh(switch)]
    force: bool,

    /// key length in bytes (default 32, at least 32)
    #[argh(option, arg_name = "n")]
    bytes: Option<String>,
}

/// Parses `--bytes`: digits only, between 32 and 1 MiB.
fn parse_bytes(s: &str) -> Result<usize, String> {
    let bad = |why: String| format!("invalid value '{s}' for --bytes: {why}");
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("expected a whole number of bytes".to_owned()));
    }
    match s.parse::<usize>() {
        Ok(n) if (DEFAULT_BYTES..=MAX_BYTES).contains(&n) => Ok(n),
        Ok(n) if n < DEFAULT_BYTES => Err(bad(format!(
            "a key needs at least {DEFAULT_BYTES} bytes (256 bits)"
        ))),
        _ => Err(bad(format!("at most {MAX_BYTES} bytes"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(s: &[&str]) -> Parsed<KeygenOptions> {
        parse(&crate::cmd::parse::testing::args(s))
    }

    fn stderr_of(s: &[&str]) -> String {
        match parse_strs(s) {
            Parsed::Exit { stderr, status, .. } => {
                assert_eq!(status, 1, "{s:?}");
                stderr
            }
            Parsed::Run(o) => panic!("{s:?} accepted: {o:?}"),
        }
    }

    #[test]
    fn forms() {
        assert_eq!(
            parse_strs(&[]),
            Parsed::Run(KeygenOptions {
                output: None,
                force: false,
                bytes: 32
            })
        );
        assert_eq!(
            parse_strs(&["-okey", "--force", "--bytes=64"]),
            Parsed::Run(KeygenOptions {
                output: Some("key".into()),
                force: true,
                bytes: 64
            })
        );
    }

    #[test]
    fn mistakes_name_the_option() {
        assert!(stderr_of(&["--force"]).contains("--force only applies"));
        assert!(stderr_of(&["--bytes", "31"]).contains("at least 32 bytes"));
        assert!(stderr_of(&["--bytes", "+40"]).contains("--bytes"));
        assert!(stderr_of(&["--bytes", "99999999999999999999999"]).contains("at most"));
        assert!(stderr_of(&["key"]).contains("unexpected argument 'key'"));
        assert!(stderr_of(&["-o"]).contains("-o/--output requires a value"));
    }
}
