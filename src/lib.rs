//! spiped in Rust: a wire-compatible reimplementation of Tarsnap's `spiped` and `spipe`.
//!
//! Layering, from the bottom up (each module has one job):
//! - [`proto`]: the sans-IO protocol core (key schedule, Diffie-Hellman, handshake state
//!   machine, packet seal/open). No sockets, no async runtime.
