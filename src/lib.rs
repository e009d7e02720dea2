//! spiped in Rust: a wire-compatible reimplementation of Tarsnap's `spiped` and `spipe`.
//!
//! Layering, from the bottom up (each module has one job; a module imports only from
//! those listed before it; ARCHITECTURE.md draws the whole house):
//! - [`spiped_proto`] (the `proto/` crate): the sans-IO protocol core (key schedule,
//!   Diffie-Hellman, handshake state machine, packet seal/open). No sockets, no async
//!   runtime. [`spiped_transports`] (the `transports/` crate): every socket.
//! - `log`, `errors`: how the operator is told.
//! - `keyfile`, `resolve`: turning a key file and addresses into a key and
//!   endpoints.
//! - `session`: what `spipe` and the daemon share: the handshake driven over a
//!   transport, the data path of the established session, the costly steps that leave
//!   the event loop, the PROXY header, and the client side (connect within `-o`).
//! - `targets`: several targets per pipe: which one a connection tries, their health.
//! - `process`: forking, pidfile, accounts and privileges (`-u`), systemd.
//! - `sandbox`: self-confinement once serving.
//! - `config`: what the daemon serves, as plain values, built by `spiped`'s command
//!   line or its configuration file ([`cmd`]).
//! - `metrics`: what the daemon counts and the endpoint that shows it.
//! - `daemon`: the running daemon: start-up, signals, reloads, its pipes, the accept
//!   loop and one connection's life.
//! - [`cmd`]: the tools of the multi-call binary, each in one folder: its command line
//!   (`args.rs`, and for `spiped` its configuration file, `file.rs`) and its entry
//!   point (`run.rs`).

pub mod cmd;
pub(crate) mod config;
pub(crate) mod daemon;
pub(crate) mod errors;
pub(crate) mod keyfile;
pub(crate) mod log;
pub(crate) mod metrics;
pub(crate) mod process;
pub(crate) mod resolve;
pub(crate) mod sandbox;
pub(crate) mod session;
pub(crate) mod targets;
