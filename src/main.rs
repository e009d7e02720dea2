//! The multi-call binary: acts as the tool it is named after (`spiped`, `spipe`), or as
//! the tool named by its first argument (`spiped keygen`).

use std::path::Path;

use spiped::tool;

/// The usage text for a program name or tool we do not know, listing every tool.
fn usage() -> String {
    let names: Vec<&str> = tool::TOOLS.iter().map(|t| t.name).collect();
    format!(
        "usage: spiped {{{}}} [OPTIONS...]
   or: spiped [OPTIONS...]     (the daemon)
   or: spipe [OPTIONS...]      (the binary installed or linked under the name spipe)
Run `spiped TOOL -h` for the options of each tool.
",
        names.join(" | ")
    )
}

fn main() {
    let args: Vec<String> = match std::env::args_os().map(|a| a.into_string()).collect() {
        Ok(v) => v,
        Err(bad) => {
            eprintln!(
                "spiped: argument is not valid UTF-8: {}",
                bad.to_string_lossy()
            );
            std::process::exit(1);
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
    let status = match (first.and_then(tool::find), name) {
        (Some(t), _) => (t.main)(&rest[1..]),
        (None, "spiped") if first.is_some_and(|a| !a.starts_with('-')) => {
            eprint!(
                "spiped: unknown tool '{}'\n{}",
                first.unwrap_or(""),
                usage()
            );
            1
        }
        (None, "spiped") => tool::spiped::main(rest),
        (None, "spipe") => tool::spipe::main(rest),
        _ => {
            eprint!("{}", usage());
            1
        }
    };
    std::process::exit(status);
}
