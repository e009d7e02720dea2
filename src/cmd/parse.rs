//! What every tool's command line shares: the getopt grammar of the C tools, kept
//! byte-for-byte compatible, plus descriptive long names; usage errors, `-h` and `-v`.
//! The parsers of values several options take are in `values`.
//!
//! Each tool's `args.rs` holds its argh struct and the validation that turns it into
//! the options the rest of the program uses. [`argv`](super::argv) sits in front of argh
//! because argh cannot read bundled flags or attached values. Parsing never prints and
//! never exits: it returns [`Parsed`], so the tool's entry point owns the process and
//! tests can see every byte.

use std::fmt::{Display, Write as _};

/// Result of parsing a command line: run it, or print text and exit.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed<T> {
    /// The command line is valid; run the tool with these options.
    Run(T),
    /// Nothing to run (help, version, or a usage error): write `stdout` and `stderr`
    /// as they are and exit with `status`.
    Exit {
        /// Text for standard output (help).
        stdout: String,
        /// Text for standard error (version, or a usage error and the usage text).
        stderr: String,
        /// The process exit status: 0 for help and version, 1 for usage errors.
        status: i32,
    },
}

/// What the shared plumbing needs to know about one tool to speak for it.
pub(super) struct Tool {
    /// The program name, used as the message prefix and in `-v` output.
    pub(super) name: &'static str,
    /// The synopsis exactly as the C tool prints it, ending in a newline.
    pub(super) usage: &'static str,
}

/// A daemon-style tool's raw argh arguments: whether `-v` was given, and the checks
/// that turn them into options.
pub(super) trait Validate: argh::FromArgs + argh::ArgsInfo {
    /// The validated options.
    type Options;
    /// Whether `-v` was given.
    fn version(&self) -> bool;
    /// Checks what argh cannot express.
    fn validate(self) -> Result<Self::Options, Mistake>;
}

impl Tool {
    /// Parses a command line of `A`'s tool: usage errors, `-h` and `-v` become
    /// [`Parsed::Exit`], a valid line [`Parsed::Run`].
    pub(super) fn parse<A: Validate>(&self, args: &[String]) -> Parsed<A::Options> {
        let raw: A = match self.parse_args(args) {
            Ok(raw) => raw,
            Err(exit) => return exit,
        };
        if raw.version() {
            return self.version();
        }
        match raw.validate() {
            Ok(options) => Parsed::Run(options),
            Err(m) => self.mistake(m),
        }
    }
}

impl Tool {
    /// Runs the getopt normalisation and argh; `Err` is a finished [`Parsed::Exit`]
    /// (help, or a usage error) for the caller to return.
    pub(super) fn parse_args<A, T>(&self, args: &[String]) -> Result<A, Parsed<T>>
    where
        A: argh::FromArgs + argh::ArgsInfo,
    {
        let spec = super::argv::OptSpec::table_for::<A>();
        let normalised = super::argv::normalise(args, &spec).map_err(|e| self.usage_error(e))?;
        if normalised == [super::argv::HELP] {
            return Err(self.help::<A, T>());
        }
        let strs: Vec<&str> = normalised.iter().map(String::as_str).collect();
        A::from_args(&[self.name], &strs).map_err(|early| {
            // normalise() has already rejected everything argh would; should argh still
            // object, keep its complaint but in our one-line form, never its help page.
            let first = early
                .output
                .lines()
                .next()
                .unwrap_or("invalid command line");
            self.usage_error(first.trim())
        })
    }

    /// A usage error: one line naming the problem, then the synopsis, on stderr, exit 1.
    pub(super) fn usage_error<T>(&self, msg: impl Display) -> Parsed<T> {
        Parsed::Exit {
            stdout: String::new(),
            stderr: format!("{}: {msg}\n{}", self.name, self.usage),
            status: 1,
        }
    }

    /// `-v`: `<name> <version>` on standard error (where C 1.6.2 prints it, so scripts
    /// that capture it keep working), exit 0.
    pub(super) fn version<T>(&self) -> Parsed<T> {
        Parsed::Exit {
            stdout: String::new(),
            stderr: format!("{} {}\n", self.name, env!("CARGO_PKG_VERSION")),
            status: 0,
        }
    }

    /// Every option of the argh struct `A`, as `-h`, the shell completions and the
    /// man-page check present them: help last, hidden options left out.
    pub(super) fn doc<A: argh::ArgsInfo>(&self, operands: &'static [&'static str]) -> ToolDoc {
        let info = A::get_args_info();
        let (help, mut options): (Vec<_>, Vec<_>) = super::argv::OptSpec::table_for::<A>()
            .into_iter()
            .zip(info.flags)
            .filter(|(_, flag)| !flag.hidden)
            .map(|(spec, flag)| OptionDoc {
                short: spec.short,
                long: spec.long,
                value: match flag.kind {
                    argh::FlagInfoKind::Option { arg_name } => Some(arg_name),
                    argh::FlagInfoKind::Switch => None,
                },
                description: if spec.long == super::argv::HELP {
                    "print this help and exit"
                } else {
                    flag.description
                },
            })
            // argh lists its implicit --help first; readers look for it last.
            .partition(|o| o.long == super::argv::HELP);
        options.extend(help);
        ToolDoc {
            usage: self.usage,
            options,
            operands,
        }
    }

    /// `-h`: the synopsis, then every option with its description. The option list is
    /// generated from the argh struct so it cannot fall behind the options themselves.
    pub(super) fn help<A: argh::ArgsInfo, T>(&self) -> Parsed<T> {
        let rows: Vec<(String, &str)> = self
            .doc::<A>(&[])
            .options
            .into_iter()
            .map(|o| {
                let mut left = match o.short {
                    Some(c) => format!("-{c}, {}", o.long),
                    None => format!("    {}", o.long),
                };
                if let Some(arg_name) = o.value {
                    let _ = write!(left, " <{arg_name}>");
                }
                (left, o.description)
            })
            .collect();
        // Long rows would push every description off an 80-column terminal; those get
        // their description on the next line instead.
        const WIDTH: usize = 28;
        let mut out = format!("{}\nOptions:\n", self.usage);
        for (left, description) in rows {
            if left.len() <= WIDTH {
                let _ = writeln!(out, "  {left:WIDTH$}  {description}");
            } else {
                let _ = writeln!(out, "  {left}\n  {:WIDTH$}  {description}", "");
            }
        }
        Parsed::Exit {
            stdout: out,
            stderr: String::new(),
            status: 0,
        }
    }
}

/// One option of a tool, described for `-h`, shell completions and the man-page check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionDoc {
    /// The single-letter spelling, if any.
    pub short: Option<char>,
    /// The long spelling including its dashes.
    pub long: &'static str,
    /// The name of the option's value (`key file`), or `None` for a flag.
    pub value: Option<&'static str>,
    /// One line saying what the option does.
    pub description: &'static str,
}

/// A tool's command line, generated from its argh struct so that nothing describing it
/// (help, completions) can fall behind the options themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolDoc {
    /// The synopsis, as `-h` prints it.
    pub usage: &'static str,
    /// Every visible option, `--help` last.
    pub options: Vec<OptionDoc>,
    /// The words the tool accepts as operands (`bash` for `completions`); usually none.
    pub operands: &'static [&'static str],
}

/// What is wrong with a command line, which decides how it is reported.
#[derive(Debug)]
pub(crate) enum Mistake {
    /// The shape is wrong (missing, conflicting or unknown options): one line naming
    /// it, then the usage text, as the C tools do.
    Shape(String),
    /// An option's value is unusable (an address, a number): one line naming the
    /// option and the value, without the usage text that would bury it.
    Value(String),
}

impl Mistake {
    /// The one line naming the problem.
    pub(crate) fn message(&self) -> &str {
        match self {
            Mistake::Shape(m) | Mistake::Value(m) => m,
        }
    }
}

impl From<String> for Mistake {
    fn from(msg: String) -> Mistake {
        Mistake::Shape(msg)
    }
}

impl Tool {
    /// Reports a failed validation in the form its kind calls for; exit 1 either way.
    pub(super) fn mistake<T>(&self, m: Mistake) -> Parsed<T> {
        match m {
            Mistake::Shape(msg) => self.usage_error(msg),
            Mistake::Value(msg) => Parsed::Exit {
                stdout: String::new(),
                stderr: format!("{}: {msg}\n", self.name),
                status: 1,
            },
        }
    }
}

/// A setting that cannot be used: the configuration file key it concerns (the long
/// option name) and the message, worded as for the command line.
pub(crate) type Refusal = (&'static str, Mistake);

/// Helpers for the command-line tests of each tool.
#[cfg(test)]
pub(crate) mod testing {
    use super::Parsed;

    /// Owned arguments, as `parse` takes them.
    pub(crate) fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    /// The options `parse` makes of `s`; panics with the error if it refuses them.
    pub(crate) fn run<T>(parse: fn(&[String]) -> Parsed<T>, s: &[&str]) -> T {
        match parse(&args(s)) {
            Parsed::Run(o) => o,
            Parsed::Exit { stderr, .. } => panic!("{s:?} rejected: {stderr}"),
        }
    }

    /// Asserts that `parse` refuses each command line of `cases` as [`fail`] does, with a
    /// first line containing the text paired with it.
    pub(crate) fn refusals<T: std::fmt::Debug>(
        parse: fn(&[String]) -> Parsed<T>,
        tool: &str,
        cases: &[(&[&str], &str)],
    ) {
        for (argv, want) in cases {
            let first = fail(parse, tool, argv);
            assert!(
                first.contains(want),
                "{argv:?}: got {first:?}, want {want:?}"
            );
        }
    }

    /// The single letters of the argh struct `A`'s options, sorted, once it is checked
    /// that argh accepts each canonical spelling the getopt normaliser emits for them.
    pub(crate) fn option_letters<A: argh::FromArgs + argh::ArgsInfo>(tool: &str) -> Vec<char> {
        let table = super::super::argv::OptSpec::table_for::<A>();
        for opt in table.iter().filter(|o| o.long != super::super::argv::HELP) {
            let argv: Vec<&str> = if opt.takes_value {
                vec![opt.long, "x"]
            } else {
                vec![opt.long]
            };
            assert!(A::from_args(&[tool], &argv).is_ok(), "{opt:?}");
        }
        let mut letters: Vec<char> = table.iter().filter_map(|o| o.short).collect();
        letters.sort_unstable();
        letters
    }

    /// Asserts that `parse` refuses `s` as `tool` must (exit 1, nothing on stdout, a
    /// first line naming the tool; the usage text unless it is a one-line bad value)
    /// and returns that first line.
    pub(crate) fn fail<T: std::fmt::Debug>(
        parse: fn(&[String]) -> Parsed<T>,
        tool: &str,
        s: &[&str],
    ) -> String {
        match parse(&args(s)) {
            Parsed::Run(o) => panic!("{s:?} accepted: {o:?}"),
            Parsed::Exit {
                stdout,
                stderr,
                status,
            } => {
                assert_eq!(status, 1, "{s:?}");
                assert!(stdout.is_empty(), "{s:?}");
                let first = stderr.lines().next().unwrap_or_default().to_owned();
                assert!(first.starts_with(&format!("{tool}: ")), "{s:?}: {first}");
                // Bad values get one line; shape errors add the usage text.
                let value_error = stderr.lines().count() == 1
                    && (first.contains("invalid value") || first.contains("invalid address"));
                assert!(
                    value_error || stderr.contains(&format!("\nusage: {tool} ")),
                    "{s:?}: {stderr}"
                );
                first
            }
        }
    }
}
