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

pub(crate) mod c_peer;
pub(crate) mod client;
pub(crate) mod daemons;
pub(crate) mod files;
pub(crate) mod host;
pub(crate) mod impls;
pub(crate) mod names;
pub(crate) mod net;
pub(crate) mod payloads;
pub(crate) mod pipes;
pub(crate) mod process;
pub(crate) mod target;
pub(crate) mod wait;

pub(crate) use c_peer::*;
pub(crate) use client::*;
pub(crate) use daemons::*;
pub(crate) use files::*;
pub(crate) use host::*;
pub(crate) use impls::*;
pub(crate) use names::*;
pub(crate) use net::*;
pub(crate) use payloads::*;
pub(crate) use pipes::*;
pub(crate) use process::*;
pub(crate) use target::*;
pub(crate) use wait::*;
