//! The X25519 key agreement of the opt-in `--x25519` handshake extension (see PROTOCOL.md):
//! ephemeral secrets, public keys, and a shared secret that is refused when the peer's
//! key is a low-order point.

use core::fmt;

use curve25519_dalek::montgomery::MontgomeryPoint;
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Length in bytes of an X25519 public key and of the shared secret.
pub const KEY_LEN: usize = 32;

/// Domain label that prefixes the MAC input of an X25519 DH message,
/// `HMAC-SHA256(dhmac, MAC_LABEL || public)`. Its presence (and the 48-byte input it
/// yields, where group 14 MACs exactly 256 bytes) keeps the MACs of the two modes apart.
pub const MAC_LABEL: &[u8; 16] = b"spiped-x25519-v1";

/// An ephemeral X25519 secret, drawn from the OS for one connection and used for exactly
/// one key agreement. Wiped from memory when dropped (x25519-dalek's `zeroize` feature);
/// its `Debug` output never shows the secret.
pub struct Secret(StaticSecret);

impl Secret {
    /// Draws a fresh secret from the OS random number generator (handshakes draw theirs
    /// together with their other random bytes).
    ///
    /// Fails only if the OS cannot provide randomness; never falls back to a weaker source.
    #[cfg(test)]
    pub fn random() -> Result<Secret, getrandom::Error> {
        let mut bytes = [0u8; KEY_LEN];
        let drawn = getrandom::fill(&mut bytes);
        let secret = Secret::from_bytes(bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        drawn.map(|()| secret)
    }

    /// Uses the given scalar (clamped at use, as RFC 7748 says), for deterministic tests.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Secret {
        Secret(StaticSecret::from(bytes))
    }

    /// Our public key `X25519(secret, 9)`.
    pub fn public(&self) -> [u8; KEY_LEN] {
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
    pub fn agree(self, peer: &[u8; KEY_LEN]) -> Option<Shared> {
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
pub struct Shared(Zeroizing<[u8; KEY_LEN]>);

impl Shared {
    /// The secret's bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("x25519::Secret(<redacted>)")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The points of order 1, 2, 4 and 8 on Curve25519 and their non-canonical encodings
    /// (the list from the libsodium/cr.yp.to blacklist); all must be refused.
    pub(crate) const LOW_ORDER: [[u8; 32]; 7] = [
        [0; 32],
        {
            let mut one = [0; 32];
            one[0] = 1;
            one
        },
        [
            0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f,
            0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16,
            0x5f, 0x49, 0xb8, 0x00,
        ],
        [
            0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83,
            0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd,
            0xd0, 0x9f, 0x11, 0x57,
        ],
        // p - 1, and p and p + 1 (non-canonical encodings of 0 and 1).
        [
            0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0x7f,
        ],
        [
            0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0x7f,
        ],
        [
            0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0x7f,
        ],
    ];

    #[test]
    fn rfc7748_key_agreement() {
        // RFC 7748 section 6.1.
        let a = hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
            .unwrap();
        let b = hex::decode("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
            .unwrap();
        let a = Secret::from_bytes(a.try_into().unwrap());
        let b = Secret::from_bytes(b.try_into().unwrap());
        let (pa, pb) = (a.public(), b.public());
        assert_eq!(
            hex::encode(pa),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
        let k = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
        assert_eq!(hex::encode(a.agree(&pb).unwrap().as_bytes()), k);
        assert_eq!(hex::encode(b.agree(&pa).unwrap().as_bytes()), k);
    }

    #[test]
    fn low_order_points_refused() {
        for p in LOW_ORDER {
            let s = Secret::random().unwrap();
            assert!(s.agree(&p).is_none(), "{}", hex::encode(p));
        }
    }

    #[test]
    fn edwards_path_matches_the_ladder_on_curve_and_twist() {
        let mut on_twist = 0;
        for _ in 0..400 {
            let (mut scalar, mut peer) = ([0u8; 32], [0u8; 32]);
            getrandom::fill(&mut scalar).unwrap();
            getrandom::fill(&mut peer).unwrap();
            on_twist += usize::from(MontgomeryPoint(peer).to_edwards(0).is_none());
            let ladder = StaticSecret::from(scalar).diffie_hellman(&PublicKey::from(peer));
            let ours = Secret::from_bytes(scalar).agree(&peer);
            assert_eq!(ours.map(|s| *s.as_bytes()), Some(*ladder.as_bytes()));
        }
        // Random keys fall on the twist about half the time: both paths were taken.
        assert!((100..300).contains(&on_twist), "{on_twist}");
        // u = -1 (p - 1) has no Edwards point and takes the ladder (being of low
        // order, it is refused: see `low_order_points_refused`).
        let mut minus_one = [0xff; 32];
        (minus_one[0], minus_one[31]) = (0xec, 0x7f);
        assert!(MontgomeryPoint(minus_one).to_edwards(0).is_none());
    }

    #[test]
    fn random_secrets_differ() {
        let a = Secret::random().unwrap();
        let b = Secret::random().unwrap();
        assert_ne!(a.public(), b.public());
    }
}
