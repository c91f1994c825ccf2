//! `twinpeak.snapshot/v1`: what one proxy saw, per route, since it started.
//!
//! Readers ignore fields they do not know and default sections that are absent, so a newer
//! writer's snapshot still loads.

use crate::diff::DiffSummary;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::time::SystemTime;

use hdrhistogram::AdditionError;
use serde::{Deserialize, Serialize};

use crate::histogram::{EncodedHistogram, SignedHistogram};
use crate::merge::{add_counts, add_histogram, MergeError};
use crate::timestamp::{parse_rfc3339, rfc3339};

/// Schema tag of a proxy snapshot.
pub const SNAPSHOT_SCHEMA: &str = "twinpeak.snapshot/v1";

/// A proxy's counters and latency histograms, per route, from `started_at` to `taken_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always [`SNAPSHOT_SCHEMA`] for this type; checked on merge.
    pub schema: String,
    /// SHA-256 (hex) of the proxy configuration in force.
    pub proxy_config_sha256: String,
    /// When counting began (RFC 3339).
    pub started_at: String,
    /// When the snapshot was taken (RFC 3339).
    pub taken_at: String,
    /// Versions of the components involved, e.g. `twinpeak`, `primary`, `shadow`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, String>,
    /// Per route template; unmatched paths are counted under `other`.
    #[serde(default)]
    pub routes: BTreeMap<String, RouteSnapshot>,
    /// The canary's ramp and every decision about it, when the proxy routes a canary share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryHistory>,
}

/// The canary as the proxy saw it: where it stands and how it got there, so a report can
/// draw the ramp and any rollback on a timeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CanaryHistory {
    /// `running`, `paused` or `rolled_back`.
    pub state: String,
    /// Share of live traffic served by the candidate when the snapshot was taken, in percent.
    pub weight: f64,
    /// Index into `ramp` of the step in force; absent without a ramp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// The configured ramp, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ramp: Vec<CanaryStep>,
    /// Decisions and changes, oldest first: the judge's verdicts (`pass`, `fail`,
    /// `inconclusive`), the weight changes they caused (`advance`, `rollback`), and the
    /// proxy's start and every admin change (`start`, `weight`, `pause`, `resume`, `promote`,
    /// `rollback`).
    pub decisions: Vec<CanaryDecision>,
}

/// One step of a canary ramp.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CanaryStep {
    /// Share of live traffic served by the candidate at this step, in percent.
    pub weight: f64,
    /// How long the step holds (with passing verdicts) before the next; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_seconds: Option<f64>,
}

/// One entry of the canary history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CanaryDecision {
    /// When it was made (RFC 3339).
    pub at: String,
    /// What it was: `pass`, `fail`, `inconclusive`, `advance`, `rollback`, `start`, `weight`,
    /// `pause`, `resume` or `promote`.
    pub decision: String,
    /// Who made it: `judge`, `config`, or `admin (ADDRESS)`.
    pub by: String,
    /// The candidate's weight after it, in percent.
    pub weight: f64,
    /// The ramp step in force after it, when there is a ramp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// One line saying why, e.g. `error_rate 5.20% > 1.00%` or `admin: weight 5 → 12.5`.
    pub summary: String,
    /// For the judge's verdicts, every check with its figures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<CanaryReason>,
}

/// One check the judge made over an interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CanaryReason {
    /// `requests`, `error_rate`, `error_delta`, `latency_p99`, `latency_shift` or `diff_rate`.
    pub metric: String,
    /// The candidate's figure: a count, a rate as a fraction (0.01 is 1%), a latency in µs, or
    /// for `latency_shift` the probability that a candidate request is slower than a primary one.
    pub candidate: f64,
    /// The primary's figure, for checks that compare the two.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<f64>,
    /// The limit the figure was held to.
    pub threshold: f64,
    /// Whether the check passed (or was not judged).
    pub ok: bool,
    /// The check in words, with its figures and units.
    pub detail: String,
}

impl CanaryHistory {
    /// Adds another proxy's decisions, keeping time order; state, weight and ramp stay
    /// `self`'s. Entries both histories hold are kept once.
    pub fn merge(&mut self, other: &CanaryHistory) {
        for decision in &other.decisions {
            if !self.decisions.contains(decision) {
                self.decisions.push(decision.clone());
            }
        }
        // RFC 3339 UTC timestamps at one precision sort as text; the sort is stable.
        self.decisions.sort_by(|a, b| a.at.cmp(&b.at));
    }
}

/// Everything recorded for one route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteSnapshot {
    /// The legacy backend, which answers clients.
    #[serde(default)]
    pub primary: SideSnapshot,
    /// The rebuilt backend receiving mirrored requests.
    #[serde(default, skip_serializing_if = "SideSnapshot::is_empty")]
    pub shadow: SideSnapshot,
    /// The rebuilt backend answering the canary share.
    #[serde(default, skip_serializing_if = "SideSnapshot::is_empty")]
    pub candidate: SideSnapshot,
    /// Total-time deltas of paired requests, shadow − primary.
    #[serde(default, skip_serializing_if = "SignedHistogram::is_empty")]
    pub delta: SignedHistogram,
    /// The results a pair keeps for good, to counts: `identical`, and `dropped` (never
    /// compared). Whether a differing pair is a real difference or noise depends on what is
    /// known of the noise when it is read, so it is in `diff`, derived from the signatures.
    /// Records from older proxies may also hold `different` and `noise`, as classified when
    /// each pair was compared.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub compare: BTreeMap<String, u64>,
    /// Mirror outcomes (`sent`, `not_sampled`, `method`, ...) to counts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mirror: BTreeMap<String, u64>,
    /// How the compared answers differed, by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<DiffSummary>,
}

/// Requests to one upstream of a route, and how long they took.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SideSnapshot {
    /// Requests sent.
    #[serde(default)]
    pub requests: u64,
    /// Status class (`2xx` .. `5xx`, or `error` when no response came) to counts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub status_classes: BTreeMap<String, u64>,
    /// Total time from sending the request to the end of the response body, in µs.
    #[serde(default)]
    pub latency_us: EncodedHistogram,
    /// Time to the first byte of the response, in µs.
    #[serde(default)]
    pub ttfb_us: EncodedHistogram,
}

impl Snapshot {
    /// Creates an empty snapshot taken now, for a proxy that started at `started_at`.
    pub fn new(
        config_sha256: impl Into<String>,
        started_at: SystemTime,
        versions: BTreeMap<String, String>,
    ) -> Self {
        Self {
            schema: SNAPSHOT_SCHEMA.to_owned(),
            proxy_config_sha256: config_sha256.into(),
            started_at: rfc3339(started_at),
            taken_at: rfc3339(SystemTime::now()),
            versions,
            routes: BTreeMap::new(),
            canary: None,
        }
    }

    /// Adds `other` into `self`, route by route: histograms are added and counters summed; a
    /// route only `other` has is copied. Canary histories are merged in time order.
    ///
    /// The merged snapshot spans both: the earlier `started_at` and the later `taken_at`. The
    /// configuration digest stays `self`'s, and `self`'s versions win over `other`'s.
    /// Fails before changing anything if the schemas differ; after a histogram error `self` may
    /// hold part of `other`.
    pub fn merge(&mut self, other: &Snapshot) -> Result<(), MergeError> {
        if self.schema != other.schema {
            return Err(MergeError::SchemaMismatch {
                ours: self.schema.clone(),
                theirs: other.schema.clone(),
            });
        }
        for (name, route) in &other.routes {
            match self.routes.entry(name.clone()) {
                Entry::Occupied(mut ours) => {
                    ours.get_mut()
                        .merge(route)
                        .map_err(|source| MergeError::Histogram {
                            route: name.clone(),
                            source,
                        })?;
                }
                Entry::Vacant(slot) => {
                    slot.insert(route.clone());
                }
            }
        }
        match (&mut self.canary, &other.canary) {
            (Some(ours), Some(theirs)) => ours.merge(theirs),
            (None, Some(theirs)) => self.canary = Some(theirs.clone()),
            _ => {}
        }
        for (component, version) in &other.versions {
            self.versions
                .entry(component.clone())
                .or_insert_with(|| version.clone());
        }
        if is_before(&other.started_at, &self.started_at) {
            self.started_at.clone_from(&other.started_at);
        }
        if is_before(&self.taken_at, &other.taken_at) {
            self.taken_at.clone_from(&other.taken_at);
        }
        Ok(())
    }
}

/// Whether timestamp `a` is strictly earlier than `b`; false if either does not parse.
fn is_before(a: &str, b: &str) -> bool {
    matches!((parse_rfc3339(a), parse_rfc3339(b)), (Some(a), Some(b)) if a < b)
}

impl RouteSnapshot {
    /// Adds `other`'s histograms and counters into `self`.
    ///
    /// On error `self` may hold part of `other`.
    pub fn merge(&mut self, other: &RouteSnapshot) -> Result<(), AdditionError> {
        self.primary.merge(&other.primary)?;
        self.shadow.merge(&other.shadow)?;
        self.candidate.merge(&other.candidate)?;
        self.delta.add(&other.delta)?;
        add_counts(&mut self.compare, &other.compare);
        add_counts(&mut self.mirror, &other.mirror);
        match (&mut self.diff, &other.diff) {
            (Some(ours), Some(theirs)) => ours.merge(theirs),
            (None, Some(theirs)) => self.diff = Some(theirs.clone()),
            _ => {}
        }
        Ok(())
    }
}

impl SideSnapshot {
    /// Whether nothing was recorded for this side.
    pub fn is_empty(&self) -> bool {
        self.requests == 0
            && self.status_classes.is_empty()
            && self.latency_us.is_empty()
            && self.ttfb_us.is_empty()
    }

    /// Adds `other`'s histograms and counters into `self`.
    ///
    /// On error `self` may hold part of `other`.
    pub fn merge(&mut self, other: &SideSnapshot) -> Result<(), AdditionError> {
        add_histogram(&mut self.latency_us, &other.latency_us)?;
        add_histogram(&mut self.ttfb_us, &other.ttfb_us)?;
        self.requests = self.requests.saturating_add(other.requests);
        add_counts(&mut self.status_classes, &other.status_classes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::histogram::{record_saturating, LatencySummary};

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_320_400 + secs)
    }

    /// Records request `i` of a deterministic stream into `route`.
    fn record(route: &mut RouteSnapshot, i: u64) {
        let primary_us = 800 + (i * 7_919) % 50_000;
        let shadow_us = 600 + (i * 104_729) % 90_000;
        for (side, us) in [
            (&mut route.primary, primary_us),
            (&mut route.shadow, shadow_us),
        ] {
            side.requests += 1;
            let class = if i.is_multiple_of(17) { "5xx" } else { "2xx" };
            *side.status_classes.entry(class.to_owned()).or_default() += 1;
            record_saturating(&mut side.latency_us, us);
            record_saturating(&mut side.ttfb_us, us / 3);
        }
        route.delta.record_pair(primary_us, shadow_us);
        *route.compare.entry("identical".to_owned()).or_default() += 1;
        *route.mirror.entry("sent".to_owned()).or_default() += 1;
    }

    fn snapshot(started: u64, taken: u64, requests: impl IntoIterator<Item = u64>) -> Snapshot {
        let mut s = Snapshot::new("ab12", at(started), BTreeMap::new());
        s.taken_at = rfc3339(at(taken));
        for i in requests {
            let name = if i % 3 == 0 {
                "/bookings/{id}"
            } else {
                "other"
            };
            record(s.routes.entry(name.to_owned()).or_default(), i);
        }
        s
    }

    #[test]
    fn round_trips_through_json() {
        let s = snapshot(0, 60, 0..2_000);
        let json = serde_json::to_string_pretty(&s).unwrap();
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        for (name, route) in &s.routes {
            let read = &back.routes[name];
            assert_eq!(read.primary.requests, route.primary.requests);
            assert_eq!(read.shadow.status_classes, route.shadow.status_classes);
            assert_eq!(
                LatencySummary::from_histogram(&read.primary.latency_us),
                LatencySummary::from_histogram(&route.primary.latency_us)
            );
            assert_eq!(read.delta.summary(), route.delta.summary());
            assert_eq!(read.compare, route.compare);
        }
    }

    #[test]
    fn merge_equals_recording_into_one() {
        let mut merged = snapshot(10, 50, 0..1_200);
        merged.merge(&snapshot(5, 40, 1_200..3_000)).unwrap();
        let whole = snapshot(5, 50, 0..3_000);
        assert_eq!(merged, whole);
        assert_eq!(merged.started_at, rfc3339(at(5)));
        assert_eq!(merged.taken_at, rfc3339(at(50)));
    }

    #[test]
    fn merge_copies_routes_only_the_other_has() {
        let mut ours = snapshot(0, 1, [1]);
        let theirs = snapshot(0, 1, [3]);
        ours.merge(&theirs).unwrap();
        assert_eq!(
            ours.routes["/bookings/{id}"],
            theirs.routes["/bookings/{id}"]
        );
        assert_eq!(ours.routes["other"].primary.requests, 1);
    }

    #[test]
    fn merge_refuses_another_schema() {
        let mut ours = snapshot(0, 1, [1]);
        let mut theirs = ours.clone();
        theirs.schema = "twinpeak.snapshot/v2".to_owned();
        let err = ours.merge(&theirs).unwrap_err();
        assert!(matches!(err, MergeError::SchemaMismatch { .. }), "{err}");
        assert_eq!(ours.routes["other"].primary.requests, 1);
    }

    #[test]
    fn reads_unknown_fields_and_absent_sections() {
        let json = r#"{
            "schema": "twinpeak.snapshot/v1",
            "proxy_config_sha256": "ab12",
            "started_at": "2025-11-28T09:00:00Z",
            "taken_at": "2025-11-28T09:01:00.500Z",
            "canary": {"weight": 5},
            "routes": {"other": {"primary": {"requests": 3}, "diff": {}}}
        }"#;
        let s: Snapshot = serde_json::from_str(json).unwrap();
        let route = &s.routes["other"];
        assert_eq!(route.primary.requests, 3);
        assert!(route.primary.latency_us.is_empty());
        assert!(route.shadow.is_empty() && route.delta.is_empty());
    }

    fn decision(at: &str, decision: &str, weight: f64) -> CanaryDecision {
        CanaryDecision {
            at: at.to_owned(),
            decision: decision.to_owned(),
            by: "judge".to_owned(),
            weight,
            step: Some(0),
            summary: format!("{decision} at {weight}"),
            reasons: vec![CanaryReason {
                metric: "error_rate".to_owned(),
                candidate: 0.002,
                primary: Some(0.001),
                threshold: 0.01,
                ok: true,
                detail: "error_rate 0.20% <= 1.00%".to_owned(),
            }],
        }
    }

    #[test]
    fn canary_history_round_trips_and_older_records_still_read() {
        let mut s = snapshot(0, 60, 0..10);
        s.canary = Some(CanaryHistory {
            state: "running".to_owned(),
            weight: 5.0,
            step: Some(1),
            ramp: vec![
                CanaryStep {
                    weight: 1.0,
                    hold_seconds: Some(600.0),
                },
                CanaryStep {
                    weight: 5.0,
                    hold_seconds: None,
                },
            ],
            decisions: vec![
                decision("2025-11-28T09:00:30.000Z", "pass", 1.0),
                decision("2025-11-28T09:10:00.000Z", "advance", 5.0),
            ],
        });
        let json = serde_json::to_string(&s).unwrap();
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        // A record written before the canary existed has none, and writes none.
        let older = snapshot(0, 60, 0..10);
        let json = serde_json::to_value(&older).unwrap();
        assert!(json.get("canary").is_none());
        let back: Snapshot = serde_json::from_value(json).unwrap();
        assert_eq!(back.canary, None);
    }

    #[test]
    fn merge_interleaves_canary_decisions_in_time_order() {
        let mut ours = snapshot(0, 1, [1]);
        let mut theirs = snapshot(0, 1, [2]);
        let history = |decisions| CanaryHistory {
            state: "running".to_owned(),
            weight: 5.0,
            decisions,
            ..CanaryHistory::default()
        };
        let shared = decision("2025-11-28T09:00:00.000Z", "start", 1.0);
        ours.canary = Some(history(vec![
            shared.clone(),
            decision("2025-11-28T09:02:00.000Z", "pass", 1.0),
        ]));
        theirs.canary = Some(history(vec![
            shared,
            decision("2025-11-28T09:01:00.000Z", "fail", 1.0),
        ]));
        ours.merge(&theirs).unwrap();
        let kinds: Vec<_> = ours
            .canary
            .as_ref()
            .unwrap()
            .decisions
            .iter()
            .map(|d| d.decision.as_str())
            .collect();
        assert_eq!(kinds, ["start", "fail", "pass"]);
        let mut none = snapshot(0, 1, [1]);
        none.merge(&theirs).unwrap();
        assert_eq!(none.canary, theirs.canary);
    }

    #[test]
    fn bad_histogram_is_an_error_not_a_panic() {
        let mut json = serde_json::to_value(snapshot(0, 1, [1])).unwrap();
        json["routes"]["other"]["primary"]["latency_us"] = "%%%".into();
        let err = serde_json::from_value::<Snapshot>(json).unwrap_err();
        assert!(
            err.to_string().contains("invalid encoded histogram"),
            "{err}"
        );
    }

    #[test]
    fn empty_sides_are_left_out() {
        let json = serde_json::to_value(snapshot(0, 1, [])).unwrap();
        assert_eq!(json["routes"], serde_json::json!({}));
        let mut route = RouteSnapshot::default();
        route.primary.requests = 1;
        let json = serde_json::to_value(&route).unwrap();
        let keys: Vec<_> = json.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["primary"]);
    }
}
