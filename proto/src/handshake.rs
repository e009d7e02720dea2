//! The spiped handshake as a sans-IO state machine.
//!
//! The driver loops on [`Handshake::next`]: for `Send(bytes)` it writes all of `bytes`
//! and calls [`Handshake::sent`]; for `Recv(n)` it reads exactly `n` bytes and passes them
//! to [`Handshake::received`]; at `Done` it calls [`Handshake::finish`] for the packet
//! keys. Any error means the connection must be dropped.
//!
//! ```text
//! client:          Send(nonce_C) → Recv(32) → Send(y_C || mac) → Recv(288) → Done
//! client --x25519: Send(nonce_C) → Recv(32) → Send(pub_C || mac) → Recv(64) → Done
//! server:          Send(nonce_S) → Recv(32) → Recv(64) ─┬→ Send(pub_S || mac) → Done
//!                  (X25519 MAC verifies)                 │
//!                  (otherwise: group 14)                 └→ Recv(224) → Send(y_S || mac) → Done
//! ```
//!
//! The server reads the first 64 bytes of the client's DH message and checks them as an
//! X25519 message; only if that MAC fails does it read the rest of a 288-byte group-14
//! message. PROTOCOL.md describes the extension and why the two can never be confused.
//!
//! A fast client (`-f`) knows its packet keys once it has the server's nonce, so it may
//! append its first data packets to its DH message ([`Handshake::seal_early`]).

use core::fmt;

use hmac::Mac;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::{Zeroize, Zeroizing};

use super::dh::{self, Secret, Y_LEN};
use super::key::{
    DhMacKeys, Key, Nonce, SessionKeys, dhmac_keys, session_keys, x25519_session_keys,
};
use super::packet::{Opener, Sealer, hmac_sha256};
use super::x25519;

/// Length of a nonce message.
const NONCE_LEN: usize = 32;
/// The largest [`Handshake::read_window`]: a nonce and a group-14 message.
pub const MAX_READ_WINDOW: usize = NONCE_LEN + DH_MSG_LEN;

/// Length of a group-14 DH message: `y || HMAC-SHA256(dhmac_own, y)`.
const DH_MSG_LEN: usize = Y_LEN + 32;

/// Length of an X25519 DH message: `pub || HMAC-SHA256(dhmac_own, MAC_LABEL || pub)`.
/// Shorter than a group-14 message, so a server can read this much of either.
const X25519_MSG_LEN: usize = x25519::KEY_LEN + 32;

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
    /// A server in fast mode still does X25519 with an X25519 client: it costs little
    /// and the client asked for forward secrecy.
    pub fast: bool,
    /// `-g`: require perfect forward secrecy; reject a peer that sends `y = 1`. An X25519
    /// exchange always satisfies it.
    pub require_pfs: bool,
    /// `--x25519`, client only: use the X25519 extension instead of group 14, and never
    /// fall back. Takes precedence over `fast` (the command line rejects the pair). A
    /// server ignores it: it always accepts both kinds of client.
    pub x25519: bool,
}

/// Which key agreement a finished handshake used, for connection logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// The X25519 extension: forward secret.
    X25519,
    /// Group-14 Diffie-Hellman on both sides: forward secret.
    Group14,
    /// Group 14 with `y_SC = 1` because one side runs with `-f`: no forward secrecy.
    Fast,
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Exchange::X25519 => "x25519",
            Exchange::Group14 => "group14",
            Exchange::Fast => "fast (no PFS)",
        })
    }
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
    /// The peer's DH value is not below the group prime `p`, or is 0 or `p - 1` (which
    /// would make the shared secret one anyone holding the key knows).
    BadDhValue,
    /// The peer's X25519 public key is a point of small order, which would make the
    /// shared secret all zeros whatever our secret.
    LowOrder,
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
            HandshakeError::BadDhValue => {
                f.write_str("handshake failed: peer's Diffie-Hellman value is out of range")
            }
            HandshakeError::LowOrder => {
                f.write_str("handshake failed: peer's X25519 public key is a low-order point")
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
    SendDh { msg: Box<[u8]>, then: AfterDhSent },
    /// Waiting for the peer's DH message (a server: for its first 64 bytes), with the
    /// DH MAC keys derived from each of our keys (a client has one).
    RecvDh { dhmacs: Vec<DhMacKeys> },
    /// Server: the first 64 bytes were not an X25519 message; waiting for the rest of a
    /// group-14 one.
    RecvGroup14Tail {
        dhmacs: Vec<DhMacKeys>,
        head: [u8; X25519_MSG_LEN],
    },
    /// Finished; the session keys await [`Handshake::finish`].
    Done {
        keys: SessionKeys,
        exchange: Exchange,
    },
    /// An error occurred; nothing further is accepted.
    Failed,
}

/// What follows sending our DH message.
enum AfterDhSent {
    /// Client: it still has to check the server's message.
    RecvDh(DhMacKeys),
    /// Server: it checked the client's message before answering, so it is done.
    Done(SessionKeys, Exchange),
    /// Server, group 14: it checked the client's message and answers before computing
    /// the shared secret, so that both sides' exponentiations run at the same time
    /// instead of one after the other (as the C spiped does).
    Agree(Secret, Box<[u8; Y_LEN]>),
}

/// One side of a spiped handshake, driven by the caller over bytes (see the module docs).
///
/// Holds the pre-shared keys, both nonces and the ephemeral DH secrets it may need until
/// one has been used; all secrets are wiped when dropped.
pub struct Handshake {
    role: Role,
    mode: Mode,
    /// Our pre-shared keys: a client uses the first; a server accepts a client that uses
    /// any of them (key rotation) and then uses that one.
    keys: Vec<Key>,
    /// Which of `keys` the connection uses: 0 until a server identifies the client's.
    key_index: usize,
    nonce: Nonce,
    peer_nonce: Nonce,
    /// The group-14 exponent: `None` in fast mode, for an X25519 client, and once a
    /// shared secret has been computed.
    secret: Option<Secret>,
    /// `2^secret mod p` when it was computed ahead ([`Handshake::use_keypair`]).
    public: Option<Box<[u8; Y_LEN]>>,
    /// The X25519 secret: held by an X25519 client and by every server (which learns the
    /// client's kind only from its message); `None` once a shared secret is computed.
    x_secret: Option<x25519::Secret>,
    /// The sealer of a fast client that sealed data to go out with its DH message
    /// ([`Handshake::seal_early`]); [`Handshake::finish`] hands out this one, with its
    /// packet counter, so no packet number is ever used twice.
    early: Option<Sealer>,
    /// The packet keys derived for `early`, which the end of the handshake takes instead
    /// of deriving them again.
    early_keys: Option<SessionKeys>,
    state: State,
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::SendNonce => "SendNonce",
            State::RecvNonce => "RecvNonce",
            State::SendDh { .. } => "SendDh",
            State::RecvDh { .. } => "RecvDh",
            State::RecvGroup14Tail { .. } => "RecvGroup14Tail",
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
    /// Starts a handshake with a fresh nonce and the ephemeral secrets this side may need
    /// (see [`Mode`]), all from the OS random number generator. No exponentiation or
    /// curve operation happens here. Fails only if the OS cannot provide randomness.
    pub fn new(role: Role, mode: Mode, key: &Key) -> Result<Handshake, getrandom::Error> {
        // One system call for all of it, since a daemon starts one handshake per
        // connection: nonce, group-14 exponent, X25519 scalar.
        let mut random = Zeroizing::new([[0u8; 32]; 3]);
        getrandom::fill(random.as_flattened_mut())?;
        let [nonce, exponent, scalar] = &*random;
        let (group14, x25519) = Handshake::needs(role, mode);
        let secret = group14.then(|| Secret::from_bytes(*exponent));
        let x_secret = x25519.then(|| x25519::Secret::from_bytes(*scalar));
        Ok(Handshake::build(role, mode, key, *nonce, secret, x_secret))
    }

    /// Starts a handshake with the given nonce and secret (for known-answer tests).
    ///
    /// `exponent` serves as the group-14 exponent and as the X25519 scalar, whichever this
    /// side needs. `None` means all zeros: a group-14 side then sends `y = 1` without
    /// being in fast mode (useful to test peers).
    pub fn with_secrets(
        role: Role,
        mode: Mode,
        key: &Key,
        nonce: Nonce,
        exponent: Option<[u8; 32]>,
    ) -> Handshake {
        let bytes = exponent.unwrap_or([0; 32]);
        let (group14, x25519) = Handshake::needs(role, mode);
        let secret = group14.then(|| Secret::from_bytes(bytes));
        let x_secret = x25519.then(|| x25519::Secret::from_bytes(bytes));
        Handshake::build(role, mode, key, nonce, secret, x_secret)
    }

    /// Whether a side in `role` and `mode` may send a group-14 public value, and so has
    /// use for key pairs computed ahead ([`Handshake::use_keypair`]).
    pub fn may_use_group14(role: Role, mode: Mode) -> bool {
        Handshake::needs(role, mode).0
    }

    /// Which secrets a side needs: (group-14 exponent, X25519 secret).
    fn needs(role: Role, mode: Mode) -> (bool, bool) {
        match role {
            Role::Client if mode.x25519 => (false, true),
            Role::Client => (!mode.fast, false),
            Role::Server => (!mode.fast, true),
        }
    }

    fn build(
        role: Role,
        mode: Mode,
        key: &Key,
        nonce: Nonce,
        secret: Option<Secret>,
        x_secret: Option<x25519::Secret>,
    ) -> Self {
        Handshake {
            role,
            mode,
            keys: vec![key.clone()],
            key_index: 0,
            nonce,
            peer_nonce: [0; 32],
            secret,
            public: None,
            x_secret,
            early: None,
            early_keys: None,
            state: State::SendNonce,
        }
    }

    /// Lets a server also accept clients that use any of `others` (key rotation: the
    /// server is given both the old and the new key while clients switch over). The
    /// client's DH message MAC is checked against every key, each comparison in constant
    /// time and all of them always made, so timing tells only how many keys there are.
    /// A client ignores `others`: it always uses the key it was created with.
    pub fn accepting_also(mut self, others: &[Key]) -> Handshake {
        if self.role == Role::Server && !others.is_empty() {
            // A new vector of the final size, not a push onto the old one: growing would
            // move the keys and free the old block with `K` still in it. Dropping the
            // old vector drops (and so wipes) its key.
            let mut keys = Vec::with_capacity(1 + others.len());
            keys.push(self.keys[0].clone());
            keys.extend_from_slice(others);
            self.keys = keys;
        }
        self
    }

    /// Which key the connection uses once `next()` is `Done`: the index among the key
    /// given to the constructor (0) and those of [`Handshake::accepting_also`] (1 on).
    pub fn key_index(&self) -> usize {
        self.key_index
    }

    /// The key agreement the handshake used, once `next()` is `Done`.
    pub fn exchange(&self) -> Option<Exchange> {
        match self.state {
            State::Done { exchange, .. } => Some(exchange),
            _ => None,
        }
    }

    /// What the driver must do now. After an error it keeps returning the step that
    /// failed; the driver must drop the connection instead of asking.
    pub fn next(&self) -> Next<'_> {
        match &self.state {
            State::SendNonce => Next::Send(&self.nonce),
            State::RecvNonce => Next::Recv(NONCE_LEN),
            State::SendDh { msg, .. } => Next::Send(msg),
            State::RecvDh { .. } => Next::Recv(self.dh_recv_len()),
            State::RecvGroup14Tail { .. } => Next::Recv(DH_MSG_LEN - X25519_MSG_LEN),
            State::Failed => Next::Recv(DH_MSG_LEN),
            State::Done { .. } => Next::Done,
        }
    }

    /// How many bytes a driver may read at once while `next()` is `Recv(n)` (at least
    /// `n`), without taking any that belong to the packets after the handshake. A
    /// client sends nothing after its DH message until it has the server's answer,
    /// except a fast client's early packets ([`Handshake::seal_early`]), which follow a
    /// group-14 message, the longest kind; so a server may read ahead to the end of a
    /// group-14 message (saving a read per message part). A server sends nothing after
    /// its nonce until it has the client's DH message, so a client may read its nonce
    /// with room to spare (a short read tells an edge-triggered driver the socket is
    /// drained, saving a read that would find nothing); but it reads the server's DH
    /// message exactly, since the server's packets may follow it at once.
    pub fn read_window(&self) -> usize {
        let Next::Recv(n) = self.next() else {
            return 0;
        };
        match (&self.state, self.role) {
            (State::RecvNonce, _) => MAX_READ_WINDOW,
            (State::RecvDh { .. }, Role::Server) => DH_MSG_LEN,
            _ => n,
        }
    }

    /// Whether the next [`Handshake::received`] call computes our group-14 public value
    /// `2^x` (a client on the server's nonce, a server on the rest of a group-14 client
    /// message), an exponentiation that [`Handshake::use_keypair`] can supply ahead.
    pub fn needs_public_next(&self) -> bool {
        let sends_group14_next = matches!(
            (&self.state, self.role),
            (State::RecvNonce, Role::Client) | (State::RecvGroup14Tail { .. }, Role::Server)
        );
        sends_group14_next && self.secret.is_some() && self.public.is_none()
    }

    /// Whether the next [`Handshake::received`] call runs a group-14 exponentiation (our
    /// public value `2^x`, or a client's shared secret): the costly steps, which a driver
    /// may want off its event loop. Nonces, X25519 and fast-mode messages are cheap.
    pub fn received_exponentiates(&self) -> bool {
        let client_agrees = matches!(self.state, State::RecvDh { .. })
            && self.role == Role::Client
            && !self.mode.x25519
            && self.secret.is_some();
        client_agrees || self.needs_public_next()
    }

    /// Replaces our group-14 exponent with `keypair`'s, whose public value is already
    /// computed. Only while [`Handshake::needs_public_next`]; otherwise (fast mode, an
    /// X25519 client, a public value already sent) returns `keypair` untouched.
    pub fn use_keypair(&mut self, keypair: dh::Keypair) -> Option<dh::Keypair> {
        if !self.needs_public_next() {
            return Some(keypair);
        }
        let (secret, public) = keypair.into_parts();
        self.secret = Some(secret);
        self.public = Some(public);
        None
    }

    /// Whether [`Handshake::sent`] will compute a group-14 shared secret (a server's,
    /// after its answer is out): an exponentiation a driver may want off its event loop.
    pub fn sent_agrees(&self) -> bool {
        matches!(
            self.state,
            State::SendDh {
                then: AfterDhSent::Agree(..),
                ..
            }
        )
    }

    /// Whether [`Handshake::seal_early`] would seal now: we are a fast client (`-f`, not
    /// `--x25519`) whose DH message is about to go out. Such a client uses `y_SC = 1`
    /// whatever the server answers, so its packet keys are known from the nonces alone.
    pub fn seals_early(&self) -> bool {
        self.role == Role::Client
            && self.mode.fast
            && !self.mode.x25519
            && matches!(
                self.state,
                State::SendDh {
                    then: AfterDhSent::RecvDh(_),
                    ..
                }
            )
    }

    /// Seals `plaintext` as data packets that go out right behind our DH message, in the
    /// same `Next::Send`, while [`Handshake::seals_early`]; returns whether it did. The
    /// first bytes a client sends then reach the server a round trip sooner. Safe with
    /// any server: the packets are the ones the client would send after the handshake,
    /// only earlier, and a server reads its handshake messages exactly (spiped does, and
    /// so does [`Handshake::read_window`]), so they wait for its packet layer. If the
    /// server's answer fails to verify they were sealed for a key only it could hold.
    pub fn seal_early(&mut self, plaintext: &[u8]) -> bool {
        if !self.seals_early() {
            return false;
        }
        if self.early.is_none() {
            let (nc, ns) = self.nonces();
            let keys = session_keys(self.key(), nc, ns, &dh::ONE);
            self.early = Some(Sealer::new(&keys.enc_c, &keys.mac_c));
            self.early_keys = Some(keys);
        }
        if let (Some(sealer), State::SendDh { msg, .. }) = (&mut self.early, &mut self.state) {
            let mut out = std::mem::take(msg).into_vec();
            sealer.seal_all(plaintext, &mut out);
            *msg = out.into_boxed_slice();
        }
        true
    }

    /// Tells the state machine that all bytes of the last `Next::Send` were written.
    /// Calling it when no send is pending is a driver bug: debug builds panic, release
    /// builds ignore the call. After a failure it is always ignored.
    pub fn sent(&mut self) {
        match std::mem::replace(&mut self.state, State::Failed) {
            State::SendNonce => self.state = State::RecvNonce,
            State::SendDh { then, .. } => {
                self.state = match then {
                    AfterDhSent::RecvDh(dhmac) => State::RecvDh {
                        dhmacs: vec![dhmac],
                    },
                    AfterDhSent::Done(keys, exchange) => State::Done { keys, exchange },
                    AfterDhSent::Agree(x, peer_y) => State::Done {
                        keys: self.group14_keys(&x, &peer_y),
                        exchange: Exchange::Group14,
                    },
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
    /// Validates the peer's DH message: the MAC in constant time, then for group 14
    /// `y < p` and `-g`, for X25519 that the shared secret is not all zeros.
    /// Any error, including a wrong length or an unexpected call, fails the handshake for
    /// good: later calls return [`HandshakeError::Unexpected`] and [`Handshake::finish`]
    /// returns `None`. Never panics, whatever the bytes.
    pub fn received(&mut self, bytes: &[u8]) -> Result<(), HandshakeError> {
        let result = match std::mem::replace(&mut self.state, State::Failed) {
            State::RecvNonce => self.on_nonce(bytes),
            State::RecvDh { dhmacs } => self.on_dh(bytes, dhmacs),
            State::RecvGroup14Tail { dhmacs, head } => {
                let tail_len = DH_MSG_LEN - X25519_MSG_LEN;
                if bytes.len() == tail_len {
                    self.on_group14(&[&head[..], bytes].concat(), &dhmacs)
                } else {
                    Err(HandshakeError::WrongLength {
                        expected: tail_len,
                        got: bytes.len(),
                    })
                }
            }
            _ => Err(HandshakeError::Unexpected),
        };
        if result.is_err() {
            self.state = State::Failed;
            self.secret = None;
            self.x_secret = None;
        }
        result
    }

    /// The packet keys once `next()` is `Done`: a [`Sealer`] for the direction we send
    /// (client: `E_C`/`H_C`; server: `E_S`/`H_S`) and an [`Opener`] for the peer's.
    /// `None` if the handshake has not finished or has failed, and once the keys were
    /// taken: the session keys are handed out once and wiped right here.
    pub fn finish(&mut self) -> Option<(Sealer, Opener)> {
        let State::Done { keys, .. } = std::mem::replace(&mut self.state, State::Failed) else {
            return None;
        };
        Some(match self.role {
            // Keys of a fast client: the early sealer's (see `seal_early`).
            Role::Client => (
                self.early
                    .take()
                    .unwrap_or_else(|| Sealer::new(&keys.enc_c, &keys.mac_c)),
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

    /// How many bytes to read for the peer's DH message: a client knows which kind its
    /// server answers with; a server reads what both kinds begin with.
    fn dh_recv_len(&self) -> usize {
        match self.role {
            Role::Client if self.mode.x25519 => X25519_MSG_LEN,
            Role::Client => DH_MSG_LEN,
            Role::Server => X25519_MSG_LEN,
        }
    }

    /// Our key for MACing our DH message, and the peer's for checking theirs.
    fn mac_keys<'k>(&self, dhmac: &'k DhMacKeys) -> (&'k [u8; 32], &'k [u8; 32]) {
        match self.role {
            Role::Client => (&dhmac.client, &dhmac.server),
            Role::Server => (&dhmac.server, &dhmac.client),
        }
    }

    /// Our group-14 DH message `y || HMAC(dhmac_own, y)`.
    fn our_dh_message(&self, dhmac: &DhMacKeys) -> Box<[u8]> {
        let y = match (&self.secret, &self.public) {
            (Some(_), Some(y)) => **y,
            (Some(x), None) => dh::public(x),
            (None, _) => dh::ONE,
        };
        let tag = hmac_sha256(self.mac_keys(dhmac).0)
            .chain_update(y)
            .finalize()
            .into_bytes();
        [&y[..], &tag[..]].concat().into_boxed_slice()
    }

    /// Our X25519 DH message `pub || HMAC(dhmac_own, MAC_LABEL || pub)`, or `None` if we
    /// hold no X25519 secret (never the case where it is called).
    fn our_x25519_message(&self, dhmac: &DhMacKeys) -> Option<Box<[u8]>> {
        let public = self.x_secret.as_ref()?.public();
        let tag = hmac_sha256(self.mac_keys(dhmac).0)
            .chain_update(x25519::MAC_LABEL)
            .chain_update(public)
            .finalize()
            .into_bytes();
        Some([&public[..], &tag[..]].concat().into_boxed_slice())
    }

    /// Which of our keys authenticated `tag` over the concatenation of `parts`, as the
    /// peer's MAC key of each of `dhmacs` (ours in the same order) would compute it.
    ///
    /// Every key's MAC is computed and compared in constant time, and the index is
    /// picked without branching on which compared equal, so the time taken depends only
    /// on the number of keys (public), never on which key, if any, matched.
    fn verify_peer_mac(&self, dhmacs: &[DhMacKeys], parts: &[&[u8]], tag: &[u8]) -> Option<usize> {
        let mut found = Choice::from(0);
        let mut index = 0u32;
        for (i, dhmac) in (0u32..).zip(dhmacs) {
            let mut mac = hmac_sha256(self.mac_keys(dhmac).1);
            for part in parts {
                mac.update(part);
            }
            let ok = mac.finalize().into_bytes().as_slice().ct_eq(tag);
            index.conditional_assign(&i, ok & !found);
            found |= ok;
        }
        // Lossless: the index came from a u32 counter over a slice.
        bool::from(found).then_some(index as usize)
    }

    /// The index of our key and the peer's public key, if `msg` is an X25519 DH message
    /// whose MAC verifies under one of our keys (see [`Handshake::verify_peer_mac`]).
    fn peer_x25519_key(
        &self,
        msg: &[u8],
        dhmacs: &[DhMacKeys],
    ) -> Option<(usize, [u8; x25519::KEY_LEN])> {
        let (public, tag) = msg.split_at_checked(x25519::KEY_LEN)?;
        let index = self.verify_peer_mac(dhmacs, &[x25519::MAC_LABEL, public], tag)?;
        Some((index, public.try_into().ok()?))
    }

    /// The key this connection uses.
    fn key(&self) -> &Key {
        &self.keys[self.key_index]
    }

    fn on_nonce(&mut self, bytes: &[u8]) -> Result<(), HandshakeError> {
        self.peer_nonce = bytes.try_into().map_err(|_| HandshakeError::WrongLength {
            expected: NONCE_LEN,
            got: bytes.len(),
        })?;
        let (nc, ns) = self.nonces();
        let dhmac = dhmac_keys(self.key(), nc, ns);
        self.state = match self.role {
            Role::Client => State::SendDh {
                msg: if self.mode.x25519 {
                    self.our_x25519_message(&dhmac)
                        .ok_or(HandshakeError::Unexpected)?
                } else {
                    self.our_dh_message(&dhmac)
                },
                then: AfterDhSent::RecvDh(dhmac),
            },
            Role::Server => State::RecvDh {
                dhmacs: self.keys.iter().map(|k| dhmac_keys(k, nc, ns)).collect(),
            },
        };
        Ok(())
    }

    /// The peer's DH message, or (server) its first 64 bytes.
    fn on_dh(&mut self, bytes: &[u8], dhmacs: Vec<DhMacKeys>) -> Result<(), HandshakeError> {
        let expected = self.dh_recv_len();
        if bytes.len() != expected {
            return Err(HandshakeError::WrongLength {
                expected,
                got: bytes.len(),
            });
        }
        match self.role {
            // A client never falls back from what it asked for: that is what makes a
            // downgrade impossible.
            Role::Client if self.mode.x25519 => {
                let (index, peer) = self
                    .peer_x25519_key(bytes, &dhmacs)
                    .ok_or(HandshakeError::BadMac)?;
                self.on_x25519(&peer, index, &dhmacs)
            }
            Role::Client => self.on_group14(bytes, &dhmacs),
            Role::Server => match self.peer_x25519_key(bytes, &dhmacs) {
                Some((index, peer)) => self.on_x25519(&peer, index, &dhmacs),
                None => {
                    // Not an X25519 message, so it can only be the start of a group-14
                    // one (which the full MAC check will tell).
                    let mut head = [0u8; X25519_MSG_LEN];
                    head.copy_from_slice(bytes);
                    self.state = State::RecvGroup14Tail { dhmacs, head };
                    Ok(())
                }
            },
        }
    }

    /// The peer's X25519 public key, MAC-verified under our key number `index`.
    fn on_x25519(
        &mut self,
        peer: &[u8; 32],
        index: usize,
        dhmacs: &[DhMacKeys],
    ) -> Result<(), HandshakeError> {
        self.key_index = index;
        let dhmac = &dhmacs[index];
        let reply = match self.role {
            Role::Client => None,
            Role::Server => Some(
                self.our_x25519_message(dhmac)
                    .ok_or(HandshakeError::Unexpected)?,
            ),
        };
        // Only one key agreement per connection: drop the group-14 exponent unused.
        self.secret = None;
        let secret = self.x_secret.take().ok_or(HandshakeError::Unexpected)?;
        let shared = secret.agree(peer).ok_or(HandshakeError::LowOrder)?;
        let (nc, ns) = self.nonces();
        let keys = x25519_session_keys(self.key(), nc, ns, shared.as_bytes());
        self.dh_done(keys, Exchange::X25519, reply);
        Ok(())
    }

    /// The peer's whole group-14 DH message.
    fn on_group14(&mut self, bytes: &[u8], dhmacs: &[DhMacKeys]) -> Result<(), HandshakeError> {
        let (y, tag) = bytes
            .split_at_checked(Y_LEN)
            .ok_or(HandshakeError::Unexpected)?;
        let index = self
            .verify_peer_mac(dhmacs, &[y], tag)
            .ok_or(HandshakeError::BadMac)?;
        self.key_index = index;
        let dhmac = &dhmacs[index];
        let mut peer_y = [0u8; Y_LEN];
        peer_y.copy_from_slice(y);
        if !dh::is_acceptable_peer_value(&peer_y) {
            return Err(HandshakeError::BadDhValue);
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
        self.x_secret = None;
        match (self.secret.take().filter(|_| peer_y != dh::ONE), reply) {
            (Some(x), Some(msg)) => {
                self.state = State::SendDh {
                    msg,
                    then: AfterDhSent::Agree(x, Box::new(peer_y)),
                };
            }
            (Some(x), None) => {
                let keys = self.group14_keys(&x, &peer_y);
                self.dh_done(keys, Exchange::Group14, None);
            }
            (None, reply) => {
                let keys = self.early_keys.take().unwrap_or_else(|| {
                    let (nc, ns) = self.nonces();
                    session_keys(self.key(), nc, ns, &dh::ONE)
                });
                self.dh_done(keys, Exchange::Fast, reply);
            }
        }
        Ok(())
    }

    /// The session keys from our exponent `x` and the peer's `peer_y` (one modular
    /// exponentiation); the shared secret is wiped before returning.
    fn group14_keys(&self, x: &Secret, peer_y: &[u8; Y_LEN]) -> SessionKeys {
        let mut shared = dh::shared(x, peer_y);
        let (nc, ns) = self.nonces();
        let keys = session_keys(self.key(), nc, ns, &shared);
        shared.zeroize();
        keys
    }

    /// After the peer's DH message checked out: a client is done, a server sends `reply`.
    fn dh_done(&mut self, keys: SessionKeys, exchange: Exchange, reply: Option<Box<[u8]>>) {
        self.state = match reply {
            None => State::Done { keys, exchange },
            Some(msg) => State::SendDh {
                msg,
                then: AfterDhSent::Done(keys, exchange),
            },
        };
    }
}

/// Runs a client and a server handshake against each other over in-memory buffers until
/// both are done; returns the first error and the side that reported it. No sockets,
/// so it times the handshake's computation alone (`spiped bench`) and lets tests
/// tamper with nothing but the state machines.
///
/// Two correct state machines never wait for each other; if they ever did, this returns
/// `(Role::Client, HandshakeError::Unexpected)` rather than loop.
pub fn drive(client: &mut Handshake, server: &mut Handshake) -> Result<(), (Role, HandshakeError)> {
    let mut to_client = Vec::new();
    let mut to_server = Vec::new();
    loop {
        let c = step(client, &mut to_client, &mut to_server).map_err(|e| (Role::Client, e))?;
        let s = step(server, &mut to_server, &mut to_client).map_err(|e| (Role::Server, e))?;
        if matches!((client.next(), server.next()), (Next::Done, Next::Done)) {
            return Ok(());
        }
        if !c && !s {
            return Err((Role::Client, HandshakeError::Unexpected));
        }
    }
}

/// One step of one side of an in-memory handshake ([`drive`], tests, fuzzing): appends
/// what it sends to `outbox`, or consumes what it waits for from `inbox` if that has
/// arrived. Returns whether anything happened, or the error if it refused the bytes.
pub fn step(
    hs: &mut Handshake,
    inbox: &mut Vec<u8>,
    outbox: &mut Vec<u8>,
) -> Result<bool, HandshakeError> {
    match hs.next() {
        Next::Send(bytes) => {
            outbox.extend_from_slice(bytes);
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
    use super::*;
    use crate::kat::{self, hex_array, hex_field};
    use crate::packet::PACKET_LEN;
    use crate::x25519::tests::LOW_ORDER;

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
        while let Next::Recv(n) = hs.next() {
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
            // The server reads what an X25519 message would be, then the rest.
            assert_eq!(s.next(), Next::Recv(64));
            s.received(&y_c_msg[..64]).unwrap();
            assert_eq!(s.next(), Next::Recv(224));
            s.received(&y_c_msg[64..]).unwrap();
            let y_s_msg = hex_field(&m, "y_S_msg_hex");
            assert_eq!(s.next(), Next::Send(&y_s_msg[..]), "pfs={pfs}");
            // A PFS server answers first and exponentiates once its answer is out.
            assert_eq!(s.sent_agrees(), pfs);
            s.sent();
            assert!(!s.sent_agrees());
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
            if hs.needs_public_next() {
                assert!(hs.use_keypair(spare()).is_none());
                assert!(!hs.needs_public_next());
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
    /// ([`Handshake::received_exponentiates`]), and whether the server's `sent` agrees.
    fn costly_steps(c_mode: Mode, s_mode: Mode) -> (usize, usize, bool) {
        let mut c = Handshake::new(Role::Client, c_mode, &key()).unwrap();
        let mut s = Handshake::new(Role::Server, s_mode, &key()).unwrap();
        let (mut to_c, mut to_s) = (Vec::new(), Vec::new());
        let (mut costly_c, mut costly_s, mut agrees) = (0, 0, false);
        for _ in 0..8 {
            let receiving = |hs: &Handshake, inbox: &Vec<u8>| matches!(hs.next(), Next::Recv(n) if inbox.len() >= n);
            costly_c += usize::from(receiving(&c, &to_c) && c.received_exponentiates());
            step(&mut c, &mut to_c, &mut to_s).unwrap();
            costly_s += usize::from(receiving(&s, &to_s) && s.received_exponentiates());
            agrees |= s.sent_agrees();
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
            assert!(c.seals_early());
            assert!(c.seal_early(b"PROXY first\r\n") && c.seal_early(&data));
            let Next::Send(msg) = c.next() else {
                panic!("the client should send its DH message");
            };
            assert_eq!(msg.len(), DH_MSG_LEN + 3 * PACKET_LEN);
            let packets = msg[DH_MSG_LEN..].to_vec();
            step(&mut c, &mut to_c, &mut to_s).unwrap();
            assert!(
                !c.seals_early() && !c.seal_early(b"late"),
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
                assert!(!hs.seals_early() && !hs.seal_early(b"x"), "{role:?} {m:?}");
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
        let mut c =
            Handshake::with_secrets(Role::Client, mode(false, false), &key(), [1; 32], None);
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
            assert!(matches!(s.next(), Next::Send(b) if b.len() == 288));
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
        assert_eq!(s.next(), Next::Recv(64));
        s.received(&x25519_msg(&client, x25519::MAC_LABEL, &mac))
            .unwrap();
        let Next::Send(reply) = s.next() else {
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
            assert_eq!(s.next(), Next::Recv(224), "bit {bit}");
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
        assert_eq!(s.next(), Next::Recv(224));
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
        assert_eq!(s.next(), Next::Recv(224));

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
        assert_eq!(s.next(), Next::Recv(224));
        s.received(&legacy[64..]).unwrap();
        assert!(matches!(s.next(), Next::Send(b) if b.len() == 288));

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
        let c = Handshake::new(Role::Client, x_mode(), &key()).unwrap();
        assert!(c.secret.is_none() && c.x_secret.is_some());
        // -f is overridden by --x25519 (the CLI rejects the pair).
        let md = Mode {
            fast: true,
            ..x_mode()
        };
        let c = Handshake::new(Role::Client, md, &key()).unwrap();
        assert!(c.secret.is_none() && c.x_secret.is_some());
        let c = Handshake::new(Role::Client, mode(false, false), &key()).unwrap();
        assert!(c.x_secret.is_none());
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
    /// `cargo test --release --lib proto::handshake -- --ignored --nocapture`.
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
}
