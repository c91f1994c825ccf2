//! Per route × side latency histograms (HDR, microseconds), the paired shadow − primary delta,
//! and the counters records are made of. Each observation updates these and the Prometheus
//! handles together, so the two never disagree.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::IntCounter;
use twinpeak_core::histogram::micros;
use twinpeak_core::{
    new_latency_histogram, record_saturating, EncodedHistogram, RouteSnapshot, SideSnapshot,
    SignedHistogram,
};

use crate::diff::DiffKind;
use crate::labels::{
    CanaryDecision, MirrorOutcome, PairResult, ReferenceOutcome, Side, StatusClass,
};
use crate::metrics::{
    gauge_family, Metrics, RouteMetrics, SideMetrics, DURATION_BUCKETS, PAIRED_DELTA,
};
use crate::routes::{RouteId, RouteTable};
use crate::shards::Sharded;

/// The two histograms of one side, recorded together under one lock.
struct SideHistograms {
    latency: Histogram<u64>,
    ttfb: Histogram<u64>,
}

/// One side of one route; its counts are the Prometheus counters (one increment per request).
struct SideStats {
    histograms: Sharded<SideHistograms>,
}

impl SideStats {
    fn new(shards: usize) -> Self {
        SideStats {
            histograms: Sharded::new(shards, || SideHistograms {
                latency: new_latency_histogram(),
                ttfb: new_latency_histogram(),
            }),
        }
    }

    /// Latency and time-to-first-byte, merged over the shards.
    fn merged(&self) -> (Histogram<u64>, Histogram<u64>) {
        self.histograms.fold(
            (new_latency_histogram(), new_latency_histogram()),
            |(latency, ttfb), shard| {
                // Same bounds on both sides: adding cannot fail.
                let _ = latency.add(&shard.latency);
                let _ = ttfb.add(&shard.ttfb);
            },
        )
    }

    fn snapshot(&self, handles: &SideMetrics) -> SideSnapshot {
        let (latency, ttfb) = self.merged();
        let status_classes: BTreeMap<String, u64> = counts(
            &handles.requests,
            StatusClass::ALL.iter().map(|c| c.as_str()),
        );
        SideSnapshot {
            requests: status_classes.values().sum(),
            status_classes,
            latency_us: EncodedHistogram(latency),
            ttfb_us: EncodedHistogram(ttfb),
        }
    }
}

/// One route.
struct RouteStats {
    /// Indexed like [`Side::ALL`].
    sides: [SideStats; 3],
    delta: Sharded<SignedHistogram>,
}

/// Non-zero counters by label value.
fn counts<'a>(
    counters: &[IntCounter],
    names: impl Iterator<Item = &'a str>,
) -> BTreeMap<String, u64> {
    counters
        .iter()
        .zip(names)
        .map(|(n, name)| (name.to_string(), n.get()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// A finished exchange with one side, as far as statistics go.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    /// Status class of the answer (or `error`).
    pub class: StatusClass,
    /// Time to the answer's header, when one came.
    pub ttfb: Option<Duration>,
    /// Time to the end of the answer; `None` when no answer came (failures carry no latency).
    pub total: Option<Duration>,
}

/// Statistics of every route.
pub struct Stats {
    routes: Vec<RouteStats>,
    metrics: Metrics,
}

impl Stats {
    /// Empty statistics for these routes, with histograms split into `shards` (one per
    /// worker thread is best). The candidate side gets as many only when a `canary` routes
    /// traffic to it; otherwise one, since nothing records there.
    pub fn new(routes: &RouteTable, shards: usize, canary: bool) -> Self {
        let candidate_shards = if canary { shards } else { 1 };
        Stats {
            routes: (0..routes.len())
                .map(|_| RouteStats {
                    sides: [
                        SideStats::new(shards),
                        SideStats::new(shards),
                        SideStats::new(candidate_shards),
                    ],
                    delta: Sharded::new(shards, SignedHistogram::default),
                })
                .collect(),
            metrics: Metrics::new(routes),
        }
    }

    /// The Prometheus side of these statistics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The bound Prometheus handles of a route.
    pub fn route_metrics(&self, route: RouteId) -> &RouteMetrics {
        self.metrics.route(route)
    }

    /// Records one exchange with one side.
    pub fn record(&self, route: RouteId, side: Side, exchange: Exchange) {
        let stats = &self.routes[route].sides[side.index()];
        let handles = &self.metrics.route(route).sides[side.index()];
        handles.requests[exchange.class.index()].inc();
        if exchange.total.is_some() || exchange.ttfb.is_some() {
            stats.histograms.with(|h| {
                if let Some(total) = exchange.total {
                    record_saturating(&mut h.latency, micros(total));
                }
                if let Some(ttfb) = exchange.ttfb {
                    record_saturating(&mut h.ttfb, micros(ttfb));
                }
            });
        }
    }

    /// Records the paired latency difference of one request.
    pub fn record_delta(&self, route: RouteId, shadow: Duration, primary: Duration) {
        self.routes[route]
            .delta
            .with(|d| d.record_pair(micros(primary), micros(shadow)));
    }

    /// Counts a request's mirror outcome.
    pub fn mirror_outcome(&self, route: RouteId, outcome: MirrorOutcome) {
        self.metrics.route(route).mirror[outcome.index()].inc();
    }

    /// Counts what became of a reference answer asked for to learn noise.
    pub fn reference_outcome(&self, route: RouteId, outcome: ReferenceOutcome) {
        self.metrics.route(route).reference[outcome.index()].inc();
    }

    /// Counts a pair's comparison result.
    pub fn pair_result(&self, route: RouteId, result: PairResult) {
        self.metrics.route(route).compared[result.index()].inc();
    }

    /// Every metric in Prometheus' text format, with `extra` families made at scrape time
    /// among them. `twinpeak_upstream_duration_seconds` is made here from the HDR histograms,
    /// so a request is timed once, not twice.
    pub fn render_metrics_with(&self, routes: &RouteTable, extra: Vec<MetricFamily>) -> Vec<u8> {
        let mut families = vec![self.duration_family(routes), self.delta_family(routes)];
        families.extend(extra);
        self.metrics.render(families)
    }

    /// Takes up what the state store kept of this replica (all-time totals): latency per
    /// route × side and the paired deltas are added to the histograms, and the counters the
    /// records are made of to their Prometheus counters. Routes no longer configured, and
    /// counters not among those, are left out. Returns how many values were left out.
    pub fn restore(&self, routes: &RouteTable, view: &crate::state::View) -> usize {
        use crate::state::Series;
        let mut left_out = 0;
        let id_of = |name: &str| routes.names().iter().position(|n| n == name);
        for (name, route) in &view.routes {
            let Some(id) = id_of(name) else {
                left_out += 1;
                continue;
            };
            for (series, histogram) in &route.latency {
                let side = match series {
                    Series::Primary => Side::Primary,
                    Series::Shadow => Side::Shadow,
                    Series::Candidate => Side::Candidate,
                    Series::Delta => continue,
                };
                self.routes[id].sides[side.index()].histograms.with(|h| {
                    if twinpeak_core::merge::add_histogram(&mut h.latency, histogram).is_err() {
                        left_out += 1;
                    }
                });
            }
            if !route.delta.is_empty() {
                self.routes[id].delta.with(|d| {
                    if d.add(&route.delta).is_err() {
                        left_out += 1;
                    }
                });
            }
        }
        for (key, value) in &view.counters {
            match self.restored_counter(routes, key) {
                Some(counter) => counter.inc_by(*value),
                None => left_out += 1,
            }
        }
        left_out
    }

    /// The Prometheus counter a stored counter is, among those the records are made of.
    fn restored_counter(
        &self,
        routes: &RouteTable,
        key: &crate::state::CounterKey,
    ) -> Option<&IntCounter> {
        fn find<'a, T: Copy>(all: &[T], name: impl Fn(T) -> &'a str, value: &str) -> Option<T> {
            all.iter().copied().find(|item| name(*item) == value)
        }
        let label = |name: &str| key.labels.get(name).map(String::as_str).unwrap_or("");
        if key.name == "twinpeak_canary_decisions_total" {
            let decision = find(
                &CanaryDecision::ALL,
                CanaryDecision::as_str,
                label("decision"),
            )?;
            return self.metrics.canary_decisions.get(decision.index());
        }
        let id = routes.names().iter().position(|n| n == label("route"))?;
        let route = self.metrics.route(id);
        match key.name.as_str() {
            "twinpeak_requests_total" => {
                let side = find(&Side::ALL, Side::as_str, label("side"))?;
                let class = find(
                    &StatusClass::ALL,
                    StatusClass::as_str,
                    label("status_class"),
                )?;
                route.sides[side.index()].requests.get(class.index())
            }
            "twinpeak_mirror_total" => {
                let outcome = find(&MirrorOutcome::ALL, MirrorOutcome::as_str, label("outcome"))?;
                route.mirror.get(outcome.index())
            }
            "twinpeak_compared_total" => {
                let result = find(&PairResult::ALL, PairResult::as_str, label("result"))?;
                route.compared.get(result.index())
            }
            "twinpeak_noise_reference_total" => {
                let outcome = find(
                    &ReferenceOutcome::ALL,
                    ReferenceOutcome::as_str,
                    label("outcome"),
                )?;
                route.reference.get(outcome.index())
            }
            "twinpeak_diff_total" => {
                let kind = find(&DiffKind::ALL, DiffKind::as_str, label("kind"))?;
                route.diffs.get(kind.index())
            }
            _ => None,
        }
    }

    /// `twinpeak_paired_delta_seconds{route, quantile}`: the paired shadow − primary delta's
    /// p50, p90 and p99 per route (negative when the shadow is faster), read off the
    /// `SignedHistogram`; routes without a pair yet have none.
    fn delta_family(&self, routes: &RouteTable) -> MetricFamily {
        let mut gauges = Vec::new();
        for (id, name) in routes.names().iter().enumerate() {
            let delta = self.delta(id);
            if delta.is_empty() {
                continue;
            }
            for (quantile, label) in [(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99")] {
                let labels = vec![("route", name.clone()), ("quantile", label.to_string())];
                gauges.push((labels, delta.quantile(quantile) as f64 / 1e6));
            }
        }
        gauge_family(
            PAIRED_DELTA,
            "Shadow minus primary latency of the same mirrored requests, by quantile (negative: \
             the shadow is faster).",
            gauges,
        )
    }

    /// `twinpeak_upstream_duration_seconds{route, side}` as a Prometheus histogram, its buckets
    /// read off the HDR histograms (within their 0.1% precision).
    fn duration_family(&self, routes: &RouteTable) -> MetricFamily {
        let mut family = MetricFamily::default();
        family.set_name("twinpeak_upstream_duration_seconds".into());
        family.set_help("Time from sending a request upstream to the end of its answer.".into());
        family.set_field_type(MetricType::HISTOGRAM);
        for (id, name) in routes.names().iter().enumerate() {
            for side in Side::ALL {
                let latency = self.latency(id, side);
                let mut histogram = proto::Histogram::default();
                histogram.set_sample_count(latency.len());
                histogram.set_sample_sum(latency.mean() * latency.len() as f64 / 1e6);
                let buckets = DURATION_BUCKETS
                    .iter()
                    .map(|bound| {
                        let mut bucket = proto::Bucket::default();
                        bucket.set_upper_bound(*bound);
                        bucket.set_cumulative_count(latency.count_between(0, (bound * 1e6) as u64));
                        bucket
                    })
                    .collect();
                histogram.set_bucket(buckets);
                let labels = [("route", name.as_str()), ("side", side.as_str())]
                    .into_iter()
                    .map(|(label, value)| {
                        let mut pair = proto::LabelPair::default();
                        pair.set_name(label.into());
                        pair.set_value(value.into());
                        pair
                    })
                    .collect();
                let mut metric = proto::Metric::default();
                metric.set_label(labels);
                metric.set_histogram(histogram);
                family.mut_metric().push(metric);
            }
        }
        family
    }

    /// Counts a real difference of one kind found in a compared pair.
    pub fn diff_finding(&self, route: RouteId, kind: DiffKind) {
        self.metrics.route(route).diffs[kind.index()].inc();
    }

    /// Totals of mirror outcomes over all routes, in [`MirrorOutcome::ALL`] order.
    pub fn mirror_totals(&self) -> [u64; MirrorOutcome::ALL.len()] {
        let mut totals = [0; MirrorOutcome::ALL.len()];
        for route in 0..self.routes.len() {
            for (t, n) in totals.iter_mut().zip(&self.metrics.route(route).mirror) {
                *t += n.get();
            }
        }
        totals
    }

    /// Totals of pair results over all routes, in [`PairResult::ALL`] order.
    pub fn pair_totals(&self) -> [u64; PairResult::ALL.len()] {
        let mut totals = [0; PairResult::ALL.len()];
        for route in 0..self.routes.len() {
            for (t, n) in totals.iter_mut().zip(&self.metrics.route(route).compared) {
                *t += n.get();
            }
        }
        totals
    }

    /// Requests one side of a route has answered (or failed), from its counters.
    pub fn requests(&self, route: RouteId, side: Side) -> u64 {
        self.metrics.route(route).sides[side.index()]
            .requests
            .iter()
            .map(IntCounter::get)
            .sum()
    }

    /// A copy of one route × side latency histogram (total time).
    pub fn latency(&self, route: RouteId, side: Side) -> Histogram<u64> {
        self.routes[route].sides[side.index()].merged().0
    }

    /// A copy of one route's paired delta.
    pub fn delta(&self, route: RouteId) -> SignedHistogram {
        self.routes[route]
            .delta
            .fold(SignedHistogram::default(), |acc, shard| {
                // Same bounds on both sides: adding cannot fail.
                let _ = acc.add(shard);
            })
    }

    /// One route's part of a snapshot record.
    pub fn route_snapshot(&self, route: RouteId) -> RouteSnapshot {
        let stats = &self.routes[route];
        let handles = self.metrics.route(route);
        let side = |s: Side| stats.sides[s.index()].snapshot(&handles.sides[s.index()]);
        RouteSnapshot {
            primary: side(Side::Primary),
            shadow: side(Side::Shadow),
            candidate: side(Side::Candidate),
            delta: self.delta(route),
            // Only the results a pair keeps for good: whether a differing pair is noise is
            // derived when read, in `diff`.
            compare: counts(
                &handles.compared,
                PairResult::ALL.iter().map(|r| r.as_str()),
            )
            .into_iter()
            .filter(|(result, _)| {
                ![PairResult::Different, PairResult::Noise]
                    .iter()
                    .any(|r| r.as_str() == result)
            })
            .collect(),
            diff: None,
            mirror: counts(
                &handles.mirror,
                MirrorOutcome::ALL.iter().map(|o| o.as_str()),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_reach_histograms_counters_and_metrics() {
        let routes = RouteTable::new(&[]);
        let stats = Stats::new(&routes, 2, true);
        let ok = Exchange {
            class: StatusClass::Success,
            ttfb: Some(Duration::from_millis(2)),
            total: Some(Duration::from_millis(5)),
        };
        stats.record(0, Side::Primary, ok);
        stats.record(
            0,
            Side::Primary,
            Exchange {
                class: StatusClass::Error,
                ttfb: None,
                total: None,
            },
        );
        stats.record(0, Side::Candidate, ok);
        stats.record_delta(0, Duration::from_millis(3), Duration::from_millis(5));
        stats.mirror_outcome(0, MirrorOutcome::Sent);
        let snap = stats.route_snapshot(0);
        assert_eq!(snap.candidate.requests, 1);
        assert_eq!(stats.latency(0, Side::Candidate).len(), 1);
        assert_eq!(snap.primary.requests, 2);
        assert_eq!(stats.requests(0, Side::Primary), 2);
        assert_eq!(snap.primary.status_classes["2xx"], 1);
        assert_eq!(snap.primary.status_classes["error"], 1);
        // Failures carry no latency: only the answered request is in the histogram.
        assert_eq!(snap.primary.latency_us.0.len(), 1);
        assert_eq!(snap.delta.count(), 1);
        assert!(snap.delta.quantile(0.5) < 0);
        assert_eq!(snap.mirror["sent"], 1);
        assert_eq!(stats.mirror_totals()[MirrorOutcome::Sent.index()], 1);
        let text = String::from_utf8(stats.render_metrics_with(&routes, Vec::new())).unwrap();
        assert!(text.contains(
            r#"twinpeak_upstream_duration_seconds_count{route="other",side="primary"} 1"#
        ));
        // The shadow answered 2 ms sooner than the primary.
        let p50: f64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(r#"twinpeak_paired_delta_seconds{quantile="0.5",route="other"} "#)
            })
            .unwrap()
            .parse()
            .unwrap();
        assert!((p50 + 0.002).abs() < 0.00002, "{p50}");
    }
}
