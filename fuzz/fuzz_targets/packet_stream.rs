//! The receive path's framing: a packet stream (genuine, tampered or pure garbage) cut
//! at arbitrary points and fed to the `Deframer` as the pump feeds it. Everything before
//! the first bad packet comes out intact, nothing after it, and nothing panics.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use spiped_proto::{Deframer, Opener, PACKET_LEN, PAYLOAD_MAX, Sealer};

const E: [u8; 32] = [0x11; 32];
const H: [u8; 32] = [0x22; 32];

#[derive(Arbitrary, Debug)]
struct Input {
    data: Vec<u8>,
    /// Sizes of the successive reads (cycled; 0 counts as 1).
    splits: Vec<u16>,
    /// Flip bits of one byte of the sealed stream: (position, xor mask).
    tamper: Option<(u32, u8)>,
    /// Cut the stream short by this many bytes.
    truncate: u16,
    /// Feed `data` itself as the stream instead of sealing it.
    garbage: bool,
    batch: u8,
}

fuzz_target!(|input: Input| {
    let mut stream = Vec::new();
    if input.garbage {
        stream.extend_from_slice(&input.data);
    } else {
        Sealer::new(&E, &H).seal_all(&input.data, &mut stream);
    }
    // The first sealed packet that no longer matches what was sent, if any.
    let mut first_bad = None;
    if let Some((pos, mask)) = input.tamper
        && !stream.is_empty()
        && mask != 0
    {
        let pos = pos as usize % stream.len();
        stream[pos] ^= mask;
        first_bad = Some(pos / PACKET_LEN);
    }
    let keep = stream.len().saturating_sub(usize::from(input.truncate));
    stream.truncate(keep);
    let whole_packets = keep / PACKET_LEN;

    let mut deframer = Deframer::new(Opener::new(&E, &H), usize::from(input.batch) % 8 + 1);
    let mut out = Vec::new();
    let mut error = None;
    let mut rest = &stream[..];
    let mut sizes = input.splits.iter().cycle();
    while !rest.is_empty() && error.is_none() {
        let spare = deframer.spare();
        assert!(!spare.is_empty());
        let want = sizes.next().map_or(rest.len(), |&s| usize::from(s).max(1));
        let n = want.min(spare.len()).min(rest.len());
        spare[..n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        let opened = deframer.filled(n);
        let before = out.len();
        opened.payloads().for_each(|p| out.extend_from_slice(p));
        assert_eq!(out.len() - before, opened.len());
        error = opened.error;
    }

    if input.garbage {
        // Forging a MAC is out of reach: garbage never yields a byte.
        assert!(out.is_empty());
        assert_eq!(error.is_some(), whole_packets > 0);
        return;
    }
    let good_packets = first_bad.map_or(whole_packets, |b| b.min(whole_packets));
    let good_bytes = (good_packets * PAYLOAD_MAX).min(input.data.len());
    assert_eq!(out, &input.data[..good_bytes]);
    assert_eq!(error.is_some(), good_packets < whole_packets);
    if error.is_none() {
        assert_eq!(deframer.mid_packet(), keep % PACKET_LEN != 0);
    }
});
