//! X25519: the RFC 7748 vectors, low-order points refused, and the fast path against
//! the ladder.

use curve25519_dalek::montgomery::MontgomeryPoint;
use spiped_proto::x25519::*;
use x25519_dalek::{PublicKey, StaticSecret};

use common::LOW_ORDER;

mod common;

#[test]
fn rfc7748_key_agreement() {
    // RFC 7748 section 6.1.
    let a =
        hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a").unwrap();
    let b =
        hex::decode("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb").unwrap();
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
        let s = random_secret();
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
    let a = random_secret();
    let b = random_secret();
    assert_ne!(a.public(), b.public());
}

/// A secret from the OS random number generator.
fn random_secret() -> Secret {
    let mut bytes = [0u8; KEY_LEN];
    getrandom::fill(&mut bytes).unwrap();
    Secret::from_bytes(bytes)
}
