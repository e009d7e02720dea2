//! The handshake state machine: known answers, every mode pair, the steps it reports, and every way a peer's messages are refused.

mod common;

use hmac::Mac;

use common::LOW_ORDER;
use common::kat::{self, hex_array, hex_field};
use spiped_proto::dh::{self, Secret, Y_LEN};
use spiped_proto::handshake::*;
use spiped_proto::key::{Key, dhmac_keys, x25519_session_keys};
use spiped_proto::packet::{Opener, PACKET_LEN, Sealer, hmac_sha256};
use spiped_proto::x25519;

/// Length of a group-14 DH message: `y` and its MAC.
const DH_MSG_LEN: usize = Y_LEN + 32;

/// `hs`'s step if it is a send.
fn outgoing(hs: &Handshake) -> Option<Outgoing<'_>> {
    match hs.next() {
        Next::Send(out) => Some(out),
        _ => None,
    }
}

/// `hs`'s step if it is a receive.
fn incoming(hs: &Handshake) -> Option<Incoming> {
    match hs.next() {
        Next::Recv(r) => Some(r),
        _ => None,
    }
}

/// The bytes of `hs`'s step if it is a send.
fn sends(hs: &Handshake) -> Option<&[u8]> {
    outgoing(hs).map(|out| out.bytes)
}

/// How many bytes `hs`'s step asks for if it is a receive.
fn awaits(hs: &Handshake) -> Option<usize> {
    incoming(hs).map(|r| r.len)
}

/// Whether `hs`'s step is the send of a DH message that early data may go with.
fn may_seal_early(hs: &Handshake) -> bool {
    outgoing(hs).is_some_and(|out| out.may_seal_early)
}

/// A client that has sent its nonce and waits for the server's.
fn client_after_nonce(md: Mode) -> Handshake {
    let mut c = Handshake::new(Role::Client, md, &key()).unwrap();
    c.sent();
    c
}

/// [`drive`], with the side that failed as `true` for the client.
fn run(c: &mut Handshake, s: &mut Handshake) -> Result<(), (bool, HandshakeError)> {
    drive(c, s).map_err(|(role, e)| (role == Role::Client, e))
}

fn key() -> Key {
    Key::from_file_contents(b"a shared key file")
}

fn mode(fast: bool, require_pfs: bool) -> Mode {
    Mode {
        fast,
        require_pfs,
        x25519: false,
    }
}

/// A client mode using the X25519 extension.
fn x_mode() -> Mode {
    Mode {
        x25519: true,
        ..Mode::default()
    }
}

/// Feeds `msg` to `hs` in the pieces its `Recv(n)` steps ask for, until it is used up
/// or `hs` wants to send; returns the first error.
fn feed(hs: &mut Handshake, mut msg: &[u8]) -> Result<(), HandshakeError> {
    while let Some(n) = awaits(hs) {
        if msg.is_empty() {
            break;
        }
        let (piece, rest) = msg.split_at(n.min(msg.len()));
        hs.received(piece)?;
        msg = rest;
    }
    Ok(())
}

/// Checks that the two sides' packet keys pair up in both directions.
fn check_pairing(mut c: Handshake, mut s: Handshake) {
    let (mut c_seal, mut c_open) = c.finish().expect("client done");
    let (mut s_seal, mut s_open) = s.finish().expect("server done");
    let mut pkt = [0u8; PACKET_LEN];
    c_seal.seal(b"ping", &mut pkt);
    assert_eq!(s_open.open_in_place(&mut pkt), Ok(4));
    assert_eq!(&pkt[..4], b"ping");
    s_seal.seal(b"pong!", &mut pkt);
    assert_eq!(c_open.open_in_place(&mut pkt), Ok(5));
    assert_eq!(&pkt[..5], b"pong!");
}

#[test]
fn kat_full_handshake() {
    let v = kat::kat();
    let k = Key::from_file_contents(&hex_field(&v, "key_file_hex"));
    let nc = hex_array::<32>(&v, "nonce_C");
    let ns = hex_array::<32>(&v, "nonce_S");
    for pfs in [false, true] {
        let m = kat::mode(&v, pfs);
        let (xc, xs) = if pfs {
            (
                Some(hex_array::<32>(&m, "x_C_hex")),
                Some(hex_array::<32>(&m, "x_S_hex")),
            )
        } else {
            (None, None)
        };
        let md = mode(!pfs, false);
        let mut c = Handshake::with_secrets(Role::Client, md, &k, nc, xc);
        let mut s = Handshake::with_secrets(Role::Server, md, &k, ns, xs);

        assert_eq!(sends(&c), Some(&nc[..]));
        c.sent();
        assert_eq!(sends(&s), Some(&ns[..]));
        s.sent();
        assert_eq!(awaits(&c), Some(32));
        c.received(&ns).unwrap();
        assert_eq!(awaits(&s), Some(32));
        s.received(&nc).unwrap();

        let y_c_msg = hex_field(&m, "y_C_msg_hex");
        assert_eq!(sends(&c), Some(&y_c_msg[..]), "pfs={pfs}");
        c.sent();
        assert_eq!(awaits(&c), Some(288));
        // The server reads what an X25519 message would be, then the rest.
        assert_eq!(awaits(&s), Some(64));
        s.received(&y_c_msg[..64]).unwrap();
        assert_eq!(awaits(&s), Some(224));
        s.received(&y_c_msg[64..]).unwrap();
        let y_s_msg = hex_field(&m, "y_S_msg_hex");
        assert_eq!(sends(&s), Some(&y_s_msg[..]), "pfs={pfs}");
        // A PFS server answers first and exponentiates once its answer is out.
        assert_eq!(outgoing(&s).map(|out| out.agrees), Some(pfs));
        s.sent();
        assert_eq!(s.next(), Next::Done);
        c.received(&y_s_msg).unwrap();
        assert_eq!(c.next(), Next::Done);

        let (mut c_seal, _) = c.finish().unwrap();
        let (_, mut s_open) = s.finish().unwrap();
        for p in m["client_packets"].as_array().unwrap() {
            let plain = hex_field(p, "plaintext_hex");
            let want: [u8; PACKET_LEN] = hex_array(p, "packet_hex");
            let mut got = [0u8; PACKET_LEN];
            c_seal.seal(&plain, &mut got);
            assert_eq!(got, want, "pfs={pfs}");
            let n = s_open.open_in_place(&mut got).unwrap();
            assert_eq!(&got[..n], &plain[..]);
        }
    }
}

#[test]
fn keypairs_computed_ahead_agree_and_are_refused_when_unused() {
    let mut c = Handshake::new(Role::Client, mode(false, false), &key()).unwrap();
    let mut s = Handshake::new(Role::Server, mode(false, false), &key()).unwrap();
    let spare = || dh::Keypair::generate().unwrap();
    // Before the nonces nobody needs it yet.
    assert!(c.use_keypair(spare()).is_some());
    let (mut to_c, mut to_s) = (Vec::new(), Vec::new());
    let mut used = [false, false];
    let supply = |hs: &mut Handshake, used: &mut bool| {
        if incoming(hs).is_some_and(|r| r.wants_keypair) {
            assert!(hs.use_keypair(spare()).is_none());
            assert!(!incoming(hs).unwrap().wants_keypair);
            *used = true;
        }
    };
    for _ in 0..8 {
        supply(&mut c, &mut used[0]);
        step(&mut c, &mut to_c, &mut to_s).unwrap();
        supply(&mut s, &mut used[1]);
        step(&mut s, &mut to_s, &mut to_c).unwrap();
    }
    assert_eq!(used, [true, true]);
    assert_eq!(
        (c.exchange(), s.exchange()),
        (Some(Exchange::Group14), Some(Exchange::Group14))
    );
    check_pairing(c, s);
    // A fast client never wants one.
    let mut f = Handshake::new(Role::Client, mode(true, false), &key()).unwrap();
    f.sent();
    assert!(f.use_keypair(spare()).is_some());
}

/// Exponentiations each side's `received` calls run, as the driver is told ahead
/// ([`Incoming::exponentiates`]), and whether the server's `sent` agrees.
fn costly_steps(c_mode: Mode, s_mode: Mode) -> (usize, usize, bool) {
    let mut c = Handshake::new(Role::Client, c_mode, &key()).unwrap();
    let mut s = Handshake::new(Role::Server, s_mode, &key()).unwrap();
    let (mut to_c, mut to_s) = (Vec::new(), Vec::new());
    let (mut costly_c, mut costly_s, mut agrees) = (0, 0, false);
    for _ in 0..8 {
        let costly = |hs: &Handshake, inbox: &Vec<u8>| {
            incoming(hs).is_some_and(|r| inbox.len() >= r.len && r.exponentiates(false))
        };
        costly_c += usize::from(costly(&c, &to_c));
        step(&mut c, &mut to_c, &mut to_s).unwrap();
        costly_s += usize::from(costly(&s, &to_s));
        agrees |= outgoing(&s).is_some_and(|out| out.agrees);
        step(&mut s, &mut to_s, &mut to_c).unwrap();
    }
    check_pairing(c, s);
    (costly_c, costly_s, agrees)
}

#[test]
fn only_group14_steps_are_reported_costly() {
    let (pfs, fast) = (mode(false, false), mode(true, false));
    // A PFS client computes 2^x on the server's nonce and y^x on its answer; a PFS
    // server computes 2^x on the client's message and y^x once its answer is out.
    assert_eq!(costly_steps(pfs, pfs), (2, 1, true));
    assert_eq!(costly_steps(fast, fast), (0, 0, false));
    assert_eq!(costly_steps(fast, pfs), (0, 1, false));
    assert_eq!(costly_steps(pfs, fast), (2, 0, false));
    assert_eq!(costly_steps(x_mode(), pfs), (0, 0, false));
    assert_eq!(costly_steps(x_mode(), fast), (0, 0, false));
}

#[test]
fn all_fast_combinations_agree() {
    for (cf, sf) in [(false, false), (false, true), (true, false), (true, true)] {
        let mut c = Handshake::new(Role::Client, mode(cf, false), &key()).unwrap();
        let mut s = Handshake::new(Role::Server, mode(sf, false), &key()).unwrap();
        run(&mut c, &mut s).unwrap_or_else(|e| panic!("-f {cf}/{sf}: {:?}", e.1));
        check_pairing(c, s);
    }
}

/// Opens every packet of `bytes` with `opener`, concatenating the payloads.
fn open_all(opener: &mut Opener, bytes: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    for packet in bytes.chunks(PACKET_LEN) {
        let mut packet: [u8; PACKET_LEN] = packet.try_into().unwrap();
        let n = opener.open_in_place(&mut packet).unwrap();
        plain.extend_from_slice(&packet[..n]);
    }
    plain
}

#[test]
fn fast_client_seals_early_data_behind_its_dh_message() {
    for server_fast in [false, true] {
        let mut c = Handshake::new(Role::Client, mode(true, false), &key()).unwrap();
        let mut s = Handshake::new(Role::Server, mode(server_fast, false), &key()).unwrap();
        let (mut to_c, mut to_s) = (Vec::new(), Vec::new());
        assert!(!c.seal_early(b"too soon"), "before the nonces");
        step(&mut c, &mut to_c, &mut to_s).unwrap();
        step(&mut s, &mut to_s, &mut to_c).unwrap();
        step(&mut c, &mut to_c, &mut to_s).unwrap();
        let data: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
        assert!(may_seal_early(&c));
        assert!(c.seal_early(b"PROXY first\r\n") && c.seal_early(&data));
        let Some(msg) = sends(&c) else {
            panic!("the client should send its DH message");
        };
        assert_eq!(msg.len(), DH_MSG_LEN + 3 * PACKET_LEN);
        let packets = msg[DH_MSG_LEN..].to_vec();
        step(&mut c, &mut to_c, &mut to_s).unwrap();
        assert!(
            !may_seal_early(&c) && !c.seal_early(b"late"),
            "after the DH message"
        );
        // The server reads exactly its handshake; the packets are left to it after.
        to_s.truncate(to_s.len() - packets.len());
        while !matches!((c.next(), s.next()), (Next::Done, Next::Done)) {
            step(&mut s, &mut to_s, &mut to_c).unwrap();
            step(&mut c, &mut to_c, &mut to_s).unwrap();
        }
        let (mut c_sealer, mut c_opener) = c.finish().unwrap();
        let (mut s_sealer, mut s_opener) = s.finish().unwrap();
        let mut answer = Vec::new();
        s_sealer.seal_all(b"answer", &mut answer);
        assert_eq!(open_all(&mut c_opener, &answer), b"answer");
        assert_eq!(
            open_all(&mut s_opener, &packets),
            [&b"PROXY first\r\n"[..], &data].concat()
        );
        // The session goes on from the early packets' numbers.
        let mut more = Vec::new();
        c_sealer.seal_all(b"next", &mut more);
        assert_eq!(open_all(&mut s_opener, &more), b"next");
    }
    // Everyone else's keys depend on the server's answer.
    for (role, m) in [
        (Role::Client, mode(false, false)),
        (Role::Client, x_mode()),
        (Role::Server, mode(true, false)),
    ] {
        let mut c = Handshake::new(Role::Client, m, &key()).unwrap();
        let mut s = Handshake::new(Role::Server, mode(true, false), &key()).unwrap();
        let (mut to_c, mut to_s) = (Vec::new(), Vec::new());
        while !matches!((c.next(), s.next()), (Next::Done, Next::Done)) {
            let hs = if role == Role::Client { &mut c } else { &mut s };
            assert!(
                !may_seal_early(hs) && !hs.seal_early(b"x"),
                "{role:?} {m:?}"
            );
            step(&mut c, &mut to_c, &mut to_s).unwrap();
            step(&mut s, &mut to_s, &mut to_c).unwrap();
        }
    }
}

#[test]
fn require_pfs_both_pfs_ok() {
    let mut c = Handshake::new(Role::Client, mode(false, true), &key()).unwrap();
    let mut s = Handshake::new(Role::Server, mode(false, true), &key()).unwrap();
    run(&mut c, &mut s).unwrap();
    check_pairing(c, s);
}

#[test]
fn require_pfs_rejects_fast_client() {
    let mut c = Handshake::new(Role::Client, mode(true, false), &key()).unwrap();
    let mut s = Handshake::new(Role::Server, mode(false, true), &key()).unwrap();
    let err = run(&mut c, &mut s).unwrap_err();
    assert!(!err.0, "the server notices");
    assert!(matches!(err.1, HandshakeError::PeerNotPfs));
    assert!(s.finish().is_none());
}

#[test]
fn require_pfs_rejects_fast_server() {
    let mut c = Handshake::new(Role::Client, mode(false, true), &key()).unwrap();
    let mut s = Handshake::new(Role::Server, mode(true, false), &key()).unwrap();
    let err = run(&mut c, &mut s).unwrap_err();
    assert!(err.0, "the client notices");
    assert!(matches!(err.1, HandshakeError::PeerNotPfs));
    assert!(c.finish().is_none());
}

#[test]
fn require_pfs_rejects_y_one_from_pfs_mode_peer() {
    // A peer not in fast mode that still sends y = 1 is rejected the same way.
    let mut c = Handshake::with_secrets(Role::Client, mode(false, false), &key(), [1; 32], None);
    let mut s = Handshake::new(Role::Server, mode(false, true), &key()).unwrap();
    let err = run(&mut c, &mut s).unwrap_err();
    assert!(matches!(err.1, HandshakeError::PeerNotPfs));
}

#[test]
fn wrong_key_is_bad_mac() {
    for fast in [false, true] {
        let mut c = Handshake::new(Role::Client, mode(fast, false), &key()).unwrap();
        let other = Key::from_file_contents(b"another key file");
        let mut s = Handshake::new(Role::Server, mode(fast, false), &other).unwrap();
        let err = run(&mut c, &mut s).unwrap_err();
        assert!(!err.0, "the server notices first");
        assert!(matches!(err.1, HandshakeError::BadMac));
        assert!(s.finish().is_none());
    }
}

#[test]
fn tampered_dh_message_is_bad_mac() {
    let mut c = Handshake::new(Role::Client, mode(false, false), &key()).unwrap();
    let mut s = Handshake::new(Role::Server, mode(false, false), &key()).unwrap();
    let nc = match c.next() {
        Next::Send(out) => out.bytes.to_vec(),
        other => panic!("{other:?}"),
    };
    c.sent();
    let ns = match s.next() {
        Next::Send(out) => out.bytes.to_vec(),
        other => panic!("{other:?}"),
    };
    s.sent();
    c.received(&ns).unwrap();
    s.received(&nc).unwrap();
    let mut msg = match c.next() {
        Next::Send(out) => out.bytes.to_vec(),
        other => panic!("{other:?}"),
    };
    msg[10] ^= 0x40;
    assert!(matches!(feed(&mut s, &msg), Err(HandshakeError::BadMac)));
}

/// A server that has received `nonce_C = [7; 32]` and is waiting for the DH message,
/// plus the client's DH MAC key so a test can forge well-authenticated messages.
fn server_awaiting_dh(md: Mode) -> (Handshake, [u8; 32]) {
    let k = key();
    let mut s = Handshake::with_secrets(Role::Server, md, &k, [9; 32], Some([3; 32]));
    s.sent();
    s.received(&[7; 32]).unwrap();
    let dhmac = dhmac_keys(&k, &[7; 32], &[9; 32]);
    (s, dhmac.client)
}

/// A client (in `md`) with `nonce_C = [7; 32]` that has sent its DH message and waits
/// for the server's, plus the server's DH MAC key for forging the answer.
fn client_awaiting_dh(md: Mode) -> (Handshake, [u8; 32]) {
    let k = key();
    let mut c = Handshake::with_secrets(Role::Client, md, &k, [7; 32], Some([4; 32]));
    c.sent();
    c.received(&[9; 32]).unwrap();
    c.sent();
    let dhmac = dhmac_keys(&k, &[7; 32], &[9; 32]);
    (c, dhmac.server)
}

/// An X25519 DH message for `public`, MACed with `mac_key` (and `label` in front).
fn x25519_msg(public: &[u8; 32], label: &[u8], mac_key: &[u8; 32]) -> Vec<u8> {
    let tag = hmac_sha256(mac_key)
        .chain_update(label)
        .chain_update(public)
        .finalize()
        .into_bytes();
    [&public[..], &tag[..]].concat()
}

fn authenticated(y: &[u8; Y_LEN], mac_key: &[u8; 32]) -> Vec<u8> {
    let mut msg = y.to_vec();
    msg.extend_from_slice(&hmac_sha256(mac_key).chain_update(y).finalize().into_bytes());
    msg
}

#[test]
fn y_out_of_range_zero_or_p_minus_1_rejected() {
    let mut p_minus_1 = dh::P;
    p_minus_1[Y_LEN - 1] -= 1;
    for y in [dh::P, [0xff; Y_LEN], [0; Y_LEN], p_minus_1] {
        for fast in [false, true] {
            for (mut side, mac) in [
                server_awaiting_dh(mode(fast, false)),
                client_awaiting_dh(mode(fast, false)),
            ] {
                let msg = authenticated(&y, &mac);
                assert!(matches!(
                    feed(&mut side, &msg),
                    Err(HandshakeError::BadDhValue)
                ));
                assert!(side.finish().is_none());
            }
        }
    }
    // p - 2 is accepted; so is 1 (a fast-mode peer's value) without -g.
    let mut p_minus_2 = p_minus_1;
    p_minus_2[Y_LEN - 1] -= 1;
    for y in [p_minus_2, dh::ONE] {
        let (mut s, mac) = server_awaiting_dh(mode(false, false));
        feed(&mut s, &authenticated(&y, &mac)).unwrap();
        assert_eq!(sends(&s).map(<[u8]>::len), Some(288));
    }
}

#[test]
fn wrong_lengths_are_errors() {
    for len in [0, 31, 33, 288] {
        let mut c2 = Handshake::new(Role::Client, mode(false, false), &key()).unwrap();
        c2.sent();
        assert!(matches!(
            c2.received(&vec![0; len]),
            Err(HandshakeError::WrongLength { expected: 32, got }) if got == len
        ));
        // Dead for good afterwards.
        assert!(matches!(
            c2.received(&[0; 32]),
            Err(HandshakeError::Unexpected)
        ));
        assert!(c2.finish().is_none());
    }
    for len in [63, 65, 288] {
        let (mut s, _) = server_awaiting_dh(mode(false, false));
        assert!(matches!(
            s.received(&vec![0; len]),
            Err(HandshakeError::WrongLength { expected: 64, got }) if got == len
        ));
    }
    let (mut s, _) = server_awaiting_dh(mode(false, false));
    s.received(&[0; 64]).unwrap();
    assert!(matches!(
        s.received(&[0; 225]),
        Err(HandshakeError::WrongLength {
            expected: 224,
            got: 225
        })
    ));
    let (mut c, _) = client_awaiting_dh(x_mode());
    assert!(matches!(
        c.received(&[0; 288]),
        Err(HandshakeError::WrongLength {
            expected: 64,
            got: 288
        })
    ));
}

#[test]
fn unexpected_receive_is_error() {
    let mut c = Handshake::new(Role::Client, mode(true, false), &key()).unwrap();
    // Still has to send its nonce.
    assert!(matches!(
        c.received(&[0; 32]),
        Err(HandshakeError::Unexpected)
    ));
    assert!(c.finish().is_none());
}

#[test]
fn unfinished_handshake_has_no_keys() {
    let mut c = Handshake::new(Role::Client, mode(false, false), &key()).unwrap();
    assert!(c.finish().is_none());
}

#[test]
fn fast_mode_has_no_exponent() {
    // Without a group-14 exponent there is no `2^x` to compute: no key pair is wanted,
    // and one offered is refused.
    let mut c = client_after_nonce(mode(true, false));
    assert!(!incoming(&c).unwrap().wants_keypair);
    assert!(c.use_keypair(dh::Keypair::generate().unwrap()).is_some());
    let c = client_after_nonce(mode(false, false));
    assert!(incoming(&c).unwrap().wants_keypair);
}

#[test]
fn error_messages() {
    assert_eq!(
        HandshakeError::BadMac.to_string(),
        "handshake failed: the peer's key differs from ours (or the data was tampered with)"
    );
    assert_eq!(
        HandshakeError::PeerNotPfs.to_string(),
        "handshake failed: peer did not use perfect forward secrecy (it runs with -f) and we require it (-g)"
    );
    assert_eq!(
        HandshakeError::BadDhValue.to_string(),
        "handshake failed: peer's Diffie-Hellman value is out of range"
    );
    assert_eq!(
        HandshakeError::LowOrder.to_string(),
        "handshake failed: peer's X25519 public key is a low-order point"
    );
}

#[test]
fn x25519_client_and_server_agree_in_every_server_mode() {
    // -f and -g on the server change nothing for an X25519 client.
    for (sf, sg) in [(false, false), (true, false), (false, true)] {
        let mut c = Handshake::new(Role::Client, x_mode(), &key()).unwrap();
        let mut s = Handshake::new(Role::Server, mode(sf, sg), &key()).unwrap();
        run(&mut c, &mut s).unwrap_or_else(|e| panic!("-f {sf} -g {sg}: {e:?}"));
        check_pairing(c, s);
    }
    // The client's own -g is satisfied too.
    let md = Mode {
        require_pfs: true,
        ..x_mode()
    };
    let mut c = Handshake::new(Role::Client, md, &key()).unwrap();
    let mut s = Handshake::new(Role::Server, Mode::default(), &key()).unwrap();
    run(&mut c, &mut s).unwrap();
    check_pairing(c, s);
}

#[test]
fn x25519_messages_are_64_bytes_each_way() {
    let (mut s, mac) = server_awaiting_dh(Mode::default());
    let client = x25519::Secret::from_bytes([5; 32]).public();
    assert_eq!(awaits(&s), Some(64));
    s.received(&x25519_msg(&client, x25519::MAC_LABEL, &mac))
        .unwrap();
    let Some(reply) = sends(&s) else {
        panic!("server did not answer: {:?}", s.next());
    };
    // The server's public key for with_secrets([3; 32]), MACed with dhmac_S.
    let dhmac = dhmac_keys(&key(), &[7; 32], &[9; 32]);
    let public = x25519::Secret::from_bytes([3; 32]).public();
    assert_eq!(reply, x25519_msg(&public, x25519::MAC_LABEL, &dhmac.server));
    s.sent();
    assert_eq!(s.next(), Next::Done);
    // x25519_session_keys of X25519([3; 32], client) is what the server uses.
    let shared = x25519::Secret::from_bytes([5; 32]).agree(&public).unwrap();
    let want = x25519_session_keys(&key(), &[7; 32], &[9; 32], shared.as_bytes());
    let (_, mut open) = s.finish().unwrap();
    let mut pkt = [0u8; PACKET_LEN];
    Sealer::new(&want.enc_c, &want.mac_c).seal(b"hi", &mut pkt);
    assert_eq!(open.open_in_place(&mut pkt), Ok(2));
}

#[test]
fn x25519_tampered_message_rejected() {
    // Server side: a flipped bit anywhere makes the X25519 check fail, so the server
    // waits for a group-14 tail, whose MAC then fails too.
    for bit in [0, 31 * 8 + 7, 32 * 8, 63 * 8 + 1] {
        let (mut s, mac) = server_awaiting_dh(Mode::default());
        let client = x25519::Secret::from_bytes([5; 32]).public();
        let mut msg = x25519_msg(&client, x25519::MAC_LABEL, &mac);
        msg[bit / 8] ^= 1 << (bit % 8);
        s.received(&msg).unwrap();
        assert_eq!(awaits(&s), Some(224), "bit {bit}");
        assert!(matches!(s.received(&[0; 224]), Err(HandshakeError::BadMac)));
        assert!(s.finish().is_none());
    }
    // Client side: a tampered answer is refused outright.
    let (mut c, mac) = client_awaiting_dh(x_mode());
    let server = x25519::Secret::from_bytes([6; 32]).public();
    let mut msg = x25519_msg(&server, x25519::MAC_LABEL, &mac);
    msg[40] ^= 0x80;
    assert!(matches!(c.received(&msg), Err(HandshakeError::BadMac)));
    assert!(c.finish().is_none());
}

#[test]
fn x25519_low_order_keys_rejected() {
    for point in LOW_ORDER {
        let (mut s, mac) = server_awaiting_dh(Mode::default());
        let r = s.received(&x25519_msg(&point, x25519::MAC_LABEL, &mac));
        assert!(matches!(r, Err(HandshakeError::LowOrder)), "{point:?}");
        assert!(s.finish().is_none());
        let (mut c, mac) = client_awaiting_dh(x_mode());
        let r = c.received(&x25519_msg(&point, x25519::MAC_LABEL, &mac));
        assert!(matches!(r, Err(HandshakeError::LowOrder)), "{point:?}");
    }
}

#[test]
fn x25519_wrong_key_rejected() {
    // The server cannot tell a wrong-key X25519 message from a group-14 start, so
    // it waits for more; the client never sends it (the driver times out). Fed a
    // tail, it fails the MAC.
    let mut c = Handshake::new(Role::Client, x_mode(), &key()).unwrap();
    let other = Key::from_file_contents(b"another key file");
    let mut s = Handshake::new(Role::Server, Mode::default(), &other).unwrap();
    let err = run(&mut c, &mut s).unwrap_err();
    assert!(
        matches!(err.1, HandshakeError::Unexpected),
        "stalls: {err:?}"
    );
    assert_eq!(awaits(&s), Some(224));
    assert!(matches!(s.received(&[0; 224]), Err(HandshakeError::BadMac)));
    // The other way round the client refuses the server's answer.
    let (mut c, _) = client_awaiting_dh(x_mode());
    let wrong = dhmac_keys(&other, &[7; 32], &[9; 32]).server;
    let server = x25519::Secret::from_bytes([6; 32]).public();
    let r = c.received(&x25519_msg(&server, x25519::MAC_LABEL, &wrong));
    assert!(matches!(r, Err(HandshakeError::BadMac)));
}

#[test]
fn messages_never_cross_modes() {
    let dhmac = dhmac_keys(&key(), &[7; 32], &[9; 32]);
    let public = x25519::Secret::from_bytes([5; 32]).public();

    // An X25519 message MACed without the label (as a group-14 MAC would be computed
    // over the same bytes) is not an X25519 message.
    let (mut s, _) = server_awaiting_dh(Mode::default());
    s.received(&x25519_msg(&public, b"", &dhmac.client))
        .unwrap();
    assert_eq!(awaits(&s), Some(224));

    // A valid X25519 message padded out to 288 bytes is not a group-14 message: a
    // legacy server (and a group-14 client) checks HMAC(dhmac, all 256 bytes).
    let (mut c, _) = client_awaiting_dh(mode(false, false));
    let server_msg = {
        let mut m = x25519_msg(&public, x25519::MAC_LABEL, &dhmac.server);
        m.resize(288, 0);
        m
    };
    assert!(matches!(
        c.received(&server_msg),
        Err(HandshakeError::BadMac)
    ));

    // A genuine group-14 message's first 64 bytes fail the X25519 check; the whole
    // message then passes as group 14.
    let y = dh::public(&Secret::from_bytes([8; 32]));
    let legacy = authenticated(&y, &dhmac.client);
    let (mut s, _) = server_awaiting_dh(Mode::default());
    s.received(&legacy[..64]).unwrap();
    assert_eq!(awaits(&s), Some(224));
    s.received(&legacy[64..]).unwrap();
    assert_eq!(sends(&s).map(<[u8]>::len), Some(288));

    // An X25519 client refuses a group-14 answer: whatever 64 bytes of it it reads
    // fail the X25519 MAC. No fallback.
    let (mut c, _) = client_awaiting_dh(x_mode());
    let legacy_answer = authenticated(&y, &dhmac.server);
    assert!(matches!(
        c.received(&legacy_answer[..64]),
        Err(HandshakeError::BadMac)
    ));

    // Reflection: the client's own X25519 message sent back to it fails (dhmac_C is
    // not dhmac_S).
    let (mut c, _) = client_awaiting_dh(x_mode());
    let own = x25519_msg(&public, x25519::MAC_LABEL, &dhmac.client);
    assert!(matches!(c.received(&own), Err(HandshakeError::BadMac)));
}

#[test]
fn x25519_client_holds_no_group14_exponent() {
    // Seen from outside: no key pair wanted (no group-14 exponent), and a 64-byte DH
    // message (an X25519 one) on the server's nonce; a group-14 client sends 288 bytes.
    let dh_message_len = |md| {
        let mut c = client_after_nonce(md);
        let wants = incoming(&c).unwrap().wants_keypair;
        c.received(&[9; 32]).unwrap();
        (wants, sends(&c).map(<[u8]>::len))
    };
    assert_eq!(dh_message_len(x_mode()), (false, Some(64)));
    // -f is overridden by --x25519 (the CLI rejects the pair).
    let md = Mode {
        fast: true,
        ..x_mode()
    };
    assert_eq!(dh_message_len(md), (false, Some(64)));
    assert_eq!(dh_message_len(mode(false, false)), (true, Some(288)));
}

#[test]
fn rotation_server_accepts_each_of_its_keys() {
    let keys = [
        Key::from_file_contents(b"new key"),
        Key::from_file_contents(b"old key"),
        Key::from_file_contents(b"older key"),
    ];
    for client_mode in [mode(false, false), mode(true, false), x_mode()] {
        for (i, k) in keys.iter().enumerate() {
            let mut c = Handshake::new(Role::Client, client_mode, k).unwrap();
            let mut s = Handshake::new(Role::Server, Mode::default(), &keys[0])
                .unwrap()
                .accepting_also(&keys[1..]);
            run(&mut c, &mut s).unwrap_or_else(|e| panic!("key {i}: {e:?}"));
            assert_eq!(s.key_index(), i);
            assert_eq!(c.key_index(), 0);
            let want = match client_mode {
                m if m.x25519 => Exchange::X25519,
                m if m.fast => Exchange::Fast,
                _ => Exchange::Group14,
            };
            assert_eq!((c.exchange(), s.exchange()), (Some(want), Some(want)));
            check_pairing(c, s);
        }
    }
}

#[test]
fn rotation_server_rejects_unknown_key() {
    let stranger = Key::from_file_contents(b"a third key");
    let mut c = Handshake::new(Role::Client, mode(false, false), &stranger).unwrap();
    let mut s = Handshake::new(Role::Server, Mode::default(), &key())
        .unwrap()
        .accepting_also(&[Key::from_file_contents(b"old key")]);
    let err = run(&mut c, &mut s).unwrap_err();
    assert!(matches!(err, (false, HandshakeError::BadMac)), "{err:?}");
    assert!(s.finish().is_none());
}

#[test]
fn rotation_keys_ignored_by_a_client() {
    // A client always uses its first key, so it fails against a server that has
    // only the "extra" one.
    let other = Key::from_file_contents(b"other");
    let mut c = Handshake::new(Role::Client, Mode::default(), &key())
        .unwrap()
        .accepting_also(std::slice::from_ref(&other));
    let mut s = Handshake::new(Role::Server, Mode::default(), &other).unwrap();
    assert!(matches!(
        run(&mut c, &mut s),
        Err((false, HandshakeError::BadMac))
    ));
}

#[test]
fn exchange_reports_fast_when_either_side_is_fast() {
    for (cf, sf, want) in [
        (false, false, Exchange::Group14),
        (true, false, Exchange::Fast),
        (false, true, Exchange::Fast),
    ] {
        let mut c = Handshake::new(Role::Client, mode(cf, false), &key()).unwrap();
        let mut s = Handshake::new(Role::Server, mode(sf, false), &key()).unwrap();
        assert_eq!(s.exchange(), None);
        run(&mut c, &mut s).unwrap();
        assert_eq!((c.exchange(), s.exchange()), (Some(want), Some(want)));
    }
}

/// Handshake rate, X25519 against group 14, both sides in one thread. Run with
/// `cargo test --release -p spiped-proto --test handshake -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_handshakes() {
    let rate = |client: Mode, n: u32| {
        let start = std::time::Instant::now();
        for _ in 0..n {
            let mut c = Handshake::new(Role::Client, client, &key()).unwrap();
            let mut s = Handshake::new(Role::Server, Mode::default(), &key()).unwrap();
            drive(&mut c, &mut s).unwrap();
            std::hint::black_box((c.finish(), s.finish()));
        }
        f64::from(n) / start.elapsed().as_secs_f64()
    };
    let g14 = rate(Mode::default(), 200);
    let x = rate(x_mode(), 4000);
    println!(
        "handshakes/s (client+server in one thread): group 14 {g14:.0}, X25519 {x:.0}, ratio {:.1}x",
        x / g14
    );
}
