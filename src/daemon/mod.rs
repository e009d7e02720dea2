//! The running daemon: start-up, signals and reloads; its pipes and the settings each
//! runs with, the accept loop, and one connection's life and log.

pub mod accept;
pub mod conn;
pub mod conn_log;
pub mod conn_settings;
pub mod pipe;
pub mod pipes;
mod reload;
mod serve;
mod signals;
mod source;

pub use serve::{Start, StartError, run};
pub use source::{ConfigErrors, ReadConfig, Source, sandbox_needs};
