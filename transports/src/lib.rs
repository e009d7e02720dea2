//! Byte-stream transports for spiped: address parsing, TCP, UNIX sockets and stdio.

pub mod address;

pub use address::{Address, AddressError};
