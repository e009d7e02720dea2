//! The multi-call binary: acts as the tool it is named after (`spiped`, `spipe`), or as
//! the tool named by its first argument (`spiped keygen`); see [`spiped::cmd`].

fn main() {
    std::process::exit(spiped::cmd::main());
}
