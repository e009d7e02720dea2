//! `spiped bench`'s figures of the cryptography alone, on one thread: the primitives
//! (AES-256-CTR, HMAC-SHA256, straight from the crates), whole packets (the sealer and
//! opener the daemon uses) and handshakes (two state machines talking in memory).

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes::Aes256;
use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use spiped_proto::handshake::{Handshake, Mode, Role, drive};
use spiped_proto::key::Key;
use spiped_proto::packet::{Opener, PACKET_LEN, PAYLOAD_MAX, PacketError, Sealer};

/// Bytes per call of the throughput loops: big enough to hide the loop, small enough
/// to stay in cache as the daemon's batches (8 to 256 packets, see pump.rs) do.
pub(super) const CHUNK: usize = 64 * PAYLOAD_MAX;

/// Megabytes (10^6 bytes) per second, from calls per second of `CHUNK` bytes each.
fn mb_per_s(calls_per_s: f64) -> f64 {
    calls_per_s * CHUNK as f64 / 1e6
}

/// A fresh random 32-byte key (so no figure can profit from a constant).
pub(super) fn random_key() -> Result<[u8; 32], String> {
    let mut k = [0u8; 32];
    getrandom::fill(&mut k).map_err(|e| format!("cannot get random bytes from the OS: {e}"))?;
    Ok(k)
}

pub(super) fn aes_ctr(budget: Duration) -> Result<f64, String> {
    let mut cipher = ctr::Ctr64BE::<Aes256>::new_from_slices(&random_key()?, &[0; 16])
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; CHUNK];
    rate(budget, || {
        cipher.apply_keystream(black_box(&mut buf));
        Ok(())
    })
    .map(mb_per_s)
}

pub(super) fn hmac(budget: Duration) -> Result<f64, String> {
    let keyed = Hmac::<Sha256>::new_from_slice(&random_key()?).map_err(|e| e.to_string())?;
    let buf = vec![0u8; CHUNK];
    rate(budget, || {
        let mut m = keyed.clone();
        m.update(black_box(&buf));
        black_box(m.finalize());
        Ok(())
    })
    .map(mb_per_s)
}

/// Sealing as the daemon does it: a batch at a time, two packets' MACs at once.
pub(super) fn seal(budget: Duration) -> Result<f64, String> {
    let mut sealer = Sealer::new(&random_key()?, &random_key()?);
    let plain = vec![0u8; CHUNK];
    let mut sealed = vec![0u8; CHUNK / PAYLOAD_MAX * PACKET_LEN];
    rate(budget, || {
        sealer.seal_into(black_box(&plain), &mut sealed);
        Ok(())
    })
    .map(mb_per_s)
}

/// Sealing one packet per call: a single SHA-256 stream per MAC.
pub(super) fn seal_single(budget: Duration) -> Result<f64, String> {
    let mut sealer = Sealer::new(&random_key()?, &random_key()?);
    let plain = vec![0u8; CHUNK];
    let mut sealed = vec![[0u8; PACKET_LEN]; CHUNK / PAYLOAD_MAX];
    rate(budget, || {
        for (chunk, packet) in black_box(&plain).chunks(PAYLOAD_MAX).zip(&mut sealed) {
            sealer.seal(chunk, packet);
        }
        Ok(())
    })
    .map(mb_per_s)
}

/// Opening as the daemon does it: a batch at a time, two packets' MACs at once.
pub(super) fn open(budget: Duration) -> Result<f64, String> {
    let mut lens = Vec::with_capacity(CHUNK / PAYLOAD_MAX);
    open_with(budget, |opener, packets| {
        lens.clear();
        opener.open_batch(packets, &mut lens)
    })
}

/// Opening one packet per call: a single SHA-256 stream per MAC.
pub(super) fn open_single(budget: Duration) -> Result<f64, String> {
    open_with(budget, |opener, packets| {
        packets
            .iter_mut()
            .try_for_each(|p| opener.open_in_place(p).map(drop))
    })
}

/// Rate of `open_chunk` opening a chunk of sealed packets with a fresh opener.
fn open_with(
    budget: Duration,
    mut open_chunk: impl FnMut(&mut Opener, &mut [[u8; PACKET_LEN]]) -> Result<(), PacketError>,
) -> Result<f64, String> {
    let (enc, mac) = (random_key()?, random_key()?);
    let mut sealed = Vec::new();
    Sealer::new(&enc, &mac).seal_all(&vec![0u8; CHUNK], &mut sealed);
    let sealed = sealed.as_chunks::<PACKET_LEN>().0.to_vec();
    let mut work = sealed.clone();
    // Packets must be opened in sequence, so each call opens the same sealed chunk with
    // a fresh opener; the copy costs a small fraction of the cryptography.
    rate(budget, || {
        work.copy_from_slice(&sealed);
        let mut opener = Opener::new(&enc, &mac);
        open_chunk(&mut opener, black_box(&mut work)).map_err(|e| e.to_string())
    })
    .map(mb_per_s)
}

/// Full handshakes per second, both sides' work included (as each daemon of a pair
/// does half of it, a daemon can accept about twice this many connections).
fn handshakes(budget: Duration, client: Mode, server: Mode) -> Result<f64, String> {
    let key = Key::from_file_contents(&random_key()?);
    let random = |e: getrandom::Error| format!("cannot get random bytes from the OS: {e}");
    rate(budget, || {
        let mut c = Handshake::new(Role::Client, client, &key).map_err(random)?;
        let mut s = Handshake::new(Role::Server, server, &key).map_err(random)?;
        drive(&mut c, &mut s).map_err(|(_, e)| e.to_string())?;
        black_box((c.finish(), s.finish()));
        Ok(())
    })
}

/// Group 14 on both sides, the server requiring PFS (`-g`) as a careful deployment would.
pub(super) fn handshakes_pfs(budget: Duration) -> Result<f64, String> {
    let mode = Mode {
        require_pfs: true,
        ..Mode::default()
    };
    handshakes(budget, mode, mode)
}

/// `-f` on both sides: nonces and MACs, no Diffie-Hellman.
pub(super) fn handshakes_fast(budget: Duration) -> Result<f64, String> {
    let mode = Mode {
        fast: true,
        ..Mode::default()
    };
    handshakes(budget, mode, mode)
}

/// An `--x25519` client against a default server (which accepts both exchanges).
pub(super) fn handshakes_x25519(budget: Duration) -> Result<f64, String> {
    let client = Mode {
        x25519: true,
        ..Mode::default()
    };
    handshakes(budget, client, Mode::default())
}

/// Runs `op` until `budget` has passed (at least once); returns the calls per second.
fn rate(budget: Duration, mut op: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let start = Instant::now();
    let mut calls = 0u64;
    loop {
        op()?;
        calls += 1;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            return Ok(calls as f64 / elapsed.as_secs_f64());
        }
    }
}
