//! Who a side of the handshake is and what it asks for (its role and mode), and which
//! key agreement a finished handshake used.

use core::fmt;

/// Which end of the connection we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Opens the encrypted connection (`spipe`, `spiped -e`); sends its DH message first.
    Client,
    /// Accepts the encrypted connection (`spiped -d`); answers the client's DH message.
    Server,
}

/// Handshake options that are set per daemon on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mode {
    /// `-f`: skip Diffie-Hellman; send `y = 1` and use `y_SC = 1` (no forward secrecy).
    /// A server in fast mode still does X25519 with an X25519 client: it costs little
    /// and the client asked for forward secrecy.
    pub fast: bool,
    /// `-g`: require perfect forward secrecy; reject a peer that sends `y = 1`. An X25519
    /// exchange always satisfies it.
    pub require_pfs: bool,
    /// `--x25519`, client only: use the X25519 extension instead of group 14, and never
    /// fall back. Takes precedence over `fast` (the command line rejects the pair). A
    /// server ignores it: it always accepts both kinds of client.
    pub x25519: bool,
}

/// Which key agreement a finished handshake used, for connection logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// The X25519 extension: forward secret.
    X25519,
    /// Group-14 Diffie-Hellman on both sides: forward secret.
    Group14,
    /// Group 14 with `y_SC = 1` because one side runs with `-f`: no forward secrecy.
    Fast,
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Exchange::X25519 => "x25519",
            Exchange::Group14 => "group14",
            Exchange::Fast => "fast (no PFS)",
        })
    }
}
