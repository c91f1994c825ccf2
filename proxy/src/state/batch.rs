//! What one flush writes: the deltas since the previous flush (latency, counters, findings),
//! and the findings of each route as they stand with their kept examples. A [`Tracker`] makes
//! a batch from what the proxy holds now (a snapshot and its counters, all totals since start),
//! remembering what it handed over last, so the proxy keeps its aggregates as they are.

use std::collections::BTreeMap;
use std::time::SystemTime;

use hdrhistogram::Histogram;
use prometheus::proto::{MetricFamily, MetricType};
use serde::{Deserialize, Serialize};
use twinpeak_core::diff::{FieldSummary, Overflow, Signature};
use twinpeak_core::{DiffSummary, SignedHistogram, Snapshot};

use super::codec;
use super::rows::{Cell, CounterKey, RowKey, RowValue, Series};

/// A route's findings as a whole: the summary and the kept examples (opaque JSON, as the
/// comparison store makes them; in a batch, `null` leaves the stored ones as they are). What
/// a restarted replica restores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteFindings {
    /// Everything compared on the route so far.
    pub summary: DiffSummary,
    /// The kept examples.
    pub examples: serde_json::Value,
}

/// One flush: deltas since the previous one, and the findings as they stand.
#[derive(Debug, Clone)]
pub struct Batch {
    /// When it was taken: its deltas land in the minute window holding this instant.
    pub at: SystemTime,
    /// Latency recorded since the previous flush, per route and side (not [`Series::Delta`]).
    pub latency: BTreeMap<(String, Series), Histogram<u64>>,
    /// Paired deltas recorded since the previous flush, per route.
    pub deltas: BTreeMap<String, SignedHistogram>,
    /// Counter increments since the previous flush.
    pub counters: BTreeMap<CounterKey, u64>,
    /// Findings since the previous flush, per route (their counts are the pairs compared
    /// since, their noise rule the current one).
    pub findings: BTreeMap<String, DiffSummary>,
    /// Findings as a whole, per route: replace what is stored.
    pub totals: BTreeMap<String, RouteFindings>,
}

impl Batch {
    /// An empty batch taken at `at`.
    pub fn new(at: SystemTime) -> Self {
        Batch {
            at,
            latency: BTreeMap::new(),
            deltas: BTreeMap::new(),
            counters: BTreeMap::new(),
            findings: BTreeMap::new(),
            totals: BTreeMap::new(),
        }
    }

    /// Whether it holds nothing to write.
    pub fn is_empty(&self) -> bool {
        self.latency.values().all(Histogram::is_empty)
            && self.deltas.values().all(SignedHistogram::is_empty)
            && self.counters.values().all(|n| *n == 0)
            && self.findings.is_empty()
            && self.totals.is_empty()
    }

    /// The window rows it adds to; empty deltas are left out.
    pub(crate) fn values(&self) -> Vec<(RowKey, RowValue)> {
        let latency = self
            .latency
            .iter()
            .filter(|((_, series), h)| *series != Series::Delta && !h.is_empty())
            .map(|((route, series), h)| {
                (
                    RowKey::Latency(route.clone(), *series),
                    RowValue::Latency(h.clone()),
                )
            });
        let deltas = self
            .deltas
            .iter()
            .filter(|(_, d)| !d.is_empty())
            .map(|(route, d)| {
                (
                    RowKey::Latency(route.clone(), Series::Delta),
                    RowValue::Delta(d.clone()),
                )
            });
        let counters = self
            .counters
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(key, n)| (RowKey::Counter(key.clone()), RowValue::Count(*n)));
        let findings = self.findings.iter().map(|(route, f)| {
            (
                RowKey::Findings(route.clone()),
                RowValue::Findings(Box::new(f.clone())),
            )
        });
        latency
            .chain(deltas)
            .chain(counters)
            .chain(findings)
            .collect()
    }

    /// The window rows it adds to, encoded.
    pub(crate) fn cells(&self) -> Vec<(RowKey, Cell)> {
        self.values()
            .into_iter()
            .map(|(key, value)| (key, value.encode()))
            .collect()
    }
}

/// Every counter of `families` (Prometheus counters only), by name and labels: the proxy's
/// counters as a batch counts them.
pub fn counters_from_families(families: &[MetricFamily]) -> BTreeMap<CounterKey, u64> {
    let mut counters = BTreeMap::new();
    for family in families {
        if family.get_field_type() != MetricType::COUNTER {
            continue;
        }
        for metric in family.get_metric() {
            let labels = metric
                .get_label()
                .iter()
                .map(|l| (l.name().to_string(), l.value().to_string()))
                .collect();
            let value = metric.get_counter().value();
            if value > 0.0 {
                counters.insert(
                    CounterKey {
                        name: family.name().to_string(),
                        labels,
                    },
                    value.round() as u64,
                );
            }
        }
    }
    counters
}

/// A latency total as last handed over: encoded (a fraction of the memory of the histogram)
/// and its count, to skip histograms that did not move.
struct Handed {
    count: u64,
    encoded: String,
}

/// Makes batches from totals: remembers what it handed over last and gives the difference.
/// Totals that went down (a reset) are handed over whole.
#[derive(Default)]
pub struct Tracker {
    latency: BTreeMap<(String, Series), Handed>,
    deltas: BTreeMap<String, Handed>,
    counters: BTreeMap<CounterKey, u64>,
    findings: BTreeMap<String, DiffSummary>,
    /// A digest of the examples last handed over, per route: unchanged ones are not again.
    examples: BTreeMap<String, u64>,
}

/// A digest of a route's examples, to tell whether they changed.
fn digest(examples: &serde_json::Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    examples.to_string().hash(&mut hasher);
    hasher.finish()
}

impl Tracker {
    /// A tracker that has handed nothing over yet.
    pub fn new() -> Self {
        Tracker::default()
    }

    /// A tracker for a proxy whose comparison store was restored with these findings: they
    /// are not handed over again.
    pub fn with_findings(findings: BTreeMap<String, DiffSummary>) -> Self {
        Tracker {
            findings,
            ..Tracker::default()
        }
    }

    /// The batch of what changed since the last call: latency and findings from `snapshot`
    /// (totals since start, per route), `counters` (totals, e.g. from
    /// [`counters_from_families`]), and the kept `examples` per route (handed over only when
    /// they changed; otherwise the batch's findings carry `null`, which keeps the stored ones).
    pub fn batch(
        &mut self,
        at: SystemTime,
        snapshot: &Snapshot,
        counters: &BTreeMap<CounterKey, u64>,
        mut examples: BTreeMap<String, serde_json::Value>,
    ) -> Batch {
        let mut batch = Batch::new(at);
        for (route, r) in &snapshot.routes {
            for (series, side) in Series::SIDES
                .iter()
                .zip([&r.primary, &r.shadow, &r.candidate])
            {
                let key = (route.clone(), *series);
                if let Some(h) = since(self.latency.get(&key), &side.latency_us.0) {
                    batch.latency.insert(key.clone(), h);
                    self.latency.insert(key, handed(&side.latency_us.0));
                }
            }
            if let Some(d) = delta_since(self.deltas.get(route), &r.delta) {
                batch.deltas.insert(route.clone(), d);
                self.deltas.insert(route.clone(), handed_delta(&r.delta));
            }
            if let Some(now) = &r.diff {
                if let Some(delta) = findings_since(self.findings.get(route), now) {
                    batch.findings.insert(route.clone(), delta);
                    self.findings.insert(route.clone(), now.clone());
                    let mut kept = examples.remove(route).unwrap_or_default();
                    let digest = digest(&kept);
                    if self.examples.insert(route.clone(), digest) == Some(digest) {
                        kept = serde_json::Value::Null;
                    }
                    batch.totals.insert(
                        route.clone(),
                        RouteFindings {
                            summary: now.clone(),
                            examples: kept,
                        },
                    );
                }
            }
        }
        for (key, now) in counters {
            let before = self.counters.get(key).copied().unwrap_or(0);
            let increment = if *now >= before { now - before } else { *now };
            if increment > 0 {
                batch.counters.insert(key.clone(), increment);
                self.counters.insert(key.clone(), *now);
            }
        }
        batch
    }
}

fn handed(h: &Histogram<u64>) -> Handed {
    Handed {
        count: h.len(),
        encoded: codec::encode(h),
    }
}

fn handed_delta(d: &SignedHistogram) -> Handed {
    Handed {
        count: d.count(),
        encoded: codec::encode_delta(d),
    }
}

/// `now − before`, or `now` whole when it is not a continuation of `before`; `None` when
/// nothing was recorded since.
fn since(before: Option<&Handed>, now: &Histogram<u64>) -> Option<Histogram<u64>> {
    let Some(before) = before else {
        return (!now.is_empty()).then(|| now.clone());
    };
    if now.len() == before.count {
        return None;
    }
    let mut delta = now.clone();
    let subtracted = codec::decode(&before.encoded)
        .ok()
        .filter(|_| now.len() > before.count)
        .is_some_and(|b| delta.subtract(&b).is_ok());
    Some(if subtracted { delta } else { now.clone() })
}

fn delta_since(before: Option<&Handed>, now: &SignedHistogram) -> Option<SignedHistogram> {
    let Some(before) = before else {
        return (!now.is_empty()).then(|| now.clone());
    };
    if now.count() == before.count {
        return None;
    }
    let mut delta = now.clone();
    let subtracted = codec::decode_delta(&before.encoded)
        .ok()
        .filter(|_| now.count() > before.count)
        .is_some_and(|b| {
            delta.slower.subtract(&b.slower).is_ok() && delta.faster.subtract(&b.faster).is_ok()
        });
    Some(if subtracted { delta } else { now.clone() })
}

/// The findings of the pairs compared since `before`: counts subtracted field by field and
/// signature by signature, every field in `fields` (noise is told apart when deltas are read
/// together, from their added counts). `None` when nothing was compared since; `now` whole
/// after a reset.
pub(crate) fn findings_since(
    before: Option<&DiffSummary>,
    now: &DiffSummary,
) -> Option<DiffSummary> {
    let Some(before) = before else {
        return (now.compared > 0 || now.reference_compared > 0).then(|| now.clone());
    };
    if now.compared < before.compared || now.reference_compared < before.reference_compared {
        return Some(now.clone());
    }
    if now.compared == before.compared && now.reference_compared == before.reference_compared {
        return None;
    }
    let key = |f: &FieldSummary| (f.path.clone(), f.kind.clone());
    let earlier: BTreeMap<_, &FieldSummary> = before
        .fields
        .iter()
        .chain(&before.noise)
        .map(|f| (key(f), f))
        .collect();
    let fields = now
        .fields
        .iter()
        .chain(&now.noise)
        .filter_map(|f| {
            let old = earlier.get(&key(f));
            let count = f.count.saturating_sub(old.map_or(0, |o| o.count));
            let reference_count = f
                .reference_count
                .saturating_sub(old.map_or(0, |o| o.reference_count));
            (count > 0 || reference_count > 0).then(|| FieldSummary {
                count,
                reference_count,
                // First seen in this delta only when it is new; otherwise its earliest sighting
                // here is no earlier than the last one before.
                first_seen: match old {
                    None => f.first_seen.clone(),
                    Some(o) => o.last_seen.clone().max(f.first_seen.clone()),
                },
                ..f.clone()
            })
        })
        .collect();
    let earlier_signatures: BTreeMap<&[(String, String)], u64> = before
        .signatures
        .iter()
        .map(|s| (s.fields.as_slice(), s.pairs))
        .collect();
    let signatures = now
        .signatures
        .iter()
        .filter_map(|s| {
            let pairs = s.pairs.saturating_sub(
                earlier_signatures
                    .get(s.fields.as_slice())
                    .copied()
                    .unwrap_or(0),
            );
            (pairs > 0).then(|| Signature {
                fields: s.fields.clone(),
                pairs,
            })
        })
        .collect();
    Some(DiffSummary {
        compared: now.compared - before.compared,
        identical: now.identical.saturating_sub(before.identical),
        truncated: now.truncated.saturating_sub(before.truncated),
        reference_compared: now.reference_compared - before.reference_compared,
        fields,
        noise: Vec::new(),
        noise_rule: now.noise_rule,
        signatures,
        overflow: Overflow {
            different: now
                .overflow
                .different
                .saturating_sub(before.overflow.different),
            noise_only: now
                .overflow
                .noise_only
                .saturating_sub(before.overflow.noise_only),
        },
        ..DiffSummary::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use twinpeak_core::diff::NoiseRule;
    use twinpeak_core::{
        new_latency_histogram, record_saturating, EncodedHistogram, RouteSnapshot,
    };

    const RULE: NoiseRule = NoiseRule {
        min_samples: 10,
        absolute_threshold: 0.03,
        relative_threshold: 0.2,
    };

    fn field(path: &str, count: u64, reference_count: u64, seen: &str) -> FieldSummary {
        FieldSummary {
            path: path.into(),
            kind: "value_changed".into(),
            count,
            rate: 0.0,
            reference_count,
            reference_rate: None,
            first_seen: seen.into(),
            last_seen: seen.into(),
            suggested_ignore: None,
        }
    }

    fn summary(compared: u64, price: u64, nonce_refs: u64, reference: u64) -> DiffSummary {
        let mut s = DiffSummary {
            compared,
            identical: compared - price,
            reference_compared: reference,
            fields: vec![field("$.price", price, 0, "2026-01-01T00:00:00Z")],
            noise: vec![field("$.nonce", 0, nonce_refs, "2026-01-01T00:00:00Z")],
            noise_rule: Some(RULE),
            signatures: vec![Signature {
                fields: vec![("$.price".into(), "value_changed".into())],
                pairs: price,
            }],
            ..DiffSummary::default()
        };
        s.classify();
        s
    }

    #[test]
    fn findings_deltas_add_back_up_to_the_totals() {
        let first = summary(100, 10, 20, 20);
        let second = summary(250, 30, 50, 50);
        let delta = findings_since(Some(&first), &second).unwrap();
        assert_eq!((delta.compared, delta.identical), (150, 130));
        assert_eq!(delta.signatures[0].pairs, 20);
        let mut total = findings_since(None, &first).unwrap();
        total.merge(&delta);
        assert_eq!(total.compared, second.compared);
        assert_eq!(total.different, second.different);
        assert_eq!(total.fields, second.fields);
        assert!(findings_since(Some(&second), &second).is_none());
        // A reset (fewer pairs than before) is handed over whole.
        let reset = findings_since(Some(&second), &first).unwrap();
        assert_eq!(reset.compared, first.compared);
    }

    fn snapshot_with(values: &[u64], deltas: &[i64], diff: Option<DiffSummary>) -> Snapshot {
        let mut route = RouteSnapshot::default();
        let mut h = new_latency_histogram();
        values.iter().for_each(|v| record_saturating(&mut h, *v));
        route.primary.latency_us = EncodedHistogram(h);
        deltas.iter().for_each(|d| route.delta.record(*d));
        route.diff = diff;
        let mut snapshot = Snapshot::new("sha", SystemTime::now(), BTreeMap::new());
        snapshot.routes.insert("/a".into(), route);
        snapshot
    }

    #[test]
    fn the_tracker_hands_over_what_changed_since_last_time() {
        let mut tracker = Tracker::new();
        let counter = CounterKey::new("twinpeak_mirror_total", [("route", "/a")]);
        let at = SystemTime::now();
        let first = tracker.batch(
            at,
            &snapshot_with(&[100, 200], &[-5], Some(summary(10, 1, 0, 0))),
            &BTreeMap::from([(counter.clone(), 4)]),
            BTreeMap::from([("/a".to_string(), serde_json::json!([{"id": 1}]))]),
        );
        assert_eq!(first.latency[&("/a".into(), Series::Primary)].len(), 2);
        assert_eq!(first.deltas["/a"].count(), 1);
        assert_eq!(first.counters[&counter], 4);
        assert_eq!(first.totals["/a"].examples, serde_json::json!([{"id": 1}]));
        assert_eq!(first.cells().len(), 4);

        let second = tracker.batch(
            at,
            &snapshot_with(&[100, 200, 5_000], &[-5], Some(summary(10, 1, 0, 0))),
            &BTreeMap::from([(counter.clone(), 9)]),
            BTreeMap::new(),
        );
        let h = &second.latency[&("/a".into(), Series::Primary)];
        assert_eq!((h.len(), h.min() >= 4_990), (1, true));
        assert!(second.deltas.is_empty() && second.findings.is_empty());
        assert_eq!(second.counters[&counter], 5);

        let unchanged = tracker.batch(
            at,
            &snapshot_with(&[100, 200, 5_000], &[-5], Some(summary(10, 1, 0, 0))),
            &BTreeMap::from([(counter.clone(), 9)]),
            BTreeMap::new(),
        );
        assert!(unchanged.is_empty());

        // More pairs compared, the same examples kept: they are not handed over again.
        let examples = || BTreeMap::from([("/a".to_string(), serde_json::json!([{"id": 1}]))]);
        let same = tracker.batch(
            at,
            &snapshot_with(&[100, 200, 5_000], &[-5], Some(summary(20, 2, 0, 0))),
            &BTreeMap::from([(counter.clone(), 9)]),
            examples(),
        );
        assert_eq!(same.findings["/a"].compared, 10);
        assert!(same.totals["/a"].examples.is_null());
        let mut pending = super::super::pending::Pending::default();
        pending.absorb(&first, usize::MAX).unwrap();
        pending.absorb(&same, usize::MAX).unwrap();
        let (kept, _) = &pending.totals["/a"];
        assert_eq!(kept.summary.compared, 20);
        assert_eq!(
            kept.examples,
            serde_json::json!([{"id": 1}]),
            "the buffer keeps them"
        );
    }

    #[test]
    fn counters_are_read_from_prometheus_families() {
        let registry = prometheus::Registry::new();
        let counter = prometheus::IntCounterVec::new(
            prometheus::Opts::new("twinpeak_mirror_total", "help"),
            &["route", "outcome"],
        )
        .unwrap();
        let gauge = prometheus::IntGauge::new("twinpeak_mirror_in_flight", "help").unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        registry.register(Box::new(gauge.clone())).unwrap();
        counter.with_label_values(&["/a", "sent"]).inc_by(3);
        counter.with_label_values(&["/a", "method"]);
        gauge.set(5);
        let counters = counters_from_families(&registry.gather());
        assert_eq!(
            counters,
            BTreeMap::from([(
                CounterKey::new(
                    "twinpeak_mirror_total",
                    [("route", "/a"), ("outcome", "sent")]
                ),
                3
            )])
        );
    }
}
