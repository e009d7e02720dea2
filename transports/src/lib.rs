//! Byte-stream transports for spiped: address parsing, TCP, UNIX sockets and stdio.
//!
//! This crate knows nothing about keys or the protocol. It owns every socket option
//! spiped sets (SO_REUSEADDR, TCP_NODELAY, SO_KEEPALIVE, bind-before-connect), so that
//! no other layer touches sockets directly, and the event loop ([`event_loop`], tokio's
//! current-thread runtime) that drives them: one edge-triggered epoll registration per
//! socket, owned by one thread.

pub mod address;
pub mod endpoint;
pub mod event_loop;
pub mod listener;
mod registered;
pub mod stdio;
pub mod stream;
mod sys;
pub mod transport;

pub use address::{Address, AddressError};
pub use endpoint::{Endpoint, StreamOptions, connect};
pub use listener::{ACCEPT_BACKOFF, AcceptTrouble, Listener, SocketFile};
pub use stdio::Stdio;
pub use stream::SocketStream;
pub use transport::Transport;

#[cfg(test)]
mod tests;
