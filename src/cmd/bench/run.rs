//! `spiped bench`: how fast this machine runs spiped, measured in-process.
//!
//! Every figure is one thing measured for a bounded time: the cryptography alone on one
//! thread (`crypto.rs`), then a pair of daemons over loopback (`loopback.rs`).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::args::{BenchOptions, parse};
use super::crypto::{
    aes_ctr, handshakes_fast, handshakes_pfs, handshakes_x25519, hmac, open, open_single, seal,
    seal_single,
};
use super::loopback::{pipe_round_trip, pipe_throughput};

/// Entry point of `spiped bench`; returns the exit status.
pub(crate) fn main(args: &[String]) -> i32 {
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
