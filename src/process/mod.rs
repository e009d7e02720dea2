//! The process around the pipes: becoming a daemon (fork with a readiness handshake,
//! the pidfile), accounts and dropping privileges (`-u`), and systemd (socket
//! activation, readiness and watchdog notifications).

pub mod account;
pub mod daemonize;
pub mod systemd;
