//! The steps of the handshake: what its driver must do next, with what the driver needs
//! to know to do it well (how far to read ahead, what is costly, when early data may go).

use super::{
    AfterDhSent, DH_MSG_LEN, Handshake, MAX_READ_WINDOW, NONCE_LEN, Role, State, X25519_MSG_LEN,
};

/// What the driver must do next, with what it needs to know to do it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// Write all of these bytes to the peer, then call [`Handshake::sent`].
    Send(Outgoing<'a>),
    /// Read exactly this many bytes from the peer and pass them to [`Handshake::received`].
    Recv(Incoming),
    /// The handshake succeeded; call [`Handshake::finish`].
    Done,
}

/// A message to send ([`Next::Send`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outgoing<'a> {
    /// The bytes to write, all of them, before calling [`Handshake::sent`].
    pub bytes: &'a [u8],
    /// Whether [`Handshake::sent`] then computes a group-14 shared secret (a server's,
    /// after its answer is out): an exponentiation a driver may want off its event loop.
    pub agrees: bool,
    /// Whether [`Handshake::seal_early`] would seal now: we are a fast client (`-f`,
    /// not `--x25519`) whose DH message this is. Such a client uses `y_SC = 1` whatever
    /// the server answers, so its packet keys are known from the nonces alone.
    pub may_seal_early: bool,
}

/// A message to receive ([`Next::Recv`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// How many bytes to pass to [`Handshake::received`], exactly.
    pub len: usize,
    /// How many bytes the driver may read at once (at least `len`), without taking any
    /// that belong to the packets after the handshake. A client sends nothing after
    /// its DH message until it has the server's answer, except a fast client's early
    /// packets ([`Handshake::seal_early`]), which follow a group-14 message, the longest
    /// kind; so a server may read ahead to the end of a group-14 message (saving a read
    /// per message part). A server sends nothing after its nonce until it has the
    /// client's DH message, so a client may read its nonce with room to spare (a short
    /// read tells an edge-triggered driver the socket is drained, saving a read that
    /// would find nothing); but it reads the server's DH message exactly, since the
    /// server's packets may follow it at once. At most [`MAX_READ_WINDOW`].
    pub window: usize,
    /// Whether [`Handshake::received`] computes a group-14 shared secret (a client's,
    /// on the server's answer): an exponentiation a driver may want off its event loop.
    pub agrees: bool,
    /// Whether [`Handshake::received`] computes our group-14 public value `2^x` (a
    /// client on the server's nonce, a server on the rest of a group-14 client
    /// message), an exponentiation a key pair computed ahead saves: give one to
    /// [`Handshake::use_keypair`] first.
    pub wants_keypair: bool,
}

impl Incoming {
    /// Whether [`Handshake::received`] runs a group-14 exponentiation (the costly step:
    /// nonces, X25519 and fast-mode messages are cheap), given whether the driver gave
    /// it a key pair computed ahead ([`Incoming::wants_keypair`]).
    pub fn exponentiates(&self, keypair_given: bool) -> bool {
        self.agrees || (self.wants_keypair && !keypair_given)
    }
}

impl Handshake {
    /// What the driver must do now. After an error it keeps returning the step that
    /// failed; the driver must drop the connection instead of asking.
    pub fn next(&self) -> Next<'_> {
        let send = |bytes| {
            Next::Send(Outgoing {
                bytes,
                agrees: self.sent_agrees(),
                may_seal_early: self.seals_early(),
            })
        };
        let recv = |len, window| {
            Next::Recv(Incoming {
                len,
                window,
                agrees: self.received_agrees(),
                wants_keypair: self.needs_public_next(),
            })
        };
        match (&self.state, self.role) {
            (State::SendNonce, _) => send(&self.nonce),
            (State::RecvNonce, _) => recv(NONCE_LEN, MAX_READ_WINDOW),
            (State::SendDh { msg, .. }, _) => send(msg),
            (State::RecvDh { .. }, Role::Server) => recv(X25519_MSG_LEN, DH_MSG_LEN),
            (State::RecvDh { .. }, Role::Client) => {
                let len = self.dh_recv_len();
                recv(len, len)
            }
            (State::RecvGroup14Tail { .. }, _) => {
                let len = DH_MSG_LEN - X25519_MSG_LEN;
                recv(len, len)
            }
            (State::Failed, _) => recv(DH_MSG_LEN, DH_MSG_LEN),
            (State::Done { .. }, _) => Next::Done,
        }
    }

    /// See [`Incoming::wants_keypair`].
    pub(super) fn needs_public_next(&self) -> bool {
        let sends_group14_next = matches!(
            (&self.state, self.role),
            (State::RecvNonce, Role::Client) | (State::RecvGroup14Tail { .. }, Role::Server)
        );
        sends_group14_next && self.secret.is_some() && self.public.is_none()
    }

    /// See [`Incoming::agrees`].
    fn received_agrees(&self) -> bool {
        matches!(self.state, State::RecvDh { .. })
            && self.role == Role::Client
            && !self.mode.x25519
            && self.secret.is_some()
    }

    /// See [`Outgoing::agrees`].
    fn sent_agrees(&self) -> bool {
        matches!(
            self.state,
            State::SendDh {
                then: AfterDhSent::Agree(..),
                ..
            }
        )
    }

    /// See [`Outgoing::may_seal_early`].
    pub(super) fn seals_early(&self) -> bool {
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
}
