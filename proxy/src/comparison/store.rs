//! Comparison results per route: per field how often it differed (against the shadow and in
//! reference comparisons), per *signature* (the set of fields a pair differed on) how many
//! pairs differed exactly so, and a bounded set of examples.
//!
//! How a pair came out is never stored: whenever the results are read (the admin API, a
//! snapshot, the canary judge's interval), `different` and `noise_only` are derived from the
//! signatures with each field's noise status at that moment. So pairs compared before a nonce
//! was known to be noise stop counting as different once it is, and the route's figures always
//! agree with its fields. Everything is bounded: fields, signatures and examples per route, and
//! the examples' bytes by the mirror's byte budget.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use twinpeak_core::diff::{NoiseRule, Overflow, Signature, Totals};
use twinpeak_core::timestamp::{parse_rfc3339, rfc3339};
use twinpeak_core::{DiffSummary, FieldSummary};

use crate::budget::{ByteBudget, Reservation};
use crate::diff::{DiffKind, Finding};
use crate::labels::PairResult;
use crate::routes::RouteId;
use twinpeak_core::sync::lock;

use super::config::DiffConfig;

/// Mirrored pairs compared since the window was last taken (the canary judge's interval),
/// classified with the noise known when it is taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffWindow {
    /// Pairs compared (identical, different or noise-only).
    pub compared: u64,
    /// Of those, pairs with a real difference.
    pub different: u64,
}

/// The path that collects fields beyond a route's field limit.
pub const OVERFLOW_PATH: &str = "(other fields)";

/// One captured exchange, redacted, kept as an example of a difference.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    /// The id both sides saw.
    pub request_id: String,
    /// When the pair was compared (RFC 3339).
    pub seen_at: String,
    /// The difference this example shows (its detail redacted when it is about a secret).
    pub finding: Finding,
    /// What was asked.
    pub request: ExampleMessage,
    /// What the primary answered.
    pub primary: ExampleMessage,
    /// What the shadow answered.
    pub shadow: ExampleMessage,
}

/// A request or an answer in an example.
#[derive(Debug, Clone, Serialize)]
pub struct ExampleMessage {
    /// `GET /bookings/7` for requests (secret query values redacted), the status for answers.
    pub start_line: String,
    /// Headers, secrets redacted.
    pub headers: Vec<(String, String)>,
    /// The body as text (secrets redacted), base64 when it is binary, or why it was withheld.
    pub body: String,
    /// `"text"`, `"base64"` or `"withheld"`.
    pub body_encoding: &'static str,
    /// Whether the body was cut by the capture cap.
    pub truncated: bool,
}

/// An example (as the admin API shows it and the state store keeps it) and the bytes it
/// holds in the mirror's budget.
#[derive(Debug)]
struct KeptExample {
    example: Arc<serde_json::Value>,
    _held: Reservation,
}

impl Example {
    /// Roughly the bytes it holds: its texts.
    fn size(&self) -> usize {
        let message = |m: &ExampleMessage| {
            m.start_line.len()
                + m.body.len()
                + m.headers
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
        };
        self.request_id.len()
            + self.finding.path.len()
            + self.finding.detail.len()
            + message(&self.request)
            + message(&self.primary)
            + message(&self.shadow)
    }
}

/// Index of a field in its route's list.
type FieldId = usize;

#[derive(Debug)]
struct FieldStats {
    path: String,
    kind: DiffKind,
    count: u64,
    reference_count: u64,
    first_seen: SystemTime,
    last_seen: SystemTime,
    examples: Vec<KeptExample>,
}

#[derive(Debug)]
struct SignatureStats {
    /// Sorted, distinct.
    fields: Box<[FieldId]>,
    pairs: u64,
    /// Pairs since the judge last took its interval.
    window: u64,
}

/// Identical pairs and overflowed pairs of the judge's interval in progress.
#[derive(Debug, Default)]
struct Window {
    identical: u64,
    overflow: Overflow,
}

#[derive(Debug, Default)]
struct RouteDiffs {
    compared: u64,
    identical: u64,
    truncated: u64,
    reference_compared: u64,
    fields: Vec<FieldStats>,
    field_ids: HashMap<(String, DiffKind), FieldId>,
    signatures: Vec<SignatureStats>,
    signature_ids: HashMap<Box<[FieldId]>, usize>,
    overflow: Overflow,
    window: Window,
    /// Incremented whenever an example is kept, so unchanged examples are not written again.
    examples_version: u64,
}

impl RouteDiffs {
    fn totals(&self) -> Totals {
        Totals {
            compared: self.compared,
            reference_compared: self.reference_compared,
        }
    }

    /// The id of a finding's field, creating it (or the kind's overflow field, when the route
    /// tracks as many fields as allowed).
    fn field_id(&mut self, finding: &Finding, max_fields: usize, now: SystemTime) -> FieldId {
        let key = (finding.path.clone(), finding.kind);
        let key = if self.field_ids.contains_key(&key) || self.fields.len() < max_fields {
            key
        } else {
            (OVERFLOW_PATH.to_string(), finding.kind)
        };
        if let Some(id) = self.field_ids.get(&key) {
            return *id;
        }
        let id = self.fields.len();
        self.fields.push(FieldStats {
            path: key.0.clone(),
            kind: key.1,
            count: 0,
            reference_count: 0,
            first_seen: now,
            last_seen: now,
            examples: Vec::new(),
        });
        self.field_ids.insert(key, id);
        id
    }

    /// The ids of a comparison's findings, in order, and the distinct ones sorted.
    fn ids(
        &mut self,
        findings: &[Finding],
        max_fields: usize,
        now: SystemTime,
    ) -> (Vec<FieldId>, Vec<FieldId>) {
        let ids: Vec<FieldId> = findings
            .iter()
            .map(|f| self.field_id(f, max_fields, now))
            .collect();
        let mut distinct = ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        (ids, distinct)
    }

    /// Each field's noise status now, by id.
    fn noise(&self, rule: &NoiseRule) -> Vec<bool> {
        let totals = self.totals();
        self.fields
            .iter()
            .map(|f| rule.is_noise(f.count, f.reference_count, totals))
            .collect()
    }

    /// Counts a compared pair that differed on `ids` under its signature (or as overflow,
    /// with the `result` it has now, when the route holds as many signatures as allowed).
    fn count_signature(&mut self, ids: Vec<FieldId>, result: PairResult, max: usize) {
        if ids.is_empty() {
            self.identical += 1;
            self.window.identical += 1;
            return;
        }
        if let Some(&index) = self.signature_ids.get(ids.as_slice()) {
            let signature = &mut self.signatures[index];
            signature.pairs += 1;
            signature.window += 1;
        } else if self.signatures.len() < max {
            let fields: Box<[FieldId]> = ids.into();
            self.signature_ids
                .insert(fields.clone(), self.signatures.len());
            self.signatures.push(SignatureStats {
                fields,
                pairs: 1,
                window: 1,
            });
        } else {
            for overflow in [&mut self.overflow, &mut self.window.overflow] {
                if result == PairResult::Different {
                    overflow.different += 1;
                } else {
                    overflow.noise_only += 1;
                }
            }
        }
    }

    /// The judge's interval: its pairs, classified with the noise known now; starts the next.
    fn take_window(&mut self, rule: &NoiseRule) -> DiffWindow {
        let noise = self.noise(rule);
        let window = std::mem::take(&mut self.window);
        let mut taken = DiffWindow {
            compared: window.identical + window.overflow.different + window.overflow.noise_only,
            different: window.overflow.different,
        };
        for signature in &mut self.signatures {
            let pairs = std::mem::take(&mut signature.window);
            taken.compared += pairs;
            if signature.fields.iter().any(|id| !noise[*id]) {
                taken.different += pairs;
            }
        }
        taken
    }
}

/// How one pair came out when it was compared, finding by finding.
#[derive(Debug)]
pub struct PairVerdict {
    /// The pair's result with the noise known at that moment.
    pub result: PairResult,
    /// The findings with whether each is real (`true`) or noise at that moment.
    pub findings: Vec<(Finding, bool)>,
}

/// The comparison results of every route.
pub struct DiffStore {
    routes: Vec<Mutex<RouteDiffs>>,
    rule: NoiseRule,
    max_fields: usize,
    max_signatures: usize,
    examples_per_field: usize,
    /// The mirror's byte budget, which kept examples take from.
    budget: Arc<ByteBudget>,
    /// Examples not kept because the budget was spent.
    examples_over_budget: AtomicU64,
}

impl DiffStore {
    /// An empty store for `routes` routes, bounded as `config` says, keeping examples only as
    /// far as `budget` allows.
    pub fn new(routes: usize, config: &DiffConfig, budget: Arc<ByteBudget>) -> Self {
        DiffStore {
            routes: (0..routes)
                .map(|_| Mutex::new(RouteDiffs::default()))
                .collect(),
            rule: config.noise.rule(),
            max_fields: config.max_fields_per_route,
            max_signatures: config.max_signatures_per_route,
            examples_per_field: config.examples_per_field,
            budget,
            examples_over_budget: AtomicU64::new(0),
        }
    }

    /// Examples not kept because the mirror's byte budget was spent.
    pub fn examples_over_budget(&self) -> u64 {
        self.examples_over_budget.load(Ordering::Relaxed)
    }

    /// Records a reference comparison (primary against a second legacy answer): whatever
    /// differs there is noise.
    pub fn record_reference(&self, route: RouteId, findings: &[Finding]) {
        let now = SystemTime::now();
        let mut diffs = lock(&self.routes[route]);
        diffs.reference_compared += 1;
        for id in diffs.ids(findings, self.max_fields, now).1 {
            diffs.fields[id].reference_count += 1;
        }
    }

    /// Records a compared pair; `example` builds an example for a finding, and is only called
    /// when one is wanted.
    pub fn record(
        &self,
        route: RouteId,
        findings: Vec<Finding>,
        truncated: bool,
        example: &dyn Fn(&Finding) -> Example,
    ) -> PairVerdict {
        let now = SystemTime::now();
        let mut diffs = lock(&self.routes[route]);
        diffs.compared += 1;
        diffs.truncated += u64::from(truncated);
        let (ids, signature) = diffs.ids(&findings, self.max_fields, now);
        for &id in &signature {
            let field = &mut diffs.fields[id];
            if field.count == 0 {
                field.first_seen = now;
            }
            field.count += 1;
            field.last_seen = now;
        }
        let totals = diffs.totals();
        let mut verdicts = Vec::with_capacity(findings.len());
        let mut kept = 0;
        for (finding, id) in findings.into_iter().zip(ids) {
            let field = &mut diffs.fields[id];
            if field.examples.len() < self.examples_per_field {
                let example = example(&finding);
                let mut held = self.budget.reservation();
                if held.grow(example.size()) {
                    field.examples.push(KeptExample {
                        example: Arc::new(serde_json::to_value(&example).unwrap_or_default()),
                        _held: held,
                    });
                    kept += 1;
                } else {
                    self.examples_over_budget.fetch_add(1, Ordering::Relaxed);
                }
            }
            let real = !self
                .rule
                .is_noise(field.count, field.reference_count, totals);
            verdicts.push((finding, real));
        }
        diffs.examples_version += kept;
        let result = if verdicts.is_empty() {
            PairResult::Identical
        } else if verdicts.iter().any(|(_, real)| *real) {
            PairResult::Different
        } else {
            PairResult::Noise
        };
        diffs.count_signature(signature, result, self.max_signatures);
        PairVerdict {
            result,
            findings: verdicts,
        }
    }

    /// The summary of one route, derived now: fields most frequent first, noise apart, and
    /// `different` and `noise_only` from the signatures.
    pub fn summary(&self, route: RouteId) -> DiffSummary {
        let diffs = lock(&self.routes[route]);
        let key = |id: &FieldId| {
            let f = &diffs.fields[*id];
            (f.path.clone(), f.kind.as_str().to_string())
        };
        let mut summary = DiffSummary {
            compared: diffs.compared,
            identical: diffs.identical,
            truncated: diffs.truncated,
            reference_compared: diffs.reference_compared,
            fields: diffs
                .fields
                .iter()
                .map(|f| FieldSummary {
                    path: f.path.clone(),
                    kind: f.kind.as_str().to_string(),
                    count: f.count,
                    rate: 0.0,
                    reference_count: f.reference_count,
                    reference_rate: None,
                    first_seen: rfc3339(f.first_seen),
                    last_seen: rfc3339(f.last_seen),
                    suggested_ignore: None,
                })
                .collect(),
            noise_rule: Some(self.rule),
            signatures: diffs
                .signatures
                .iter()
                .map(|s| {
                    let mut fields: Vec<(String, String)> = s.fields.iter().map(key).collect();
                    fields.sort();
                    Signature {
                        fields,
                        pairs: s.pairs,
                    }
                })
                .collect(),
            overflow: diffs.overflow,
            ..DiffSummary::default()
        };
        summary.classify();
        summary
    }

    /// Compared pairs since the last call, over every route, each classified with the noise
    /// known now: the canary judge's interval.
    pub fn take_window(&self) -> DiffWindow {
        let mut total = DiffWindow::default();
        for route in &self.routes {
            let window = lock(route).take_window(&self.rule);
            total.compared += window.compared;
            total.different += window.different;
        }
        total
    }

    /// The examples kept for a route's field path (all kinds).
    pub fn examples(&self, route: RouteId, path: &str) -> Vec<Arc<serde_json::Value>> {
        let diffs = lock(&self.routes[route]);
        diffs
            .fields
            .iter()
            .filter(|f| f.path == path)
            .flat_map(|f| f.examples.iter().map(|kept| kept.example.clone()))
            .collect()
    }

    /// How many examples a route has kept so far: it changes whenever one is kept.
    pub fn examples_version(&self, route: RouteId) -> u64 {
        lock(&self.routes[route]).examples_version
    }

    /// Every example a route keeps, per field, as the state store keeps them:
    /// `[{"path": ..., "kind": ..., "examples": [...]}, ...]`.
    pub fn examples_record(&self, route: RouteId) -> serde_json::Value {
        let diffs = lock(&self.routes[route]);
        let fields = diffs
            .fields
            .iter()
            .filter(|f| !f.examples.is_empty())
            .map(|f| {
                let examples: Vec<&serde_json::Value> = f
                    .examples
                    .iter()
                    .map(|kept| kept.example.as_ref())
                    .collect();
                serde_json::json!({
                    "path": f.path,
                    "kind": f.kind.as_str(),
                    "examples": examples,
                })
            })
            .collect();
        serde_json::Value::Array(fields)
    }

    /// Takes up a route's findings as the state store kept them (its fields, signatures and
    /// counts, and the examples of [`DiffStore::examples_record`] as far as the byte budget
    /// allows), in place of what the route holds. Fields of an unknown kind are left out.
    pub fn restore(&self, route: RouteId, summary: &DiffSummary, examples: &serde_json::Value) {
        let mut diffs = RouteDiffs {
            compared: summary.compared,
            identical: summary.identical,
            truncated: summary.truncated,
            reference_compared: summary.reference_compared,
            overflow: summary.overflow,
            ..RouteDiffs::default()
        };
        let now = SystemTime::now();
        for field in summary.fields.iter().chain(&summary.noise) {
            let Some(kind) = DiffKind::ALL.into_iter().find(|k| k.as_str() == field.kind) else {
                continue;
            };
            let key = (field.path.clone(), kind);
            if diffs.field_ids.contains_key(&key) {
                continue;
            }
            diffs.field_ids.insert(key, diffs.fields.len());
            diffs.fields.push(FieldStats {
                path: field.path.clone(),
                kind,
                count: field.count,
                reference_count: field.reference_count,
                first_seen: parse_rfc3339(&field.first_seen).unwrap_or(now),
                last_seen: parse_rfc3339(&field.last_seen).unwrap_or(now),
                examples: Vec::new(),
            });
        }
        for signature in summary.signatures.iter().take(self.max_signatures) {
            let ids: Option<Vec<FieldId>> = signature
                .fields
                .iter()
                .map(|(path, kind)| {
                    let kind = DiffKind::ALL.into_iter().find(|k| k.as_str() == kind)?;
                    diffs.field_ids.get(&(path.clone(), kind)).copied()
                })
                .collect();
            let Some(mut ids) = ids else { continue };
            ids.sort_unstable();
            ids.dedup();
            let fields: Box<[FieldId]> = ids.into();
            if diffs.signature_ids.contains_key(&fields) {
                continue;
            }
            diffs
                .signature_ids
                .insert(fields.clone(), diffs.signatures.len());
            diffs.signatures.push(SignatureStats {
                fields,
                pairs: signature.pairs,
                window: 0,
            });
        }
        for kept in examples.as_array().into_iter().flatten() {
            let (Some(path), Some(kind)) = (kept["path"].as_str(), kept["kind"].as_str()) else {
                continue;
            };
            let Some(kind) = DiffKind::ALL.into_iter().find(|k| k.as_str() == kind) else {
                continue;
            };
            let Some(&id) = diffs.field_ids.get(&(path.to_string(), kind)) else {
                continue;
            };
            for example in kept["examples"].as_array().into_iter().flatten() {
                if diffs.fields[id].examples.len() >= self.examples_per_field {
                    break;
                }
                let mut held = self.budget.reservation();
                if held.grow(example.to_string().len()) {
                    diffs.fields[id].examples.push(KeptExample {
                        example: Arc::new(example.clone()),
                        _held: held,
                    });
                } else {
                    self.examples_over_budget.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        diffs.examples_version = 1;
        *lock(&self.routes[route]) = diffs;
    }

    /// Forgets everything (after a shadow deploy, say).
    pub fn reset(&self) {
        for route in &self.routes {
            *lock(route) = RouteDiffs::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comparison::config::NoiseConfig;
    use crate::units::Percent;

    fn finding(path: &str) -> Finding {
        Finding {
            path: path.into(),
            kind: DiffKind::ValueChanged,
            detail: String::new(),
        }
    }

    fn example(f: &Finding) -> Example {
        let message = ExampleMessage {
            start_line: String::new(),
            headers: Vec::new(),
            body: String::new(),
            body_encoding: "text",
            truncated: false,
        };
        Example {
            request_id: "r".into(),
            seen_at: String::new(),
            finding: f.clone(),
            request: message.clone(),
            primary: message.clone(),
            shadow: message,
        }
    }

    fn store(max_fields: usize, max_signatures: usize) -> DiffStore {
        let config = DiffConfig {
            noise: NoiseConfig {
                min_samples: 10,
                absolute_threshold: Percent::new(3.0).unwrap(),
                relative_threshold: Percent::new(20.0).unwrap(),
                ..NoiseConfig::default()
            },
            max_fields_per_route: max_fields,
            max_signatures_per_route: max_signatures,
            examples_per_field: 2,
            ..DiffConfig::default()
        };
        DiffStore::new(1, &config, ByteBudget::new(1 << 20))
    }

    /// Pair `i` of a stream where every answer carries a nonce and every tenth also differs
    /// on the price; every fifth pair also gets a reference comparison.
    fn nonce_stream(s: &DiffStore, pairs: std::ops::Range<u64>) {
        for i in pairs {
            if i % 5 == 0 {
                s.record_reference(0, &[finding("$.nonce")]);
            }
            let mut f = vec![finding("$.nonce")];
            if i % 10 == 0 {
                f.push(finding("$.price"));
            }
            s.record(0, f, false, &example);
        }
    }

    #[test]
    fn pairs_compared_before_the_noise_was_known_are_counted_again() {
        let s = store(100, 100);
        // 40 pairs, 8 references: too few to call anything noise.
        nonce_stream(&s, 0..40);
        let early = s.summary(0);
        assert_eq!((early.different, early.noise_only), (40, 0));
        assert_eq!(early.fields[0].path, "$.nonce");
        // With 10 references the nonce is noise, and so were the first 40 pairs' nonces.
        nonce_stream(&s, 40..50);
        let summary = s.summary(0);
        assert_eq!(summary.compared, 50);
        assert_eq!((summary.different, summary.noise_only), (5, 45));
        assert_eq!(summary.fields.len(), 1);
        assert_eq!(summary.fields[0].path, "$.price");
        assert!((summary.diff_rate() - summary.fields[0].rate).abs() < 1e-12);
        assert_eq!(summary.noise[0].path, "$.nonce");
        assert_eq!(
            summary.noise[0].suggested_ignore.as_deref(),
            Some("$..nonce")
        );
        // The judge's interval is classified the same way.
        let window = s.take_window();
        assert_eq!((window.compared, window.different), (50, 5));
        nonce_stream(&s, 50..70);
        let window = s.take_window();
        assert_eq!((window.compared, window.different), (20, 2));
        assert_eq!(s.take_window(), DiffWindow::default());
        assert_eq!(s.examples(0, "$.price").len(), 2);
    }

    #[test]
    fn the_verdict_at_compare_time_uses_the_noise_known_then() {
        let s = store(100, 100);
        nonce_stream(&s, 0..50);
        let verdict = s.record(0, vec![finding("$.nonce")], false, &example);
        assert_eq!(verdict.result, PairResult::Noise);
        let verdict = s.record(0, vec![finding("$.rare")], false, &example);
        assert_eq!(verdict.result, PairResult::Different);
        let summary = s.summary(0);
        assert!(summary.fields.iter().any(|f| f.path == "$.rare"));
        assert_eq!((summary.different, summary.noise_only), (6, 46));
    }

    #[test]
    fn a_field_clearly_above_its_noise_is_real() {
        let s = store(100, 100);
        for i in 0..100 {
            let reference = if i % 20 == 0 {
                vec![finding("$.eta")]
            } else {
                vec![]
            };
            s.record_reference(0, &reference);
            let f = if i % 2 == 0 {
                vec![finding("$.eta")]
            } else {
                vec![]
            };
            s.record(0, f, false, &example);
        }
        let summary = s.summary(0);
        assert_eq!(summary.fields[0].path, "$.eta");
        assert_eq!((summary.identical, summary.different), (50, 50));
        assert!(summary.noise.is_empty());
    }

    #[test]
    fn a_store_restored_from_its_summary_and_examples_carries_on() {
        let s = store(100, 100);
        nonce_stream(&s, 0..50);
        let summary = s.summary(0);
        let examples = s.examples_record(0);
        let again = store(100, 100);
        again.restore(0, &summary, &examples);
        assert_eq!(again.summary(0), summary);
        assert_eq!(again.examples(0, "$.price").len(), 2);
        // It goes on counting from where it was, the nonce still noise. The two stores see
        // the last pairs a moment apart, so when each field was last seen may differ.
        nonce_stream(&again, 50..60);
        nonce_stream(&s, 50..60);
        let timeless = |mut summary: DiffSummary| {
            for field in summary.fields.iter_mut().chain(summary.noise.iter_mut()) {
                field.last_seen.clear();
            }
            summary
        };
        assert_eq!(timeless(again.summary(0)), timeless(s.summary(0)));
    }

    #[test]
    fn fields_and_signatures_are_bounded_and_reset_forgets() {
        let s = store(2, 2);
        for name in ["$.a", "$.b", "$.c", "$.d"] {
            s.record(0, vec![finding(name)], false, &example);
        }
        // Two findings folded into the overflow field count once for their pair.
        s.record(0, vec![finding("$.e"), finding("$.f")], false, &example);
        let summary = s.summary(0);
        let paths: Vec<&str> = summary.fields.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, vec![OVERFLOW_PATH, "$.a", "$.b"]);
        assert_eq!(summary.fields[0].count, 3);
        assert_eq!(summary.signatures.len(), 2);
        assert_eq!(summary.overflow.different, 3);
        assert_eq!(summary.different, 5);
        s.reset();
        assert_eq!(s.summary(0).compared, 0);
    }
}
