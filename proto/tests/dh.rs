//! Group-14 Diffie-Hellman against the known-answer vectors and its edge cases.

mod common;

use common::kat::{hex_array, hex_field, kat, mode};
use spiped_proto::dh::*;

#[test]
fn kat_public_and_shared() {
    let v = kat();
    let m = mode(&v, true);
    let xc = Secret::from_bytes(hex_array(&m, "x_C_hex"));
    let xs = Secret::from_bytes(hex_array(&m, "x_S_hex"));
    let yc = public(&xc);
    let ys = public(&xs);
    assert_eq!(&yc[..], &hex_field(&m, "y_C_msg_hex")[..Y_LEN]);
    assert_eq!(&ys[..], &hex_field(&m, "y_S_msg_hex")[..Y_LEN]);
    let sc = shared(&xc, &ys);
    assert_eq!(sc, shared(&xs, &yc));
    assert_eq!(&sc[..], &hex_field(&m, "y_SC_hex")[..]);
}

#[test]
fn small_exponents() {
    let mut x = [0u8; 32];
    assert_eq!(public(&Secret::from_bytes(x)), ONE);
    x[31] = 1;
    let mut two = [0u8; Y_LEN];
    two[Y_LEN - 1] = 2;
    assert_eq!(public(&Secret::from_bytes(x)), two);
    x[31] = 10;
    let mut k = [0u8; Y_LEN];
    k[Y_LEN - 2..].copy_from_slice(&1024u16.to_be_bytes());
    assert_eq!(public(&Secret::from_bytes(x)), k);
    // A peer value of 1 always yields 1: what makes a PFS side agree with a fast one.
    assert_eq!(shared(&Secret::from_bytes([0x5a; 32]), &ONE), ONE);
}

#[test]
fn full_width_exponent() {
    // The top exponent bit must count: 2^(2^255) differs from 2^0.
    let mut x = [0u8; 32];
    x[0] = 0x80;
    assert_ne!(public(&Secret::from_bytes(x)), ONE);
    // x = p - 1 would give 1, but x is only 256 bits; check x and x + 2^255 differ.
    let a = public(&Secret::from_bytes([0x11; 32]));
    let mut xb = [0x11; 32];
    xb[0] |= 0x80;
    assert_ne!(a, public(&Secret::from_bytes(xb)));
}

#[test]
fn range_check() {
    assert!(is_acceptable_peer_value(&ONE));
    assert!(!is_acceptable_peer_value(&[0; Y_LEN]));
    assert!(!is_acceptable_peer_value(&P));
    assert!(!is_acceptable_peer_value(&[0xff; Y_LEN]));
    let mut p_minus = P;
    p_minus[Y_LEN - 1] -= 1;
    assert!(!is_acceptable_peer_value(&p_minus));
    p_minus[Y_LEN - 1] -= 1;
    assert!(is_acceptable_peer_value(&p_minus));
}

#[test]
fn the_refused_values_give_a_secret_anyone_knows() {
    // Why 0 and p - 1 are refused: 0^x = 0, and (p - 1)^x = ±1, for every x.
    let mut p_minus_1 = P;
    p_minus_1[Y_LEN - 1] -= 1;
    for x in [[0x5a; 32], [0x5b; 32]] {
        let x = Secret::from_bytes(x);
        assert_eq!(shared(&x, &[0; Y_LEN]), [0; Y_LEN]);
        let s = shared(&x, &p_minus_1);
        assert!(s == ONE || s == p_minus_1);
    }
}

#[test]
fn random_secrets_differ() {
    let a = Secret::random().expect("OS randomness");
    let b = Secret::random().expect("OS randomness");
    // Different secrets, so different public values (the secret itself stays private).
    assert_ne!(public(&a), public(&b));
}

/// Cost of one group-14 exponentiation. Run with
/// `cargo test --release -p spiped-proto --test dh -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_exponentiation() {
    let x = Secret::from_bytes([0xa5; 32]);
    let _ = public(&x); // warm up params()
    let n = 200;
    let start = std::time::Instant::now();
    let mut y = public(&x);
    for _ in 1..n {
        y = shared(&x, &y);
    }
    let per = start.elapsed() / n;
    std::hint::black_box(y);
    println!("group-14 exponentiation (256-bit exponent): {per:?} each");
    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(public(&x));
    }
    let per = start.elapsed() / n;
    println!("group-14 fixed-base 2^x (256-bit exponent): {per:?} each");
}

/// The fixed-base table gives exactly what the general exponentiation gives, for
/// exponents that exercise every digit value and both ends of every row.
#[test]
fn fixed_base_matches_general_exponentiation() {
    let mut two = [0u8; Y_LEN];
    two[Y_LEN - 1] = 2;
    let mut exponents = vec![[0u8; 32], [0xff; 32], [0x0f; 32], [0xf0; 32]];
    let mut one_bit = [0u8; 32];
    one_bit[0] = 0x80;
    exponents.push(one_bit);
    exponents.extend(
        (0u8..8).map(|k| std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(k * 11))),
    );
    for x in exponents {
        let secret = Secret::from_bytes(x);
        assert_eq!(public(&secret), shared(&secret, &two), "exponent {x:02x?}");
    }
}
