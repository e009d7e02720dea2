//! The multi-call binary: acts as the tool it is named after (`spiped`, `spipe`), or as
//! the tool named by its first argument.

use std::path::Path;

use spiped::tool;

const USAGE: &str = "usage: spiped {spiped | spipe} [OPTIONS...]
   or: spipe [OPTIONS...]      (the binary installed or linked under the name spipe)
Run `spiped spiped -h` or `spiped spipe -h` for the options of each tool.
";

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
    let status = match (rest.first().map(String::as_str), name) {
        (Some("spiped"), _) => tool::spiped::main(&rest[1..]),
        (Some("spipe"), _) => tool::spipe::main(&rest[1..]),
        (_, "spiped") => tool::spiped::main(rest),
        (_, "spipe") => tool::spipe::main(rest),
        _ => {
            eprint!("{USAGE}");
            1
        }
    };
    std::process::exit(status);
}
