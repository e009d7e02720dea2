//! Test harness: starts `spiped`/`spipe` processes (ours or Debian's C build), runs
//! in-process target servers and clients, and moves bytes with deadlines.
//!
//! Nothing here sleeps to synchronise: readiness is polled (connect every 10 ms up to a
//! deadline), every wait has a deadline, and every child process is killed on drop.
//!
//! One file a concern; a test file says `use common::*;` and needs no path:
//! - [`host`]: what the machine must have (root, a Debian program), or skip.
//! - [`impls`]: ours and Debian's C build, and the `spiped`/`spipe` of each.
//! - [`c_peer`]: proving the C build is Debian's 1.6 (dpkg, version).
//! - [`files`]: key files and scratch directories.
//! - [`payloads`]: the bytes tests send and the hashes they compare.
//! - [`net`]: loopback addresses, free ports, connections of either kind.
//! - [`wait`]: deadlines and polling (for a condition, a child, a thread).
//! - [`names`]: a private /etc/hosts for a daemon in its own mount namespace.
//! - [`process`]: run a command to its end, signals, liveness, mount namespaces.
//! - [`daemons`]: a `spiped` under test, in the foreground or daemonized.
//! - [`target`]: the in-process service behind `spiped -d`.
//! - [`client`]: exchanges through a pipe and the round trips tests assert.
//! - [`pipes`]: a `-d` in front of a target, an `-e` aimed at one, a chain of both.

// Each test binary uses its own part of the harness: the rest is dead code to it, and
// a re-export it takes nothing from is unused.
#![allow(dead_code, unused_imports)]

pub mod c_peer;
pub mod client;
pub mod daemons;
pub mod files;
pub mod host;
pub mod impls;
pub mod names;
pub mod net;
pub mod payloads;
pub mod pipes;
pub mod process;
pub mod target;
pub mod wait;

pub use c_peer::*;
pub use client::*;
pub use daemons::*;
pub use files::*;
pub use host::*;
pub use impls::*;
pub use names::*;
pub use net::*;
pub use payloads::*;
pub use pipes::*;
pub use process::*;
pub use target::*;
pub use wait::*;
