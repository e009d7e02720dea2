//! The packet MAC, one message and two at a time, against the `hmac` crate: any key,
//! any two messages of any lengths and packet numbers give the same tags.
#![no_main]

use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use spiped_proto::mac::MacKey;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    key: &'a [u8],
    a: &'a [u8],
    b: &'a [u8],
    na: u64,
    nb: u64,
}

/// `HMAC-SHA256(key, data || be64(n))` by the `hmac` crate.
fn reference(key: &[u8], data: &[u8], n: u64) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    m.update(data);
    m.update(&n.to_be_bytes());
    m.finalize().into_bytes().into()
}

fuzz_target!(|input: Input<'_>| {
    let key = MacKey::new(input.key);
    let want = [
        reference(input.key, input.a, input.na),
        reference(input.key, input.b, input.nb),
    ];
    assert_eq!(
        key.mac_pair([(input.a, input.na), (input.b, input.nb)]),
        want
    );
    assert_eq!(key.mac(input.a, input.na), want[0]);
});
