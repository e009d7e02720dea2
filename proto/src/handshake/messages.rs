//! The DH messages: ours, built and MACed, and the peer's, MAC-checked against each of
//! our keys in constant time.

use hmac::Mac;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::{Handshake, Role};
use crate::dh;
use crate::key::DhMacKeys;
use crate::packet::hmac_sha256;
use crate::x25519;

impl Handshake {
    /// Our key for MACing our DH message, and the peer's for checking theirs.
    pub(super) fn mac_keys<'k>(&self, dhmac: &'k DhMacKeys) -> (&'k [u8; 32], &'k [u8; 32]) {
        match self.role {
            Role::Client => (&dhmac.client, &dhmac.server),
            Role::Server => (&dhmac.server, &dhmac.client),
        }
    }

    /// Our group-14 DH message `y || HMAC(dhmac_own, y)`.
    pub(super) fn our_dh_message(&self, dhmac: &DhMacKeys) -> Box<[u8]> {
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
    pub(super) fn our_x25519_message(&self, dhmac: &DhMacKeys) -> Option<Box<[u8]>> {
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
    pub(super) fn verify_peer_mac(
        &self,
        dhmacs: &[DhMacKeys],
        parts: &[&[u8]],
        tag: &[u8],
    ) -> Option<usize> {
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
    pub(super) fn peer_x25519_key(
        &self,
        msg: &[u8],
        dhmacs: &[DhMacKeys],
    ) -> Option<(usize, [u8; x25519::KEY_LEN])> {
        let (public, tag) = msg.split_at_checked(x25519::KEY_LEN)?;
        let index = self.verify_peer_mac(dhmacs, &[x25519::MAC_LABEL, public], tag)?;
        Some((index, public.try_into().ok()?))
    }
}
