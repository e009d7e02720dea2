//! Property tests (proptest) for the round trips of the protocol core and address
//! parsing: random inputs, with shrinking to a minimal case on failure.

use proptest::prelude::*;
use spiped_proto::handshake::step;
use spiped_proto::{Deframer, Handshake, Key, Mode, Opener, PACKET_LEN, PAYLOAD_MAX, Role, Sealer};
use spiped_transports::Address;

fn keys() -> impl Strategy<Value = ([u8; 32], [u8; 32])> {
    (any::<[u8; 32]>(), any::<[u8; 32]>())
}

/// Feeds `stream` to a deframer in reads of the given sizes (cycled, at least 1 byte);
/// returns the plaintext delivered and whether a bad packet stopped it.
fn deframe(opener: Opener, batch: usize, stream: &[u8], sizes: &[usize]) -> (Vec<u8>, bool) {
    let mut d = Deframer::new(opener, batch);
    let mut out = Vec::new();
    let mut rest = stream;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let spare = d.spare();
        let n = sizes.next().map_or(rest.len(), |s| (*s).max(1));
        let n = n.min(spare.len()).min(rest.len());
        spare[..n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        let opened = d.filled(n);
        opened.payloads().for_each(|p| out.extend_from_slice(p));
        if opened.error.is_some() {
            return (out, true);
        }
    }
    assert!(!d.mid_packet(), "a whole number of packets was fed");
    (out, false)
}

proptest! {
    /// Any payload of 1..=1024 bytes sealed under any keys opens to itself, and the
    /// packet is always 1060 bytes with both counters advancing in step.
    #[test]
    fn seal_open_round_trip(
        (e, h) in keys(),
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..=PAYLOAD_MAX), 1..6),
    ) {
        let mut s = Sealer::new(&e, &h);
        let mut o = Opener::new(&e, &h);
        for p in &payloads {
            let mut packet = [0u8; PACKET_LEN];
            s.seal(p, &mut packet);
            let n = o.open_in_place(&mut packet).expect("opens");
            prop_assert_eq!(&packet[..n], &p[..]);
        }
        prop_assert_eq!(s.packet_number(), payloads.len() as u64);
        prop_assert_eq!(o.packet_number(), payloads.len() as u64);
    }

    /// A sealed stream cut into reads of any sizes, with any batch size, comes out whole
    /// and in order.
    #[test]
    fn any_split_of_the_stream_delivers_everything(
        (e, h) in keys(),
        data in prop::collection::vec(any::<u8>(), 0..6000),
        sizes in prop::collection::vec(1usize..3000, 0..20),
        batch in 1usize..5,
    ) {
        let mut stream = Vec::new();
        Sealer::new(&e, &h).seal_all(&data, &mut stream);
        let (out, failed) = deframe(Opener::new(&e, &h), batch, &stream, &sizes);
        prop_assert!(!failed);
        prop_assert_eq!(out, data);
    }

    /// Flipping any bit of the stream delivers exactly the packets before the damaged
    /// one, then stops.
    #[test]
    fn damage_stops_delivery_at_the_damaged_packet(
        data in prop::collection::vec(any::<u8>(), 1..6000),
        sizes in prop::collection::vec(1usize..3000, 0..20),
        pos in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let (e, h) = ([1; 32], [2; 32]);
        let mut stream = Vec::new();
        Sealer::new(&e, &h).seal_all(&data, &mut stream);
        let pos = pos.index(stream.len());
        stream[pos] ^= 1 << bit;
        let (out, failed) = deframe(Opener::new(&e, &h), 3, &stream, &sizes);
        prop_assert!(failed);
        prop_assert_eq!(&out[..], &data[..pos / PACKET_LEN * PAYLOAD_MAX]);
    }

    /// Every address that parses prints as text that parses back to the same address.
    #[test]
    fn address_display_parse_round_trip(s in "\\PC{0,40}") {
        for parse in [Address::parse, Address::parse_bind] {
            if let Ok(a) = parse(&s) {
                prop_assert_eq!(parse(&a.to_string()), Ok(a));
            }
        }
    }

    /// Addresses built from any IP, port, host name or path survive display and parse.
    #[test]
    fn built_addresses_round_trip(
        ip in any::<std::net::IpAddr>(),
        port in any::<u16>(),
        host in "[a-z][a-z0-9-]{0,20}(\\.[a-z0-9_-]{1,10}){0,3}",
        path in "/[^\\x00]{0,40}",
    ) {
        for a in [
            Address::Ip { ip, port },
            Address::Name { host: host.clone(), port },
            Address::Unix(path.clone().into()),
        ] {
            prop_assert_eq!(Address::parse(&a.to_string()), Ok(a));
        }
    }
}

/// Runs a client and a server handshake against each other in memory until neither can
/// move or one refuses. Returns whether each side (client, server) is free of errors.
fn handshake_pair(client: &mut Handshake, server: &mut Handshake) -> (bool, bool) {
    let (mut to_client, mut to_server) = (Vec::new(), Vec::new());
    loop {
        let c = step(client, &mut to_client, &mut to_server);
        let s = step(server, &mut to_server, &mut to_client);
        match (&c, &s) {
            (Ok(false), Ok(false)) | (Err(_), _) | (_, Err(_)) => {
                return (c.is_ok(), s.is_ok());
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// With the same key file (any contents) and any nonces and exponents, client and
    /// server finish with matching keys in both directions; with different key files,
    /// the handshake fails.
    #[test]
    fn handshake_agrees_on_keys(
        file in prop::collection::vec(any::<u8>(), 1..100),
        other in prop::collection::vec(any::<u8>(), 1..100),
        nonces in any::<([u8; 32], [u8; 32])>(),
        exps in any::<([u8; 32], [u8; 32])>(),
        fast in any::<(bool, bool)>(),
    ) {
        let key = Key::from_file_contents(&file);
        let mode = |f| Mode {
            fast: f,
            ..Mode::default()
        };
        let mut c = Handshake::with_secrets(Role::Client, mode(fast.0), &key, nonces.0, Some(exps.0));
        let mut s = Handshake::with_secrets(Role::Server, mode(fast.1), &key, nonces.1, Some(exps.1));
        prop_assert_eq!(handshake_pair(&mut c, &mut s), (true, true));
        let (mut cs, mut co) = c.finish().expect("client done");
        let (mut ss, mut so) = s.finish().expect("server done");
        let mut p = [0u8; PACKET_LEN];
        cs.seal(b"client to server", &mut p);
        prop_assert_eq!(so.open_in_place(&mut p), Ok(16));
        ss.seal(b"server to client", &mut p);
        prop_assert_eq!(co.open_in_place(&mut p), Ok(16));

        if file != other {
            let wrong = Key::from_file_contents(&other);
            let mut c = Handshake::with_secrets(Role::Client, mode(fast.0), &key, nonces.0, Some(exps.0));
            let mut s = Handshake::with_secrets(Role::Server, mode(fast.1), &wrong, nonces.1, Some(exps.1));
            let (_, s_ok) = handshake_pair(&mut c, &mut s);
            prop_assert!(!s_ok, "server must refuse the client's MAC");
            prop_assert!(c.finish().is_none() && s.finish().is_none());
        }
    }
}
