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
pub mod fleet;
mod thresholds;
mod timeline;

pub use arrivals::{Arrivals, Latency};
pub use fleet::{
    merge_workers, FiledRecord, FleetError, MergedRun, WorkerHealth, WorkerMark, WorkerPhase,
};
pub use thresholds::{RunThresholds, Thresholds};

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
    /// The scenario's SLO thresholds, so the records of several load workers, merged, can be
    /// judged as one run.
    #[serde(default, skip_serializing_if = "RunThresholds::is_empty")]
    pub thresholds: RunThresholds,
    /// Which share of a run spread over several load workers this record holds; absent for
    /// a run from one machine, and in the record merged from the workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<Box<WorkerMark>>,
    /// In the record merged from a run's load workers: each worker's generator health, in
    /// worker order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerHealth>,
}

/// A system the load was sent to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunTarget {
    /// Name the system is reported under, e.g. `legacy`.
    pub name: String,
    /// Base URL requests were sent to.
    #[serde(default)]
    pub url: String,
    /// With `twinpeak load --replay --compare`: the system's answers compared with the
    /// recorded primary's, per route template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub comparison: BTreeMap<String, crate::DiffSummary>,
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
    /// The corrected latency of the requests of this second that succeeded, µs: kept in a load
    /// worker's record (and the record merged from them), so that merging adds them and
    /// `p99_us` of a merged second is exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<EncodedHistogram>,
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
            thresholds: RunThresholds::default(),
            worker: None,
            workers: Vec::new(),
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
    /// interrupted by `self`'s signal, else `other`'s. Thresholds are `self`'s, else `other`'s;
    /// worker health lists are joined and `self`'s worker mark kept ([`merge_workers`] checks
    /// that worker records belong together first). SLO verdicts are cleared: those of each part
    /// do not hold for the whole, so evaluate the merged figures again.
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
            match self.targets.iter_mut().find(|t| t.name == target.name) {
                Some(ours) => {
                    for (route, summary) in &target.comparison {
                        ours.comparison
                            .entry(route.clone())
                            .or_default()
                            .merge(summary);
                    }
                }
                None => self.targets.push(target.clone()),
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
        if self.thresholds.is_empty() {
            self.thresholds.clone_from(&other.thresholds);
        }
        self.workers.extend(other.workers.iter().cloned());
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
    /// and latency histograms added, `p99_us` read from the sum; where a point has no histogram
    /// (a record of one machine, or an older one), the merged second has none either and its
    /// `p99_us` is the larger of the two, an upper bound.
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
        self.timeline = timeline::merge(&self.timeline, &other.timeline).map_err(|source| {
            RunMergeError::Histogram {
                phase: self.name.clone(),
                target: self.target.clone(),
                request: "(timeline)".to_owned(),
                source,
            }
        })?;
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
mod tests;
