//! What `spipe` and the daemon share: the handshake driven over a transport, the
//! established session's data path, which costly steps leave the event loop, the PROXY
//! protocol header, and the protocol's client side (connecting to a target within `-o`).

pub(crate) mod client;
pub(crate) mod handshake;
pub(crate) mod offload;
pub(crate) mod proxy;
pub(crate) mod pump;
