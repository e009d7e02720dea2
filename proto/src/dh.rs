//! Diffie-Hellman over the RFC 3526 2048-bit MODP group ("group 14", generator 2), as
//! spiped uses it: 256-bit secret exponents, 256-byte big-endian group elements.
//!
//! Exponentiation uses crypto-bigint's Montgomery form with a fixed-window ladder whose
//! table look-ups and iteration count depend only on the exponent's *precision* (always
//! 256 bits here), never on its value, so it runs in constant time with respect to the
//! secret. The Montgomery parameters are computed once per process.

use core::fmt;
use std::sync::OnceLock;

use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Choice, CtAssign, Odd};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length in bytes of a group element (`y`, `y_SC`) on the wire.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const Y_LEN: usize = 256;

/// Bits of precision for group elements.
const Y_BITS: u32 = (Y_LEN * 8) as u32;

/// Bits of precision for secret exponents; fixing it makes the ladder length constant.
const X_BITS: u32 = 256;

/// The group element 1, big-endian: what a fast-mode (`-f`) side sends as `y` and the
/// shared secret `y_SC` whenever this side is in fast mode.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const ONE: [u8; Y_LEN] = {
    let mut one = [0u8; Y_LEN];
    one[Y_LEN - 1] = 1;
    one
};

/// The RFC 3526 group 14 prime `p`, big-endian. Every valid `y` is below it.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const P: [u8; Y_LEN] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc9, 0x0f, 0xda, 0xa2, 0x21, 0x68, 0xc2, 0x34,
    0xc4, 0xc6, 0x62, 0x8b, 0x80, 0xdc, 0x1c, 0xd1, 0x29, 0x02, 0x4e, 0x08, 0x8a, 0x67, 0xcc, 0x74,
    0x02, 0x0b, 0xbe, 0xa6, 0x3b, 0x13, 0x9b, 0x22, 0x51, 0x4a, 0x08, 0x79, 0x8e, 0x34, 0x04, 0xdd,
    0xef, 0x95, 0x19, 0xb3, 0xcd, 0x3a, 0x43, 0x1b, 0x30, 0x2b, 0x0a, 0x6d, 0xf2, 0x5f, 0x14, 0x37,
    0x4f, 0xe1, 0x35, 0x6d, 0x6d, 0x51, 0xc2, 0x45, 0xe4, 0x85, 0xb5, 0x76, 0x62, 0x5e, 0x7e, 0xc6,
    0xf4, 0x4c, 0x42, 0xe9, 0xa6, 0x37, 0xed, 0x6b, 0x0b, 0xff, 0x5c, 0xb6, 0xf4, 0x06, 0xb7, 0xed,
    0xee, 0x38, 0x6b, 0xfb, 0x5a, 0x89, 0x9f, 0xa5, 0xae, 0x9f, 0x24, 0x11, 0x7c, 0x4b, 0x1f, 0xe6,
    0x49, 0x28, 0x66, 0x51, 0xec, 0xe4, 0x5b, 0x3d, 0xc2, 0x00, 0x7c, 0xb8, 0xa1, 0x63, 0xbf, 0x05,
    0x98, 0xda, 0x48, 0x36, 0x1c, 0x55, 0xd3, 0x9a, 0x69, 0x16, 0x3f, 0xa8, 0xfd, 0x24, 0xcf, 0x5f,
    0x83, 0x65, 0x5d, 0x23, 0xdc, 0xa3, 0xad, 0x96, 0x1c, 0x62, 0xf3, 0x56, 0x20, 0x85, 0x52, 0xbb,
    0x9e, 0xd5, 0x29, 0x07, 0x70, 0x96, 0x96, 0x6d, 0x67, 0x0c, 0x35, 0x4e, 0x4a, 0xbc, 0x98, 0x04,
    0xf1, 0x74, 0x6c, 0x08, 0xca, 0x18, 0x21, 0x7c, 0x32, 0x90, 0x5e, 0x46, 0x2e, 0x36, 0xce, 0x3b,
    0xe3, 0x9e, 0x77, 0x2c, 0x18, 0x0e, 0x86, 0x03, 0x9b, 0x27, 0x83, 0xa2, 0xec, 0x07, 0xa2, 0x8f,
    0xb5, 0xc5, 0x5d, 0xf0, 0x6f, 0x4c, 0x52, 0xc9, 0xde, 0x2b, 0xcb, 0xf6, 0x95, 0x58, 0x17, 0x18,
    0x39, 0x95, 0x49, 0x7c, 0xea, 0x95, 0x6a, 0xe5, 0x15, 0xd2, 0x26, 0x18, 0x98, 0xfa, 0x05, 0x10,
    0x15, 0x72, 0x8e, 0x5a, 0x8a, 0xac, 0xaa, 0x68, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];

/// A secret DH exponent `x` (32 bytes, big-endian). Wiped from memory when dropped; its
/// `Debug` output never shows the secret.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct Secret([u8; 32]);

impl Secret {
    /// Draws a fresh exponent from the OS random number generator.
    ///
    /// Fails only if the OS cannot provide randomness; never falls back to a weaker source.
    #[cfg_attr(feature = "test-util", visibility::make(pub))]
    pub(crate) fn random() -> Result<Secret, getrandom::Error> {
        let mut x = Secret([0; 32]);
        getrandom::fill(&mut x.0)?;
        Ok(x)
    }

    /// Uses the given big-endian exponent (for deterministic tests and known answers).
    #[cfg_attr(feature = "test-util", visibility::make(pub))]
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Secret {
        Secret(bytes)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dh::Secret(<redacted>)")
    }
}

/// Montgomery parameters for `p`, computed on first use and shared thereafter.
fn params() -> &'static BoxedMontyParams {
    static PARAMS: OnceLock<BoxedMontyParams> = OnceLock::new();
    PARAMS.get_or_init(|| {
        let p = BoxedUint::from_be_slice(&P, Y_BITS).expect("p fits in 2048 bits");
        let p = Option::from(Odd::new(p)).expect("p is odd");
        // p is public, so variable-time setup leaks nothing.
        BoxedMontyParams::new_vartime(p)
    })
}

/// `base^x mod p`, big-endian and left-padded to 256 bytes.
///
/// `base` must be below `p`; every caller guarantees it (the generator, or a peer value
/// checked with [`is_acceptable_peer_value`]).
fn pow_mod_p(base: &[u8; Y_LEN], secret: &Secret) -> [u8; Y_LEN] {
    // Neither conversion can fail: the slices are exactly as long as the precision.
    let base = BoxedUint::from_be_slice_truncated(base, Y_BITS);
    let mut x = BoxedUint::from_be_slice_truncated(&secret.0, X_BITS);
    let base = BoxedMontyForm::new(base, params());
    let power = base.pow(&x);
    x.zeroize();
    to_bytes(power)
}

/// A group element as 256 big-endian bytes; wipes the intermediate values.
fn to_bytes(mut power: BoxedMontyForm) -> [u8; Y_LEN] {
    let mut value = power.retrieve();
    power.zeroize();
    let mut bytes = value.to_be_bytes();
    value.zeroize();
    let mut out = [0u8; Y_LEN];
    // to_be_bytes yields exactly Y_LEN bytes for Y_BITS of precision (a whole number of
    // limbs); copy right-aligned anyway so a different limb size could never misplace it.
    let n = bytes.len().min(Y_LEN);
    out[Y_LEN - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    bytes.zeroize();
    out
}

/// Nibbles (4-bit digits) in a secret exponent.
const NIBBLES: usize = X_BITS as usize / 4;

/// Fixed-base table for the generator: row `i` holds `2^(j * 16^i)` for `j` in 0..16, in
/// Montgomery form. With it, `2^x` is one multiplication per nibble of `x` (64) instead
/// of a square per bit plus a multiplication per window (about 320): our public value
/// costs a fifth of a general exponentiation. Built on first use (about 1000
/// multiplications, once per process; 256 KiB); it holds only public values.
fn generator_table() -> &'static [[BoxedUint; 16]] {
    static TABLE: OnceLock<Vec<[BoxedUint; 16]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let one = BoxedMontyForm::one(params());
        let mut base =
            BoxedMontyForm::new(BoxedUint::from_be_slice_truncated(&[2], Y_BITS), params());
        (0..NIBBLES)
            .map(|_| {
                let mut row: [BoxedMontyForm; 16] = std::array::from_fn(|_| one.clone());
                for j in 1..16 {
                    row[j] = row[j - 1].mul(&base);
                }
                base = row[15].mul(&base);
                row.map(|m| m.to_montgomery())
            })
            .collect()
    })
}

/// A fresh exponent with its public value, computed ahead of the handshake that will
/// use it (see [`crate::handshake::Handshake::use_keypair`]). The exponent is
/// wiped when dropped.
pub struct Keypair {
    secret: Secret,
    public: Box<[u8; Y_LEN]>,
}

impl Keypair {
    /// Draws an exponent from the OS and computes `2^x mod p` (about 0.3 ms).
    pub fn generate() -> Result<Keypair, getrandom::Error> {
        let secret = Secret::random()?;
        let public = Box::new(public(&secret));
        Ok(Keypair { secret, public })
    }

    /// The exponent and its public value.
    pub(crate) fn into_parts(self) -> (Secret, Box<[u8; Y_LEN]>) {
        (self.secret, self.public)
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dh::Keypair(<redacted>)")
    }
}

/// Our public value `y = 2^x mod p`, big-endian, left-padded to 256 bytes.
///
/// Constant time in `x`: every row of the generator table is scanned whole with
/// constant-time selection, and the multiplications do not depend on the values.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn public(secret: &Secret) -> [u8; Y_LEN] {
    let table = generator_table();
    let mut acc = BoxedMontyForm::one(params());
    let mut pick = BoxedUint::zero_with_precision(Y_BITS);
    for (i, row) in table.iter().enumerate() {
        // Nibble i counted from the least significant end; the position is public, only
        // the digit is secret.
        let byte = secret.0[31 - i / 2];
        let mut digit = (byte >> (4 * (i % 2))) & 0x0f;
        for (j, entry) in (0u8..).zip(row) {
            pick.ct_assign(entry, Choice::from_u8_eq(j, digit));
        }
        digit.zeroize();
        let mut factor = BoxedMontyForm::from_montgomery(pick.clone(), params());
        acc = acc.mul(&factor);
        factor.zeroize();
    }
    pick.zeroize();
    to_bytes(acc)
}

/// The shared secret `peer_y^x mod p`, big-endian, left-padded to 256 bytes.
///
/// The caller must already have checked `peer_y` with [`is_acceptable_peer_value`]; the
/// result is not
/// meaningful otherwise (but computing it never panics).
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn shared(secret: &Secret, peer_y: &[u8; Y_LEN]) -> [u8; Y_LEN] {
    pow_mod_p(peer_y, secret)
}

/// Whether a received big-endian `y` may be used: below `p` (the range check of C
/// spiped), and neither 0 nor `p - 1`, which C accepts but which make the shared secret
/// 0 or ±1 whatever our exponent, known to anyone holding the key. No honest peer sends
/// them: `2^x mod p` is never 0, and `p - 1` lies outside the subgroup 2 generates.
/// (1 is allowed: it is what a fast-mode `-f` peer sends; `-g` refuses it elsewhere.)
/// Runs in variable time, which is fine since `y` is public.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn is_acceptable_peer_value(y: &[u8; Y_LEN]) -> bool {
    let mut p_minus_1 = P;
    // P ends in 0xff, so this subtracts 1 without a borrow.
    p_minus_1[Y_LEN - 1] -= 1;
    // Big-endian byte strings of equal length compare like the numbers they encode.
    y < &p_minus_1 && y.iter().any(|&b| b != 0)
}
