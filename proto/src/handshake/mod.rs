//! The spiped handshake as a sans-IO state machine.
//!
//! The driver loops on [`Handshake::next`]: for `Send` it writes all of its bytes and
//! calls [`Handshake::sent`]; for `Recv` it reads exactly its `len` bytes and passes them
//! to [`Handshake::received`]; at `Done` it calls [`Handshake::finish`] for the packet
//! keys. Any error means the connection must be dropped. Each step also tells the driver
//! what it may do to go faster (as rustls's unbuffered API attaches "may send now" to
//! the state it returns): how far it may read ahead, which calls run a costly
//! exponentiation it may want off its event loop, when a key pair computed ahead helps,
//! and when early data may go out.
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

use zeroize::Zeroizing;

use super::dh::{self, Secret, Y_LEN};
use super::key::{DhMacKeys, Key, Nonce, SessionKeys, session_keys};
use super::packet::{Opener, Sealer};
use super::x25519;

mod error;
mod memory;
mod messages;
mod mode;
mod next;
mod receive;

pub use error::HandshakeError;
pub use memory::drive;
#[cfg(feature = "test-util")]
pub use memory::step;
pub use mode::{Exchange, Mode, Role};
pub use next::{Incoming, Next, Outgoing};

/// Length of a nonce message.
const NONCE_LEN: usize = 32;
/// The largest [`Incoming::window`]: a nonce and a group-14 message.
pub const MAX_READ_WINDOW: usize = NONCE_LEN + DH_MSG_LEN;

/// Length of a group-14 DH message: `y || HMAC-SHA256(dhmac_own, y)`.
const DH_MSG_LEN: usize = Y_LEN + 32;

/// Length of an X25519 DH message: `pub || HMAC-SHA256(dhmac_own, MAC_LABEL || pub)`.
/// Shorter than a group-14 message, so a server can read this much of either.
const X25519_MSG_LEN: usize = x25519::KEY_LEN + 32;
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
    #[cfg(feature = "test-util")]
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

    /// Replaces our group-14 exponent with `keypair`'s, whose public value is already
    /// computed. Only while the step is a `Recv` that [`Incoming::wants_keypair`];
    /// otherwise (fast mode, an X25519 client, a public value already sent) returns
    /// `keypair` untouched.
    pub fn use_keypair(&mut self, keypair: dh::Keypair) -> Option<dh::Keypair> {
        if !self.needs_public_next() {
            return Some(keypair);
        }
        let (secret, public) = keypair.into_parts();
        self.secret = Some(secret);
        self.public = Some(public);
        None
    }

    /// Seals `plaintext` as data packets that go out right behind our DH message, in the
    /// same `Next::Send`, while [`Outgoing::may_seal_early`]; returns whether it did. The
    /// first bytes a client sends then reach the server a round trip sooner. Safe with
    /// any server: the packets are the ones the client would send after the handshake,
    /// only earlier, and a server reads its handshake messages exactly (spiped does, and
    /// so does [`Incoming::window`]), so they wait for its packet layer. If the
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

    /// The key this connection uses.
    fn key(&self) -> &Key {
        &self.keys[self.key_index]
    }
}
