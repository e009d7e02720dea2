//! The operator's tools around the daemon: `spiped keygen`, `spiped bench`,
//! `spiped completions` (and the committed scripts), and the man pages.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

fn ours(args: &[&str]) -> RunOutput {
    let mut cmd = spiped_cmd(Impl::Ours);
    cmd.args(args);
    run(cmd)
}

/// Runs a shell command line with `$0` set to our binary.
fn sh(script: &str) -> RunOutput {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script, spiped_bin(Impl::Ours).to_str().unwrap()]);
    run(cmd)
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `spiped keygen` writes exactly 32 bytes to a pipe, and two keys differ.
#[test]
fn keygen_writes_32_random_bytes() {
    let a = ours(&["keygen"]);
    let b = ours(&["keygen"]);
    for out in [&a, &b] {
        assert_eq!(out.code(), Some(0), "{}", out.stderr);
        assert_eq!(out.stdout.len(), 32);
    }
    assert_ne!(a.stdout, b.stdout);
    let long = ours(&["keygen", "--bytes", "64"]);
    assert_eq!(long.stdout.len(), 64, "{}", long.stderr);
    let short = ours(&["keygen", "--bytes", "16"]);
    assert_eq!(short.code(), Some(1));
    assert!(
        short.stderr.contains("at least 32 bytes"),
        "{}",
        short.stderr
    );
    // The pipeline the issue promises, through a real shell.
    assert_eq!(sh("\"$0\" keygen | wc -c").stdout_str().trim(), "32");
}

/// `-o` creates a 0600 file, refuses to overwrite it, and `--force` replaces it with a
/// new 0600 file even when the old one was world-readable, leaving no staging file.
#[test]
fn keygen_output_file() {
    let dir = temp_dir();
    let key = dir.path().join("key");
    let k = key.to_str().unwrap();
    let first = ours(&["keygen", "-o", k]);
    assert_eq!(first.code(), Some(0), "{}", first.stderr);
    let old = fs::read(&key).unwrap();
    assert_eq!(old.len(), 32);
    assert_eq!(mode_of(&key), 0o600);

    let again = ours(&["keygen", "-o", k]);
    assert_eq!(again.code(), Some(1));
    assert!(
        again.stderr.contains("already exists; use --force"),
        "{}",
        again.stderr
    );
    assert!(again.stderr.contains(k), "names the file: {}", again.stderr);
    assert_eq!(
        fs::read(&key).unwrap(),
        old,
        "refused overwrite changed the key"
    );

    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let forced = ours(&["keygen", "--force", &format!("-o{k}")]);
    assert_eq!(forced.code(), Some(0), "{}", forced.stderr);
    let new = fs::read(&key).unwrap();
    assert_eq!(new.len(), 32);
    assert_ne!(new, old);
    assert_eq!(mode_of(&key), 0o600);
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["key"], "staging file left behind");

    let missing = dir.path().join("no/such/dir/key");
    let out = ours(&["keygen", "-o", missing.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("cannot create"), "{}", out.stderr);
}

/// Raw key bytes are never written to a terminal: on a pty, keygen fails with a clear
/// message and exit 1.
#[test]
fn keygen_refuses_a_terminal() {
    if !program_available("/usr/bin/script", "bsdutils") {
        return;
    }
    // script(1) runs the command with a pty as its standard output; -e passes on its
    // exit status.
    let out = sh("exec script -qec \"$0 keygen\" /dev/null");
    assert_eq!(out.code(), Some(1), "{} / {}", out.stdout_str(), out.stderr);
    assert!(
        out.stdout_str()
            .contains("refusing to write raw key bytes to a terminal"),
        "{:?}",
        out.stdout_str()
    );
}

/// A failed write (a full disk) is an error, not a silently short key.
#[test]
fn keygen_write_error_exits_1() {
    let out = sh("exec \"$0\" keygen > /dev/full");
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("cannot write the key to standard output: No space left on device"),
        "{}",
        out.stderr
    );
}

/// `spiped bench --json` measures every figure: valid JSON, each value positive.
#[test]
fn bench_json_has_every_figure() {
    let mut cmd = spiped_cmd(Impl::Ours);
    cmd.args(["bench", "--seconds", "0.2", "--json"]);
    let out = run_with_stdin(cmd, b"", Duration::from_secs(120));
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.stdout_str()));
    let obj = json.as_object().expect("a JSON object");
    let want = [
        "seconds_per_figure",
        "aes256_ctr_mb_per_s",
        "hmac_sha256_mb_per_s",
        "packet_seal_mb_per_s",
        "packet_open_mb_per_s",
        "packet_seal_single_mb_per_s",
        "packet_open_single_mb_per_s",
        "handshakes_pfs_per_s",
        "handshakes_fast_per_s",
        "pipe_mb_per_s",
        "pipe_round_trip_us",
    ];
    for key in want {
        let v = obj.get(key).and_then(|v| v.as_f64());
        assert!(v.is_some_and(|v| v > 0.0), "{key}: {v:?} in {json}");
    }
    assert!(
        out.stderr.is_empty(),
        "no progress off a terminal: {}",
        out.stderr
    );
}

/// The committed completion scripts are exactly what the binary prints.
#[test]
fn committed_completions_match_the_binary() {
    for (shell, file) in [
        ("bash", "completions/spiped.bash"),
        ("zsh", "completions/_spiped"),
        ("fish", "completions/spiped.fish"),
    ] {
        let out = ours(&["completions", shell]);
        assert_eq!(out.code(), Some(0), "{}", out.stderr);
        let committed = fs::read_to_string(repo_file(file)).unwrap_or_default();
        assert!(
            out.stdout_str() == committed,
            "{file} is stale: regenerate it with `spiped completions {shell} > {file}`"
        );
    }
}

/// Asserts that `got` (completion candidates, whitespace-separated) includes `want`.
fn assert_offers(case: &str, got: &str, want: &[&str]) {
    let got: BTreeSet<&str> = got.split_whitespace().collect();
    for w in want {
        assert!(got.contains(w), "{case}: {w} not offered; got {got:?}");
    }
}

/// bash loads the script and completes options, tool names, file paths and shells.
#[test]
fn bash_completion_works() {
    let script = repo_file("completions/spiped.bash");
    let complete = |words: &str, cword: usize| {
        let mut cmd = Command::new("bash");
        cmd.current_dir(repo_file(""));
        cmd.args([
            "-c",
            &format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; _spiped; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                script.display()
            ),
        ]);
        let out = run(cmd);
        assert_eq!(out.code(), Some(0), "{words}: {}", out.stderr);
        out.stdout_str()
    };
    let daemon = ["-e", "-d", "-s", "-t", "-k", "--syslog", "-h"];
    assert_offers("spiped -", &complete("spiped -", 1), &daemon);
    assert_offers("spiped spiped -", &complete("spiped spiped -", 2), &daemon);
    assert_offers(
        "spiped ''",
        &complete("spiped ''", 1),
        &["keygen", "bench", "spipe", "-e"],
    );
    assert_offers(
        "spipe -",
        &complete("spipe -", 1),
        &["-t", "-k", "-b", "-o"],
    );
    assert!(!complete("spipe -", 1).contains("-s\n"), "spipe has no -s");
    assert_offers(
        "keygen",
        &complete("spiped keygen -", 2),
        &["-o", "--force", "--bytes"],
    );
    assert_offers(
        "completions",
        &complete("spiped completions ''", 2),
        &["bash", "zsh", "fish"],
    );
    assert_offers(
        "-k file",
        &complete("spiped -e -k Cargo.t", 3),
        &["Cargo.toml"],
    );
    assert_offers(
        "spipe -t file",
        &complete("spipe -t Cargo.t", 2),
        &["Cargo.toml"],
    );
}

/// fish loads its script and completes the same; zsh parses its script.
#[test]
fn fish_and_zsh_completions_load() {
    if program_available("/usr/bin/fish", "fish") {
        let complete = |line: &str| {
            let mut cmd = Command::new("fish");
            cmd.current_dir(repo_file(""));
            cmd.args([
                "--no-config",
                "-c",
                &format!("source completions/spiped.fish; complete -C'{line}'"),
            ]);
            let out = run(cmd);
            assert_eq!(out.code(), Some(0), "{line}: {}", out.stderr);
            out.stdout_str()
                .lines()
                .map(|l| l.split('\t').next().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_offers(
            "fish spiped -",
            &complete("spiped -"),
            &["-e", "-d", "-s", "-t", "-k"],
        );
        assert_offers(
            "fish spiped",
            &complete("spiped "),
            &["keygen", "bench", "spipe"],
        );
        assert_offers("fish spipe", &complete("spipe --"), &["--target", "--key"]);
        assert_offers("fish key", &complete("spiped -k Cargo.t"), &["Cargo.toml"]);
        assert_offers(
            "fish shells",
            &complete("spiped completions "),
            &["bash", "zsh", "fish"],
        );
    }
    if program_available("/usr/bin/zsh", "zsh") {
        let mut cmd = Command::new("zsh");
        cmd.args(["-n", repo_file("completions/_spiped").to_str().unwrap()]);
        let out = run(cmd);
        assert_eq!(out.code(), Some(0), "zsh -n: {}", out.stderr);
    }
}

/// The man page of each tool, by `spiped TOOL` name.
const PAGES: &[(&str, &str)] = &[
    ("spiped", "man/spiped.1"),
    ("spipe", "man/spipe.1"),
    ("keygen", "man/spiped-keygen.1"),
    ("bench", "man/spiped-bench.1"),
    ("completions", "man/spiped-completions.1"),
];

/// Every man page passes `mandoc -T lint` without a single message.
#[test]
fn man_pages_lint_clean() {
    if !program_available("/usr/bin/mandoc", "mandoc") {
        return;
    }
    for (_, page) in PAGES {
        let mut cmd = Command::new("mandoc");
        cmd.args(["-T", "lint", repo_file(page).to_str().unwrap()]);
        let out = run(cmd);
        assert!(
            out.code() == Some(0) && out.stdout.is_empty() && out.stderr.is_empty(),
            "mandoc -T lint {page}: {}{}",
            out.stdout_str(),
            out.stderr
        );
    }
}

/// The options a tool's `--help` lists: `-k` and `--key` from `  -k, --key <key file>`.
fn help_options(tool: &str) -> Vec<String> {
    let out = ours(&[tool, "--help"]);
    assert_eq!(out.code(), Some(0), "{tool} --help: {}", out.stderr);
    out.stdout_str()
        .lines()
        .filter(|l| l.starts_with("  ") && l.trim_start().starts_with('-'))
        .flat_map(|l| {
            // The option column ends where two spaces start the description.
            let column = l.trim_start().split("  ").next().unwrap_or("");
            column
                .split([',', ' '])
                .filter(|w| w.starts_with('-'))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every option in each tool's `--help` (short and long spelling) appears in its man
/// page, as rendered text; every tool has a page.
#[test]
fn man_pages_cover_every_option() {
    if !program_available("/usr/bin/mandoc", "mandoc") {
        return;
    }
    // The tool list from the usage text, which is generated from the binary's table.
    let usage = ours(&["no-such-tool"]).stderr;
    let tools: Vec<String> = usage
        .split_once("usage: spiped {")
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(list, _)| list.split(" | ").map(str::to_owned).collect())
        .unwrap_or_else(|| panic!("no tool list in {usage:?}"));
    assert!(tools.len() >= 5, "{tools:?}");
    let mut missing = Vec::new();
    for tool in &tools {
        let Some((_, page)) = PAGES.iter().find(|(t, _)| t == tool) else {
            missing.push(format!("tool {tool} has no man page in PAGES"));
            continue;
        };
        let mut cmd = Command::new("mandoc");
        cmd.args(["-T", "ascii", repo_file(page).to_str().unwrap()]);
        let out = run(cmd);
        assert_eq!(out.code(), Some(0), "mandoc {page}: {}", out.stderr);
        let text = strip_overstrike(&out.stdout_str());
        let options = help_options(tool);
        assert!(options.iter().any(|o| o == "--help"), "{tool}: {options:?}");
        for opt in options {
            if !mentions(&text, &opt) {
                missing.push(format!(
                    "option {opt} of `spiped {tool} --help` is not in {page}"
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "man pages incomplete:\n{}",
        missing.join("\n")
    );
}

/// Removes the bold and underline that mandoc's ASCII output makes by overstriking.
fn strip_overstrike(s: &str) -> String {
    let mut out: Vec<char> = Vec::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if chars.peek() == Some(&'\u{8}') {
            chars.next();
            continue;
        }
        out.push(c);
    }
    out.into_iter().collect()
}

/// Whether `opt` appears in `text` as a whole word (`-k` does not match in `-kx` or
/// `--key`).
fn mentions(text: &str, opt: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-';
    text.match_indices(opt).any(|(i, _)| {
        let before = text[..i].chars().next_back().is_none_or(|c| !word(c));
        let after = text[i + opt.len()..]
            .chars()
            .next()
            .is_none_or(|c| !word(c));
        before && after
    })
}

/// Where a tool's `--help` sends the reader to a man page, it names a section that page
/// has (`see CONFIGURATION FILE in spiped(1)`), never a vague "the man page".
#[test]
fn help_names_man_sections_that_exist() {
    let mut named = 0;
    for (tool, page) in PAGES {
        let help = ours(&[tool, "--help"]).stdout_str();
        assert!(!help.contains("the man page"), "{tool} --help: {help}");
        let man = fs::read_to_string(repo_file(page)).unwrap();
        let name = Path::new(page).file_stem().unwrap().to_str().unwrap();
        for (i, _) in help.match_indices("see ") {
            let Some((section, rest)) = help[i + 4..].split_once(" in ") else {
                continue;
            };
            if !rest.starts_with(&format!("{name}(1)")) {
                continue;
            }
            assert!(
                man.lines().any(|l| l == format!(".SH {section}")),
                "{tool} --help names section {section:?}, which {page} does not have"
            );
            named += 1;
        }
    }
    assert!(named > 0, "no --help names a man page section");
}

/// The configuration example spiped(1) shows "in short" is a part of the installed
/// example, `contrib/spiped.toml`, line for line: an operator comparing them finds the
/// same settings (the same pidfile, one the daemon can remove at exit).
#[test]
fn man_config_example_is_part_of_the_installed_one() {
    let man = fs::read_to_string(repo_file("man/spiped.1")).unwrap();
    let short: Vec<String> = man
        .split_once("in short:\n")
        .and_then(|(_, rest)| rest.split_once(".RS\n"))
        .and_then(|(_, rest)| rest.split_once("\n.RE"))
        .map(|(block, _)| block.lines().map(|l| l.replace("\\-", "-")).collect())
        .expect("spiped(1) has its example, in short, between .RS and .RE");
    let example = fs::read_to_string(repo_file("contrib/spiped.toml")).unwrap();
    let settings: Vec<&str> = example
        .lines()
        .map(|l| {
            l.split_once(" #")
                .map_or(l, |(setting, _)| setting)
                .trim_end()
        })
        .collect();
    assert!(short.len() >= 10, "{short:?}");
    for line in &short {
        assert!(
            settings.contains(&line.as_str()),
            "spiped(1)'s example has {line:?}, which contrib/spiped.toml does not"
        );
    }
}
