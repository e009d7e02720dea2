//! The handshake state machine, as server and as client, against (a) an arbitrary byte
//! stream from the peer and (b) a genuine peer whose messages the fuzzer may tamper
//! with. Never panics; a tampered exchange never ends with both sides agreeing on keys;
//! an untampered one always does.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use spiped_proto::handshake::step;
use spiped_proto::{Handshake, Key, Mode, Next, Opener, PACKET_LEN, Role, Sealer};

#[derive(Arbitrary, Debug)]
struct Input {
    server: bool,
    ours: (bool, bool),
    peers: (bool, bool),
    /// Our secret exponent; `None` sends y = 1 without being in fast mode.
    exponent: Option<[u8; 32]>,
    /// (a) when `genuine_peer` is false: the peer's byte stream, read `Recv(n)` at a time.
    /// (b) otherwise: XOR masks over the peer's bytes, in order.
    stream: Vec<u8>,
    genuine_peer: bool,
}

/// Group-14 and `-f` modes; X25519 clients are covered by the unit tests of
/// `proto::handshake` and `proto::x25519`.
fn mode((fast, require_pfs): (bool, bool)) -> Mode {
    Mode {
        fast,
        require_pfs,
        x25519: false,
    }
}

/// Both directions' keys agree: what one seals, the other opens.
fn agree(a: (Sealer, Opener), b: (Sealer, Opener)) -> bool {
    let ((mut sa, mut oa), (mut sb, mut ob)) = (a, b);
    let mut p = [0u8; PACKET_LEN];
    sa.seal(b"ping", &mut p);
    let ab = ob.open_in_place(&mut p).is_ok();
    sb.seal(b"pong", &mut p);
    ab && oa.open_in_place(&mut p).is_ok()
}

fuzz_target!(|input: Input| {
    let key = Key::from_file_contents(b"fuzz key");
    let (role, peer_role) = if input.server {
        (Role::Server, Role::Client)
    } else {
        (Role::Client, Role::Server)
    };
    let mut us = Handshake::with_secrets(role, mode(input.ours), &key, [7; 32], input.exponent);

    if !input.genuine_peer {
        let mut inbox = input.stream;
        let mut sink = Vec::new();
        // Whatever the bytes, this ends: each step sends or consumes.
        while let Ok(true) = step(&mut us, &mut inbox, &mut sink) {}
        if let Next::Done = us.next() {
            // Only reachable by forging a MAC with the right key; the fuzzer cannot.
            panic!("handshake completed against an arbitrary byte stream");
        }
        assert!(us.finish().is_none());
        return;
    }

    let mut peer =
        Handshake::with_secrets(peer_role, mode(input.peers), &key, [9; 32], Some([3; 32]));
    let (mut to_us, mut to_peer) = (Vec::new(), Vec::new());
    let mut masks = input.stream.iter();
    let mut tampered = false;
    let mut failed = false;
    loop {
        let sent_before = to_us.len();
        let p = step(&mut peer, &mut to_peer, &mut to_us);
        for b in &mut to_us[sent_before..] {
            let m = masks.next().copied().unwrap_or(0);
            tampered |= m != 0;
            *b ^= m;
        }
        let u = step(&mut us, &mut to_us, &mut to_peer);
        match (p, u) {
            (Err(_), _) | (_, Err(_)) => {
                failed = true;
                break;
            }
            (Ok(false), Ok(false)) => break,
            _ => {}
        }
    }
    let (ours, peers) = (input.ours, input.peers);
    // -g on a side refuses a peer that sends y = 1: a fast peer, or our exponent 0
    // (2^x = 1 mod p for no other x below 2^256).
    let we_send_one = ours.0 || input.exponent.is_none_or(|x| x == [0; 32]);
    let refused = (ours.1 && peers.0) || (peers.1 && we_send_one);
    let keys = (us.finish(), peer.finish());
    let agreed = match keys {
        (Some(a), Some(b)) => agree(a, b),
        _ => false,
    };
    if tampered {
        assert!(!agreed, "tampered handshake produced agreeing keys");
    } else {
        assert_eq!(agreed, !refused, "failed={failed} refused={refused}");
    }
});
