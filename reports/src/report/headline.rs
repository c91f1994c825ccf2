//! The headline table: latency percentiles, error rate, throughput and SLO compliance of the
//! before and after systems, side by side.
//!
//! For a load run, percentiles are read over the arrivals meant for each system and its error
//! rate counts the arrivals it could not take (see [`Arrivals`]); a percentile among those is a
//! lower bound, `> 160 ms`, and is not compared.

use hdrhistogram::Histogram;

use super::figures::{
    arrival_latency_figure, compliance_change, error_change, latency_change, throughput_change,
    Provenance,
};
use super::format;
use super::model::{Change, Figure, HeadlineRow};
use super::slo::Compliance;
use crate::run::Arrivals;

/// Latency rows: key, label, quantile (`None` for the maximum).
const LATENCY_ROWS: [(&str, &str, Option<f64>); 5] = [
    ("p50", "p50 latency", Some(0.5)),
    ("p95", "p95 latency", Some(0.95)),
    ("p99", "p99 latency", Some(0.99)),
    ("p999", "p99.9 latency", Some(0.999)),
    ("max", "max latency", None),
];

/// One system's measurements, with where each came from.
pub(super) struct SideStats {
    /// Latency in µs.
    pub latency: Histogram<u64>,
    /// Where the latency came from.
    pub latency_from: Provenance,
    /// Requests sent.
    pub requests: u64,
    /// Of those, requests that failed.
    pub errors: u64,
    /// Where the error counts came from.
    pub errors_from: Provenance,
    /// Requests per second achieved.
    pub throughput: Option<f64>,
    /// Where the throughput came from.
    pub throughput_from: Provenance,
    /// Share of windows within the SLO.
    pub compliance: Option<Compliance>,
    /// Where the compliance came from.
    pub compliance_from: Provenance,
}

/// One system's column of the headline: its measurements, and the arrivals they come from.
pub(super) struct Side {
    /// The measurements.
    pub stats: SideStats,
    /// The latency and counts of `stats`, with the arrivals the system could not take.
    arrivals: Arrivals,
}

impl Side {
    /// A side whose every request was taken (a proxy's traffic).
    pub fn measured(stats: SideStats) -> Self {
        Self::with_drops(stats, 0, 0)
    }

    /// A side that could not take `not_taken` arrivals, each of which waited `late_limit_us`.
    pub fn with_drops(stats: SideStats, not_taken: u64, late_limit_us: u64) -> Self {
        let arrivals = Arrivals {
            succeeded: stats.latency.clone(),
            sent: stats.requests,
            failed: stats.errors,
            not_taken,
            late_limit_us,
        };
        Self { stats, arrivals }
    }

    fn latency(&self, quantile: Option<f64>) -> Option<Figure> {
        let latency = self.arrivals.latency(quantile)?;
        Some(arrival_latency_figure(latency, &self.stats.latency_from))
    }

    fn error_rate(&self) -> Option<Figure> {
        self.arrivals.error_rate().map(|rate| {
            self.stats
                .errors_from
                .figure(rate * 100.0, "%", format::share(rate))
        })
    }

    fn throughput(&self) -> Option<Figure> {
        self.stats.throughput()
    }

    fn compliance(&self) -> Option<Figure> {
        self.stats.compliance()
    }
}

impl SideStats {
    fn throughput(&self) -> Option<Figure> {
        self.throughput.map(|rps| {
            self.throughput_from
                .figure(rps, "req/s", format!("{} req/s", format::rate(rps)))
        })
    }

    fn compliance(&self) -> Option<Figure> {
        self.compliance.map(|c| {
            self.compliance_from
                .figure(c.share() * 100.0, "%", format::coverage(c.share()))
        })
    }
}

/// The headline rows for `before` and, when two systems were measured, `after`.
///
/// `throughput_comparable` is false when the after system saw only a sample of the before
/// system's traffic (mirroring), so no change is computed for throughput.
pub(super) fn rows(
    before: &Side,
    after: Option<&Side>,
    throughput_comparable: bool,
) -> Vec<HeadlineRow> {
    let mut rows = Vec::new();
    for (key, label, quantile) in LATENCY_ROWS {
        let b = before.latency(quantile);
        let a = after.and_then(|s| s.latency(quantile));
        let change = both(&b, &a)
            .filter(|(b, a)| !b.lower_bound && !a.lower_bound)
            .map(|(b, a)| latency_change(b.value, a.value));
        rows.push(row(key, label, b, a, change));
    }
    let b = before.error_rate();
    let a = after.and_then(Side::error_rate);
    let change = both(&b, &a).map(|(b, a)| error_change(b.value / 100.0, a.value / 100.0));
    rows.push(row("error_rate", "error rate", b, a, change));

    let b = before.throughput();
    let a = after.and_then(Side::throughput);
    let change = both(&b, &a)
        .filter(|_| throughput_comparable)
        .map(|(b, a)| throughput_change(b.value, a.value));
    rows.push(row("throughput", "achieved throughput", b, a, change));

    let b = before.compliance();
    let a = after.and_then(Side::compliance);
    if b.is_some() || a.is_some() {
        let change = both(&b, &a).map(|(b, a)| compliance_change(b.value / 100.0, a.value / 100.0));
        rows.push(row("slo_compliance", "SLO compliance", b, a, change));
    }
    rows.retain(|r| r.before.is_some() || r.after.is_some());
    rows
}

fn both<'a>(b: &'a Option<Figure>, a: &'a Option<Figure>) -> Option<(&'a Figure, &'a Figure)> {
    b.as_ref().zip(a.as_ref())
}

fn row(
    key: &str,
    label: &str,
    before: Option<Figure>,
    after: Option<Figure>,
    change: Option<Change>,
) -> HeadlineRow {
    HeadlineRow {
        key: key.to_owned(),
        label: label.to_owned(),
        before,
        after,
        change,
    }
}
