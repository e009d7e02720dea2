//! The getopt grammar of the C spiped, rewritten into the shape argh understands.
//!
//! Existing init scripts bundle flags (`-DFj`) and attach values (`-k/etc/key`, `-n5`);
//! argh accepts neither. Rather than teach argh getopt, [`normalise`] turns any command
//! line the C tools accept into a canonical list of `--long` and `--long value` tokens,
//! and catches the errors argh would report badly or not at all (a flag given twice,
//! a stray argument after `--`).

use std::collections::HashSet;
use std::fmt;

/// The token [`normalise`] returns, alone, when help was asked for.
///
/// Help ends parsing where it appears, as upstream's `usage()` does, so whatever follows
/// `-h` cannot turn a request for help into an error.
pub const HELP: &str = "--help";

/// One option of a tool: how it may be spelled and whether it takes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptSpec {
    /// The single-letter spelling (`k` for `-k`); long-only options have none.
    pub short: Option<char>,
    /// The long spelling including its dashes (`--key`); argh knows the option by it.
    pub long: &'static str,
    /// Whether the option consumes a value (`-k FILE`) or is a plain flag.
    pub takes_value: bool,
    /// Whether giving the option more than once is allowed (for example a future
    /// repeated `-k` for key rotation); everything else upstream rejects when repeated.
    pub repeatable: bool,
}

impl OptSpec {
    /// Builds the table from an argh struct's own metadata, so the table cannot drift
    /// from the struct: a field's `short`, long name, kind (switch or option) and
    /// optionality (a `Vec` field is repeatable) are all read from the derive.
    ///
    /// argh's implicit `--help` gains the short spelling `-h` here.
    pub fn table_for<A: argh::ArgsInfo>() -> Vec<OptSpec> {
        A::get_args_info()
            .flags
            .iter()
            .map(|f| OptSpec {
                short: if f.long == HELP { Some('h') } else { f.short },
                long: f.long,
                takes_value: matches!(f.kind, argh::FlagInfoKind::Option { .. }),
                repeatable: matches!(f.optionality, argh::Optionality::Repeating),
            })
            .collect()
    }

    /// The option as a user may have written it, `-k/--key` or `--syslog`, for messages
    /// that must make sense whichever spelling was used.
    pub fn display_name(&self) -> String {
        match self.short {
            Some(c) => format!("-{c}/{}", self.long),
            None => self.long.to_owned(),
        }
    }
}

/// A command line that does not fit the grammar; the message is one line naming the
/// offending option or argument, ready to print before the usage text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Rewrites a getopt-style command line (without `argv[0]`) into argh's form: every
/// option as its `--long` name, each value as the next, separate token.
///
/// Accepted, as in the C tools: bundled flags (`-DFj`), attached or separate values
/// (`-n5`, `-n 5`), a value that looks like an option (`-k -`), `--long value`,
/// `--long=value`, and `--` to end the options. Rejected: unknown options, a
/// non-repeatable option given twice, a missing or empty value, a value given to a
/// flag, and any argument that is not an option (nothing takes positional arguments).
///
/// When `-h` or `--help` is met, the result is exactly `[HELP]`.
pub fn normalise(args: &[String], spec: &[OptSpec]) -> Result<Vec<String>, UsageError> {
    let mut out = Vec::with_capacity(args.len() * 2);
    let mut seen: HashSet<&'static str> = HashSet::new();
    let mut rest = args.iter();

    while let Some(arg) = rest.next() {
        if arg == "--" {
            if let Some(stray) = rest.next() {
                return Err(stray_argument(stray));
            }
            break;
        }
        if let Some(body) = arg.strip_prefix("--") {
            let (name, attached) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let opt = spec
                .iter()
                .find(|o| o.long.strip_prefix("--") == Some(name))
                .ok_or_else(|| UsageError(format!("unknown option '--{name}'")))?;
            if opt.long == HELP {
                return Ok(vec![HELP.to_owned()]);
            }
            note_seen(opt, &mut seen)?;
            out.push(opt.long.to_owned());
            match (opt.takes_value, attached) {
                (true, Some(v)) => out.push(checked_value(opt, v)?),
                (true, None) => out.push(next_value(opt, &mut rest)?),
                (false, Some(_)) => {
                    return Err(UsageError(format!(
                        "option {} does not take a value",
                        opt.display_name()
                    )));
                }
                (false, None) => {}
            }
        } else if let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.is_empty()) {
            for (i, c) in cluster.char_indices() {
                let opt = spec
                    .iter()
                    .find(|o| o.short == Some(c))
                    .ok_or_else(|| UsageError(format!("unknown option '-{c}'")))?;
                if opt.long == HELP {
                    return Ok(vec![HELP.to_owned()]);
                }
                note_seen(opt, &mut seen)?;
                out.push(opt.long.to_owned());
                if opt.takes_value {
                    // getopt: the rest of the cluster, if any, is the value (`-n5`).
                    let attached = &cluster[i + c.len_utf8()..];
                    let value = if attached.is_empty() {
                        next_value(opt, &mut rest)?
                    } else {
                        checked_value(opt, attached)?
                    };
                    out.push(value);
                    break;
                }
            }
        } else {
            return Err(stray_argument(arg));
        }
    }
    Ok(out)
}

fn stray_argument(arg: &str) -> UsageError {
    UsageError(format!("unexpected argument '{arg}'"))
}

fn note_seen(opt: &OptSpec, seen: &mut HashSet<&'static str>) -> Result<(), UsageError> {
    if !seen.insert(opt.long) && !opt.repeatable {
        return Err(UsageError(format!(
            "option {} given more than once",
            opt.display_name()
        )));
    }
    Ok(())
}

fn next_value<'a>(
    opt: &OptSpec,
    rest: &mut impl Iterator<Item = &'a String>,
) -> Result<String, UsageError> {
    // Taken unconditionally, even when it starts with '-', as getopt does: `-k -` must
    // mean "key from stdin", not "missing value".
    match rest.next() {
        Some(v) => checked_value(opt, v),
        None => Err(UsageError(format!(
            "option {} requires a value",
            opt.display_name()
        ))),
    }
}

fn checked_value(opt: &OptSpec, v: &str) -> Result<String, UsageError> {
    // No option has a meaningful empty value; catching it here gives one clear message
    // instead of a confusing one later ("cannot open ''").
    if v.is_empty() {
        return Err(UsageError(format!(
            "option {} requires a non-empty value",
            opt.display_name()
        )));
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[OptSpec] = &[
        OptSpec {
            short: Some('h'),
            long: "--help",
            takes_value: false,
            repeatable: false,
        },
        OptSpec {
            short: Some('k'),
            long: "--key",
            takes_value: true,
            repeatable: false,
        },
        OptSpec {
            short: Some('n'),
            long: "--count",
            takes_value: true,
            repeatable: false,
        },
        OptSpec {
            short: Some('D'),
            long: "--dee",
            takes_value: false,
            repeatable: false,
        },
        OptSpec {
            short: Some('F'),
            long: "--eff",
            takes_value: false,
            repeatable: false,
        },
        OptSpec {
            short: None,
            long: "--long-only",
            takes_value: false,
            repeatable: false,
        },
        OptSpec {
            short: Some('x'),
            long: "--multi",
            takes_value: true,
            repeatable: true,
        },
    ];

    fn n(args: &[&str]) -> Result<Vec<String>, UsageError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        normalise(&args, SPEC)
    }

    fn ok(args: &[&str]) -> Vec<String> {
        n(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn err(args: &[&str]) -> String {
        match n(args) {
            Ok(v) => panic!("{args:?} accepted as {v:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn bundles_and_attached_values() {
        assert_eq!(ok(&["-DF"]), ["--dee", "--eff"]);
        assert_eq!(ok(&["-Fk/etc/key"]), ["--eff", "--key", "/etc/key"]);
        assert_eq!(ok(&["-n5"]), ["--count", "5"]);
        assert_eq!(ok(&["-n", "5"]), ["--count", "5"]);
        assert_eq!(ok(&["-kkey"]), ["--key", "key"]);
        assert_eq!(ok(&["-Dk", "-"]), ["--dee", "--key", "-"]);
    }

    #[test]
    fn long_forms() {
        assert_eq!(ok(&["--key", "x"]), ["--key", "x"]);
        assert_eq!(ok(&["--key=x"]), ["--key", "x"]);
        assert_eq!(ok(&["--key=a=b"]), ["--key", "a=b"]);
        assert_eq!(ok(&["--key", "--dee"]), ["--key", "--dee"]);
        assert_eq!(ok(&["--long-only"]), ["--long-only"]);
        assert!(err(&["--long-only=1"]).contains("does not take a value"));
        assert!(err(&["--nope"]).contains("'--nope'"));
        assert!(err(&["--ke"]).contains("unknown option"));
    }

    #[test]
    fn values_may_look_like_options() {
        assert_eq!(ok(&["-k", "-"]), ["--key", "-"]);
        assert_eq!(ok(&["-k", "-h"]), ["--key", "-h"]);
        assert_eq!(ok(&["-k", "--"]), ["--key", "--"]);
        assert_eq!(ok(&["-k-"]), ["--key", "-"]);
    }

    #[test]
    fn duplicates() {
        assert!(err(&["-D", "-D"]).contains("-D/--dee given more than once"));
        assert!(err(&["-DD"]).contains("more than once"));
        assert!(err(&["-k", "a", "--key=b"]).contains("-k/--key given more than once"));
        assert_eq!(
            ok(&["-xa", "--multi", "b"]),
            ["--multi", "a", "--multi", "b"]
        );
    }

    #[test]
    fn missing_and_empty_values() {
        assert!(err(&["-k"]).contains("-k/--key requires a value"));
        assert!(err(&["-Dk"]).contains("requires a value"));
        assert!(err(&["--key"]).contains("requires a value"));
        assert!(err(&["--key="]).contains("non-empty"));
        assert!(err(&["-k", ""]).contains("non-empty"));
    }

    #[test]
    fn stray_arguments_and_double_dash() {
        assert_eq!(ok(&["-D", "--"]), ["--dee"]);
        assert!(err(&["-D", "--", "x"]).contains("unexpected argument 'x'"));
        assert!(err(&["--", "-D"]).contains("unexpected argument '-D'"));
        assert!(err(&["x"]).contains("unexpected argument 'x'"));
        assert!(err(&["-"]).contains("unexpected argument '-'"));
        assert!(err(&[""]).contains("unexpected argument ''"));
        assert!(err(&["-@"]).contains("unknown option '-@'"));
        assert!(err(&["-Dé"]).contains("unknown option '-é'"));
    }

    #[test]
    fn help_stops_parsing() {
        assert_eq!(ok(&["-h"]), [HELP]);
        assert_eq!(ok(&["-Dh", "-Q", "stray"]), [HELP]);
        assert_eq!(ok(&["--help", "--nope"]), [HELP]);
        // Errors before the help request still count, as with getopt.
        assert!(err(&["-Q", "-h"]).contains("unknown option"));
    }
}
