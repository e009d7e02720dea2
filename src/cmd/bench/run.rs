//! `spiped bench`: how fast this machine runs spiped, measured in-process.
//!
//! Every figure is one thing measured for a bounded time. The primitives alone
//! (AES-256-CTR, HMAC-SHA256, straight from the crates), whole packets (the sealer and
//! opener the daemon uses) and handshakes (two state machines talking in memory) run on
//! one thread. The pipe figures run a real `-e` daemon feeding a real `-d` daemon over
//! loopback TCP, both with the daemon's own accept loop on this thread's event loop and
//! its off-loop policy: with both daemons' connections open, large batches go to the
//! blocking pool, as in a daemon serving more than one connection.

use std::hint::black_box;
use std::io::{IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aes::Aes256;
use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use spiped_transports::event_loop::block_on;
use spiped_transports::{Endpoint, Listener, SocketStream, StreamOptions, Transport, connect};

use super::args::{BenchOptions, parse};
use crate::config::{Direction, PipeConfig};
use crate::daemon::conn_settings::ConnConfig;
use crate::metrics::Metrics;
use crate::resolve::Targets;
use spiped_proto::handshake::{Handshake, Mode, Role, drive};
use spiped_proto::key::Key;
use spiped_proto::packet::{Opener, PACKET_LEN, PAYLOAD_MAX, PacketError, Sealer};

/// Entry point of `spiped bench`; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    crate::cmd::run_tool("spiped bench", args, parse, |opts| run(&opts))
}

/// One figure: what it is called in JSON and in the table, and how to measure it for
/// about the given time.
struct Figure {
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    measure: fn(Duration) -> Result<f64, String>,
}

/// Every figure, in the order they are measured and printed.
const FIGURES: &[Figure] = &[
    Figure {
        key: "aes256_ctr_mb_per_s",
        label: "AES-256-CTR",
        unit: "MB/s",
        measure: aes_ctr,
    },
    Figure {
        key: "hmac_sha256_mb_per_s",
        label: "HMAC-SHA256",
        unit: "MB/s",
        measure: hmac,
    },
    Figure {
        key: "packet_seal_mb_per_s",
        label: "packet seal (encrypt + MAC)",
        unit: "MB/s",
        measure: seal,
    },
    Figure {
        key: "packet_open_mb_per_s",
        label: "packet open (verify + decrypt)",
        unit: "MB/s",
        measure: open,
    },
    Figure {
        key: "packet_seal_single_mb_per_s",
        label: "packet seal, one at a time",
        unit: "MB/s",
        measure: seal_single,
    },
    Figure {
        key: "packet_open_single_mb_per_s",
        label: "packet open, one at a time",
        unit: "MB/s",
        measure: open_single,
    },
    Figure {
        key: "handshakes_pfs_per_s",
        label: "handshakes, PFS (group 14)",
        unit: "/s",
        measure: handshakes_pfs,
    },
    Figure {
        key: "handshakes_fast_per_s",
        label: "handshakes, -f (no PFS)",
        unit: "/s",
        measure: handshakes_fast,
    },
    Figure {
        key: "handshakes_x25519_per_s",
        label: "handshakes, PFS (--x25519)",
        unit: "/s",
        measure: handshakes_x25519,
    },
    Figure {
        key: "pipe_mb_per_s",
        label: "pipe -e to -d, loopback",
        unit: "MB/s",
        measure: pipe_throughput,
    },
    Figure {
        key: "pipe_round_trip_us",
        label: "pipe round trip, loopback",
        unit: "us",
        measure: pipe_round_trip,
    },
];

fn run(opts: &BenchOptions) -> Result<(), String> {
    let progress = std::io::stderr().is_terminal();
    let mut values = Vec::with_capacity(FIGURES.len());
    for (i, f) in FIGURES.iter().enumerate() {
        if progress {
            eprint!("\r\x1b[K[{}/{}] {}...", i + 1, FIGURES.len(), f.label);
        }
        let value = (f.measure)(opts.seconds);
        if progress {
            eprint!("\r\x1b[K");
        }
        values.push(value.map_err(|e| format!("{}: {e}", f.label))?);
    }
    let secs = opts.seconds.as_secs_f64();
    let mut out = String::new();
    if opts.json {
        out.push_str(&format!("{{\n  \"seconds_per_figure\": {secs}"));
        for (f, v) in FIGURES.iter().zip(&values) {
            out.push_str(&format!(",\n  \"{}\": {v:.3}", f.key));
        }
        out.push_str("\n}\n");
    } else {
        out.push_str(&format!(
            "spiped bench: {secs} s per figure; the pipe as a daemon runs it, the rest on one thread\n"
        ));
        for (f, v) in FIGURES.iter().zip(&values) {
            out.push_str(&format!("  {:32} {v:>12.1} {}\n", f.label, f.unit));
        }
    }
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .map_err(|e| format!("cannot write to standard output: {e}"))
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

/// Bytes per call of the throughput loops: big enough to hide the loop, small enough
/// to stay in cache as the daemon's batches (8 to 256 packets, see pump.rs) do.
const CHUNK: usize = 64 * PAYLOAD_MAX;

/// Megabytes (10^6 bytes) per second, from calls per second of `CHUNK` bytes each.
fn mb_per_s(calls_per_s: f64) -> f64 {
    calls_per_s * CHUNK as f64 / 1e6
}

/// A fresh random 32-byte key (so no figure can profit from a constant).
fn random_key() -> Result<[u8; 32], String> {
    let mut k = [0u8; 32];
    getrandom::fill(&mut k).map_err(|e| format!("cannot get random bytes from the OS: {e}"))?;
    Ok(k)
}

fn aes_ctr(budget: Duration) -> Result<f64, String> {
    let mut cipher = ctr::Ctr64BE::<Aes256>::new_from_slices(&random_key()?, &[0; 16])
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; CHUNK];
    rate(budget, || {
        cipher.apply_keystream(black_box(&mut buf));
        Ok(())
    })
    .map(mb_per_s)
}

fn hmac(budget: Duration) -> Result<f64, String> {
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
fn seal(budget: Duration) -> Result<f64, String> {
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
fn seal_single(budget: Duration) -> Result<f64, String> {
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
fn open(budget: Duration) -> Result<f64, String> {
    let mut lens = Vec::with_capacity(CHUNK / PAYLOAD_MAX);
    open_with(budget, |opener, packets| {
        lens.clear();
        opener.open_batch(packets, &mut lens)
    })
}

/// Opening one packet per call: a single SHA-256 stream per MAC.
fn open_single(budget: Duration) -> Result<f64, String> {
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
fn handshakes_pfs(budget: Duration) -> Result<f64, String> {
    let mode = Mode {
        require_pfs: true,
        ..Mode::default()
    };
    handshakes(budget, mode, mode)
}

/// `-f` on both sides: nonces and MACs, no Diffie-Hellman.
fn handshakes_fast(budget: Duration) -> Result<f64, String> {
    let mode = Mode {
        fast: true,
        ..Mode::default()
    };
    handshakes(budget, mode, mode)
}

/// An `--x25519` client against a default server (which accepts both exchanges).
fn handshakes_x25519(budget: Duration) -> Result<f64, String> {
    let client = Mode {
        x25519: true,
        ..Mode::default()
    };
    handshakes(budget, client, Mode::default())
}

/// What the in-process target does with a connection, chosen by its first byte.
const SINK: u8 = b'S';
const ECHO: u8 = b'E';

/// Plaintext MB/s from a client through `-e`, `-d` and into a sink, until the sink has
/// counted every byte.
fn pipe_throughput(budget: Duration) -> Result<f64, String> {
    with_pipe(budget, async move |client| {
        client.write_all(&[SINK]).await.map_err(io)?;
        // Once the mode byte is acknowledged the handshakes are over; they stay out of
        // the figure.
        read_full(&client, &mut [0u8; 1]).await?;
        let chunk = vec![0x5au8; CHUNK];
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < budget {
            client.write_all(&chunk).await.map_err(io)?;
            sent += CHUNK as u64;
        }
        client.shutdown_write().await.map_err(io)?;
        let mut count = [0u8; 8];
        read_full(&client, &mut count).await?;
        let elapsed = start.elapsed().as_secs_f64();
        match u64::from_be_bytes(count) {
            n if n == sent => Ok(sent as f64 / elapsed / 1e6),
            n => Err(format!("sent {sent} bytes but the target received {n}")),
        }
    })
}

/// Mean microseconds for one byte to go through `-e` and `-d` to an echo target and
/// back, on an established connection.
fn pipe_round_trip(budget: Duration) -> Result<f64, String> {
    with_pipe(budget, async move |client| {
        client.write_all(&[ECHO]).await.map_err(io)?;
        read_full(&client, &mut [0u8; 1]).await?;
        let mut rtts = 0u64;
        let start = Instant::now();
        while start.elapsed() < budget || rtts == 0 {
            client.write_all(&[1]).await.map_err(io)?;
            read_full(&client, &mut [0u8; 1]).await?;
            rtts += 1;
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / rtts as f64)
    })
}

fn io(e: std::io::Error) -> String {
    crate::errors::describe(&e)
}

async fn read_full(t: &dyn Transport, mut buf: &mut [u8]) -> Result<(), String> {
    while !buf.is_empty() {
        match t.read(buf).await.map_err(io)? {
            0 => return Err("the pipe closed early".to_owned()),
            n => buf = &mut buf[n..],
        }
    }
    Ok(())
}

/// Runs `client` on a connection to a fresh `spiped -e` on loopback, whose target is a
/// `spiped -d` whose target is an in-process sink/echo server; the event loop runs on
/// this thread (large batches on the blocking pool, as a daemon's do), with a deadline
/// well past `budget`.
fn with_pipe(
    budget: Duration,
    client: impl AsyncFnOnce(SocketStream) -> Result<f64, String>,
) -> Result<f64, String> {
    let loopback = Endpoint::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let listen = || {
        Listener::bind(&loopback).map_err(|e| {
            format!(
                "cannot listen on 127.0.0.1: {}",
                crate::errors::describe(&e)
            )
        })
    };
    let key = Key::from_file_contents(&random_key()?);
    // Sockets belong to the event loop they are registered with: all are made inside.
    block_on(async {
        let (target, decrypt, encrypt) = (listen()?, listen()?, listen()?);
        let config = |direction| {
            Arc::new(ConnConfig {
                pipe: Arc::new(PipeConfig::new("bench".into(), direction)),
                keys: vec![key.clone()],
                bind: None,
                counters: Default::default(),
                label: None,
                // Counted like a daemon's connections, so the benchmark pays what they pay.
                metrics: Metrics::new().pipe(
                    "bench".into(),
                    direction,
                    1,
                    Vec::new(),
                    serde_json::Value::Null,
                ),
            })
        };
        let pipe = |direction, to: &Listener| {
            let settings = crate::daemon::pipe::Settings {
                name: "bench".to_owned(),
                conn: config(direction),
                routes: vec![Targets::new(vec![to.endpoint().clone()])],
                limit: None,
                allow: Vec::new(),
            };
            crate::daemon::pipe::PipeState::new(settings)
        };
        let (to_target, to_decrypt) = (
            pipe(Direction::Decrypt, &target),
            pipe(Direction::Encrypt, &decrypt),
        );
        let entry = encrypt.endpoint().clone();
        // One process, one off-loop policy: it counts both daemons' connections.
        let offload = crate::session::offload::Offload::new();
        // Each connection holds a sender, as a daemon's do; nothing waits for them here.
        let (open, _) = tokio::sync::mpsc::channel::<()>(1);
        let daemon = |listener, pipe| {
            let (offload, open) = (offload.clone(), open.clone());
            async move { crate::daemon::accept::accept_loop(&listener, pipe, offload, open).await }
        };
        let daemons =
            async { tokio::join!(daemon(decrypt, to_target), daemon(encrypt, to_decrypt)) };
        let targets = async {
            loop {
                match target.accept(StreamOptions::default()).await {
                    Ok(s) => drop(tokio::spawn(serve_target(s))),
                    Err(e) => return Err(format!("target accept failed: {}", io(e))),
                }
            }
        };
        let work = async {
            let stream = connect(&entry, None, StreamOptions::default(), Some(budget))
                .await
                .map_err(|e| format!("cannot connect to the -e daemon: {}", io(e)))?;
            client(stream).await
        };
        let deadline = budget * 3 + Duration::from_secs(30);
        tokio::select! {
            r = tokio::time::timeout(deadline, work) => {
                r.unwrap_or_else(|_| Err("no result before the deadline".to_owned()))
            }
            r = targets => r,
            _ = daemons => Err("the daemons stopped".to_owned()),
        }
    })
    .map_err(crate::cmd::event_loop_failed)?
}

/// The in-process target: acknowledges the connection's first byte by sending it back,
/// then, as that byte asks, echoes, or counts to end of stream and replies with the
/// count (8 bytes, big-endian).
async fn serve_target(s: SocketStream) {
    let mut mode = [0u8; 1];
    if read_full(&s, &mut mode).await.is_err() {
        return;
    }
    // The acknowledgement tells the client the handshakes are over.
    if s.write_all(&mode).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; CHUNK];
    if mode[0] == SINK {
        let mut count = 0u64;
        while let Ok(n @ 1..) = s.read(&mut buf).await {
            count += n as u64;
        }
        let _ = s.write_all(&count.to_be_bytes()).await;
    } else {
        while let Ok(n @ 1..) = s.read(&mut buf).await {
            if s.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }
    let _ = s.shutdown_write().await;
}
