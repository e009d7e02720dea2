//! The key schedule against the known-answer vectors.

mod common;

use common::kat::{hex_array, hex_field, kat, mode};
use spiped_proto::key::*;

#[test]
fn kat_key_and_dhmac() {
    let v = kat();
    let key = Key::from_file_contents(&hex_field(&v, "key_file_hex"));
    assert_eq!(key.as_bytes(), &hex_array::<32>(&v, "K"));
    let nc = hex_array::<32>(&v, "nonce_C");
    let ns = hex_array::<32>(&v, "nonce_S");
    let dk = dhmac_keys(&key, &nc, &ns);
    assert_eq!(dk.client, hex_array::<32>(&v, "dhmac_C"));
    assert_eq!(dk.server, hex_array::<32>(&v, "dhmac_S"));
}

#[test]
fn kat_session_keys() {
    let v = kat();
    let key = Key::from_file_contents(&hex_field(&v, "key_file_hex"));
    let nc = hex_array::<32>(&v, "nonce_C");
    let ns = hex_array::<32>(&v, "nonce_S");
    for pfs in [false, true] {
        let m = mode(&v, pfs);
        let sk = session_keys(&key, &nc, &ns, &hex_field(&m, "y_SC_hex"));
        assert_eq!(sk.enc_c, hex_array::<32>(&m, "E_C"));
        assert_eq!(sk.mac_c, hex_array::<32>(&m, "H_C"));
        assert_eq!(sk.enc_s, hex_array::<32>(&m, "E_S"));
        assert_eq!(sk.mac_s, hex_array::<32>(&m, "H_S"));
    }
}

#[test]
fn x25519_session_keys_differ_from_group14() {
    // Same key, nonces and the 32 shared bytes padded as a group-14 y_SC would be:
    // the label and salt length keep the derivations apart.
    let key = Key::from_file_contents(b"k");
    let (nc, ns) = ([1; 32], [2; 32]);
    let shared = [3; 32];
    let mut padded = [0u8; 256];
    padded[224..].copy_from_slice(&shared);
    let x = x25519_session_keys(&key, &nc, &ns, &shared);
    let g = session_keys(&key, &nc, &ns, &padded);
    assert_ne!(x.enc_c, g.enc_c);
    assert_ne!(x.mac_s, g.mac_s);
    let unlabelled = session_keys(&key, &nc, &ns, &shared);
    assert_ne!(x.enc_c, unlabelled.enc_c);
}

#[test]
fn debug_hides_secret() {
    let key = Key::from_file_contents(b"secret");
    let s = format!("{key:?}");
    assert!(!s.contains(&hex::encode(key.as_bytes())));
    assert!(!s.contains(&format!("{:?}", key.as_bytes()[0..4].to_vec())));
}
