//! The running daemon: start-up, signals and reloads; its pipes and the settings each
//! runs with, the accept loop, and one connection's life and log.

pub(crate) mod accept;
pub(crate) mod conn;
pub(crate) mod conn_log;
pub(crate) mod conn_settings;
pub(crate) mod pipe_state;
pub(crate) mod pipes;
mod reload;
mod serve;
mod signals;
mod source;

pub(crate) use serve::{Start, run};
pub(crate) use source::{ConfigErrors, Source, sandbox_needs};
