//! `spiped bench`'s pipe figures: a real `-e` daemon feeding a real `-d` daemon over
//! loopback TCP, both with the daemon's own accept loop on this thread's event loop and
//! its off-loop policy, so that large batches go to the blocking pool as in a daemon
//! serving more than one connection.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spiped_proto::key::Key;
use spiped_transports::event_loop::block_on;
use spiped_transports::{Endpoint, Listener, SocketStream, StreamOptions, Transport, connect};

use super::crypto::{CHUNK, random_key};
use crate::config::{Direction, PipeConfig};
use crate::daemon::conn_settings::ConnConfig;
use crate::metrics::Metrics;

/// What the in-process target does with a connection, chosen by its first byte.
const SINK: u8 = b'S';
const ECHO: u8 = b'E';

/// Plaintext MB/s from a client through `-e`, `-d` and into a sink, until the sink has
/// counted every byte.
pub(super) fn pipe_throughput(budget: Duration) -> Result<f64, String> {
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
pub(super) fn pipe_round_trip(budget: Duration) -> Result<f64, String> {
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
                // A daemon's defaults, so the benchmark pays what a daemon pays.
                pipe: Arc::new(PipeConfig::new("bench".into(), direction)),
                keys: vec![key.clone()],
                bind: None,
                label: None,
            })
        };
        let pipe = |direction, to: &Listener| {
            let settings = crate::daemon::pipe_state::Settings {
                conn: config(direction),
                routes: vec![crate::targets::one(
                    to.endpoint().clone(),
                    crate::config::DEFAULT_TIMEOUT,
                )],
            };
            // Counted like a daemon's connections, so the benchmark pays what they pay.
            let events = Metrics::new().pipe(
                "bench".into(),
                direction,
                1,
                Vec::new(),
                serde_json::Value::Null,
            );
            crate::daemon::pipe_state::PipeState::new(settings, events)
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
