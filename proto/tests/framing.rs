//! The deframer: packets cut from a byte stream however it arrives.

use spiped_proto::framing::*;
use spiped_proto::packet::{Opener, PACKET_LEN, PacketError, Sealer};

const E: [u8; 32] = [0x31; 32];
const H: [u8; 32] = [0x42; 32];

/// Feeds `stream` to a deframer in pieces of the given sizes (cycled); returns the
/// plaintext delivered and the error, if any.
fn feed(stream: &[u8], pieces: &[usize], batch: usize) -> (Vec<u8>, Option<PacketError>) {
    let mut d = Deframer::new(Opener::new(&E, &H), batch);
    let mut out = Vec::new();
    let mut rest = stream;
    let mut sizes = pieces.iter().cycle();
    while !rest.is_empty() {
        let spare = d.spare();
        let n = (*sizes.next().unwrap())
            .clamp(1, spare.len())
            .min(rest.len());
        spare[..n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        let opened = d.filled(n);
        let before = out.len();
        opened.payloads().for_each(|p| out.extend_from_slice(p));
        assert_eq!(out.len() - before, opened.len());
        if let Some(e) = opened.error {
            return (out, Some(e));
        }
    }
    assert!(!d.mid_packet());
    (out, None)
}

fn sealed(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Sealer::new(&E, &H).seal_all(data, &mut out);
    out
}

#[test]
fn any_split_delivers_everything() {
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 13) as u8).collect();
    let stream = sealed(&data);
    for pieces in [
        &[1][..],
        &[7, 1059, 3],
        &[PACKET_LEN],
        &[PACKET_LEN * 3 + 1],
    ] {
        for batch in [1, 2, 64] {
            assert_eq!(feed(&stream, pieces, batch), (data.clone(), None));
        }
    }
}

#[test]
fn nothing_after_a_bad_packet() {
    let data: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
    let mut stream = sealed(&data);
    stream[2 * PACKET_LEN + 10] ^= 0x80;
    let (out, err) = feed(&stream, &[PACKET_LEN * 4], 64);
    assert_eq!(out, &data[..2048]);
    assert_eq!(err, Some(PacketError::BadMac));
}

#[test]
fn failure_is_sticky() {
    let mut stream = sealed(b"abc");
    stream[0] ^= 1;
    let mut d = Deframer::new(Opener::new(&E, &H), 4);
    d.spare()[..PACKET_LEN].copy_from_slice(&stream);
    assert_eq!(d.filled(PACKET_LEN).error, Some(PacketError::BadMac));
    let good = sealed(b"abc");
    d.spare()[..PACKET_LEN].copy_from_slice(&good);
    let again = d.filled(PACKET_LEN);
    assert_eq!(again.error, Some(PacketError::BadMac));
    assert!(again.is_empty());
}

#[test]
fn partial_packet_is_mid_packet() {
    let stream = sealed(b"hello");
    let mut d = Deframer::new(Opener::new(&E, &H), 2);
    d.spare()[..100].copy_from_slice(&stream[..100]);
    assert!(d.filled(100).is_empty());
    assert!(d.mid_packet());
}
