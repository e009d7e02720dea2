//! The spiped handshake as a sans-IO state machine.
//!
//! The driver loops on [`Handshake::next`]: for `Send(bytes)` it writes all of `bytes`
//! and calls [`Handshake::sent`]; for `Recv(n)` it reads exactly `n` bytes and passes them
//! to [`Handshake::received`]; at `Done` it calls [`Handshake::finish`] for the packet
//! keys. Any error means the connection must be dropped.
//!
//! ```text
//! client: Send(nonce_C) → Recv(32) → Send(y_C || mac) → Recv(288) → Done
//! server: Send(nonce_S) → Recv(32) → Recv(288) → Send(y_S || mac) → Done
//! ```

use core::fmt;
use std::collections::VecDeque;

use hmac::Mac;
use zeroize::Zeroize;

use super::dh::{self, Secret, Y_LEN};
use super::key::{DhMacKeys, Key, Nonce, SessionKeys, dhmac_keys, session_keys};
use super::packet::{Opener, Sealer, hmac_sha256};

/// Length of a nonce message.
const NONCE_LEN: usize = 32;

/// Length of a DH message: `y || HMAC-SHA256(dhmac_own, y)`.
const DH_MSG_LEN: usize = Y_LEN + 32;

/// Which end of the connection we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Opens the encrypted connection (`spipe`, `spiped -e`); sends its DH message first.
    Client,
    /// Accepts the encrypted connection (`spiped -d`); answers the client's DH message.
    Server,
}

/// Handshake options that are set per daemon on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mode {
    /// `-f`: skip Diffie-Hellman; send `y = 1` and use `y_SC = 1` (no forward secrecy).
    pub fast: bool,
    /// `-g`: require perfect forward secrecy; reject a peer that sends `y = 1`.
    pub require_pfs: bool,
}

/// What the driver must do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// Write all of these bytes to the peer, then call [`Handshake::sent`].
    Send(&'a [u8]),
    /// Read exactly this many bytes from the peer and pass them to [`Handshake::received`].
    Recv(usize),
    /// The handshake succeeded; call [`Handshake::finish`].
    Done,
}

/// Why a handshake failed. The connection must be dropped.
#[derive(Debug)]
pub enum HandshakeError {
    /// The peer's DH message MAC did not verify: the peer uses a different key, or the
    /// data was modified in transit.
    BadMac,
    /// We require PFS (`-g`) and the peer sent `y = 1` (it runs with `-f`).
    PeerNotPfs,
    /// The peer's DH value is not below the group prime `p`.
    NotBelowP,
    /// [`Handshake::received`] got a different number of bytes than `Recv(n)` asked for.
    WrongLength {
        /// What `Recv(n)` asked for.
        expected: usize,
        /// What was passed.
        got: usize,
    },
    /// [`Handshake::received`] was called while no read was pending, or after the
    /// handshake had already failed: a driver bug.
    Unexpected,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::BadMac => f.write_str(
                "handshake failed: the peer's key differs from ours (or the data was tampered with)",
            ),
            HandshakeError::PeerNotPfs => f.write_str(
                "handshake failed: peer did not use perfect forward secrecy (it runs with -f) and we require it (-g)",
            ),
            HandshakeError::NotBelowP => {
                f.write_str("handshake failed: peer's Diffie-Hellman value is out of range")
            }
            HandshakeError::WrongLength { expected, got } => write!(
                f,
                "handshake failed: internal error: expected {expected} bytes from the peer, got {got}"
            ),
            HandshakeError::Unexpected => f.write_str(
                "handshake failed: internal error: data received when none was expected",
            ),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// Where the handshake stands. Each state carries only what the remaining steps need, so
/// secrets are dropped (and wiped) as soon as they are used up.
enum State {
    /// Our nonce is being sent.
    SendNonce,
    /// Waiting for the peer's nonce.
    RecvNonce,
    /// Our DH message is being sent; `then` is what follows once it is out.
    SendDh {
        msg: Box<[u8; DH_MSG_LEN]>,
        then: AfterDhSent,
    },
    /// Waiting for the peer's DH message.
    RecvDh { dhmac: DhMacKeys },
    /// Finished; the session keys await [`Handshake::finish`].
    Done { keys: SessionKeys },
    /// An error occurred; nothing further is accepted.
    Failed,
}

/// What follows sending our DH message.
enum AfterDhSent {
    /// Client: it still has to check the server's message.
    RecvDh(DhMacKeys),
    /// Server: it checked the client's message before answering, so it is done.
    Done(SessionKeys),
}

/// One side of a spiped handshake, driven by the caller over bytes (see the module docs).
///
/// Holds the pre-shared key, both nonces and, in PFS mode, the secret DH exponent until it
/// has been used; all secrets are wiped when dropped.
pub struct Handshake {
    role: Role,
    mode: Mode,
    key: Key,
    nonce: Nonce,
    peer_nonce: Nonce,
    /// `None` in fast mode, and once the shared secret has been computed.
    secret: Option<Secret>,
    state: State,
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::SendNonce => "SendNonce",
            State::RecvNonce => "RecvNonce",
            State::SendDh { .. } => "SendDh",
            State::RecvDh { .. } => "RecvDh",
            State::Done { .. } => "Done",
            State::Failed => "Failed",
        };
        // Keys, nonces and the exponent stay out of logs.
        f.debug_struct("Handshake")
            .field("role", &self.role)
            .field("mode", &self.mode)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// Starts a handshake with a fresh nonce and, unless `mode.fast`, a fresh DH exponent,
    /// both from the OS random number generator (in fast mode no exponentiation is ever
    /// done). Fails only if the OS cannot provide randomness.
    pub fn new(role: Role, mode: Mode, key: &Key) -> Result<Handshake, getrandom::Error> {
        let mut nonce = [0u8; 32];
        getrandom::fill(&mut nonce)?;
        let secret = if mode.fast {
            None
        } else {
            Some(Secret::random()?)
        };
        Ok(Handshake::build(role, mode, key, nonce, secret))
    }

    /// Starts a handshake with the given nonce and exponent (for known-answer tests).
    ///
    /// `exponent` is ignored in fast mode. In PFS mode, `None` means the exponent 0, so
    /// this side sends `y = 1` without being in fast mode (useful to test peers).
    pub fn with_secrets(
        role: Role,
        mode: Mode,
        key: &Key,
        nonce: Nonce,
        exponent: Option<[u8; 32]>,
    ) -> Handshake {
        let secret = if mode.fast {
            None
        } else {
            Some(Secret::from_bytes(exponent.unwrap_or([0; 32])))
        };
        Handshake::build(role, mode, key, nonce, secret)
    }

    fn build(role: Role, mode: Mode, key: &Key, nonce: Nonce, secret: Option<Secret>) -> Self {
        Handshake {
            role,
            mode,
            key: key.clone(),
            nonce,
            peer_nonce: [0; 32],
            secret,
            state: State::SendNonce,
        }
    }

    /// What the driver must do now. After an error it keeps returning the step that
    /// failed; the driver must drop the connection instead of asking.
    pub fn next(&self) -> Next<'_> {
        match &self.state {
            State::SendNonce => Next::Send(&self.nonce),
            State::RecvNonce => Next::Recv(NONCE_LEN),
            State::SendDh { msg, .. } => Next::Send(&msg[..]),
            State::RecvDh { .. } | State::Failed => Next::Recv(DH_MSG_LEN),
            State::Done { .. } => Next::Done,
        }
    }

    /// Tells the state machine that all bytes of the last `Next::Send` were written.
    /// Calling it when no send is pending is a driver bug: debug builds panic, release
    /// builds ignore the call. After a failure it is always ignored.
    pub fn sent(&mut self) {
        match std::mem::replace(&mut self.state, State::Failed) {
            State::SendNonce => self.state = State::RecvNonce,
            State::SendDh { then, .. } => {
                self.state = match then {
                    AfterDhSent::RecvDh(dhmac) => State::RecvDh { dhmac },
                    AfterDhSent::Done(keys) => State::Done { keys },
                }
            }
            other => {
                debug_assert!(
                    matches!(other, State::Failed),
                    "sent() called with no send pending"
                );
                self.state = other;
            }
        }
    }

    /// Feeds the `n` bytes asked for by `Next::Recv(n)`.
    ///
    /// Validates the peer's DH message (MAC in constant time, then `y < p`, then `-g`).
    /// Any error, including a wrong length or an unexpected call, fails the handshake for
    /// good: later calls return [`HandshakeError::Unexpected`] and [`Handshake::finish`]
    /// returns `None`. Never panics, whatever the bytes.
    pub fn received(&mut self, bytes: &[u8]) -> Result<(), HandshakeError> {
        let result = match std::mem::replace(&mut self.state, State::Failed) {
            State::RecvNonce => self.on_nonce(bytes),
            State::RecvDh { dhmac } => self.on_dh(bytes, &dhmac),
            _ => Err(HandshakeError::Unexpected),
        };
        if result.is_err() {
            self.state = State::Failed;
            self.secret = None;
        }
        result
    }

    /// The packet keys once `next()` is `Done`: a [`Sealer`] for the direction we send
    /// (client: `E_C`/`H_C`; server: `E_S`/`H_S`) and an [`Opener`] for the peer's.
    /// `None` if the handshake has not finished or has failed.
    pub fn finish(mut self) -> Option<(Sealer, Opener)> {
        let State::Done { keys } = std::mem::replace(&mut self.state, State::Failed) else {
            return None;
        };
        Some(match self.role {
            Role::Client => (
                Sealer::new(&keys.enc_c, &keys.mac_c),
                Opener::new(&keys.enc_s, &keys.mac_s),
            ),
            Role::Server => (
                Sealer::new(&keys.enc_s, &keys.mac_s),
                Opener::new(&keys.enc_c, &keys.mac_c),
            ),
        })
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Our mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn nonces(&self) -> (&Nonce, &Nonce) {
        match self.role {
            Role::Client => (&self.nonce, &self.peer_nonce),
            Role::Server => (&self.peer_nonce, &self.nonce),
        }
    }

    /// Our DH message `y || HMAC(dhmac_own, y)`.
    fn our_dh_message(&self, dhmac: &DhMacKeys) -> Box<[u8; DH_MSG_LEN]> {
        let y = match &self.secret {
            Some(x) => dh::public(x),
            None => dh::ONE,
        };
        let own = match self.role {
            Role::Client => &dhmac.client,
            Role::Server => &dhmac.server,
        };
        let mut msg = Box::new([0u8; DH_MSG_LEN]);
        msg[..Y_LEN].copy_from_slice(&y);
        let tag = hmac_sha256(own).chain_update(y).finalize().into_bytes();
        msg[Y_LEN..].copy_from_slice(&tag);
        msg
    }

    fn on_nonce(&mut self, bytes: &[u8]) -> Result<(), HandshakeError> {
        self.peer_nonce = bytes.try_into().map_err(|_| HandshakeError::WrongLength {
            expected: NONCE_LEN,
            got: bytes.len(),
        })?;
        let (nc, ns) = self.nonces();
        let dhmac = dhmac_keys(&self.key, nc, ns);
        self.state = match self.role {
            Role::Client => State::SendDh {
                msg: self.our_dh_message(&dhmac),
                then: AfterDhSent::RecvDh(dhmac),
            },
            Role::Server => State::RecvDh { dhmac },
        };
        Ok(())
    }

    fn on_dh(&mut self, bytes: &[u8], dhmac: &DhMacKeys) -> Result<(), HandshakeError> {
        if bytes.len() != DH_MSG_LEN {
            return Err(HandshakeError::WrongLength {
                expected: DH_MSG_LEN,
                got: bytes.len(),
            });
        }
        let (y, tag) = bytes.split_at(Y_LEN);
        let peer_key = match self.role {
            Role::Client => &dhmac.server,
            Role::Server => &dhmac.client,
        };
        hmac_sha256(peer_key)
            .chain_update(y)
            .verify_slice(tag)
            .map_err(|_| HandshakeError::BadMac)?;
        let mut peer_y = [0u8; Y_LEN];
        peer_y.copy_from_slice(y);
        if !dh::is_below_p(&peer_y) {
            return Err(HandshakeError::NotBelowP);
        }
        if self.mode.require_pfs && peer_y == dh::ONE {
            return Err(HandshakeError::PeerNotPfs);
        }

        // The server answers only now that the client's message checked out; its y
        // needs the exponent, so build the reply before the exponent is consumed.
        let reply = match self.role {
            Role::Client => None,
            Role::Server => Some(self.our_dh_message(dhmac)),
        };

        // A fast side uses 1 whatever the peer sent; a PFS peer that got our y = 1
        // computes 1^x = 1 too, so both sides agree.
        let mut shared = match self.secret.take() {
            Some(x) => dh::shared(&x, &peer_y),
            None => dh::ONE,
        };
        let (nc, ns) = self.nonces();
        let keys = session_keys(&self.key, nc, ns, &shared);
        shared.zeroize();

        self.state = match reply {
            None => State::Done { keys },
            Some(msg) => State::SendDh {
                msg,
                then: AfterDhSent::Done(keys),
            },
        };
        Ok(())
    }
}

/// Runs two handshakes against each other in memory, as if joined by a pipe, until both
/// are done or one fails; the first error is returned with `true` when it was `a`'s.
///
/// Two sides that both wait for the other (two servers) fail with
/// [`HandshakeError::Unexpected`] rather than spin. No I/O, so benchmarks measure the
/// cryptography alone; tests use it to pair sides without sockets.
pub fn converse(a: &mut Handshake, b: &mut Handshake) -> Result<(), (bool, HandshakeError)> {
    let mut to_a = VecDeque::new();
    let mut to_b = VecDeque::new();
    loop {
        let pa = step(a, &mut to_a, &mut to_b).map_err(|e| (true, e))?;
        let pb = step(b, &mut to_b, &mut to_a).map_err(|e| (false, e))?;
        if matches!((a.next(), b.next()), (Next::Done, Next::Done)) {
            return Ok(());
        }
        if !pa && !pb {
            return Err((true, HandshakeError::Unexpected));
        }
    }
}

/// One step of one side: sends what it has, or consumes what it waits for if it has
/// arrived. Returns whether anything happened.
fn step(
    hs: &mut Handshake,
    inbox: &mut VecDeque<u8>,
    outbox: &mut VecDeque<u8>,
) -> Result<bool, HandshakeError> {
    match hs.next() {
        Next::Send(bytes) => {
            outbox.extend(bytes.iter().copied());
            hs.sent();
            Ok(true)
        }
        Next::Recv(n) if inbox.len() >= n => {
            let bytes: Vec<u8> = inbox.drain(..n).collect();
            hs.received(&bytes)?;
            Ok(true)
        }
        Next::Recv(_) | Next::Done => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::converse as drive;
    use super::*;
    use crate::proto::kat::{self, hex_array, hex_field};
    use crate::proto::packet::PACKET_LEN;

    fn key() -> Key {
        Key::from_file_contents(b"a shared key file")
    }

    fn mode(fast: bool, require_pfs: bool) -> Mode {
        Mode { fast, require_pfs }
    }

    /// Checks that the two sides' packet keys pair up in both directions.
    fn check_pairing(c: Handshake, s: Handshake) {
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

            assert_eq!(c.next(), Next::Send(&nc[..]));
            c.sent();
            assert_eq!(s.next(), Next::Send(&ns[..]));
            s.sent();
            assert_eq!(c.next(), Next::Recv(32));
            c.received(&ns).unwrap();
            assert_eq!(s.next(), Next::Recv(32));
            s.received(&nc).unwrap();

            let y_c_msg = hex_field(&m, "y_C_msg_hex");
            assert_eq!(c.next(), Next::Send(&y_c_msg[..]), "pfs={pfs}");
            c.sent();
            assert_eq!(c.next(), Next::Recv(288));
            assert_eq!(s.next(), Next::Recv(288));
            s.received(&y_c_msg).unwrap();
            let y_s_msg = hex_field(&m, "y_S_msg_hex");
            assert_eq!(s.next(), Next::Send(&y_s_msg[..]), "pfs={pfs}");
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
    fn all_fast_combinations_agree() {
        for (cf, sf) in [(false, false), (false, true), (true, false), (true, true)] {
            let mut c = Handshake::new(Role::Client, mode(cf, false), &key()).unwrap();
            let mut s = Handshake::new(Role::Server, mode(sf, false), &key()).unwrap();
            drive(&mut c, &mut s).unwrap_or_else(|e| panic!("-f {cf}/{sf}: {:?}", e.1));
            check_pairing(c, s);
        }
    }

    #[test]
    fn require_pfs_both_pfs_ok() {
        let mut c = Handshake::new(Role::Client, mode(false, true), &key()).unwrap();
        let mut s = Handshake::new(Role::Server, mode(false, true), &key()).unwrap();
        drive(&mut c, &mut s).unwrap();
        check_pairing(c, s);
    }

    #[test]
    fn require_pfs_rejects_fast_client() {
        let mut c = Handshake::new(Role::Client, mode(true, false), &key()).unwrap();
        let mut s = Handshake::new(Role::Server, mode(false, true), &key()).unwrap();
        let err = drive(&mut c, &mut s).unwrap_err();
        assert!(!err.0, "the server notices");
        assert!(matches!(err.1, HandshakeError::PeerNotPfs));
        assert!(s.finish().is_none());
    }

    #[test]
    fn require_pfs_rejects_fast_server() {
        let mut c = Handshake::new(Role::Client, mode(false, true), &key()).unwrap();
        let mut s = Handshake::new(Role::Server, mode(true, false), &key()).unwrap();
        let err = drive(&mut c, &mut s).unwrap_err();
        assert!(err.0, "the client notices");
        assert!(matches!(err.1, HandshakeError::PeerNotPfs));
        assert!(c.finish().is_none());
    }

    #[test]
    fn require_pfs_rejects_y_one_from_pfs_mode_peer() {
        // A peer not in fast mode that still sends y = 1 is rejected the same way.
        let mut c =
            Handshake::with_secrets(Role::Client, mode(false, false), &key(), [1; 32], None);
        let mut s = Handshake::new(Role::Server, mode(false, true), &key()).unwrap();
        let err = drive(&mut c, &mut s).unwrap_err();
        assert!(matches!(err.1, HandshakeError::PeerNotPfs));
    }

    #[test]
    fn wrong_key_is_bad_mac() {
        for fast in [false, true] {
            let mut c = Handshake::new(Role::Client, mode(fast, false), &key()).unwrap();
            let other = Key::from_file_contents(b"another key file");
            let mut s = Handshake::new(Role::Server, mode(fast, false), &other).unwrap();
            let err = drive(&mut c, &mut s).unwrap_err();
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
            Next::Send(b) => b.to_vec(),
            other => panic!("{other:?}"),
        };
        c.sent();
        let ns = match s.next() {
            Next::Send(b) => b.to_vec(),
            other => panic!("{other:?}"),
        };
        s.sent();
        c.received(&ns).unwrap();
        s.received(&nc).unwrap();
        let mut msg = match c.next() {
            Next::Send(b) => b.to_vec(),
            other => panic!("{other:?}"),
        };
        msg[10] ^= 0x40;
        assert!(matches!(s.received(&msg), Err(HandshakeError::BadMac)));
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

    fn authenticated(y: &[u8; Y_LEN], mac_key: &[u8; 32]) -> Vec<u8> {
        let mut msg = y.to_vec();
        msg.extend_from_slice(&hmac_sha256(mac_key).chain_update(y).finalize().into_bytes());
        msg
    }

    #[test]
    fn y_not_below_p_rejected() {
        for y in [dh::P, [0xff; Y_LEN]] {
            for fast in [false, true] {
                let (mut s, mac) = server_awaiting_dh(mode(fast, false));
                let msg = authenticated(&y, &mac);
                assert!(matches!(s.received(&msg), Err(HandshakeError::NotBelowP)));
                assert!(s.finish().is_none());
            }
        }
        // p - 1 is in range and accepted.
        let mut p_minus_1 = dh::P;
        p_minus_1[Y_LEN - 1] -= 1;
        let (mut s, mac) = server_awaiting_dh(mode(false, false));
        s.received(&authenticated(&p_minus_1, &mac)).unwrap();
        assert!(matches!(s.next(), Next::Send(b) if b.len() == 288));
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
        let (mut s, _) = server_awaiting_dh(mode(false, false));
        assert!(matches!(
            s.received(&[0; 287]),
            Err(HandshakeError::WrongLength {
                expected: 288,
                got: 287
            })
        ));
        let (mut s, _) = server_awaiting_dh(mode(false, false));
        assert!(matches!(
            s.received(&[0; 289]),
            Err(HandshakeError::WrongLength {
                expected: 288,
                got: 289
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
        let c = Handshake::new(Role::Client, mode(false, false), &key()).unwrap();
        assert!(c.finish().is_none());
    }

    #[test]
    fn fast_mode_has_no_exponent() {
        let c = Handshake::new(Role::Client, mode(true, false), &key()).unwrap();
        assert!(c.secret.is_none());
        let c = Handshake::new(Role::Client, mode(false, false), &key()).unwrap();
        assert!(c.secret.is_some());
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
            HandshakeError::NotBelowP.to_string(),
            "handshake failed: peer's Diffie-Hellman value is out of range"
        );
    }
}
