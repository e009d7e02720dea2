//! The packet MAC against the `hmac` and `sha2` crates and RFC 4231.

use hmac::{Hmac, KeyInit, Mac};
use proptest::prelude::*;
use sha2::Sha256;

use spiped_proto::mac::*;

/// `HMAC-SHA256(key, data || be64(n))` by the `hmac` crate.
fn reference(key: &[u8], data: &[u8], n: u64) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    m.update(data);
    m.update(&n.to_be_bytes());
    m.finalize().into_bytes().into()
}

fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    getrandom::fill(&mut v).unwrap();
    v
}

fn random_u64() -> u64 {
    u64::from_le_bytes(random(8).try_into().unwrap())
}

#[test]
fn every_length_both_lanes_match_hmac() {
    const MAX: usize = 2100;
    let buf = random(2 * MAX);
    let (a_all, b_all) = buf.split_at(MAX);
    for len in 0..=MAX {
        // A fresh key per length, of 32 bytes (as packets use) or any length up to 100.
        let key = random(if len % 3 == 0 { len % 101 } else { 32 });
        let k = MacKey::new(&key);
        // Lane b's length runs backwards, so the lanes differ except at the midpoint and
        // every pairing of block counts (and of 1- and 2-block tails) comes up.
        let (a, b) = (&a_all[..len], &b_all[..MAX - len]);
        let (na, nb) = (random_u64(), random_u64());
        let want = [reference(&key, a, na), reference(&key, b, nb)];
        assert_eq!(
            k.mac_pair([(a, na), (b, nb)]),
            want,
            "lengths {len} and {}",
            MAX - len
        );
        assert_eq!(k.mac(a, na), want[0], "length {len}");
        assert_eq!(
            k.mac_pair([(a, na), (a, nb)])[0],
            want[0],
            "equal lengths {len}"
        );
    }
}

#[test]
fn rfc4231_vectors() {
    // (key, data, HMAC-SHA256); data is split as `data || be64(n)`, so each must be at
    // least 8 bytes (all of RFC 4231's are). Case 5 (truncated output) is left out.
    let long_key = [0xaa; 131];
    let cases: [(&[u8], &[u8], &str); 6] = [
        (
            &[0x0b; 20],
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            &[0xaa; 20],
            &[0xdd; 50],
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        ),
        (
            &[
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
                24, 25,
            ],
            &[0xcd; 50],
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        ),
        (
            &long_key,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
        (
            &long_key,
            b"This is a test using a larger than block-size key and a larger than block-size \
              data. The key needs to be hashed before being used by the HMAC algorithm.",
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        ),
    ];
    for (i, (key, msg, want)) in cases.into_iter().enumerate() {
        let (data, n) = msg.split_at(msg.len() - 8);
        let n = u64::from_be_bytes(n.try_into().unwrap());
        let k = MacKey::new(key);
        assert_eq!(hex::encode(k.mac(data, n)), want, "case {}", i + 1);
        let pair = k.mac_pair([(data, n), (b"other lane", 7)]);
        assert_eq!(hex::encode(pair[0]), want, "case {} in lane a", i + 1);
        let pair = k.mac_pair([(&[], 0), (data, n)]);
        assert_eq!(hex::encode(pair[1]), want, "case {} in lane b", i + 1);
    }
}

#[test]
fn debug_hides_the_key() {
    let s = format!("{:?}", MacKey::new(&[7; 32]));
    assert_eq!(s, "MacKey(<redacted>)");
}

proptest! {
    #[test]
    fn pairs_match_hmac(
        key in proptest::collection::vec(any::<u8>(), 0..150),
        a in proptest::collection::vec(any::<u8>(), 0..1200),
        b in proptest::collection::vec(any::<u8>(), 0..1200),
        na: u64,
        nb: u64,
    ) {
        let k = MacKey::new(&key);
        let want = [reference(&key, &a, na), reference(&key, &b, nb)];
        prop_assert_eq!(k.mac_pair([(&a, na), (&b, nb)]), want);
        prop_assert_eq!(k.mac_pair([(&b, nb), (&a, na)]), [want[1], want[0]]);
        prop_assert_eq!(k.mac(&b, nb), want[1]);
    }
}

/// On arm64 the MAC (through `sha2`'s run-time detection) runs on the ARMv8 SHA-2
/// instructions: under CI, where qemu-user's default CPU has them, the tests above took
/// that path and not the portable one.
#[cfg(target_arch = "aarch64")]
#[test]
fn arm64_runs_the_sha2_instructions() {
    let detected = std::arch::is_aarch64_feature_detected!("sha2");
    if std::env::var_os("CI").is_some() {
        assert!(detected, "this CPU lacks the ARMv8 SHA-2 instructions");
    } else if !detected {
        eprintln!("NOTE: this CPU lacks the SHA-2 instructions: the portable path ran");
    }
}
