//! What `spipe` and the daemon share: the handshake driven over a transport, the
//! established session's data path, which costly steps leave the event loop, the PROXY
//! protocol header, and the protocol's client side (connecting to a target within `-o`).

pub mod client;
pub mod handshake;
pub mod offload;
pub mod proxy;
pub mod pump;
