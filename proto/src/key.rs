//! The key schedule: the pre-shared key `K` and the two PBKDF2 derivations of the handshake.

use core::fmt;

use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The pre-shared key `K = SHA-256(key file contents)`.
///
/// Wiped from memory when dropped; its `Debug` output never shows the secret.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key([u8; 32]);

impl Key {
    /// Derives `K` from the whole key file, whatever its length or contents (spiped hashes
    /// the file rather than using it directly, so any file works as a key).
    pub fn from_file_contents(bytes: &[u8]) -> Key {
        let mut h = KeyHasher::new();
        h.update(bytes);
        h.finish()
    }

    /// The 32 bytes of `K`.
    #[cfg_attr(feature = "test-util", visibility::make(pub))]
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `other` is the same key, compared in constant time (as every comparison
    /// of secrets is).
    pub fn same_as(&self, other: &Key) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// Computes `K` from a key file given in pieces, so that a file of any size needs only
/// one piece in memory at a time. The hash state is wiped when dropped.
pub struct KeyHasher(Sha256);

impl KeyHasher {
    /// Starts hashing an empty key file.
    pub fn new() -> KeyHasher {
        KeyHasher(Sha256::new())
    }

    /// Appends the next piece of the key file.
    pub fn update(&mut self, piece: &[u8]) {
        self.0.update(piece);
    }

    /// `K` for the pieces given so far, written straight into the key (no temporary
    /// copy of it is left behind).
    pub fn finish(self) -> Key {
        let mut key = Key([0; 32]);
        self.0.finalize_into((&mut key.0).into());
        key
    }
}

impl Default for KeyHasher {
    fn default() -> Self {
        KeyHasher::new()
    }
}

/// A 32-byte handshake nonce, drawn fresh from the OS by each side per connection.
pub type Nonce = [u8; 32];

/// The keys that authenticate the Diffie-Hellman messages: `dhmac_C || dhmac_S`.
///
/// Wiped from memory when dropped.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
// The fields are public for test-util's known-answer tests; the attribute above cannot
// reach them, and without test-util nothing outside the crate reaches the type.
#[cfg_attr(not(feature = "test-util"), allow(unreachable_pub))]
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct DhMacKeys {
    /// Authenticates the client's `y` (`dhmac_C`).
    pub client: [u8; 32],
    /// Authenticates the server's `y` (`dhmac_S`).
    pub server: [u8; 32],
}

impl fmt::Debug for DhMacKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DhMacKeys(<redacted>)")
    }
}

/// Derives the DH-message MAC keys:
/// `PBKDF2-HMAC-SHA256(K, nonce_C || nonce_S, 1 iteration, 64 bytes)`.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn dhmac_keys(key: &Key, nonce_c: &Nonce, nonce_s: &Nonce) -> DhMacKeys {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(nonce_c);
    salt[32..].copy_from_slice(nonce_s);
    let mut dk = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha256>(key.as_bytes(), &salt, 1, &mut dk);
    let mut keys = DhMacKeys {
        client: [0; 32],
        server: [0; 32],
    };
    keys.client.copy_from_slice(&dk[..32]);
    keys.server.copy_from_slice(&dk[32..]);
    dk.zeroize();
    keys
}

/// The four data-path keys of a connection: `E_C || H_C || E_S || H_S`.
///
/// The client encrypts with `enc_c`/`mac_c` and the server with `enc_s`/`mac_s`.
/// Wiped from memory when dropped.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
// The fields are public for test-util's known-answer tests; the attribute above cannot
// reach them, and without test-util nothing outside the crate reaches the type.
#[cfg_attr(not(feature = "test-util"), allow(unreachable_pub))]
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct SessionKeys {
    /// AES-256 key for client-to-server packets (`E_C`).
    pub enc_c: [u8; 32],
    /// HMAC-SHA256 key for client-to-server packets (`H_C`).
    pub mac_c: [u8; 32],
    /// AES-256 key for server-to-client packets (`E_S`).
    pub enc_s: [u8; 32],
    /// HMAC-SHA256 key for server-to-client packets (`H_S`).
    pub mac_s: [u8; 32],
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKeys(<redacted>)")
    }
}

/// Derives the session keys:
/// `PBKDF2-HMAC-SHA256(K, nonce_C || nonce_S || y_SC, 1 iteration, 128 bytes)`.
///
/// `shared` is the 256-byte big-endian shared secret `y_SC` (see [`crate::dh`]).
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn session_keys(
    key: &Key,
    nonce_c: &Nonce,
    nonce_s: &Nonce,
    shared: &[u8],
) -> SessionKeys {
    derive_session_keys(key, &[nonce_c, nonce_s, shared])
}

/// Domain label of the X25519 extension's session-key derivation (see PROTOCOL.md).
pub(crate) const X25519_KEYS_LABEL: &[u8; 29] = b"spiped-x25519-v1 session keys";

/// Derives the session keys of the X25519 extension:
/// `PBKDF2-HMAC-SHA256(K, nonce_C || nonce_S || X25519_KEYS_LABEL || shared, 1, 128)`.
///
/// The salt is 125 bytes long where group 14's is 320 and the DH MAC keys' is 64, so
/// these keys are unrelated to any key the original protocol derives.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn x25519_session_keys(
    key: &Key,
    nonce_c: &Nonce,
    nonce_s: &Nonce,
    shared: &[u8; 32],
) -> SessionKeys {
    derive_session_keys(key, &[nonce_c, nonce_s, X25519_KEYS_LABEL, shared])
}

/// `PBKDF2-HMAC-SHA256(K, concatenation of salt_parts, 1 iteration, 128 bytes)`, split
/// into `E_C || H_C || E_S || H_S`.
fn derive_session_keys(key: &Key, salt_parts: &[&[u8]]) -> SessionKeys {
    let mut salt = salt_parts.concat();
    let mut dk = [0u8; 128];
    pbkdf2::pbkdf2_hmac::<Sha256>(key.as_bytes(), &salt, 1, &mut dk);
    // The salt holds the DH shared secret.
    salt.zeroize();
    let mut keys = SessionKeys {
        enc_c: [0; 32],
        mac_c: [0; 32],
        enc_s: [0; 32],
        mac_s: [0; 32],
    };
    keys.enc_c.copy_from_slice(&dk[..32]);
    keys.mac_c.copy_from_slice(&dk[32..64]);
    keys.enc_s.copy_from_slice(&dk[64..96]);
    keys.mac_s.copy_from_slice(&dk[96..]);
    dk.zeroize();
    keys
}
