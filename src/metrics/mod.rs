//! What the daemon counts about itself, and the endpoint that shows it (`--metrics`):
//! Prometheus series at `/metrics`, the open connections as JSON at `/status`, and
//! `/healthz`; SIGUSR1 logs the same connections as lines.
//!
//! Counting always happens (it is cheap: a few counter increments per connection, the
//! bytes from the per-batch counters the connection log keeps anyway); only serving it
//! is optional. Each pipe has a [`PipeMetrics`], which the daemon tells of each event
//! once (`events.rs`); each connection holds a [`Tracked`] from accept to close.
//!
//! Nothing here knows the daemon: it calls in, and reads back ([`Tally`]) what it
//! reports itself.

mod clients;
mod collect;
mod events;
mod host;
mod http;
mod live;
mod pipe_metrics;
mod reason;
mod settings;
mod status;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

pub(crate) use events::Tracked;
pub(crate) use http::{BindError, bind};
pub(crate) use pipe_metrics::PipeMetrics;
pub(crate) use settings::settings;

use crate::config::Direction;
use crate::targets;

/// The version and git revision this binary was built from.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision this binary was built from (see build.rs), or `unknown`.
pub(crate) const REVISION: &str = env!("SPIPED_GIT_REVISION");

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    revision: &'static str,
}

/// Everything the process counts: its pipes' series and its own.
pub(crate) struct Metrics {
    registry: Registry,
    families: pipe_metrics::Families,
    pipes: Arc<collect::Pipes>,
    reloads_ok: Counter,
    reloads_failed: Counter,
    started: SystemTime,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// The process's metrics, with no pipes yet; the start time is now.
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("spiped");
        let families = pipe_metrics::Families::register(&mut registry);
        let pipes = Arc::new(collect::Pipes::default());
        registry.register_collector(Box::new(collect::Live(pipes.clone())));
        registry.register_collector(Box::new(collect::Sandbox));
        let started = SystemTime::now();
        let start: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
        start.set(
            started
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
        );
        registry.register(
            "start_time_seconds",
            "When the process started, in seconds since the epoch",
            start,
        );
        registry.register(
            "build",
            "The version and git revision of this spiped",
            Info::new(BuildLabels {
                version: VERSION,
                revision: REVISION,
            }),
        );
        let reloads = Family::<ResultLabel, Counter>::default();
        let by = |result| reloads.get_or_create_owned(&ResultLabel { result });
        let (reloads_ok, reloads_failed) = (by("ok"), by("failed"));
        registry.register(
            "reloads",
            "Configuration reloads (SIGHUP), by result",
            reloads,
        );
        Metrics {
            registry,
            families,
            pipes,
            reloads_ok,
            reloads_failed,
            started,
        }
    }

    /// The counters of a pipe labelled `label` (its name: under a command line, its
    /// source address) that plays `direction` with `keys` keys whose targets are
    /// `routes`; `settings` is what the status page shows of it. Counted at once; on
    /// the status page and in the scrape's live series once [`Metrics::show`]n.
    pub(crate) fn pipe(
        &self,
        label: String,
        direction: Direction,
        keys: usize,
        routes: Vec<targets::Shared>,
        settings: serde_json::Value,
    ) -> Arc<PipeMetrics> {
        Arc::new(PipeMetrics::new(
            &self.families,
            label,
            direction,
            keys,
            routes,
            settings,
        ))
    }

    /// Lists a pipe that started serving.
    pub(crate) fn show(&self, p: &Arc<PipeMetrics>) {
        self.pipes.push(p.clone());
    }

    /// Unlists a pipe that a reload removed; its counters stay in the scrape.
    pub(crate) fn hide(&self, p: &Arc<PipeMetrics>) {
        self.pipes.remove(p);
    }

    /// Counts a configuration reload that succeeded (`ok`) or failed.
    pub(crate) fn reloaded(&self, ok: bool) {
        match ok {
            true => self.reloads_ok.inc(),
            false => self.reloads_failed.inc(),
        };
    }

    /// The pipes, in the order they were added.
    pub(crate) fn pipes(&self) -> Vec<Arc<PipeMetrics>> {
        self.pipes.all()
    }

    /// How long the process has run.
    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed().unwrap_or_default()
    }

    /// Every series in the Prometheus text format (version 0.0.4).
    pub(crate) fn scrape(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail, and our collector only fails when it does.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// The status page: the pipes' settings and open connections, as JSON.
    pub(crate) fn status_json(&self) -> String {
        status::json(self)
    }

    /// Logs one line per open connection, and one per pipe (SIGUSR1).
    pub(crate) fn log_status(&self) {
        for line in status::lines(self) {
            crate::log::info(&line);
        }
    }
}
