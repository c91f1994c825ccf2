//! Prometheus metrics. Names and labels are an interface (see DESIGN.md); every label value
//! comes from a closed set or from the configured route templates, so cardinality is bounded.
//! Handles are bound once per route at start-up, so the request path never hashes label sets.

use prometheus::core::Collector;
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{
    Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use twinpeak_core::DiffSummary;

use crate::diff::DiffKind;
use crate::labels::{
    CanaryDecision, MirrorOutcome, PairResult, ReferenceOutcome, Side, StatusClass,
};
use crate::routes::RouteTable;

/// Bucket bounds (seconds) for upstream durations: 0.5 ms to 30 s.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Handles for one route and one side.
#[derive(Clone)]
pub struct SideMetrics {
    /// `twinpeak_requests_total{route, side, status_class}`, indexed by [`StatusClass::index`].
    pub requests: Vec<IntCounter>,
}

/// Handles for one route.
#[derive(Clone)]
pub struct RouteMetrics {
    /// Per side, indexed like [`Side::ALL`].
    pub sides: Vec<SideMetrics>,
    /// `twinpeak_mirror_total{route, outcome}`, indexed by [`MirrorOutcome::index`].
    pub mirror: Vec<IntCounter>,
    /// `twinpeak_compared_total{route, result}`, indexed by [`PairResult::index`].
    pub compared: Vec<IntCounter>,
    /// `twinpeak_noise_reference_total{route, outcome}`, indexed by
    /// [`ReferenceOutcome::index`].
    pub reference: Vec<IntCounter>,
    /// `twinpeak_diff_total{route, kind}`, indexed by [`DiffKind::index`].
    pub diffs: Vec<IntCounter>,
    /// `twinpeak_upstream_errors_total{route, side, kind}`.
    upstream_errors: IntCounterVec,
    route: String,
}

impl RouteMetrics {
    /// Counts a failed exchange with an upstream (rare, so the label set is looked up here).
    pub fn upstream_error(&self, side: Side, kind: UpstreamErrorKind) {
        self.upstream_errors
            .with_label_values(&[self.route.as_str(), side.as_str(), kind.as_str()])
            .inc();
    }
}

/// Why an exchange with an upstream failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// The connection could not be opened (refused, unreachable, connect timeout).
    Connect,
    /// No answer within the time allowed.
    Timeout,
    /// The connection broke or the answer could not be read.
    Read,
    /// The TLS handshake failed: a certificate not verified, or no protocol in common.
    Tls,
    /// Anything else.
    Other,
}

impl UpstreamErrorKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Read => "read",
            UpstreamErrorKind::Tls => "tls",
            UpstreamErrorKind::Other => "other",
        }
    }
}

/// `twinpeak_paired_delta_seconds{route, quantile}`, made at scrape time.
pub const PAIRED_DELTA: &str = "twinpeak_paired_delta_seconds";

/// `twinpeak_diff_field_pairs{route, field, kind}`, made at scrape time.
pub const DIFF_FIELD_PAIRS: &str = "twinpeak_diff_field_pairs";

/// Fields per route in `twinpeak_diff_field_pairs`: its cardinality is bounded by it.
pub const TOP_FIELDS: usize = 10;

/// Longest field path shown as a label value, in characters (paths come from answers).
const MAX_FIELD_LABEL_CHARS: usize = 120;

/// The proxy's registry and its bound handles.
pub struct Metrics {
    registry: Registry,
    /// Collectors rendered with the rest but not kept in the state store.
    local: Registry,
    routes: Vec<RouteMetrics>,
    /// `twinpeak_mirror_in_flight`.
    pub mirror_in_flight: IntGauge,
    /// `twinpeak_requests_in_flight`: client requests being served now (what SIGTERM waits for).
    pub requests_in_flight: IntGauge,
    /// `twinpeak_mirror_percent`: the mirrored share in force.
    pub mirror_percent: Gauge,
    /// `twinpeak_mirror_buffered_bytes`: bytes the mirror holds (set when scraped).
    pub mirror_buffered_bytes: IntGauge,
    /// `twinpeak_canary_weight`: the share of live traffic the candidate serves, in percent.
    pub canary_weight: Gauge,
    /// `twinpeak_canary_decisions_total{decision}`, indexed by [`CanaryDecision::index`].
    pub canary_decisions: Vec<IntCounter>,
}

impl Metrics {
    /// Registers every metric and binds handles for each route.
    pub fn new(routes: &RouteTable) -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "twinpeak_requests_total",
                "Requests answered, by route, side and status class.",
            ),
            &["route", "side", "status_class"],
        )
        .expect("valid metric");
        let mirror = IntCounterVec::new(
            Opts::new(
                "twinpeak_mirror_total",
                "What became of each request as far as mirroring goes.",
            ),
            &["route", "outcome"],
        )
        .expect("valid metric");
        let compared = IntCounterVec::new(
            Opts::new(
                "twinpeak_compared_total",
                "Mirrored pairs compared, by result.",
            ),
            &["route", "result"],
        )
        .expect("valid metric");
        let reference = IntCounterVec::new(
            Opts::new(
                "twinpeak_noise_reference_total",
                "Second legacy answers asked for to learn noise, by outcome.",
            ),
            &["route", "outcome"],
        )
        .expect("valid metric");
        let diffs = IntCounterVec::new(
            Opts::new(
                "twinpeak_diff_total",
                "Real differences found in compared pairs, by field kind (noise excluded).",
            ),
            &["route", "kind"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "twinpeak_upstream_errors_total",
                "Exchanges with an upstream that failed, by kind.",
            ),
            &["route", "side", "kind"],
        )
        .expect("valid metric");
        let mirror_in_flight = IntGauge::new(
            "twinpeak_mirror_in_flight",
            "Mirrored copies outstanding at the shadow.",
        )
        .expect("valid metric");
        let requests_in_flight = IntGauge::new(
            "twinpeak_requests_in_flight",
            "Client requests being served now.",
        )
        .expect("valid metric");
        let mirror_percent = Gauge::new(
            "twinpeak_mirror_percent",
            "Share of eligible requests mirrored, in percent, as currently set.",
        )
        .expect("valid metric");
        let mirror_buffered_bytes = IntGauge::new(
            "twinpeak_mirror_buffered_bytes",
            "Bytes the mirror holds: captures waiting for their pair, queued pairs, kept examples.",
        )
        .expect("valid metric");
        let canary_weight = Gauge::new(
            "twinpeak_canary_weight",
            "Share of live traffic served by the canary candidate, in percent, as currently set.",
        )
        .expect("valid metric");
        let canary_decisions = IntCounterVec::new(
            Opts::new(
                "twinpeak_canary_decisions_total",
                "Canary judge verdicts per interval, and the ramp advances and rollbacks they caused.",
            ),
            &["decision"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(mirror.clone()),
            Box::new(compared.clone()),
            Box::new(reference.clone()),
            Box::new(diffs.clone()),
            Box::new(errors.clone()),
            Box::new(mirror_in_flight.clone()),
            Box::new(requests_in_flight.clone()),
            Box::new(mirror_percent.clone()),
            Box::new(mirror_buffered_bytes.clone()),
            Box::new(canary_weight.clone()),
            Box::new(canary_decisions.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        let routes = routes
            .names()
            .iter()
            .map(|route| RouteMetrics {
                sides: Side::ALL
                    .iter()
                    .map(|side| SideMetrics {
                        requests: StatusClass::ALL
                            .iter()
                            .map(|c| {
                                requests.with_label_values(&[route, side.as_str(), c.as_str()])
                            })
                            .collect(),
                    })
                    .collect(),
                mirror: MirrorOutcome::ALL
                    .iter()
                    .map(|o| mirror.with_label_values(&[route, o.as_str()]))
                    .collect(),
                compared: PairResult::ALL
                    .iter()
                    .map(|r| compared.with_label_values(&[route, r.as_str()]))
                    .collect(),
                reference: ReferenceOutcome::ALL
                    .iter()
                    .map(|o| reference.with_label_values(&[route, o.as_str()]))
                    .collect(),
                diffs: DiffKind::ALL
                    .iter()
                    .map(|k| diffs.with_label_values(&[route, k.as_str()]))
                    .collect(),
                upstream_errors: errors.clone(),
                route: route.clone(),
            })
            .collect();
        Metrics {
            registry,
            local: Registry::new(),
            routes,
            mirror_in_flight,
            requests_in_flight,
            mirror_percent,
            mirror_buffered_bytes,
            canary_weight,
            canary_decisions: CanaryDecision::ALL
                .iter()
                .map(|d| canary_decisions.with_label_values(&[d.as_str()]))
                .collect(),
        }
    }

    /// The handles of one route.
    pub fn route(&self, id: usize) -> &RouteMetrics {
        &self.routes[id]
    }

    /// Every registered family as it stands (what the state store's counters are read from).
    pub fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }

    /// Registers a collector that is rendered with the rest but not kept in the state store:
    /// what a replica says about its own process (its webhook deliveries).
    pub fn register_local(&self, collector: Box<dyn Collector>) {
        if let Err(error) = self.local.register(collector) {
            log::error!("metrics: {error}");
        }
    }

    /// Everything in Prometheus' text exposition format, with `extra` families (those made at
    /// scrape time) among the registered ones; an extra family without a metric is left out.
    pub fn render(&self, extra: Vec<MetricFamily>) -> Vec<u8> {
        let mut families = self.registry.gather();
        families.extend(self.local.gather());
        families.extend(extra.into_iter().filter(|f| !f.get_metric().is_empty()));
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("encoding to a Vec cannot fail");
        out
    }
}

/// The recorder's metrics (`record:`): a replica's own, rendered with the rest but not kept
/// in the state store.
#[derive(Clone)]
pub struct RecordMetrics {
    /// `twinpeak_record_total{result}`, indexed by [`RecordResult::index`].
    pub results: Vec<IntCounter>,
    /// `twinpeak_record_bytes_total`: compressed bytes written to segments.
    pub bytes: IntCounter,
    /// `twinpeak_record_segments_deleted_total`: segments deleted to keep the directory bound.
    pub segments_deleted: IntCounter,
    /// `twinpeak_record_deleted_bytes_total`: bytes those segments held.
    pub deleted_bytes: IntCounter,
    /// `twinpeak_record_enabled`: 1 while recording is on.
    pub enabled: IntGauge,
    /// `twinpeak_record_percent`: the recorded share in force.
    pub percent: Gauge,
    /// `twinpeak_record_queue`: records waiting for the writer.
    pub queue: IntGauge,
}

/// What became of a record offered to a writer thread: a request chosen for recording, or an
/// access log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordResult {
    /// Written (to a recording segment, or to the access log).
    Written,
    /// The writer's queue was full.
    DroppedQueue,
    /// The queue's byte bound was reached.
    DroppedBytes,
    /// Writing failed (or the writer had stopped).
    Failed,
}

impl RecordResult {
    /// Every result, in index order.
    pub const ALL: [RecordResult; 4] = [
        RecordResult::Written,
        RecordResult::DroppedQueue,
        RecordResult::DroppedBytes,
        RecordResult::Failed,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordResult::Written => "written",
            RecordResult::DroppedQueue => "dropped_queue",
            RecordResult::DroppedBytes => "dropped_bytes",
            RecordResult::Failed => "failed",
        }
    }

    /// Position in [`RecordResult::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl RecordMetrics {
    /// Registers the recorder's metrics with `metrics`' local collectors.
    pub fn register(metrics: &Metrics) -> Self {
        let results = IntCounterVec::new(
            Opts::new(
                "twinpeak_record_total",
                "Requests chosen for recording, by what became of them.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let bytes = counter(
            "twinpeak_record_bytes_total",
            "Compressed bytes written to recording segments.",
        );
        let segments_deleted = counter(
            "twinpeak_record_segments_deleted_total",
            "Recording segments deleted, oldest first, to keep the directory within max_total_bytes.",
        );
        let deleted_bytes = counter(
            "twinpeak_record_deleted_bytes_total",
            "Bytes of the recording segments deleted to keep the directory bound.",
        );
        let enabled = IntGauge::new("twinpeak_record_enabled", "1 while recording is on.")
            .expect("valid metric");
        let percent = Gauge::new(
            "twinpeak_record_percent",
            "Share of requests recorded, in percent, as currently set.",
        )
        .expect("valid metric");
        let queue = IntGauge::new(
            "twinpeak_record_queue",
            "Recorded requests waiting for the writer.",
        )
        .expect("valid metric");
        for collector in [
            Box::new(results.clone()) as Box<dyn Collector>,
            Box::new(bytes.clone()),
            Box::new(segments_deleted.clone()),
            Box::new(deleted_bytes.clone()),
            Box::new(enabled.clone()),
            Box::new(percent.clone()),
            Box::new(queue.clone()),
        ] {
            metrics.register_local(collector);
        }
        RecordMetrics {
            results: RecordResult::ALL
                .iter()
                .map(|r| results.with_label_values(&[r.as_str()]))
                .collect(),
            bytes,
            segments_deleted,
            deleted_bytes,
            enabled,
            percent,
            queue,
        }
    }

    /// Counts `n` records with `result`.
    pub fn count(&self, result: RecordResult, n: u64) {
        self.results[result.index()].inc_by(n);
    }

    /// Records counted with `result` so far.
    pub fn total(&self, result: RecordResult) -> u64 {
        self.results[result.index()].get()
    }
}

/// The access log's metrics (`access_log:`): a replica's own, rendered with the rest but not
/// kept in the state store.
#[derive(Clone)]
pub struct AccessLogMetrics {
    /// `twinpeak_access_log_total{result}`, indexed by [`RecordResult::index`] (the same
    /// results as recording's: written, dropped_queue, dropped_bytes, failed).
    results: Vec<IntCounter>,
}

impl AccessLogMetrics {
    /// Registers the access log's metrics with `metrics`' local collectors.
    pub fn register(metrics: &Metrics) -> Self {
        let results = IntCounterVec::new(
            Opts::new(
                "twinpeak_access_log_total",
                "Access log lines, by what became of them.",
            ),
            &["result"],
        )
        .expect("valid metric");
        metrics.register_local(Box::new(results.clone()));
        AccessLogMetrics {
            results: RecordResult::ALL
                .iter()
                .map(|r| results.with_label_values(&[r.as_str()]))
                .collect(),
        }
    }

    /// Counts `n` lines with `result`.
    pub fn count(&self, result: RecordResult, n: u64) {
        self.results[result.index()].inc_by(n);
    }
}

/// A gauge family made at scrape time: one gauge per set of labels (shown sorted by name, as
/// the registered metrics show theirs).
pub fn gauge_family(
    name: &str,
    help: &str,
    gauges: Vec<(Vec<(&str, String)>, f64)>,
) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.into());
    family.set_help(help.into());
    family.set_field_type(MetricType::GAUGE);
    for (mut labels, value) in gauges {
        labels.sort_by_key(|(name, _)| *name);
        let mut gauge = proto::Gauge::default();
        gauge.set_value(value);
        let mut metric = proto::Metric::default();
        metric.set_label(
            labels
                .into_iter()
                .map(|(name, value)| {
                    let mut pair = proto::LabelPair::default();
                    pair.set_name(name.into());
                    pair.set_value(value);
                    pair
                })
                .collect(),
        );
        metric.set_gauge(gauge);
        family.mut_metric().push(metric);
    }
    family
}

/// `twinpeak_diff_field_pairs{route, field, kind}` from each route's summary: the pairs in
/// which a field differed for real, for the [`TOP_FIELDS`] fields with the most per route
/// (a summary lists real fields most frequent first, noise apart).
pub fn diff_field_family(summaries: &[(&str, DiffSummary)]) -> MetricFamily {
    let gauges = summaries
        .iter()
        .flat_map(|(route, summary)| {
            summary.fields.iter().take(TOP_FIELDS).map(move |field| {
                let path: String = field.path.chars().take(MAX_FIELD_LABEL_CHARS).collect();
                let labels = vec![
                    ("route", route.to_string()),
                    ("field", path),
                    ("kind", field.kind.clone()),
                ];
                (labels, field.count as f64)
            })
        })
        .collect();
    gauge_family(
        DIFF_FIELD_PAIRS,
        "Pairs in which a field differed for real (noise excluded), for the 10 fields with the \
         most on each route.",
        gauges,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_handles_show_under_their_names() {
        let routes = RouteTable::new(&[]);
        let m = Metrics::new(&routes);
        m.route(0).sides[0].requests[StatusClass::Success.index()].inc();
        m.route(0).mirror[MirrorOutcome::Sent.index()].inc();
        m.route(0)
            .upstream_error(Side::Primary, UpstreamErrorKind::Connect);
        m.mirror_percent.set(30.0);
        m.route(0).sides[Side::Candidate.index()].requests[StatusClass::Success.index()].inc();
        m.canary_weight.set(12.5);
        m.canary_decisions[CanaryDecision::Rollback.index()].inc();
        let text = String::from_utf8(m.render(Vec::new())).unwrap();
        assert!(text.contains(
            r#"twinpeak_requests_total{route="other",side="primary",status_class="2xx"} 1"#
        ));
        assert!(text.contains(r#"twinpeak_mirror_total{outcome="sent",route="other"} 1"#));
        assert!(text.contains(
            r#"twinpeak_upstream_errors_total{kind="connect",route="other",side="primary"} 1"#
        ));
        assert!(text.contains("twinpeak_mirror_percent 30"));
        assert!(text.contains("twinpeak_mirror_in_flight 0"));
        assert!(text.contains(
            r#"twinpeak_requests_total{route="other",side="candidate",status_class="2xx"} 1"#
        ));
        assert!(text.contains("twinpeak_canary_weight 12.5"));
        assert!(text.contains(r#"twinpeak_canary_decisions_total{decision="rollback"} 1"#));
        assert!(text.contains(r#"twinpeak_canary_decisions_total{decision="pass"} 0"#));
    }

    #[test]
    fn the_top_fields_of_each_route_are_gauges_and_empty_extras_are_left_out() {
        let field = |path: String, count: u64| twinpeak_core::FieldSummary {
            path,
            kind: "value_changed".into(),
            count,
            rate: 0.0,
            reference_count: 0,
            reference_rate: None,
            first_seen: String::new(),
            last_seen: String::new(),
            suggested_ignore: None,
        };
        let summary = DiffSummary {
            fields: std::iter::once(field("x".repeat(500), 1000))
                .chain((0..15).map(|i| field(format!("$.f{i:02}"), 100 - i)))
                .collect(),
            ..DiffSummary::default()
        };
        let family = diff_field_family(&[("/a", summary)]);
        assert_eq!(family.get_metric().len(), TOP_FIELDS);
        let m = Metrics::new(&RouteTable::new(&[]));
        let empty = gauge_family(PAIRED_DELTA, "none yet", Vec::new());
        let text = String::from_utf8(m.render(vec![family, empty])).unwrap();
        assert!(text.contains(
            r#"twinpeak_diff_field_pairs{field="$.f00",kind="value_changed",route="/a"} 100"#
        ));
        assert!(!text.contains("$.f09"), "{text}");
        let long = format!("field=\"{}\"", "x".repeat(MAX_FIELD_LABEL_CHARS));
        assert!(text.contains(&long), "{text}");
        assert!(!text.contains(PAIRED_DELTA), "{text}");
    }
}
