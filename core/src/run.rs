//! `twinpeak.run/v1`: what one load run sent to each system, per phase and request, and how
//! long the answers took.
//!
//! Readers ignore fields they do not know and default sections that are absent, so a newer
//! writer's record still loads. Records of one scenario written by several load workers merge
//! into the record of the whole load.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use hdrhistogram::AdditionError;
use serde::{Deserialize, Serialize};

use crate::histogram::EncodedHistogram;
use crate::merge::{add_counts, add_histogram};
use crate::timestamp::{parse_rfc3339, rfc3339};

mod arrivals;

pub use arrivals::{Arrivals, Latency};

/// Schema tag of a load run record.
pub const RUN_SCHEMA: &str = "twinpeak.run/v1";

/// One load run of a scenario against one or more systems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Always [`RUN_SCHEMA`] for this type; checked on read and merge.
    pub schema: String,
    /// Name of the scenario run.
    pub scenario: String,
    /// SHA-256 (hex) of the scenario file as run.
    #[serde(default)]
    pub scenario_sha256: String,
    /// Seed of the request data drawn, so the run can be repeated.
    #[serde(default)]
    pub seed: u64,
    /// Multiplier applied to the scenario's rates.
    #[serde(default = "one")]
    pub scale: f64,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// When the run ended (RFC 3339).
    pub ended_at: String,
    /// Versions of the components involved, e.g. `twinpeak`, `legacy`, `rebuilt`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, String>,
    /// The systems the load was sent to.
    #[serde(default)]
    pub targets: Vec<RunTarget>,
    /// Per phase and system, in the order they ran.
    #[serde(default)]
    pub phases: Vec<PhaseRecord>,
    /// SLO verdicts on this record's figures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slo: Vec<SloRecord>,
    /// Whether this is a checkpoint written while the run was still going: its phases hold what
    /// was measured until then, and it has no verdicts yet.
    #[serde(default, skip_serializing_if = "is_false")]
    pub partial: bool,
    /// The signal that stopped the run before its schedule was over (`SIGINT`, `SIGTERM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
}

/// A system the load was sent to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunTarget {
    /// Name the system is reported under, e.g. `legacy`.
    pub name: String,
    /// Base URL requests were sent to.
    #[serde(default)]
    pub url: String,
}

/// One phase of the scenario as sent to one system.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// Name of the phase, e.g. `peak`.
    pub name: String,
    /// Name of the system, one of the record's [`RunTarget`]s.
    pub target: String,
    /// When the phase started (RFC 3339).
    #[serde(default)]
    pub started_at: String,
    /// When the phase ended (RFC 3339).
    #[serde(default)]
    pub ended_at: String,
    /// How long the phase lasted, in seconds.
    #[serde(default)]
    pub duration_s: f64,
    /// Mean arrival rate the schedule asked for over the phase, in requests per second.
    #[serde(default)]
    pub intended_rps: f64,
    /// Requests actually sent per second over the phase.
    #[serde(default)]
    pub achieved_rps: f64,
    /// Load users (the scenario's `max_users`) that sent the phase, added over load workers.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub users: u64,
    /// How late an arrival could be sent before it was dropped, in milliseconds.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub late_limit_ms: f64,
    /// Arrivals not sent within the late limit, of both kinds below. Those not dropped by the
    /// generator were due while every load user was busy waiting for this system: the system
    /// could not take them, and they count against it (see [`PhaseRecord::dropped_by_target`]).
    #[serde(default)]
    pub dropped: u64,
    /// Of `dropped`, arrivals the load generator itself was too late for while a user was free:
    /// the generator's shortfall, not the system's.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_by_generator: u64,
    /// Arrivals sent late because every load user was busy at their due instant; the wait is
    /// part of their corrected latency.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub queued: u64,
    /// The generator's own scheduling lag, in µs: actual send minus intended send of every
    /// arrival a free user took when it was due. Time the target is not to blame for.
    #[serde(default)]
    pub lag_us: EncodedHistogram,
    /// Per request name, as the scenario names them.
    #[serde(default)]
    pub requests: BTreeMap<String, RequestRecord>,
    /// One point per second, for charts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelinePoint>,
}

/// What one named request of a phase did against one system.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Requests sent.
    #[serde(default)]
    pub sent: u64,
    /// Latency of the requests that succeeded from the instant each was due, in µs: includes
    /// the time it waited for a free load user (coordinated omission corrected). Latency SLOs
    /// are judged on this one, with the arrivals the system could not take (see [`Arrivals`]).
    /// Records written before failed requests were kept apart hold every request here.
    #[serde(default)]
    pub corrected_us: EncodedHistogram,
    /// Latency of the requests that succeeded from the instant each was actually sent, in µs.
    #[serde(default)]
    pub raw_us: EncodedHistogram,
    /// Latency of the failed requests from the instant each was due, in µs: kept apart so fast
    /// failures cannot flatter the latency of the answers that counted.
    #[serde(default)]
    pub failed_us: EncodedHistogram,
    /// Latency of the failed requests from the instant each was actually sent, in µs.
    #[serde(default)]
    pub failed_raw_us: EncodedHistogram,
    /// HTTP status (`"200"`) to counts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub status: BTreeMap<String, u64>,
    /// Error kind (`timeout`, `connect`, `status`, `check`) to counts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
}

/// One second of a phase against one system.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Seconds since the start of the run.
    pub t_s: f64,
    /// Name of the system.
    #[serde(default)]
    pub target: String,
    /// Arrival rate the schedule asked for.
    #[serde(default)]
    pub intended_rps: f64,
    /// Requests actually sent per second.
    #[serde(default)]
    pub achieved_rps: f64,
    /// 99th percentile corrected latency of the requests of this second, in µs.
    #[serde(default)]
    pub p99_us: u64,
    /// Failed requests.
    #[serde(default)]
    pub errors: u64,
    /// Requests sent.
    #[serde(default)]
    pub requests: u64,
    /// Arrivals due in this second that the system could not take (every load user busy).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
}

/// An SLO verdict, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SloRecord {
    /// What was measured: `run` or a phase, e.g. `phase peak`.
    pub scope: String,
    /// Name of the system.
    pub target: String,
    /// Which figure: `p99`, `error_rate`, ...
    pub metric: String,
    /// The target, in `unit`.
    pub limit: f64,
    /// What was measured, in `unit`.
    pub actual: f64,
    /// `ms` or `%`.
    pub unit: String,
    /// Whether `actual` is within `limit`.
    pub pass: bool,
    /// Why the target failed without a measurement, e.g. `no requests sent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether `actual` is only a lower bound: the percentile falls among arrivals the system
    /// could not take, whose latency is above every one measured. Such a verdict fails.
    #[serde(default, skip_serializing_if = "is_false")]
    pub lower_bound: bool,
}

/// Why two run records could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum RunMergeError {
    /// The records are of different schemas (or versions of one).
    #[error("cannot merge a `{theirs}` record into a `{ours}` record")]
    SchemaMismatch {
        /// Schema of the record merged into.
        ours: String,
        /// Schema of the record merged from.
        theirs: String,
    },
    /// The records are runs of different scenarios, or of different versions of one.
    #[error("cannot merge a run of scenario `{theirs}` into a run of scenario `{ours}`")]
    ScenarioMismatch {
        /// Scenario (name and SHA-256) of the record merged into.
        ours: String,
        /// Scenario (name and SHA-256) of the record merged from.
        theirs: String,
    },
    /// A histogram of a request could not hold the other's values.
    #[error(
        "while merging the histograms of request `{request}` in phase `{phase}` of `{target}`"
    )]
    Histogram {
        /// Phase name.
        phase: String,
        /// System name.
        target: String,
        /// Request name.
        request: String,
        /// What hdrhistogram reported.
        #[source]
        source: AdditionError,
    },
}

/// Why a run record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RunFileError {
    /// The file could not be read or written.
    #[error("cannot {action} run record {}", path.display())]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// What the system reported.
        #[source]
        source: io::Error,
    },
    /// The file is not a valid run record.
    #[error("{} is not a valid run record", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What was wrong, with its line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The file holds another kind of record, or another version of this one.
    #[error("{} is a `{schema}` record, not `{RUN_SCHEMA}`", path.display())]
    Schema {
        /// The file.
        path: PathBuf,
        /// Its schema tag.
        schema: String,
    },
}

fn one() -> f64 {
    1.0
}

fn is_false(value: &bool) -> bool {
    !value
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn is_zero_f64(value: &f64) -> bool {
    *value == 0.0
}

impl RunRecord {
    /// Creates a record with no targets, phases or verdicts yet, of a run that started at
    /// `started_at` and ends now.
    pub fn new(
        scenario: impl Into<String>,
        scenario_sha256: impl Into<String>,
        seed: u64,
        scale: f64,
        started_at: SystemTime,
        versions: BTreeMap<String, String>,
    ) -> Self {
        Self {
            schema: RUN_SCHEMA.to_owned(),
            scenario: scenario.into(),
            scenario_sha256: scenario_sha256.into(),
            seed,
            scale,
            started_at: rfc3339(started_at),
            ended_at: rfc3339(SystemTime::now()),
            versions,
            targets: Vec::new(),
            phases: Vec::new(),
            slo: Vec::new(),
            partial: false,
            interrupted: None,
        }
    }

    /// The record of phase `name` against system `target`, if any.
    pub fn phase(&self, name: &str, target: &str) -> Option<&PhaseRecord> {
        self.phases
            .iter()
            .find(|p| p.name == name && p.target == target)
    }

    /// Adds `other`, a record of the same scenario from another load worker, into `self`: the
    /// merged record describes the load of both together.
    ///
    /// Phases are matched by name and system: histograms and counters are added (never
    /// percentiles averaged), rates and drops summed, timelines merged as
    /// [`PhaseRecord::merge`] says; a phase only `other` has is appended. The run spans both
    /// (earlier start, later end) and `scale` is the sum of both. Targets are joined by name and
    /// versions by component, `self`'s winning. The merged record is partial if either is, and
    /// interrupted by `self`'s signal, else `other`'s. SLO verdicts are cleared: those of each
    /// part do not hold for the whole, so evaluate the merged figures again.
    ///
    /// Fails before changing anything if the schemas or the scenarios (name or SHA-256) differ;
    /// after a histogram error `self` may hold part of `other`.
    pub fn merge(&mut self, other: &RunRecord) -> Result<(), RunMergeError> {
        if self.schema != other.schema {
            return Err(RunMergeError::SchemaMismatch {
                ours: self.schema.clone(),
                theirs: other.schema.clone(),
            });
        }
        if (&self.scenario, &self.scenario_sha256) != (&other.scenario, &other.scenario_sha256) {
            return Err(RunMergeError::ScenarioMismatch {
                ours: format!("{} ({})", self.scenario, self.scenario_sha256),
                theirs: format!("{} ({})", other.scenario, other.scenario_sha256),
            });
        }
        for phase in &other.phases {
            let ours = self
                .phases
                .iter_mut()
                .find(|p| p.name == phase.name && p.target == phase.target);
            match ours {
                Some(ours) => ours.merge(phase)?,
                None => self.phases.push(phase.clone()),
            }
        }
        for target in &other.targets {
            if !self.targets.iter().any(|t| t.name == target.name) {
                self.targets.push(target.clone());
            }
        }
        for (component, version) in &other.versions {
            self.versions
                .entry(component.clone())
                .or_insert_with(|| version.clone());
        }
        keep_earlier(&mut self.started_at, &other.started_at);
        keep_later(&mut self.ended_at, &other.ended_at);
        self.scale += other.scale;
        self.partial |= other.partial;
        if self.interrupted.is_none() {
            self.interrupted.clone_from(&other.interrupted);
        }
        self.slo.clear();
        Ok(())
    }

    /// Writes the record to `path` as pretty-printed JSON, atomically: into a temporary file
    /// beside it, then renamed over it, so a reader (or a run killed mid-write) never sees half
    /// a record.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), RunFileError> {
        let path = path.as_ref();
        let mut json = serde_json::to_string_pretty(self).map_err(|source| RunFileError::Json {
            path: path.to_owned(),
            source,
        })?;
        json.push('\n');
        let io = |source| RunFileError::Io {
            action: "write",
            path: path.to_owned(),
            source,
        };
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        fs::write(&temporary, json).map_err(io)?;
        fs::rename(&temporary, path).map_err(|source| {
            let _ = fs::remove_file(&temporary);
            io(source)
        })
    }

    /// Reads a record from `path`; errors name the file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, RunFileError> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| RunFileError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        #[derive(Deserialize)]
        struct Tag {
            schema: String,
        }
        let json = |source| RunFileError::Json {
            path: path.to_owned(),
            source,
        };
        let tag: Tag = serde_json::from_str(&text).map_err(json)?;
        if tag.schema != RUN_SCHEMA {
            return Err(RunFileError::Schema {
                path: path.to_owned(),
                schema: tag.schema,
            });
        }
        serde_json::from_str(&text).map_err(json)
    }
}

impl PhaseRecord {
    /// All requests of the phase together: histograms added, counters summed.
    pub fn totals(&self) -> Result<RequestRecord, AdditionError> {
        let mut total = RequestRecord::default();
        for request in self.requests.values() {
            total.merge(request)?;
        }
        Ok(total)
    }

    /// Arrivals dropped because every load user was busy waiting for the system: the arrivals
    /// it could not take. (Records written before drops were told apart count every drop here,
    /// as they defined a drop as no user being free.)
    pub fn dropped_by_target(&self) -> u64 {
        self.dropped.saturating_sub(self.dropped_by_generator)
    }

    /// Adds `other`, the same phase against the same system from another load worker.
    ///
    /// Requests are matched by name and added. Rates, users, drops, queued arrivals and counts
    /// are summed and lag histograms added: the workers ran side by side; the late limit is the
    /// larger. The phase spans both, and lasted as long as the longer. Timeline points
    /// are matched by second (`t_s` rounded) and system: rates, requests and errors are summed,
    /// and `p99_us` becomes the larger of the two — an upper bound of the merged second's p99,
    /// which a per-second percentile cannot give exactly; the phase's histograms do.
    ///
    /// On error `self` may hold part of `other`.
    pub fn merge(&mut self, other: &PhaseRecord) -> Result<(), RunMergeError> {
        for (name, request) in &other.requests {
            match self.requests.entry(name.clone()) {
                Entry::Occupied(mut ours) => {
                    ours.get_mut()
                        .merge(request)
                        .map_err(|source| RunMergeError::Histogram {
                            phase: self.name.clone(),
                            target: self.target.clone(),
                            request: name.clone(),
                            source,
                        })?;
                }
                Entry::Vacant(slot) => {
                    slot.insert(request.clone());
                }
            }
        }
        keep_earlier(&mut self.started_at, &other.started_at);
        keep_later(&mut self.ended_at, &other.ended_at);
        self.duration_s = self.duration_s.max(other.duration_s);
        add_histogram(&mut self.lag_us, &other.lag_us).map_err(|source| {
            RunMergeError::Histogram {
                phase: self.name.clone(),
                target: self.target.clone(),
                request: "(scheduling lag)".to_owned(),
                source,
            }
        })?;
        self.intended_rps += other.intended_rps;
        self.achieved_rps += other.achieved_rps;
        self.users = self.users.saturating_add(other.users);
        self.late_limit_ms = self.late_limit_ms.max(other.late_limit_ms);
        self.dropped = self.dropped.saturating_add(other.dropped);
        self.dropped_by_generator = self
            .dropped_by_generator
            .saturating_add(other.dropped_by_generator);
        self.queued = self.queued.saturating_add(other.queued);
        self.timeline = merge_timelines(&self.timeline, &other.timeline);
        Ok(())
    }
}

impl RequestRecord {
    /// Failed requests, of every kind.
    pub fn error_total(&self) -> u64 {
        self.errors
            .values()
            .fold(0, |total, &n| total.saturating_add(n))
    }

    /// Adds `other`'s histograms and counters into `self`.
    ///
    /// On error `self` may hold part of `other`.
    pub fn merge(&mut self, other: &RequestRecord) -> Result<(), AdditionError> {
        add_histogram(&mut self.corrected_us, &other.corrected_us)?;
        add_histogram(&mut self.raw_us, &other.raw_us)?;
        add_histogram(&mut self.failed_us, &other.failed_us)?;
        add_histogram(&mut self.failed_raw_us, &other.failed_raw_us)?;
        self.sent = self.sent.saturating_add(other.sent);
        add_counts(&mut self.status, &other.status);
        add_counts(&mut self.errors, &other.errors);
        Ok(())
    }
}

/// Both timelines as one, a point per second and system, in time order; see
/// [`PhaseRecord::merge`].
fn merge_timelines(ours: &[TimelinePoint], theirs: &[TimelinePoint]) -> Vec<TimelinePoint> {
    let mut seconds: BTreeMap<(i64, &str), TimelinePoint> = BTreeMap::new();
    for point in ours.iter().chain(theirs) {
        // Rounds to the nearest second; NaN becomes 0 and out-of-range values saturate.
        let second = point.t_s.round() as i64;
        let merged = seconds
            .entry((second, &point.target))
            .or_insert_with(|| TimelinePoint {
                t_s: second as f64,
                target: point.target.clone(),
                ..TimelinePoint::default()
            });
        merged.intended_rps += point.intended_rps;
        merged.achieved_rps += point.achieved_rps;
        merged.p99_us = merged.p99_us.max(point.p99_us);
        merged.errors = merged.errors.saturating_add(point.errors);
        merged.requests = merged.requests.saturating_add(point.requests);
        merged.dropped = merged.dropped.saturating_add(point.dropped);
    }
    seconds.into_values().collect()
}

/// Sets `ours` to `theirs` if `theirs` is an earlier timestamp, or `ours` is empty.
fn keep_earlier(ours: &mut String, theirs: &str) {
    if ours.is_empty() || is_before(theirs, ours) {
        *ours = theirs.to_owned();
    }
}

/// Sets `ours` to `theirs` if `theirs` is a later timestamp, or `ours` is empty.
fn keep_later(ours: &mut String, theirs: &str) {
    if ours.is_empty() || is_before(ours, theirs) {
        *ours = theirs.to_owned();
    }
}

/// Whether timestamp `a` is strictly earlier than `b`; false if either does not parse.
fn is_before(a: &str, b: &str) -> bool {
    matches!((parse_rfc3339(a), parse_rfc3339(b)), (Some(a), Some(b)) if a < b)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::histogram::{record_saturating, LatencySummary};

    /// A directory of its own under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(test: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("twinpeak-run-{}-{test}", std::process::id()));
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_320_400 + secs)
    }

    /// Records request `i` of a deterministic stream into `phase`, as one load worker would.
    fn record(phase: &mut PhaseRecord, i: u64) {
        let name = if i.is_multiple_of(3) {
            "book"
        } else {
            "search"
        };
        let request = phase.requests.entry(name.to_owned()).or_default();
        let raw_us = 900 + (i * 7_919) % 60_000;
        let corrected_us = raw_us + (i * 31) % 5_000;
        request.sent += 1;
        let failed = i.is_multiple_of(23) || i.is_multiple_of(101);
        if failed {
            record_saturating(&mut request.failed_raw_us, raw_us);
            record_saturating(&mut request.failed_us, corrected_us);
        } else {
            record_saturating(&mut request.raw_us, raw_us);
            record_saturating(&mut request.corrected_us, corrected_us);
        }
        let status = if i.is_multiple_of(23) { "503" } else { "200" };
        *request.status.entry(status.to_owned()).or_default() += 1;
        if i.is_multiple_of(23) {
            *request.errors.entry("status".to_owned()).or_default() += 1;
        }
        if i.is_multiple_of(101) {
            *request.errors.entry("timeout".to_owned()).or_default() += 1;
        }
        record_saturating(&mut phase.lag_us, 20 + (i * 13) % 400);
    }

    /// A worker's record of `requests` against `legacy` (peak phase) and `rebuilt` (warm-up).
    fn run(started: u64, ended: u64, requests: std::ops::Range<u64>) -> RunRecord {
        let mut r = RunRecord::new("holiday-peak", "ab12", 7, 0.5, at(started), BTreeMap::new());
        r.ended_at = rfc3339(at(ended));
        r.targets.push(RunTarget {
            name: "legacy".to_owned(),
            url: "http://127.0.0.1:8081".to_owned(),
        });
        for (name, target) in [("warm-up", "rebuilt"), ("peak", "legacy")] {
            let mut phase = PhaseRecord {
                name: name.to_owned(),
                target: target.to_owned(),
                started_at: rfc3339(at(started)),
                ended_at: rfc3339(at(ended)),
                duration_s: (ended - started) as f64,
                intended_rps: 50.0,
                achieved_rps: 49.5,
                users: 16,
                late_limit_ms: 100.0,
                dropped: 3,
                dropped_by_generator: 1,
                queued: 5,
                ..PhaseRecord::default()
            };
            for i in requests.clone() {
                record(&mut phase, i);
            }
            phase.timeline = (0..3)
                .map(|s| TimelinePoint {
                    t_s: (started + s) as f64 + 0.02,
                    target: target.to_owned(),
                    intended_rps: 50.0,
                    achieved_rps: 49.0,
                    p99_us: 1_000 * (s + started),
                    errors: 1,
                    requests: 49,
                    dropped: 2,
                })
                .collect();
            r.phases.push(phase);
        }
        r.slo.push(SloRecord {
            scope: "run".to_owned(),
            target: "legacy".to_owned(),
            metric: "p99".to_owned(),
            limit: 200.0,
            actual: 61.0,
            unit: "ms".to_owned(),
            pass: true,
            reason: None,
            lower_bound: false,
        });
        r
    }

    #[test]
    fn round_trips_through_json_files() {
        let r = run(0, 60, 0..3_000);
        let dir = TempDir::new("round-trip");
        let path = dir.path().join("run.json");
        r.write(&path).unwrap();
        let back = RunRecord::read(&path).unwrap();
        assert_eq!(back, r);
        let peak = back.phase("peak", "legacy").unwrap();
        let search = &peak.requests["search"];
        assert_eq!(
            LatencySummary::from_histogram(&search.corrected_us),
            LatencySummary::from_histogram(
                &r.phase("peak", "legacy").unwrap().requests["search"].corrected_us
            )
        );
        assert_eq!(search.status["200"] + search.status["503"], search.sent);
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\n  \"schema\": \"twinpeak.run/v1\""),
            "{text}"
        );
    }

    #[test]
    fn merge_equals_recording_into_one() {
        let mut merged = run(10, 70, 0..1_300);
        merged.merge(&run(5, 60, 1_300..3_000)).unwrap();
        let whole = run(5, 70, 0..3_000);
        assert_eq!(
            (merged.started_at.as_str(), merged.ended_at.as_str()),
            (whole.started_at.as_str(), whole.ended_at.as_str())
        );
        assert_eq!(merged.scale, 1.0);
        assert!(merged.slo.is_empty());
        assert_eq!(merged.targets, whole.targets);
        for phase in &whole.phases {
            let ours = merged.phase(&phase.name, &phase.target).unwrap();
            assert_eq!(ours.requests, phase.requests);
            assert_eq!(
                (ours.intended_rps, ours.achieved_rps, ours.dropped),
                (100.0, 99.0, 6)
            );
            assert_eq!(
                (ours.users, ours.dropped_by_generator, ours.queued),
                (32, 2, 10)
            );
            assert_eq!((ours.dropped_by_target(), ours.late_limit_ms), (4, 100.0));
            assert_eq!(ours.lag_us, phase.lag_us, "lag histograms are added");
            assert_eq!(ours.duration_s, 60.0);
            let (a, b) = (ours.totals().unwrap(), phase.totals().unwrap());
            assert_eq!(a, b);
            assert_eq!(a.sent, 3_000);
            assert_eq!(
                a.failed_us.len() + a.corrected_us.len(),
                3_000,
                "failed latencies are kept apart"
            );
            let failed = (0..3_000u64)
                .filter(|i| i.is_multiple_of(23) || i.is_multiple_of(101))
                .count() as u64;
            assert_eq!(a.failed_us.len(), failed);
            assert_eq!(a.failed_raw_us.len(), failed);
            assert_eq!(
                a.error_total(),
                (0..3_000u64).filter(|i| i.is_multiple_of(23)).count() as u64
                    + (0..3_000u64).filter(|i| i.is_multiple_of(101)).count() as u64
            );
        }
    }

    #[test]
    fn totals_add_every_request() {
        let phase = &run(0, 1, 0..500).phases[0];
        let totals = phase.totals().unwrap();
        let mut corrected = crate::new_latency_histogram();
        for request in phase.requests.values() {
            corrected.add(&*request.corrected_us).unwrap();
        }
        assert_eq!(*totals.corrected_us, corrected);
        assert_eq!(totals.raw_us.len() + totals.failed_raw_us.len(), 500);
        assert_eq!(totals.sent, 500);
        assert_eq!(
            PhaseRecord::default().totals().unwrap(),
            RequestRecord::default()
        );
    }

    #[test]
    fn timelines_merge_by_second_and_target() {
        let mut ours = run(0, 3, 0..10);
        ours.merge(&run(1, 4, 10..20)).unwrap();
        let timeline = &ours.phase("peak", "legacy").unwrap().timeline;
        let seconds: Vec<_> = timeline
            .iter()
            .map(|p| (p.t_s, p.requests, p.p99_us))
            .collect();
        assert_eq!(
            seconds,
            [
                (0.0, 49, 0),
                (1.0, 98, 1_000),
                (2.0, 98, 2_000),
                (3.0, 49, 3_000)
            ]
        );
        assert_eq!(timeline[1].intended_rps, 100.0);
        assert_eq!((timeline[1].errors, timeline[1].dropped), (2, 4));
        assert!(timeline.iter().all(|p| p.target == "legacy"));
    }

    #[test]
    fn merge_appends_phases_only_the_other_has() {
        let mut ours = run(0, 1, 0..10);
        ours.phases.truncate(1);
        let mut theirs = run(0, 1, 10..20);
        theirs.targets[0].name = "rebuilt".to_owned();
        ours.merge(&theirs).unwrap();
        assert_eq!(ours.phases.len(), 2);
        assert_eq!(ours.phases[1], theirs.phases[1]);
        let names: Vec<_> = ours.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["legacy", "rebuilt"]);
    }

    #[test]
    fn merge_refuses_other_scenarios_and_schemas() {
        let mut ours = run(0, 1, 0..10);
        let before = ours.clone();
        let mut theirs = run(0, 1, 10..20);
        theirs.scenario = "black-friday".to_owned();
        let err = ours.merge(&theirs).unwrap_err();
        assert!(
            matches!(err, RunMergeError::ScenarioMismatch { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("`black-friday (ab12)`"), "{err}");

        let mut theirs = run(0, 1, 10..20);
        theirs.scenario_sha256 = "cd34".to_owned();
        assert!(matches!(
            ours.merge(&theirs),
            Err(RunMergeError::ScenarioMismatch { .. })
        ));

        let mut theirs = run(0, 1, 10..20);
        theirs.schema = "twinpeak.run/v2".to_owned();
        assert!(matches!(
            ours.merge(&theirs),
            Err(RunMergeError::SchemaMismatch { .. })
        ));
        assert_eq!(ours, before);
    }

    #[test]
    fn reads_unknown_fields_and_absent_sections() {
        let json = r#"{
            "schema": "twinpeak.run/v1",
            "scenario": "smoke",
            "started_at": "2025-11-28T09:00:00Z",
            "ended_at": "2025-11-28T09:01:00.500Z",
            "host": {"cpus": 8},
            "phases": [{"name": "flat", "target": "legacy", "requests": {"home": {"sent": 3}}}]
        }"#;
        let r: RunRecord = serde_json::from_str(json).unwrap();
        assert_eq!((r.scale, r.seed), (1.0, 0));
        assert!(r.targets.is_empty() && r.slo.is_empty() && r.versions.is_empty());
        assert!(!r.partial && r.interrupted.is_none());
        let phase = &r.phases[0];
        assert_eq!(
            (phase.users, phase.dropped_by_generator, phase.queued),
            (0, 0, 0)
        );
        assert!(phase.lag_us.is_empty());
        let home = &phase.requests["home"];
        assert_eq!(home.sent, 3);
        assert!(home.corrected_us.is_empty() && home.errors.is_empty());
        assert!(home.failed_us.is_empty() && home.failed_raw_us.is_empty());
    }

    #[test]
    fn drops_of_records_that_did_not_tell_them_apart_count_against_the_system() {
        let json = r#"{"name": "peak", "target": "legacy", "dropped": 12}"#;
        let phase: PhaseRecord = serde_json::from_str(json).unwrap();
        assert_eq!(phase.dropped_by_target(), 12);
    }

    #[test]
    fn writes_replace_the_record_whole() {
        let dir = TempDir::new("atomic");
        let path = dir.path().join("run.json");
        let mut r = run(0, 60, 0..10);
        r.partial = true;
        r.write(&path).unwrap();
        r.partial = false;
        r.interrupted = Some("SIGTERM".to_owned());
        r.write(&path).unwrap();
        assert_eq!(RunRecord::read(&path).unwrap(), r);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["run.json"], "no temporary file is left behind");
        let err = r.write(dir.path().join("missing/run.json")).unwrap_err();
        assert!(err.to_string().contains("missing/run.json"), "{err}");
    }

    #[test]
    fn read_errors_name_the_file() {
        let dir = TempDir::new("read-errors");
        let missing = dir.path().join("missing.json");
        let err = RunRecord::read(&missing).unwrap_err();
        assert!(matches!(err, RunFileError::Io { .. }));
        assert!(err.to_string().contains("missing.json"), "{err}");

        let garbled = dir.path().join("garbled.json");
        fs::write(
            &garbled,
            "{\"schema\": \"twinpeak.run/v1\", \"scenario\": 4}",
        )
        .unwrap();
        let err = RunRecord::read(&garbled).unwrap_err();
        assert!(matches!(err, RunFileError::Json { .. }));
        assert!(err.to_string().contains("garbled.json"), "{err}");

        let snapshot = dir.path().join("snapshot.json");
        fs::write(&snapshot, "{\"schema\": \"twinpeak.snapshot/v1\"}").unwrap();
        let err = RunRecord::read(&snapshot).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is a `twinpeak.snapshot/v1` record, not `twinpeak.run/v1`",
                snapshot.display()
            )
        );
    }
}
