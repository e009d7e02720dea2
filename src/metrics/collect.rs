//! The series read from the live state at scrape time rather than counted: open
//! connections, bytes moved (closed connections plus open ones so far), and the
//! target's current addresses.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::pipe_metrics::{PipeLabel, PipeMetrics};
use crate::targets::TargetSnapshot;

/// The pipes of the process, in configuration order.
#[derive(Debug, Default)]
pub(super) struct Pipes(Mutex<Vec<Arc<PipeMetrics>>>);

impl std::fmt::Debug for PipeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeMetrics")
            .field("label", &self.label())
            .finish_non_exhaustive()
    }
}

impl Pipes {
    /// Adds a pipe.
    pub(super) fn push(&self, p: Arc<PipeMetrics>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(p);
    }

    /// Removes a pipe.
    pub(super) fn remove(&self, p: &Arc<PipeMetrics>) {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|q| !Arc::ptr_eq(q, p));
    }

    /// The pipes now.
    pub(super) fn all(&self) -> Vec<Arc<PipeMetrics>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Layer {
    layer: &'static str,
}

/// Encodes which layers of the sandbox are in force, once it is set up.
#[derive(Debug)]
pub(super) struct Sandbox;

impl Collector for Sandbox {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(c) = crate::sandbox::in_force() else {
            return Ok(());
        };
        let mut family = encoder.encode_descriptor(
            "sandbox_enforced",
            "Whether each layer of the sandbox is in force (1) or not (0)",
            None,
            MetricType::Gauge,
        )?;
        for (layer, on) in c.layers() {
            ConstGauge::new(i64::from(on)).encode(family.encode_family(&Layer { layer })?)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipeDirection {
    pipe: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipeAddress {
    pipe: String,
    address: String,
}

/// Encodes the scrape-time series of every pipe.
#[derive(Debug)]
pub(super) struct Live(pub(super) Arc<Pipes>);

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let pipes = self.0.all();
        let totals: Vec<_> = pipes.iter().map(|p| p.totals()).collect();
        let label = |p: &PipeMetrics| p.label().to_owned();

        let mut open = encoder.encode_descriptor(
            "connections_open",
            "Connections open now (handshaking or established)",
            None,
            MetricType::Gauge,
        )?;
        for (p, t) in pipes.iter().zip(&totals) {
            let l = PipeLabel { pipe: label(p) };
            ConstGauge::new(t.open as i64).encode(open.encode_family(&l)?)?;
        }

        let mut bytes = encoder.encode_descriptor(
            "bytes",
            "Plaintext bytes moved: from_peer from the accepted peer towards the target, \
             to_peer back (counted per batch)",
            None,
            MetricType::Counter,
        )?;
        for (p, t) in pipes.iter().zip(&totals) {
            for (direction, n) in [("from_peer", t.from_peer), ("to_peer", t.to_peer)] {
                let l = PipeDirection {
                    pipe: label(p),
                    direction,
                };
                ConstCounter::new(n).encode(bytes.encode_family(&l)?)?;
            }
        }

        let mut targets = encoder.encode_descriptor(
            "target",
            "The target's current addresses (1 per address new connections try)",
            None,
            MetricType::Info,
        )?;
        for p in &pipes {
            for address in p.target_addresses() {
                let l = PipeAddress {
                    pipe: label(p),
                    address,
                };
                targets.encode_info(&l)?;
            }
        }
        encode_targets(&pipes, &mut encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipeTarget {
    pipe: String,
    target: String,
}

/// A per-target series: its name, its help, and its value for a target.
type Series<T> = (&'static str, &'static str, fn(&TargetSnapshot) -> T);

/// Encodes each target's series: up, open sessions, connects and failed connects.
fn encode_targets(pipes: &[Arc<PipeMetrics>], encoder: &mut DescriptorEncoder) -> std::fmt::Result {
    let all: Vec<_> = pipes
        .iter()
        .flat_map(|p| p.targets().into_iter().map(|t| (p.label().to_owned(), t)))
        .collect();
    let label = |(pipe, t): &(String, TargetSnapshot)| PipeTarget {
        pipe: pipe.clone(),
        target: t.target.clone(),
    };
    let gauges: [Series<i64>; 2] = [
        (
            "target_up",
            "Whether each target is up (1) or down (0)",
            |t| i64::from(t.up),
        ),
        ("target_open", "Sessions open on each target now", |t| {
            t.open as i64
        }),
    ];
    for (name, help, value) in gauges {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for t in &all {
            ConstGauge::new(value(&t.1)).encode(family.encode_family(&label(t))?)?;
        }
    }
    let counters: [Series<u64>; 2] = [
        (
            "target_connections",
            "Connects to each target that succeeded",
            |t| t.connections,
        ),
        (
            "target_connect_failures",
            "Connects to each target that failed",
            |t| t.connect_failures,
        ),
    ];
    for (name, help, value) in counters {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for t in &all {
            ConstCounter::new(value(&t.1)).encode(family.encode_family(&label(t))?)?;
        }
    }
    Ok(())
}
