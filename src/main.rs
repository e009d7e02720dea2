//! The multi-call binary: acts as the tool it is named after (`spiped`, `spipe`), or as
//! the tool named by its first argument (`spiped keygen`); see [`spiped::cmd`].

/// The static (musl) build's allocator: musl's own is slow enough to halve the rate of
/// handshakes without PFS.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(spiped::cmd::main());
}
