//! Packets: known answers, batches, and every way a packet is refused.

mod common;

use common::kat::{hex_array, hex_field, kat, mode};
use spiped_proto::packet::*;

const E: [u8; 32] = [0x11; 32];
const H: [u8; 32] = [0x22; 32];

/// The padded length: payload and length field.
const PADDED_LEN: usize = PAYLOAD_MAX + 4;

/// Seals packet number `pnum` of a body laid out by hand, whatever its length field
/// says, with `E` and `H`: AES-256-CTR and HMAC-SHA256 as the protocol specifies, from
/// the `ctr` and `hmac` crates (the sealer refuses to write such a packet).
fn seal_padded(pnum: u64, body: &mut [u8], tag: &mut [u8]) {
    use ctr::cipher::{KeyIvInit, StreamCipher};
    use hmac::Mac;
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(&pnum.to_be_bytes());
    ctr::Ctr64BE::<aes::Aes256>::new(&E.into(), &iv.into()).apply_keystream(body);
    let mac = hmac_sha256(&H)
        .chain_update(&*body)
        .chain_update(pnum.to_be_bytes())
        .finalize();
    tag.copy_from_slice(&mac.into_bytes());
}

#[test]
fn kat_client_packets() {
    let v = kat();
    for pfs in [false, true] {
        let m = mode(&v, pfs);
        let mut sealer = Sealer::new(&hex_array(&m, "E_C"), &hex_array(&m, "H_C"));
        let mut opener = Opener::new(&hex_array(&m, "E_C"), &hex_array(&m, "H_C"));
        for (i, p) in m["client_packets"].as_array().unwrap().iter().enumerate() {
            assert_eq!(p["pnum"].as_u64(), Some(i as u64));
            let plain = hex_field(p, "plaintext_hex");
            let want: [u8; PACKET_LEN] = hex_array(p, "packet_hex");
            let mut got = [0u8; PACKET_LEN];
            sealer.seal(&plain, &mut got);
            assert_eq!(got, want, "pfs={pfs} packet {i}");
            let mut pkt = want;
            let n = opener.open_in_place(&mut pkt).unwrap();
            assert_eq!(&pkt[..n], &plain[..]);
        }
    }
}

#[test]
fn kat_client_packets_in_pairs() {
    let v = kat();
    for pfs in [false, true] {
        let m = mode(&v, pfs);
        let (e, h) = (hex_array(&m, "E_C"), hex_array(&m, "H_C"));
        let packets = m["client_packets"].as_array().unwrap();
        let plain: Vec<Vec<u8>> = packets
            .iter()
            .map(|p| hex_field(p, "plaintext_hex"))
            .collect();
        let want: Vec<[u8; PACKET_LEN]> =
            packets.iter().map(|p| hex_array(p, "packet_hex")).collect();
        assert!(want.len() >= 2, "the vectors hold a pair");
        let mut sealer = Sealer::new(&e, &h);
        let mut got = vec![[0u8; PACKET_LEN]; want.len()];
        let mut slots = got.iter_mut();
        for pair in plain.chunks(2) {
            match (pair, slots.next().unwrap()) {
                ([a, b], s0) => sealer.seal_pair([a, b], [s0, slots.next().unwrap()]),
                ([a], s0) => sealer.seal(a, s0),
                _ => unreachable!(),
            }
        }
        assert_eq!(got, want, "pfs={pfs}");
        let mut lens = Vec::new();
        Opener::new(&e, &h).open_batch(&mut got, &mut lens).unwrap();
        for ((p, n), plain) in got.iter().zip(&lens).zip(&plain) {
            assert_eq!(&p[..*n], &plain[..]);
        }
    }
}

/// `count` packets of distinct lengths sealed by `seal_all` (pairs) and the same
/// packets sealed one by one.
fn sealed_both_ways(count: usize) -> (Vec<u8>, Vec<u8>) {
    let data: Vec<u8> = (0..count * PAYLOAD_MAX - 3)
        .map(|i| (i * 31) as u8)
        .collect();
    let mut batched = Vec::new();
    Sealer::new(&E, &H).seal_all(&data, &mut batched);
    let mut single = vec![0u8; sealed_len(data.len())];
    let mut s = Sealer::new(&E, &H);
    for (chunk, slot) in data
        .chunks(PAYLOAD_MAX)
        .zip(single.as_chunks_mut::<PACKET_LEN>().0)
    {
        s.seal(chunk, slot);
    }
    (batched, single)
}

#[test]
fn batched_sealing_matches_one_by_one() {
    for count in 1..=5 {
        let (batched, single) = sealed_both_ways(count);
        assert_eq!(batched, single, "{count} packets");
    }
}

#[test]
fn open_batch_stops_at_the_first_bad_packet() {
    let count = 5;
    let (sealed, _) = sealed_both_ways(count);
    // A bad MAC in the first and in the second packet of a pair, and in the odd one.
    for bad in 0..count {
        let mut packets: Vec<[u8; PACKET_LEN]> = sealed.as_chunks::<PACKET_LEN>().0.to_vec();
        packets[bad][100] ^= 4;
        let before = packets.clone();
        let mut o = Opener::new(&E, &H);
        let mut lens = Vec::new();
        assert_eq!(
            o.open_batch(&mut packets, &mut lens),
            Err(PacketError::BadMac)
        );
        assert_eq!(lens, vec![PAYLOAD_MAX; bad]);
        assert_eq!(o.packet_number(), bad as u64);
        assert_eq!(
            packets[bad..],
            before[bad..],
            "bad packet {bad} and later untouched"
        );
        // The opener is where it was before the bad packet: the genuine one opens.
        let mut good: [u8; PACKET_LEN] = sealed.as_chunks().0[bad];
        assert!(o.open_in_place(&mut good).is_ok());
    }
}

#[test]
fn open_batch_rejects_a_bad_length_in_a_pair() {
    let mut s = Sealer::new(&E, &H);
    let mut packets = [[0u8; PACKET_LEN]; 2];
    s.seal(b"first", &mut packets[0]);
    let (body, tag) = packets[1].split_at_mut(PADDED_LEN);
    body[PAYLOAD_MAX..].copy_from_slice(&2000u32.to_be_bytes());
    seal_padded(1, body, tag);
    let mut o = Opener::new(&E, &H);
    let mut lens = Vec::new();
    assert_eq!(
        o.open_batch(&mut packets, &mut lens),
        Err(PacketError::BadLength(2000))
    );
    assert_eq!(lens, [5]);
    assert_eq!(&packets[0][..5], b"first");
    assert_eq!(o.packet_number(), 1);
}

#[test]
fn round_trip_lengths() {
    let mut s = Sealer::new(&E, &H);
    let mut o = Opener::new(&E, &H);
    for len in [1usize, 2, 15, 16, 17, 1023, 1024] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let mut pkt = [0u8; PACKET_LEN];
        s.seal(&data, &mut pkt);
        let n = o.open_in_place(&mut pkt).unwrap();
        assert_eq!(&pkt[..n], &data[..]);
    }
    assert_eq!(s.packet_number(), 7);
    assert_eq!(o.packet_number(), 7);
}

#[test]
fn seal_all_splits() {
    let mut s = Sealer::new(&E, &H);
    let mut o = Opener::new(&E, &H);
    let mut out = Vec::new();
    s.seal_all(&[], &mut out);
    assert!(out.is_empty());
    let data: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
    s.seal_all(&data, &mut out);
    assert_eq!(out.len(), 3 * PACKET_LEN);
    let mut back = Vec::new();
    for chunk in out.chunks_exact(PACKET_LEN) {
        let mut pkt: [u8; PACKET_LEN] = chunk.try_into().unwrap();
        let n = o.open_in_place(&mut pkt).unwrap();
        back.extend_from_slice(&pkt[..n]);
    }
    assert_eq!(back, data);
}

#[test]
fn tampering_rejected() {
    let mut s = Sealer::new(&E, &H);
    let mut pkt = [0u8; PACKET_LEN];
    s.seal(b"hello", &mut pkt);
    for idx in [0, 5, 1024, 1027, 1028, PACKET_LEN - 1] {
        let mut o = Opener::new(&E, &H);
        let mut bad = pkt;
        bad[idx] ^= 1;
        let before = bad;
        assert_eq!(o.open_in_place(&mut bad), Err(PacketError::BadMac));
        assert_eq!(bad, before, "a rejected packet is left untouched");
        assert_eq!(o.packet_number(), 0);
        // The counter did not move, so the genuine packet still opens.
        let mut good = pkt;
        assert_eq!(o.open_in_place(&mut good), Ok(5));
    }
}

#[test]
fn wrong_key_rejected() {
    let mut s = Sealer::new(&E, &H);
    let mut pkt = [0u8; PACKET_LEN];
    s.seal(b"hello", &mut pkt);
    let mut o = Opener::new(&E, &[0x23; 32]);
    assert_eq!(o.open_in_place(&mut pkt), Err(PacketError::BadMac));
}

#[test]
fn replay_and_reorder_rejected() {
    let mut s = Sealer::new(&E, &H);
    let mut p0 = [0u8; PACKET_LEN];
    let mut p1 = [0u8; PACKET_LEN];
    s.seal(b"zero", &mut p0);
    s.seal(b"one", &mut p1);

    let mut o = Opener::new(&E, &H);
    let mut x = p1;
    assert_eq!(
        o.open_in_place(&mut x),
        Err(PacketError::BadMac),
        "reordered"
    );
    let mut x = p0;
    assert_eq!(o.open_in_place(&mut x), Ok(4));
    let mut x = p0;
    assert_eq!(
        o.open_in_place(&mut x),
        Err(PacketError::BadMac),
        "replayed"
    );
    let mut x = p1;
    assert_eq!(o.open_in_place(&mut x), Ok(3));
}

#[test]
fn empty_or_oversized_length_field_rejected() {
    for bad_len in [0u32, 1025, 0xffff_ffff] {
        let mut pkt = [0u8; PACKET_LEN];
        let (body, tag) = pkt.split_at_mut(PADDED_LEN);
        body[PAYLOAD_MAX..].copy_from_slice(&bad_len.to_be_bytes());
        seal_padded(0, body, tag);
        let mut o = Opener::new(&E, &H);
        assert_eq!(
            o.open_in_place(&mut pkt),
            Err(PacketError::BadLength(bad_len))
        );
        assert_eq!(o.packet_number(), 0);
    }
}

#[test]
fn error_messages() {
    assert!(
        PacketError::BadMac
            .to_string()
            .contains("authentication failed")
    );
    assert!(PacketError::BadLength(2000).to_string().contains("2000"));
}
