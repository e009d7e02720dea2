//! The peer's messages received: its nonce, then its DH message, checked (MAC in
//! constant time, the group element or shared secret) and turned into session keys.

use zeroize::Zeroize;

use super::{
    AfterDhSent, DH_MSG_LEN, Exchange, Handshake, HandshakeError, NONCE_LEN, Role, State,
    X25519_MSG_LEN,
};
use crate::dh::{self, Secret, Y_LEN};
use crate::key::{DhMacKeys, SessionKeys, dhmac_keys, session_keys, x25519_session_keys};
impl Handshake {
    /// Feeds the bytes asked for by `Next::Recv` (its [`Incoming::len`](super::Incoming::len)).
    ///
    /// Validates the peer's DH message: the MAC in constant time, then for group 14
    /// `y < p` and `-g`, for X25519 that the shared secret is not all zeros.
    /// Any error, including a wrong length or an unexpected call, fails the handshake for
    /// good: later calls return [`HandshakeError::Unexpected`] and [`Handshake::finish`]
    /// returns `None`. Never panics, whatever the bytes.
    pub fn received(&mut self, bytes: &[u8]) -> Result<(), HandshakeError> {
        let result = match std::mem::replace(&mut self.state, State::Failed) {
            State::RecvNonce => self.on_nonce(bytes),
            State::RecvDh { dhmacs } => self.on_dh(bytes, dhmacs),
            State::RecvGroup14Tail { dhmacs, head } => {
                let tail_len = DH_MSG_LEN - X25519_MSG_LEN;
                if bytes.len() == tail_len {
                    self.on_group14(&[&head[..], bytes].concat(), &dhmacs)
                } else {
                    Err(HandshakeError::WrongLength {
                        expected: tail_len,
                        got: bytes.len(),
                    })
                }
            }
            _ => Err(HandshakeError::Unexpected),
        };
        if result.is_err() {
            self.state = State::Failed;
            self.secret = None;
            self.x_secret = None;
        }
        result
    }

    fn on_nonce(&mut self, bytes: &[u8]) -> Result<(), HandshakeError> {
        self.peer_nonce = bytes.try_into().map_err(|_| HandshakeError::WrongLength {
            expected: NONCE_LEN,
            got: bytes.len(),
        })?;
        let (nc, ns) = self.nonces();
        let dhmac = dhmac_keys(self.key(), nc, ns);
        self.state = match self.role {
            Role::Client => State::SendDh {
                msg: if self.mode.x25519 {
                    self.our_x25519_message(&dhmac)
                        .ok_or(HandshakeError::Unexpected)?
                } else {
                    self.our_dh_message(&dhmac)
                },
                then: AfterDhSent::RecvDh(dhmac),
            },
            Role::Server => State::RecvDh {
                dhmacs: self.keys.iter().map(|k| dhmac_keys(k, nc, ns)).collect(),
            },
        };
        Ok(())
    }

    /// The peer's DH message, or (server) its first 64 bytes.
    fn on_dh(&mut self, bytes: &[u8], dhmacs: Vec<DhMacKeys>) -> Result<(), HandshakeError> {
        let expected = self.dh_recv_len();
        if bytes.len() != expected {
            return Err(HandshakeError::WrongLength {
                expected,
                got: bytes.len(),
            });
        }
        match self.role {
            // A client never falls back from what it asked for: that is what makes a
            // downgrade impossible.
            Role::Client if self.mode.x25519 => {
                let (index, peer) = self
                    .peer_x25519_key(bytes, &dhmacs)
                    .ok_or(HandshakeError::BadMac)?;
                self.on_x25519(&peer, index, &dhmacs)
            }
            Role::Client => self.on_group14(bytes, &dhmacs),
            Role::Server => match self.peer_x25519_key(bytes, &dhmacs) {
                Some((index, peer)) => self.on_x25519(&peer, index, &dhmacs),
                None => {
                    // Not an X25519 message, so it can only be the start of a group-14
                    // one (which the full MAC check will tell).
                    let mut head = [0u8; X25519_MSG_LEN];
                    head.copy_from_slice(bytes);
                    self.state = State::RecvGroup14Tail { dhmacs, head };
                    Ok(())
                }
            },
        }
    }

    /// The peer's X25519 public key, MAC-verified under our key number `index`.
    fn on_x25519(
        &mut self,
        peer: &[u8; 32],
        index: usize,
        dhmacs: &[DhMacKeys],
    ) -> Result<(), HandshakeError> {
        self.key_index = index;
        let dhmac = &dhmacs[index];
        let reply = match self.role {
            Role::Client => None,
            Role::Server => Some(
                self.our_x25519_message(dhmac)
                    .ok_or(HandshakeError::Unexpected)?,
            ),
        };
        // Only one key agreement per connection: drop the group-14 exponent unused.
        self.secret = None;
        let secret = self.x_secret.take().ok_or(HandshakeError::Unexpected)?;
        let shared = secret.agree(peer).ok_or(HandshakeError::LowOrder)?;
        let (nc, ns) = self.nonces();
        let keys = x25519_session_keys(self.key(), nc, ns, shared.as_bytes());
        self.dh_done(keys, Exchange::X25519, reply);
        Ok(())
    }

    /// The peer's whole group-14 DH message.
    fn on_group14(&mut self, bytes: &[u8], dhmacs: &[DhMacKeys]) -> Result<(), HandshakeError> {
        let (y, tag) = bytes
            .split_at_checked(Y_LEN)
            .ok_or(HandshakeError::Unexpected)?;
        let index = self
            .verify_peer_mac(dhmacs, &[y], tag)
            .ok_or(HandshakeError::BadMac)?;
        self.key_index = index;
        let dhmac = &dhmacs[index];
        let mut peer_y = [0u8; Y_LEN];
        peer_y.copy_from_slice(y);
        if !dh::is_acceptable_peer_value(&peer_y) {
            return Err(HandshakeError::BadDhValue);
        }
        if self.mode.require_pfs && peer_y == dh::ONE {
            return Err(HandshakeError::PeerNotPfs);
        }

        // The server answers only now that the client's message checked out; its y
        // needs the exponent, so build the reply before the exponent is consumed.
        let reply = match self.role {
            Role::Client => None,
            Role::Server => Some(self.our_dh_message(dhmac)),
        };

        // A fast side uses 1 whatever the peer sent; a PFS peer that got our y = 1
        // computes 1^x = 1 too, so both sides agree.
        self.x_secret = None;
        match (self.secret.take().filter(|_| peer_y != dh::ONE), reply) {
            (Some(x), Some(msg)) => {
                self.state = State::SendDh {
                    msg,
                    then: AfterDhSent::Agree(x, Box::new(peer_y)),
                };
            }
            (Some(x), None) => {
                let keys = self.group14_keys(&x, &peer_y);
                self.dh_done(keys, Exchange::Group14, None);
            }
            (None, reply) => {
                let keys = self.early_keys.take().unwrap_or_else(|| {
                    let (nc, ns) = self.nonces();
                    session_keys(self.key(), nc, ns, &dh::ONE)
                });
                self.dh_done(keys, Exchange::Fast, reply);
            }
        }
        Ok(())
    }

    /// The session keys from our exponent `x` and the peer's `peer_y` (one modular
    /// exponentiation); the shared secret is wiped before returning.
    pub(super) fn group14_keys(&self, x: &Secret, peer_y: &[u8; Y_LEN]) -> SessionKeys {
        let mut shared = dh::shared(x, peer_y);
        let (nc, ns) = self.nonces();
        let keys = session_keys(self.key(), nc, ns, &shared);
        shared.zeroize();
        keys
    }

    /// After the peer's DH message checked out: a client is done, a server sends `reply`.
    fn dh_done(&mut self, keys: SessionKeys, exchange: Exchange, reply: Option<Box<[u8]>>) {
        self.state = match reply {
            None => State::Done { keys, exchange },
            Some(msg) => State::SendDh {
                msg,
                then: AfterDhSent::Done(keys, exchange),
            },
        };
    }
}
