//! What the daemon tells a pipe's metrics: one call per event, made once, where the
//! event happens (accepted, refused, limit reached, target looked up; per connection,
//! established and closed). Nothing else counts what a pipe's connections do: the
//! series on `/metrics`, the `/status` page and the pipe's stop report ([`Tally`]) all
//! read what these calls counted.

use std::sync::Arc;
use std::time::Duration;

use super::live::LiveConn;
use super::pipe_metrics::{PipeMetrics, Tally};
use super::reason::{self, Closed};
use crate::session::client::ConnError;
use spiped_proto::handshake::Exchange;

impl PipeMetrics {
    /// A connection accepted from `peer` (not refused), numbered `id` in the log:
    /// counted, and open on the status page until the returned handle is dropped.
    pub(crate) fn accepted(self: &Arc<Self>, id: u64, peer: String) -> Tracked {
        self.accepted.inc();
        let conn = Arc::new(LiveConn::new(id, peer, self.direction()));
        self.table().open.insert(id, conn.clone());
        Tracked {
            pipe: self.clone(),
            conn,
        }
    }

    /// A connection closed at accept: its client is not in the allow list.
    pub(crate) fn refused(&self) {
        self.refused.inc();
    }

    /// The connection limit was reached: new connections wait.
    pub(crate) fn limit_reached(&self) {
        self.limit_waits.inc();
    }

    /// A look-up of the target's address succeeded (`ok`) or failed.
    pub(crate) fn looked_up(&self, ok: bool) {
        match ok {
            true => self.lookups_ok.inc(),
            false => self.lookups_failed.inc(),
        };
    }

    /// What the pipe's connections came to since it started.
    pub(crate) fn tally(&self) -> Tally {
        let (now, since) = (self.counted(), self.since);
        Tally {
            served: now.served - since.served,
            refused: now.refused - since.refused,
            idle_closed: now.idle_closed - since.idle_closed,
        }
    }

    /// The counters [`PipeMetrics::tally`] reads, as they are now: their series may
    /// have begun under an earlier pipe of the same name.
    pub(super) fn counted(&self) -> Tally {
        Tally {
            served: self.accepted.get(),
            refused: self.refused.get(),
            idle_closed: self.closed[Closed::IdleTimeout.index()].get(),
        }
    }
}

/// A connection counted by its pipe: open in the table until dropped.
pub(crate) struct Tracked {
    pipe: Arc<PipeMetrics>,
    conn: Arc<LiveConn>,
}

impl Tracked {
    /// The connection's live record (its traffic counters go to the pumps).
    pub(crate) fn conn(&self) -> &LiveConn {
        &self.conn
    }

    /// The handshake finished, after `took`, with `exchange` and key number
    /// `key_index`; the connection now pipes to `target`.
    pub(crate) fn established(
        &self,
        target: String,
        exchange: Exchange,
        key_index: usize,
        took: Duration,
    ) {
        let p = &self.pipe;
        p.duration.observe(took.as_secs_f64());
        p.by_key.get_or_create(&p.key_label(key_index)).inc();
        if let Some(i) = reason::KINDS.iter().position(|k| *k == exchange) {
            p.by_kind[i].inc();
        }
        self.conn.established(target, exchange, key_index);
    }

    /// The connection ended with `outcome`; it is no longer tracked.
    pub(crate) fn closed(self, outcome: Result<(), &ConnError>) {
        let (closed, cause) = reason::classify(outcome);
        self.pipe.closed[closed.index()].inc();
        if let Some(cause) = cause {
            self.pipe.failures[cause.index()].inc();
        }
    }
}

impl Drop for Tracked {
    /// Moves the connection's bytes to the pipe's closed total in the same step that
    /// removes it from the table, so a scrape never sees them twice or not at all.
    fn drop(&mut self) {
        let mut t = self.pipe.table();
        let (f, o) = self.conn.bytes();
        t.retired.0 += f;
        t.retired.1 += o;
        t.open.remove(&self.conn.id);
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::config::Direction;
    use crate::metrics::Metrics;
    use crate::session::pump::PumpError;

    fn pipe(m: &Metrics, name: &str) -> Arc<PipeMetrics> {
        let p = m.pipe(
            name.into(),
            Direction::Decrypt,
            1,
            Vec::new(),
            serde_json::Value::Null,
        );
        m.show(&p);
        p
    }

    /// Each event counts once, in the series and in the tally alike; a pipe that takes
    /// a removed pipe's name continues its series but tallies only its own.
    #[test]
    fn the_tally_is_what_the_series_counted_since_the_pipe_started() {
        let m = Metrics::new();
        let old = pipe(&m, "p");
        old.refused();
        old.accepted(1, "a".into())
            .closed(Err(&ConnError::Idle(Duration::from_secs(1))));
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        old.accepted(2, "b".into())
            .closed(Err(&ConnError::Broken(PumpError::Read(reset))));
        old.limit_reached();
        let tally = |served, refused, idle_closed| Tally {
            served,
            refused,
            idle_closed,
        };
        assert_eq!(old.tally(), tally(2, 1, 1));
        m.hide(&old);
        let new = pipe(&m, "p");
        assert_eq!(new.tally(), tally(0, 0, 0));
        new.refused();
        drop(new.accepted(3, "c".into()));
        assert_eq!(new.tally(), tally(1, 1, 0));
        let scrape = m.scrape();
        for series in [
            "spiped_connections_accepted_total{pipe=\"p\"} 3\n",
            "spiped_connections_refused_total{pipe=\"p\"} 2\n",
            "spiped_connections_closed_total{pipe=\"p\",reason=\"idle_timeout\"} 1\n",
            "spiped_connections_closed_total{pipe=\"p\",reason=\"reset\"} 1\n",
            "spiped_connection_limit_waits_total{pipe=\"p\"} 1\n",
        ] {
            assert!(scrape.contains(series), "{series}{scrape}");
        }
    }
}
