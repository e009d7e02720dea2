//! spiped in Rust: a wire-compatible reimplementation of Tarsnap's `spiped` and `spipe`.
//!
//! Layering, from the bottom up (each module has one job):
//! - [`spiped_proto`] (the `proto/` crate): the sans-IO protocol core (key schedule,
//!   Diffie-Hellman, handshake state machine, packet seal/open). No sockets, no async
//!   runtime.
//! - [`keyfile`], [`resolve`]: turning the command line's key file and addresses into
//!   a key and endpoints.
//! - [`session`]: the handshake driven over a transport; [`pump`]: the data path of
//!   the established session (both directions); [`offload`]: which of their costly
//!   steps leave the event loop, and the spare key pair a daemon keeps computed ahead.
//! - [`conn`]: one daemon connection's life (and the client's way of opening one, which
//!   `spipe` shares), logged by [`connlog`], optionally led by a [`proxy`] (PROXY
//!   protocol) header; [`dispatch`]: the accept loop; [`daemon`]: forking, pidfile and
//!   privileges (`-u`); [`systemd`]: socket activation and readiness notification.
//! - [`config`]: what the daemon serves (process-wide settings, one or more pipes, the
//!   key files they name) and what each connection runs with; plain values, built by
//!   `spiped`'s command line or its configuration file ([`cmd`]); [`pipe`]: one pipe's
//!   live settings; [`counters`]: what happened to its connections; [`pipes`]: the
//!   running pipes, started and reloaded from a configuration.
//! - [`metrics`]: what the daemon counts and the endpoint that shows it; [`sandbox`]:
//!   self-confinement once serving; [`log`], [`errors`]: how the operator is told.
//! - [`cmd`]: the tools of the multi-call binary, each in one folder: its command line
//!   (`args.rs`, and for `spiped` its configuration file, `file.rs`) and its entry
//!   point (`run.rs`).

pub mod cmd;
pub mod config;
pub mod conn;
pub mod connlog;
pub mod counters;
pub mod daemon;
pub mod dispatch;
pub mod errors;
pub mod keyfile;
pub mod log;
pub mod metrics;
pub mod offload;
pub mod pipe;
pub mod pipes;
pub mod proxy;
pub mod pump;
pub mod resolve;
pub mod sandbox;
pub mod session;
pub mod systemd;
