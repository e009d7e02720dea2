//! The process around the pipes: becoming a daemon (fork with a readiness handshake,
//! the pidfile), accounts and dropping privileges (`-u`), and systemd (socket
//! activation, readiness and watchdog notifications).

pub(crate) mod account;
pub(crate) mod daemonize;
pub(crate) mod systemd;
