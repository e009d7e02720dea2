//! What a user runs to get from a clone to a service: `make`, `make install` (as root,
//! without a Rust toolchain) and `make uninstall`; `make deb` checked by `dpkg-deb` and
//! `lintian` and unpacked to serve a connection; the installed systemd units under
//! `systemd-analyze`; and the README's quick start, run verbatim.
//!
//! The tools come from Debian packages that `make deps` installs (and cargo-deb from
//! crates.io); without one a test skips with a note, or fails under CI.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::*;

/// Deadline for a release build (fat LTO on a shared 2-core machine).
const BUILD_DEADLINE: Duration = Duration::from_secs(900);
/// Deadline for a step that builds nothing (install, lintian, systemd-analyze).
const STEP_DEADLINE: Duration = Duration::from_secs(120);

/// The target directory cargo builds this test in, and `make` builds in.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .to_owned()
}

/// True when `program` runs (`program args` exits 0). When it does not: panics under
/// CI, where `make deps` installs `how`; otherwise prints a note so the caller skips.
fn tool(program: &str, args: &[&str], how: &str) -> bool {
    let ok = Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} missing: {how} (make deps)"
        );
        eprintln!("NOTE: skipping: {program} missing: {how}");
    }
    ok
}

/// `make ARGS` in the repository, as a user would run it, with `deadline`.
fn make(args: &[&str], deadline: Duration) -> RunOutput {
    let mut cmd = Command::new("make");
    cmd.arg("-C").arg(repo_file("")).args(args);
    make_cmd(cmd, deadline)
}

/// Runs a `make` command and asserts it succeeded.
fn make_cmd(cmd: Command, deadline: Duration) -> RunOutput {
    println!("running {cmd:?}");
    let out = run_with_stdin(cmd, b"", deadline);
    assert_eq!(
        out.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        out.stdout_str(),
        out.stderr
    );
    out
}

/// `make ARGS` as `sudo make ARGS` runs it on a fresh machine: root's environment has
/// no Rust toolchain, so no `cargo` on the `PATH` and no `CARGO` variable.
fn make_as_root_without_toolchain(args: &[&str]) -> Command {
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(repo_file(""))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        cmd.env("CARGO_TARGET_DIR", dir);
    }
    cmd
}

/// Runs `make` (the release build) once for this test process; the built binary.
fn release_build() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let started = Instant::now();
            make(&[], BUILD_DEADLINE);
            println!("make took {:?}", started.elapsed());
            let bin = target_dir().join("release/spiped");
            assert!(bin.is_file(), "make built no {}", bin.display());
            bin
        })
        .clone()
}

/// Every file and symbolic link under `root`, as paths relative to it (a link as
/// `path -> target`).
fn tree(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_symlink() {
                out.insert(format!(
                    "{rel} -> {}",
                    fs::read_link(&path).unwrap().display()
                ));
            } else if meta.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(rel);
            }
        }
    }
    let mut out = BTreeSet::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out
}

/// Every directory under `root` (as `path/`, relative to it), and every file and link
/// as [`tree`] lists them.
fn entries(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                out.insert(format!("{}/", path.strip_prefix(root).unwrap().display()));
                walk(root, &path, out);
            }
        }
    }
    let mut out = tree(root);
    if root.exists() {
        walk(root, root, &mut out);
    }
    out
}

/// The man pages of the repository (`spiped.1`, ...).
fn man_pages() -> Vec<String> {
    let mut pages: Vec<String> = fs::read_dir(repo_file("man"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".1"))
        .collect();
    pages.sort();
    assert!(pages.len() >= 5, "{pages:?}");
    pages
}

/// `make install` before `make` builds nothing and installs nothing: it says to run
/// `make` first.
#[test]
fn install_without_build_says_run_make_first() {
    if !tool("make", &["--version"], "apt-get install make") {
        return;
    }
    let dir = temp_dir();
    let empty = dir.path().join("target");
    fs::create_dir(&empty).unwrap();
    let dest = dir.path().join("root");
    let mut cmd = make_as_root_without_toolchain(&[
        "install",
        &format!("DESTDIR={}", dest.display()),
        &format!("TARGETDIR={}", empty.display()),
    ]);
    cmd.current_dir(dir.path());
    let out = run_with_stdin(cmd, b"", STEP_DEADLINE);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("run make first"), "{}", out.stderr);
    assert_eq!(tree(&dest), BTreeSet::new(), "installed something");
}

/// After `make`, `make install DESTDIR=...` as root with no Rust toolchain puts every
/// file where its user looks for it (the units run the installed binary; each shell
/// finds its completions; the example configurations are examples, under the
/// documentation), and `make uninstall` removes every one of them, and every directory
/// install made, but none that was there before (Debian has an empty
/// /usr/local/share/man/man1, say).
#[test]
fn install_copies_what_make_built_and_uninstall_removes_it() {
    if !tool("make", &["--version"], "apt-get install make")
        || !tool("pkg-config", &["--version"], "apt-get install pkgconf")
    {
        return;
    }
    let bin = release_build();
    let dir = temp_dir();
    let dest = dir.path().join("root");
    fs::create_dir_all(dest.join("usr/local/share/man/man1")).unwrap();
    fs::create_dir_all(dest.join("usr/local/bin")).unwrap();
    fs::write(dest.join("usr/local/bin/other"), "someone else's").unwrap();
    let before = entries(&dest);
    let destdir = format!("DESTDIR={}", dest.display());
    make_cmd(
        make_as_root_without_toolchain(&["install", &destdir]),
        STEP_DEADLINE,
    );
    // Again, as an upgrade does: what the first made is still uninstall's to remove.
    make_cmd(
        make_as_root_without_toolchain(&["install", &destdir]),
        STEP_DEADLINE,
    );

    let fish = "/usr/local/share/fish/vendor_completions.d";
    let mut want: BTreeSet<String> = [
        "usr/local/bin/other",
        "usr/local/bin/spiped",
        "usr/local/bin/spipe -> spiped",
        "usr/local/share/bash-completion/completions/spiped",
        "usr/local/share/bash-completion/completions/spipe -> spiped",
        "usr/local/share/zsh/site-functions/_spiped",
        "usr/local/share/fish/vendor_completions.d/spiped.fish",
        "usr/local/lib/systemd/system/spiped@.service",
        "usr/local/lib/systemd/system/spiped@.socket",
        "usr/local/lib/systemd/system/spiped.service",
        "usr/local/share/doc/spiped/examples/spiped-example.conf",
        "usr/local/share/doc/spiped/examples/spiped.toml",
        "usr/local/share/doc/spiped/installed-directories",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for page in man_pages() {
        want.insert(format!("usr/local/share/man/man1/{page}"));
    }
    assert_eq!(tree(&dest), want);
    assert_eq!(
        fs::read(dest.join("usr/local/share/doc/spiped/examples/spiped.toml")).unwrap(),
        fs::read(repo_file("contrib/spiped.toml")).unwrap()
    );

    let installed = fs::read(dest.join("usr/local/bin/spiped")).unwrap();
    assert_eq!(
        sha(&installed),
        sha(&fs::read(&bin).unwrap()),
        "not make's binary"
    );
    for name in ["spiped@.service", "spiped.service"] {
        let unit = fs::read_to_string(dest.join("usr/local/lib/systemd/system").join(name));
        let unit = unit.unwrap();
        assert!(
            unit.contains("\nExecStart=/usr/local/bin/spiped -F "),
            "{unit}"
        );
        assert!(!unit.contains("/usr/bin/spiped"), "{unit}");
    }

    // Each shell looks there: fish's and zsh's search paths name the directories, and
    // bash-completion (when installed) loads the file from under XDG_DATA_DIRS.
    if tool("fish", &["--version"], "apt-get install fish") {
        let mut cmd = shell("fish", r#"printf '%s\n' $fish_complete_path"#);
        cmd.env("XDG_DATA_DIRS", "/usr/local/share:/usr/share");
        let out = run(cmd);
        assert!(
            out.stdout_str().lines().any(|l| l == fish),
            "{}",
            out.stdout_str()
        );
    }
    if tool("zsh", &["--version"], "apt-get install zsh") {
        let out = run(shell("zsh", "print -l $fpath"));
        let fpath = out.stdout_str();
        assert!(
            fpath
                .lines()
                .any(|l| l == "/usr/local/share/zsh/site-functions"),
            "{fpath}"
        );
    }
    let bash_completion = Path::new("/usr/share/bash-completion/bash_completion");
    if tool(
        "pkg-config",
        &["--exists", "bash-completion"],
        "apt-get install bash-completion",
    ) {
        let mut cmd = shell(
            "bash",
            &format!(
                ". {}; __load_completion spipe && complete -p spipe",
                bash_completion.display()
            ),
        );
        cmd.env(
            "XDG_DATA_DIRS",
            format!("{0}/usr/local/share:{0}/usr/share", dest.display()),
        );
        let out = run(cmd);
        assert_eq!(
            out.stdout_str().trim(),
            "complete -F _spiped spipe",
            "{}",
            out.stderr
        );
    }

    make_cmd(
        make_as_root_without_toolchain(&["uninstall", &destdir]),
        STEP_DEADLINE,
    );
    assert_eq!(
        entries(&dest),
        before,
        "uninstall left files or directories"
    );
}

/// `SHELL -c SCRIPT`.
fn shell(shell: &str, script: &str) -> Command {
    let mut cmd = Command::new(shell);
    cmd.arg("-c").arg(script);
    cmd
}

/// The units `make install` puts pass `systemd-analyze verify` with the installed binary
/// at their `ExecStart=` path, and `systemd-analyze security` rates each service's
/// exposure at most 2.5 ("OK"): the template's instance and the configuration file's
/// spiped.service.
#[test]
fn installed_units_verify_and_are_hardened() {
    if !tool("make", &["--version"], "apt-get install make")
        || !tool("systemd-analyze", &["--version"], "apt-get install systemd")
    {
        return;
    }
    release_build();
    let dir = temp_dir();
    let prefix = dir.path().join("prefix");
    make_cmd(
        make_as_root_without_toolchain(&["install", &format!("PREFIX={}", prefix.display())]),
        STEP_DEADLINE,
    );
    let units = prefix.join("lib/systemd/system");
    for name in ["spiped@.service", "spiped.service"] {
        let service = fs::read_to_string(units.join(name)).unwrap();
        let exec = format!("ExecStart={}/bin/spiped -F ", prefix.display());
        assert!(service.contains(&exec), "{service}");
    }

    let instance = units.join("spiped@test.service");
    let config = units.join("spiped.service");
    let mut verify = Command::new("systemd-analyze");
    verify
        .args(["verify", "--man=no"])
        .arg(units.join("spiped@.socket"))
        .arg(&instance)
        .arg(&config);
    let out = run_with_stdin(verify, b"", STEP_DEADLINE);
    println!("verify: {}", out.stderr);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(!out.stderr.contains("spiped"), "{}", out.stderr);

    for unit in [&instance, &config] {
        let name = unit.file_name().unwrap().to_str().unwrap();
        let mut security = Command::new("systemd-analyze");
        security
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(unit);
        let out = run_with_stdin(security, b"", STEP_DEADLINE);
        let report = out.stdout_str();
        let exposure: f64 = report
            .lines()
            .find_map(|l| l.strip_prefix(&format!("→ Overall exposure level for {name}: ")))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level: {report}\n{}", out.stderr));
        println!("systemd-analyze security {name}: exposure {exposure}");
        assert!(exposure <= 2.5, "{name}: exposure {exposure}:\n{report}");
    }
}

/// `make deb` makes a package with every file a user needs, that replaces Debian's
/// spiped, that lintian finds no fault in, and whose unpacked binary serves a
/// connection (as `spiped -d`, with its `spipe` link as the client).
#[test]
fn deb_package_is_complete_clean_and_works() {
    if !tool("make", &["--version"], "apt-get install make")
        || !tool(
            "cargo",
            &["deb", "--version"],
            "cargo install --locked cargo-deb",
        )
        || !tool("lintian", &["--version"], "apt-get install lintian")
    {
        return;
    }
    release_build();
    let started = Instant::now();
    make(&["deb"], BUILD_DEADLINE);
    println!("make deb took {:?}", started.elapsed());
    let mut arch = Command::new("dpkg");
    arch.arg("--print-architecture");
    let arch = run(arch).stdout_str();
    let deb = target_dir().join(format!(
        "debian/spiped-rs_{}-1_{}.deb",
        env!("CARGO_PKG_VERSION"),
        arch.trim()
    ));
    assert!(deb.is_file(), "no {}", deb.display());

    let field = |name: &str| {
        let mut cmd = Command::new("dpkg-deb");
        cmd.arg("-f").arg(&deb).arg(name);
        run(cmd).stdout_str().trim().to_owned()
    };
    assert_eq!(field("Package"), "spiped-rs");
    for name in ["Conflicts", "Replaces", "Provides"] {
        assert_eq!(field(name), "spiped", "{name}");
    }
    assert!(field("Depends").contains("libc6"), "{}", field("Depends"));

    let mut list = Command::new("dpkg-deb");
    list.arg("-c").arg(&deb);
    let listing = run(list).stdout_str();
    // "-rwxr-xr-x root/root 123 2026-01-01 00:00 ./usr/bin/spiped", links "... -> spiped".
    let entries: BTreeSet<String> = listing
        .lines()
        .filter_map(|l| l.split_once(" ./").map(|(_, p)| p.to_owned()))
        .collect();
    let mut want = vec![
        "usr/bin/spiped".to_owned(),
        "usr/bin/spipe -> spiped".to_owned(),
        "usr/share/bash-completion/completions/spiped".to_owned(),
        "usr/share/bash-completion/completions/spipe -> spiped".to_owned(),
        "usr/share/zsh/vendor-completions/_spiped".to_owned(),
        "usr/share/fish/vendor_completions.d/spiped.fish".to_owned(),
        "lib/systemd/system/spiped@.service".to_owned(),
        "lib/systemd/system/spiped@.socket".to_owned(),
        "lib/systemd/system/spiped.service".to_owned(),
        "usr/share/doc/spiped-rs/examples/spiped-example.conf".to_owned(),
        "usr/share/doc/spiped-rs/examples/spiped.toml".to_owned(),
        "usr/share/doc/spiped-rs/copyright".to_owned(),
        "usr/share/doc/spiped-rs/changelog.Debian.gz".to_owned(),
        "usr/share/lintian/overrides/spiped-rs".to_owned(),
    ];
    want.extend(
        man_pages()
            .iter()
            .map(|p| format!("usr/share/man/man1/{p}.gz")),
    );
    for path in &want {
        assert!(entries.contains(path), "{path} missing from:\n{listing}");
    }
    // The example configuration is an example: nothing under /etc.
    assert!(!entries.iter().any(|e| e.starts_with("etc/")), "{listing}");

    // The changelog (which lintian requires) names the version packaged.
    let changelog = fs::read_to_string(repo_file("contrib/debian/changelog")).unwrap();
    assert!(
        changelog.starts_with(&format!("spiped-rs ({}-1) ", env!("CARGO_PKG_VERSION"))),
        "contrib/debian/changelog needs an entry for this version"
    );
    // lintian: no error and no warning (the ones kept are overridden, with the reason,
    // in contrib/debian/lintian-overrides).
    // With --pedantic -I, every informational or pedantic tag shown is one the README's
    // Debian package section names, with its reason.
    let mut lintian = Command::new("lintian");
    lintian
        .args(["--fail-on", "error,warning", "--tag-display-limit", "0"])
        .args(["--pedantic", "-I"])
        .arg(&deb);
    let started = Instant::now();
    let out = run_with_stdin(lintian, b"", STEP_DEADLINE);
    let report = out.stdout_str();
    println!("lintian took {:?}: {report}", started.elapsed());
    assert_eq!(out.code(), Some(0), "{report}{}", out.stderr);
    assert!(!report.contains("E: "), "{report}");
    let readme = fs::read_to_string(repo_file("README.md")).unwrap();
    let section = readme
        .split_once("\n### Debian package\n")
        .and_then(|(_, rest)| rest.split_once("\n### "))
        .expect("README has a ### Debian package section")
        .0;
    for line in report.lines() {
        // "I: spiped-rs: TAG [CONTEXT]"
        let Some(tag) = line
            .strip_prefix("I: spiped-rs: ")
            .or_else(|| line.strip_prefix("P: spiped-rs: "))
            .and_then(|t| t.split_whitespace().next())
        else {
            continue;
        };
        assert!(
            section.contains(&format!("`{tag}")),
            "the README does not list lintian's {line:?}"
        );
    }

    // Unpacked, the package's own files serve: its unit names its binary, and that
    // binary (as spiped -d, and as spipe through the package's link) moves bytes intact.
    let dir = temp_dir();
    let root = dir.path().join("root");
    let mut x = Command::new("dpkg");
    x.arg("-x").arg(&deb).arg(&root);
    assert_eq!(run(x).code(), Some(0));
    let unit = fs::read_to_string(root.join("lib/systemd/system/spiped@.service")).unwrap();
    assert_eq!(
        unit,
        fs::read_to_string(repo_file("contrib/systemd/spiped@.service")).unwrap()
    );
    assert!(unit.contains("\nExecStart=/usr/bin/spiped -F "), "{unit}");
    let bin = root.join("usr/bin/spiped");
    let mut version = Command::new(&bin);
    version.arg("-v");
    // On standard error, as C prints it.
    assert_eq!(
        run(version).stderr,
        format!("spiped {}\n", env!("CARGO_PKG_VERSION"))
    );
    let key = key_file(dir.path(), "key", b"packaged key, 32 bytes or more long");
    let reply = payload(30_000, 41);
    let target = Target::start(
        Transport::Tcp,
        dir.path(),
        Mode::Duplex(Arc::new(reply.clone())),
    );
    let source = Addr::Unix(dir.path().join("packaged.sock"));
    let args = [
        "-d",
        "-s",
        &source.arg(),
        "-t",
        &target.addr.arg(),
        "-k",
        key.to_str().unwrap(),
    ];
    let _d = Daemon::spawn_cmd(
        Impl::Ours,
        "packaged",
        dir.path(),
        &source,
        Command::new(&bin),
        &args,
    );
    let up = payload(50_000, 42);
    let mut spipe = Command::new(root.join("usr/bin/spipe"));
    spipe.args(["-t", &source.arg(), "-k", key.to_str().unwrap()]);
    let out = run_with_stdin(spipe, &up, EXCHANGE_DEADLINE);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(sha(&out.stdout), sha(&reply));
    target.wait_received(&up, EXCHANGE_DEADLINE).unwrap();
}

/// The commands of the README's indented block that first follows the line `marker`
/// (starting it).
fn readme_block(marker: &str) -> String {
    let readme = fs::read_to_string(repo_file("README.md")).unwrap();
    let section = readme
        .split_once(&format!("\n{marker}"))
        .unwrap_or_else(|| panic!("README has no line starting {marker:?}"))
        .1;
    let block: Vec<&str> = section
        .lines()
        .skip_while(|l| !l.starts_with("    "))
        .take_while(|l| l.starts_with("    "))
        .map(|l| &l[4..])
        .collect();
    assert!(block.len() >= 4, "{block:?}");
    block.join("\n") + "\n"
}

/// The commands of the README's quick start: the indented block after `### Quick start`.
fn quick_start() -> String {
    readme_block("### Quick start\n")
}

/// Kills what a failed quick start left running, by the pidfiles it wrote.
struct KillPidfiles<'a>(&'a Path);

impl Drop for KillPidfiles<'_> {
    fn drop(&mut self) {
        for name in ["client.pid", "server.pid", "http.pid"] {
            if let Some(pid) = fs::read_to_string(self.0.join(name))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
                && alive(pid)
            {
                signal(pid, libc::SIGKILL);
            }
        }
    }
}

/// The README's quick start runs verbatim, with this build as `spiped` and `spipe` on
/// the `PATH`, in an empty directory (as root, in a private network namespace, so its
/// fixed ports meet no one else's): the page comes through the pipe and through spipe,
/// stderr holds no word from spiped, spipe or curl (a first request before the web
/// server listens would draw some), and its last command
/// stops all three processes (each spiped removes its pidfile).
#[test]
fn readme_quick_start_runs_verbatim() {
    if !tool("python3", &["--version"], "apt-get install python3")
        || !tool("curl", &["--version"], "apt-get install curl")
    {
        return;
    }
    let script = quick_start();
    println!("quick start:\n{script}");
    let dir = temp_dir();
    let work = dir.path().join("work");
    fs::create_dir(&work).unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    for name in ["spiped", "spipe"] {
        std::os::unix::fs::symlink(spiped_bin(Impl::Ours), bin.join(name)).unwrap();
    }
    fs::write(dir.path().join("quick-start.sh"), &script).unwrap();
    let _cleanup = KillPidfiles(&work);

    let run_script =
        "set -e; [ -z \"$PRIVATE_NET\" ] || ip link set lo up; sh -ex ../quick-start.sh";
    let private_net = root()
        && tool("unshare", &["--version"], "apt-get install util-linux")
        && tool("ip", &["-V"], "apt-get install iproute2");
    let mut cmd = if private_net {
        let mut cmd = Command::new("unshare");
        cmd.args(["-n", "sh", "-c", run_script])
            .env("PRIVATE_NET", "1");
        cmd
    } else {
        shell("sh", run_script)
    };
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.current_dir(&work).env("PATH", path);
    let out = run_with_stdin(cmd, b"", Duration::from_secs(120));
    println!("{}", out.stderr);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout_str(), out.stderr);
    let stdout = out.stdout_str();
    // Once from curl through both ends, once from spipe through the server end.
    assert_eq!(
        stdout.matches("hello through spiped").count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("HTTP/1.0 200 OK"), "{stdout}");
    // Besides `sh -x`'s trace (whose lines a pipeline's two sides may interleave), no
    // word from the commands.
    let words: Vec<&str> = (out.stderr.lines())
        .filter(|l| ["spiped:", "spipe:", "curl:"].iter().any(|w| l.contains(w)))
        .collect();
    assert_eq!(words, Vec::<&str>::new(), "{}", out.stderr);

    // The pidfiles stay: the directory holds other files, where the sandbox lets a
    // daemon remove nothing (README's Sandbox).
    let pids: Vec<i32> = ["http.pid", "client.pid", "server.pid"]
        .map(|f| {
            fs::read_to_string(work.join(f))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .into();
    let gone = poll(READY_DEADLINE, || {
        (!pids.iter().any(|&p| alive(p))).then_some(())
    });
    assert!(
        gone.is_some(),
        "the quick start's kill left something running: {:?}",
        tree(&work)
    );
}

/// `make test` ends with `make leftovers`: a process that still carries the mark every
/// test's processes inherit is named and killed, and the check fails; with none left it
/// passes.
#[test]
fn leftover_check_names_and_kills_what_a_test_left_running() {
    if !tool("make", &["--version"], "apt-get install make") {
        return;
    }
    let dir = temp_dir();
    // A mark of this test's own, so the processes of tests running alongside (which
    // carry cargo's) are not counted.
    let mark = format!("SPIPED_LEFTOVER_TEST={}", dir.path().display());
    let (name, value) = mark.split_once('=').unwrap();
    let mut sleeper = Command::new("sleep");
    sleeper.arg("600").env(name, value);
    let mut left = Group::spawn(sleeper);
    let pid = left.leader().id() as i32;
    let check = || {
        let mut cmd = make_as_root_without_toolchain(&[
            "--no-print-directory",
            "leftovers",
            &format!("LEFTOVER_MARK={mark}"),
        ]);
        cmd.env(name, "not this process's mark");
        run_with_stdin(cmd, b"", STEP_DEADLINE)
    };
    let out = check();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("a test left running") && out.stderr.contains(&format!("{pid} ")),
        "{}",
        out.stderr
    );
    // A zombie counts as gone: this test reaps its child only on drop.
    wait_until("make leftovers to kill it", STEP_DEADLINE, || !alive(pid));
    drop(left);
    let out = check();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
}

/// The README's walk-through for `spiped.service` runs verbatim but for its `systemctl`
/// lines (no systemd here; the unit itself is checked above and in tests/systemd.rs),
/// as root in a private mount namespace where /etc and /usr/share/doc are overlays (so
/// nothing reaches the machine's own) and the package has put the example where it
/// does: the example is copied, a key made for each pipe (root's, mode 0600), and the
/// check passes, saying what the sandbox puts in force.
#[test]
fn readme_service_walkthrough_checks_the_example() {
    if !root() || !tool("unshare", &["--version"], "apt-get install util-linux") {
        return;
    }
    let walk: String = readme_block("As a service, with the installed `spiped.service`")
        .lines()
        .filter(|l| !l.starts_with("systemctl "))
        .map(|l| format!("{l}\n"))
        .collect();
    println!("walk-through:\n{walk}");
    let dir = temp_dir();
    let d = dir.path();
    let bin = d.join("bin");
    fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(spiped_bin(Impl::Ours), bin.join("spiped")).unwrap();
    fs::write(d.join("walk.sh"), &walk).unwrap();
    let mut overlays = String::new();
    for (name, lower) in [("etc", "/etc"), ("doc", "/usr/share/doc")] {
        for sub in ["upper", "work"] {
            fs::create_dir_all(d.join(name).join(sub)).unwrap();
        }
        overlays += &format!(
            "mount -t overlay overlay -o lowerdir={lower},upperdir={0}/upper,workdir={0}/work {lower}\n",
            d.join(name).display()
        );
    }
    let script = format!(
        "set -e\n{overlays}install -D -m 0644 {} /usr/share/doc/spiped-rs/examples/spiped.toml\n\
         sh -ex {}\n",
        repo_file("contrib/spiped.toml").display(),
        d.join("walk.sh").display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &script])
        .current_dir(d)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
    let out = run_with_stdin(cmd, b"", STEP_DEADLINE);
    let stdout = out.stdout_str();
    assert_eq!(out.code(), Some(0), "{stdout}\n{}", out.stderr);
    assert!(
        stdout.contains(
            "/etc/spiped/spiped.toml: configuration OK (4 pipes)\nsandbox: landlock ABI "
        ),
        "{stdout}"
    );
    let etc = d.join("etc/upper/spiped");
    assert_eq!(
        fs::read(etc.join("spiped.toml")).unwrap(),
        fs::read(repo_file("contrib/spiped.toml")).unwrap()
    );
    use std::os::unix::fs::MetadataExt;
    for key in ["smtp", "pg", "redis", "backup", "db"] {
        let meta = fs::metadata(etc.join(format!("{key}.key"))).unwrap();
        assert_eq!((meta.mode() & 0o777, meta.uid()), (0o600, 0), "{key}.key");
    }
}
