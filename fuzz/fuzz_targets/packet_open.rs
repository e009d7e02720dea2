//! The packet opener on arbitrary input: a forged 1060-byte packet never opens, never
//! panics; and any payload sealed with the same keys opens back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spiped_proto::{Opener, PACKET_LEN, Sealer};

const E: [u8; 32] = [0x5a; 32];
const H: [u8; 32] = [0xa5; 32];

fuzz_target!(|data: &[u8]| {
    if let Some(bytes) = data.first_chunk::<PACKET_LEN>() {
        let mut packet = *bytes;
        let mut opener = Opener::new(&E, &H);
        // Forging HMAC-SHA256 is out of the fuzzer's reach: anything it makes must fail.
        assert!(opener.open_in_place(&mut packet).is_err());
        assert_eq!(opener.packet_number(), 0);
    }
    let mut sealed = Vec::new();
    Sealer::new(&E, &H).seal_all(data, &mut sealed);
    let mut opener = Opener::new(&E, &H);
    let mut back = Vec::with_capacity(data.len());
    for chunk in sealed.as_chunks_mut::<PACKET_LEN>().0 {
        let n = opener.open_in_place(chunk).expect("own packet opens");
        back.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(back, data);
});
