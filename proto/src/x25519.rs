//! The X25519 key agreement of the opt-in `--x25519` handshake extension (see PROTOCOL.md):
//! ephemeral secrets, public keys, and a shared secret that is refused when the peer's
//! key is a low-order point.

use core::fmt;

use curve25519_dalek::montgomery::MontgomeryPoint;
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Length in bytes of an X25519 public key and of the shared secret.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const KEY_LEN: usize = 32;

/// Domain label that prefixes the MAC input of an X25519 DH message,
/// `HMAC-SHA256(dhmac, MAC_LABEL || public)`. Its presence (and the 48-byte input it
/// yields, where group 14 MACs exactly 256 bytes) keeps the MACs of the two modes apart.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const MAC_LABEL: &[u8; 16] = b"spiped-x25519-v1";

/// An ephemeral X25519 secret, drawn from the OS for one connection and used for exactly
/// one key agreement. Wiped from memory when dropped (x25519-dalek's `zeroize` feature);
/// its `Debug` output never shows the secret.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) struct Secret(StaticSecret);

impl Secret {
    /// Uses the given scalar (clamped at use, as RFC 7748 says), for deterministic tests.
    #[cfg_attr(feature = "test-util", visibility::make(pub))]
    pub(crate) fn from_bytes(bytes: [u8; KEY_LEN]) -> Secret {
        Secret(StaticSecret::from(bytes))
    }

    /// Our public key `X25519(secret, 9)`.
    #[cfg_attr(feature = "test-util", visibility::make(pub))]
    pub(crate) fn public(&self) -> [u8; KEY_LEN] {
        PublicKey::from(&self.0).to_bytes()
    }

    /// The shared secret `X25519(secret, peer)`, consuming the secret so it is used once.
    ///
    /// `None` when the result is all zeros, which happens exactly when `peer` is a point
    /// of small order (or an encoding of one): such a key would let whoever chose it fix
    /// the session keys without knowing our secret. Checked in constant time.
    ///
    /// For a peer key on the curve (every honest peer's), the same value is computed on
    /// the birationally equivalent Edwards curve, where curve25519-dalek's vectorised
    /// constant-time variable-base multiplication takes about 44 us here against the
    /// Montgomery ladder's 60 (the agreement is most of a side's X25519 cost). The map
    /// is a group isomorphism, either of the two points with that `u` gives the same
    /// `u` of the product, and the identity maps back to `u = 0`, so the result is
    /// X25519's bit for bit (checked against the ladder in the tests). A key on the
    /// twist, or `u = -1`, has no Edwards point and takes the ladder. Which path runs
    /// depends only on the peer's public key, never on our secret.
    #[cfg_attr(feature = "test-util", visibility::make(pub))]
    pub(crate) fn agree(self, peer: &[u8; KEY_LEN]) -> Option<Shared> {
        let shared = match MontgomeryPoint(*peer).to_edwards(0) {
            Some(point) => {
                let scalar = Zeroizing::new(self.0.to_bytes());
                Zeroizing::new(point.mul_clamped(*scalar).to_montgomery().to_bytes())
            }
            None => Zeroizing::new(self.0.diffie_hellman(&PublicKey::from(*peer)).to_bytes()),
        };
        let zero = shared.ct_eq(&[0; KEY_LEN]);
        (!bool::from(zero)).then_some(Shared(shared))
    }
}

/// An X25519 shared secret; wiped from memory when dropped.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) struct Shared(Zeroizing<[u8; KEY_LEN]>);

impl Shared {
    /// The secret's bytes.
    #[cfg_attr(feature = "test-util", visibility::make(pub))]
    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("x25519::Secret(<redacted>)")
    }
}
