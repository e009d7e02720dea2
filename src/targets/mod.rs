//! Several targets per pipe: which one a new connection tries first and next
//! ([`Balance`]), their passive health (a failed connect skips a target for a back-off
//! of 1 s doubling to 30 s), active checks (`health-interval`), and what each target
//! looks like from outside.
//!
//! [`TargetSet`] is sans-IO: plain values, the time passed in. [`connect`] drives it
//! for one connection, [`Checker`] runs the active checks; both only report into it.
//! Below `config` and `metrics`, which name its settings and its snapshots, and above
//! `session`, whose client side the checks use.

mod check;
mod connect;
mod health;
mod set;
mod settings;
#[cfg(test)]
mod tests;

pub(crate) use check::{Check, Checker};
pub(crate) use connect::{Open, Shared, connect, lock, one};
pub(crate) use set::{Change, TargetSet, TargetSnapshot, Transition};
pub(crate) use settings::{Balance, Settings, connect_timeout};
#[cfg(test)]
use {check::check_once, health::Failure, set::Pick};
