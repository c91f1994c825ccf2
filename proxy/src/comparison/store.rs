//! Comparison results per route and field path, the noise learned from reference comparisons,
//! and a bounded set of examples. Everything here is bounded: fields per route, examples per
//! field.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use twinpeak_reports::timestamp::rfc3339;
use twinpeak_reports::{DiffSummary, FieldSummary};

use crate::diff::{DiffKind, Finding};
use crate::labels::PairResult;
use crate::routes::RouteId;
use crate::shards::lock;

use super::config::NoiseConfig;

/// The path that collects fields beyond a route's field limit.
pub const OVERFLOW_PATH: &str = "(other fields)";

/// One captured exchange, redacted, kept as an example of a difference.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    /// The id both sides saw.
    pub request_id: String,
    /// When the pair was compared (RFC 3339).
    pub seen_at: String,
    /// The difference this example shows.
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
    /// `GET /bookings/7` for requests, the status for answers.
    pub start_line: String,
    /// Headers, secrets redacted.
    pub headers: Vec<(String, String)>,
    /// The body as text (secrets redacted), or base64 when it is not UTF-8.
    pub body: String,
    /// `"text"` or `"base64"`.
    pub body_encoding: &'static str,
    /// Whether the body was cut by the capture cap.
    pub truncated: bool,
}

#[derive(Debug)]
struct FieldStats {
    count: u64,
    reference_count: u64,
    first_seen: SystemTime,
    last_seen: SystemTime,
    examples: VecDeque<Arc<Example>>,
}

impl FieldStats {
    fn new(now: SystemTime) -> Self {
        FieldStats {
            count: 0,
            reference_count: 0,
            first_seen: now,
            last_seen: now,
            examples: VecDeque::new(),
        }
    }
}

#[derive(Debug, Default)]
struct RouteDiffs {
    compared: u64,
    identical: u64,
    different: u64,
    noise_only: u64,
    truncated: u64,
    reference_compared: u64,
    fields: HashMap<(String, DiffKind), FieldStats>,
}

/// How one pair came out, finding by finding.
#[derive(Debug)]
pub struct PairVerdict {
    /// The pair's result.
    pub result: PairResult,
    /// The findings with whether each is real (`true`) or noise.
    pub findings: Vec<(Finding, bool)>,
}

/// The comparison results of every route.
pub struct DiffStore {
    routes: Vec<Mutex<RouteDiffs>>,
    noise: NoiseConfig,
    max_fields: usize,
    examples_per_field: usize,
}

impl DiffStore {
    /// An empty store for `routes` routes.
    pub fn new(
        routes: usize,
        noise: NoiseConfig,
        max_fields: usize,
        examples_per_field: usize,
    ) -> Self {
        DiffStore {
            routes: (0..routes)
                .map(|_| Mutex::new(RouteDiffs::default()))
                .collect(),
            noise,
            max_fields,
            examples_per_field,
        }
    }

    /// Records a reference comparison (primary against a second legacy answer): whatever
    /// differs there is noise.
    pub fn record_reference(&self, route: RouteId, findings: &[Finding]) {
        let now = SystemTime::now();
        let mut diffs = lock(&self.routes[route]);
        diffs.reference_compared += 1;
        for finding in findings {
            let key = self.key(&diffs, finding);
            diffs
                .fields
                .entry(key)
                .or_insert_with(|| FieldStats::new(now))
                .reference_count += 1;
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
        let mut verdicts = Vec::with_capacity(findings.len());
        for finding in findings {
            let key = self.key(&diffs, &finding);
            let stats = diffs
                .fields
                .entry(key)
                .or_insert_with(|| FieldStats::new(now));
            if stats.count == 0 {
                stats.first_seen = now;
            }
            stats.count += 1;
            stats.last_seen = now;
            if stats.examples.len() < self.examples_per_field {
                stats.examples.push_back(Arc::new(example(&finding)));
            }
            verdicts.push((finding, false));
        }
        for (finding, real) in verdicts.iter_mut() {
            let key = (finding.path.clone(), finding.kind);
            let key = if diffs.fields.contains_key(&key) {
                key
            } else {
                (OVERFLOW_PATH.to_string(), finding.kind)
            };
            *real = diffs
                .fields
                .get(&key)
                .is_none_or(|stats| !self.is_noise(&diffs, stats));
        }
        let result = if verdicts.is_empty() {
            diffs.identical += 1;
            PairResult::Identical
        } else if verdicts.iter().any(|(_, real)| *real) {
            diffs.different += 1;
            PairResult::Different
        } else {
            diffs.noise_only += 1;
            PairResult::Noise
        };
        PairVerdict {
            result,
            findings: verdicts,
        }
    }

    /// The field key, or the overflow key when the route tracks as many fields as allowed.
    fn key(&self, diffs: &RouteDiffs, finding: &Finding) -> (String, DiffKind) {
        let key = (finding.path.clone(), finding.kind);
        if diffs.fields.contains_key(&key) || diffs.fields.len() < self.max_fields {
            key
        } else {
            (OVERFLOW_PATH.to_string(), finding.kind)
        }
    }

    /// A field is noise when two legacy answers differ there too, and the shadow does not
    /// differ clearly more often than that (by both the absolute and relative thresholds).
    fn is_noise(&self, diffs: &RouteDiffs, stats: &FieldStats) -> bool {
        if stats.reference_count == 0 || diffs.reference_compared < self.noise.min_samples {
            return false;
        }
        let rate = ratio(stats.count, diffs.compared);
        let noise = ratio(stats.reference_count, diffs.reference_compared);
        let clearly_more = rate - noise >= self.noise.absolute_threshold.fraction()
            && rate >= noise * (1.0 + self.noise.relative_threshold.fraction());
        !clearly_more
    }

    /// The summary of one route, fields most frequent first, noise apart.
    pub fn summary(&self, route: RouteId) -> DiffSummary {
        let diffs = lock(&self.routes[route]);
        let mut summary = DiffSummary {
            compared: diffs.compared,
            identical: diffs.identical,
            different: diffs.different,
            noise_only: diffs.noise_only,
            truncated: diffs.truncated,
            reference_compared: diffs.reference_compared,
            fields: Vec::new(),
            noise: Vec::new(),
        };
        for ((path, kind), stats) in &diffs.fields {
            let noise = self.is_noise(&diffs, stats);
            if stats.count == 0 && !noise {
                continue;
            }
            let field = FieldSummary {
                path: path.clone(),
                kind: kind.as_str().to_string(),
                count: stats.count,
                rate: ratio(stats.count, diffs.compared),
                reference_count: stats.reference_count,
                reference_rate: (diffs.reference_compared > 0)
                    .then(|| ratio(stats.reference_count, diffs.reference_compared)),
                first_seen: rfc3339(stats.first_seen),
                last_seen: rfc3339(stats.last_seen),
                suggested_ignore: noise.then(|| suggested_ignore(path)),
            };
            if noise {
                summary.noise.push(field);
            } else {
                summary.fields.push(field);
            }
        }
        for list in [&mut summary.fields, &mut summary.noise] {
            list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.path.cmp(&b.path)));
        }
        summary
    }

    /// The examples kept for a route's field path (all kinds).
    pub fn examples(&self, route: RouteId, path: &str) -> Vec<Arc<Example>> {
        let diffs = lock(&self.routes[route]);
        diffs
            .fields
            .iter()
            .filter(|((p, _), _)| p == path)
            .flat_map(|(_, stats)| stats.examples.iter().cloned())
            .collect()
    }

    /// Forgets everything (after a shadow deploy, say).
    pub fn reset(&self) {
        for route in &self.routes {
            *lock(route) = RouteDiffs::default();
        }
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

/// The ignore rule that silences a noisy field: the field name at any depth when it is a
/// plain key (`$..updated_at`), the path itself otherwise.
fn suggested_ignore(path: &str) -> String {
    match path.rsplit_once('.') {
        Some((parent, name))
            if parent.starts_with('$')
                && !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            format!("$..{name}")
        }
        _ => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn store(max_fields: usize) -> DiffStore {
        let noise = NoiseConfig {
            min_samples: 10,
            absolute_threshold: Percent::new(3.0).unwrap(),
            relative_threshold: Percent::new(20.0).unwrap(),
            ..NoiseConfig::default()
        };
        DiffStore::new(1, noise, max_fields, 2)
    }

    #[test]
    fn a_field_that_differs_between_legacy_answers_too_is_noise() {
        let s = store(100);
        for i in 0..100 {
            s.record_reference(0, &[finding("$.id")]);
            let mut f = vec![finding("$.id")];
            if i % 10 == 0 {
                f.push(finding("$.price"));
            }
            s.record(0, f, false, &example);
        }
        let summary = s.summary(0);
        assert_eq!(summary.compared, 100);
        assert_eq!(summary.fields.len(), 1);
        assert_eq!(summary.fields[0].path, "$.price");
        assert!((summary.fields[0].rate - 0.1).abs() < 1e-9);
        assert_eq!(summary.noise.len(), 1);
        assert_eq!(summary.noise[0].path, "$.id");
        assert_eq!(summary.noise[0].suggested_ignore.as_deref(), Some("$..id"));
        // Once the noise is learned, pairs differing only in it are noise-only.
        let verdict = s.record(0, vec![finding("$.id")], false, &example);
        assert_eq!(verdict.result, PairResult::Noise);
        assert_eq!(s.examples(0, "$.price").len(), 2);
    }

    #[test]
    fn rare_differences_without_noise_evidence_are_real() {
        let s = store(100);
        for _ in 0..50 {
            s.record_reference(0, &[]);
            s.record(0, Vec::new(), false, &example);
        }
        let verdict = s.record(0, vec![finding("$.rare")], false, &example);
        assert_eq!(verdict.result, PairResult::Different);
        assert_eq!(s.summary(0).fields[0].path, "$.rare");
    }

    #[test]
    fn a_field_clearly_above_its_noise_is_real() {
        let s = store(100);
        for i in 0..100 {
            s.record_reference(
                0,
                &if i % 20 == 0 {
                    vec![finding("$.eta")]
                } else {
                    vec![]
                },
            );
            s.record(
                0,
                if i % 2 == 0 {
                    vec![finding("$.eta")]
                } else {
                    vec![]
                },
                false,
                &example,
            );
        }
        let summary = s.summary(0);
        assert_eq!(summary.fields[0].path, "$.eta");
        assert!(summary.noise.is_empty());
    }

    #[test]
    fn fields_beyond_the_limit_are_counted_together_and_reset_forgets() {
        let s = store(2);
        for name in ["$.a", "$.b", "$.c", "$.d"] {
            s.record(0, vec![finding(name)], false, &example);
        }
        let summary = s.summary(0);
        let paths: Vec<&str> = summary.fields.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, vec![OVERFLOW_PATH, "$.a", "$.b"]);
        assert_eq!(summary.fields[0].count, 2);
        s.reset();
        assert_eq!(s.summary(0).compared, 0);
    }
}
