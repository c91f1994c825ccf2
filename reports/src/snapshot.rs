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
    /// Comparison results (`identical`, `different`, `noise`, `dropped`) to counts.
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
        }
    }

    /// Adds `other` into `self`, route by route: histograms are added and counters summed; a
    /// route only `other` has is copied.
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
