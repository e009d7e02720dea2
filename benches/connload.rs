//! Connection-rate load for `benches/handshakes.py`: a native client and echo target, so
//! that the harness, not spiped, is never what limits the measured rate (Python threads
//! sharing one interpreter lock cost more CPU per connection than a daemon does).
//!
//! `connload TARGET_PORT ENTRY_PORT CLIENTS SECONDS`: serves an echo target on
//! 127.0.0.1:TARGET_PORT, prints `ready`, waits for a line on standard input, then runs
//! CLIENTS threads that each connect to 127.0.0.1:ENTRY_PORT, send one byte, read the
//! echo and close, for SECONDS. Prints `OK FAILED ELAPSED_S CPU_S` (CPU of this process).

use std::io::{self, BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::exit;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Echo threads: more than clients, so a connection still closing never holds up one.
const ECHO_THREADS: usize = 16;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| -> u64 {
        match args.get(i).and_then(|a| a.parse().ok()) {
            Some(v) => v,
            None => {
                eprintln!("usage: connload TARGET_PORT ENTRY_PORT CLIENTS SECONDS");
                exit(2);
            }
        }
    };
    let (target, entry, clients, seconds) = (arg(1), arg(2), arg(3), arg(4));
    let port = |p: u64| {
        u16::try_from(p).unwrap_or_else(|_| {
            eprintln!("connload: port {p} out of range");
            exit(2)
        })
    };
    let (target, entry) = (port(target), port(entry));
    let listener = TcpListener::bind(("127.0.0.1", target)).unwrap_or_else(|e| {
        eprintln!("connload: cannot listen on {target}: {e}");
        exit(1)
    });
    for _ in 0..ECHO_THREADS {
        let l = listener.try_clone().expect("clone listener");
        thread::spawn(move || echo(l));
    }
    println!("ready");
    let _ = io::stdout().flush();
    let _ = io::stdin().lock().read_line(&mut String::new());

    let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let stop = start + Duration::from_secs(seconds);
    thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                while Instant::now() < stop {
                    let counter = match one_connection(entry) {
                        Ok(true) => &ok,
                        _ => &failed,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{} {} {elapsed:.6} {:.6}",
        ok.into_inner(),
        failed.into_inner(),
        cpu_seconds() - cpu0
    );
}

/// Connect, send one byte, read it back, close; true if the byte came back.
fn one_connection(entry: u16) -> io::Result<bool> {
    let mut s = TcpStream::connect(("127.0.0.1", entry))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_nodelay(true)?;
    s.write_all(b"x")?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    Ok(&b == b"x")
}

/// Echoes each accepted connection until its peer closes.
fn echo(l: TcpListener) {
    let mut buf = [0u8; 4096];
    for c in l.incoming() {
        let Ok(mut c) = c else { continue };
        while let Ok(n @ 1..) = c.read(&mut buf) {
            if c.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    }
}

/// User plus system CPU seconds of this process, all threads.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Clock ticks are 100 per second on Linux (USER_HZ).
    (ticks(11) + ticks(12)) / 100.0
}
