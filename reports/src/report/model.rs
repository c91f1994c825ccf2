//! The computed report: every figure the page shows, already formatted, with the input files
//! it came from. It is what `summary.json` holds, and what the templates render.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Schema tag of `summary.json`.
pub const SUMMARY_SCHEMA: &str = "twinpeak.report/v1";

/// Everything the report shows, as numbers, formatted text and provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Always [`SUMMARY_SCHEMA`].
    pub schema: String,
    /// Title of the page, e.g. `holiday-peak: legacy vs rebuilt`.
    pub title: String,
    /// The before/after table and the plain-language summary.
    pub headline: Headline,
    /// One row per SLO, with each system's verdict.
    pub slo: Vec<SloRow>,
    /// Per-route figures from proxy snapshots.
    pub routes: Vec<RouteRow>,
    /// Paired latency deltas (shadow − primary) from proxy snapshots, all routes together.
    pub delta: Option<DeltaView>,
    /// How the compared answers differed, from proxy snapshots.
    pub diff: Option<DiffView>,
    /// How each system's replayed answers differed from the recorded primary's, from run
    /// records of `twinpeak load --replay --compare`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replay_diff: Vec<ReplayDiffView>,
    /// The canary's ramp and every decision about it, from proxy snapshots that route a canary
    /// share.
    pub canary: Option<CanaryView>,
    /// The charts drawn, and what each was drawn from.
    pub charts: Vec<ChartInfo>,
    /// What is needed to run the measurement again.
    pub reproducibility: Reproducibility,
    /// Whether the load generator kept up, per phase and system.
    pub health: Vec<HealthRow>,
    /// For a run spread over load workers, each worker's generator, per phase and system.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerRow>,
    /// The files the report was built from.
    pub inputs: Vec<InputInfo>,
    /// Remarks on what the report left out or how it read the inputs.
    pub notes: Vec<String>,
}

/// The before/after table leadership reads first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    /// What the figures measure, e.g. `coordinated-omission-corrected latency of every request
    /// of the load run`.
    pub basis: String,
    /// The system before the change (legacy).
    pub before: Column,
    /// The system after the change (rebuilt); absent when only one system was measured.
    pub after: Option<Column>,
    /// One row per metric, in display order.
    pub rows: Vec<HeadlineRow>,
    /// A few sentences generated from the figures.
    pub summary: Vec<String>,
}

/// One system's column of the headline table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Name in the records, e.g. `legacy` or `primary`.
    pub name: String,
    /// Heading, e.g. `before (legacy)`.
    pub label: String,
}

/// One metric of the headline table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadlineRow {
    /// Stable key: `p50`, `p95`, `p99`, `p999`, `max`, `error_rate`, `throughput`,
    /// `slo_compliance`.
    pub key: String,
    /// What a reader sees, e.g. `p99 latency`.
    pub label: String,
    /// The before system's figure.
    pub before: Option<Figure>,
    /// The after system's figure.
    pub after: Option<Figure>,
    /// How after compares with before.
    pub change: Option<Change>,
}

/// One figure with its unit, formatted text and provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// The number, in `unit`.
    pub value: f64,
    /// `ms`, `%`, `req/s`, `requests`, ...
    pub unit: String,
    /// As the report shows it, unit included: `3,840 ms`, or `> 160 ms` for a lower bound.
    pub text: String,
    /// Input files it was computed from.
    pub sources: Vec<String>,
    /// What in those files it was computed from.
    pub derivation: String,
    /// Whether `value` is only a lower bound: a latency percentile that falls among arrivals the
    /// system could not take, which rank above every latency measured.
    #[serde(default, skip_serializing_if = "is_false")]
    pub lower_bound: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// How an after figure compares with the before one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Relative change in percent (after / before − 1), or for shares the difference in
    /// percentage points.
    pub amount: f64,
    /// `%` or `pp`.
    pub unit: String,
    /// As the table shows it: `−97% (3,840 → 117 ms)`.
    pub text: String,
    /// The change alone: `−97%`, `+58 pp`.
    pub short: String,
    /// In words: `97% faster`, `63% fewer errors`.
    pub words: String,
    /// Whether after is better than before for this metric.
    pub outcome: Outcome,
}

/// Whether a change is for the better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// After is better.
    Better,
    /// After is worse.
    Worse,
    /// No difference worth a colour.
    Same,
}

/// One SLO and each system's verdict on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloRow {
    /// `run` or a phase, e.g. `phase spike`.
    pub scope: String,
    /// `p50`, `p95`, `p99`, `p999`, `max` or `error_rate`.
    pub metric: String,
    /// The objective in words: `p99 ≤ 200 ms`.
    pub objective: String,
    /// Where it applies in words: `whole run`, `phase spike`.
    pub applies_to: String,
    /// The limit, in `unit`.
    pub limit: f64,
    /// `ms` or `%`.
    pub unit: String,
    /// The before system's verdict.
    pub before: Option<SloCell>,
    /// The after system's verdict.
    pub after: Option<SloCell>,
}

/// One system's verdict on one SLO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloCell {
    /// Whether the measured figure is within the limit.
    pub pass: bool,
    /// What was measured, in the row's unit.
    pub actual: f64,
    /// The measured figure as shown: `3,840 ms`, or why nothing was measured.
    pub text: String,
    /// By how much: `19× the limit`, `42% under`.
    pub margin: String,
    /// Input files the verdict came from.
    pub sources: Vec<String>,
    /// `recorded` when taken from the records' SLO verdicts, `re-evaluated` when computed
    /// again on histograms merged from several records.
    pub origin: String,
}

/// One route of the proxy snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteRow {
    /// Route template, e.g. `/bookings/{id}`.
    pub route: String,
    /// Requests the primary answered.
    pub requests: Figure,
    /// Requests mirrored to the shadow.
    pub mirrored: Figure,
    /// Primary median latency.
    pub primary_p50: Option<Figure>,
    /// Primary 99th percentile latency.
    pub primary_p99: Option<Figure>,
    /// Shadow median latency.
    pub shadow_p50: Option<Figure>,
    /// Shadow 99th percentile latency.
    pub shadow_p99: Option<Figure>,
    /// How the shadow's p99 compares with the primary's.
    pub p99_change: Option<Change>,
    /// Share of compared answers with a real difference.
    pub diff_rate: Option<Figure>,
}

/// The distribution of paired latency deltas, shadow − primary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeltaView {
    /// Paired requests.
    pub pairs: Figure,
    /// Share of pairs in which the shadow answered faster.
    pub shadow_faster: Figure,
    /// Median delta.
    pub p50: Figure,
    /// 10th percentile delta.
    pub p10: Figure,
    /// 90th percentile delta.
    pub p90: Figure,
}

/// How the compared answers differed, all routes together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffView {
    /// Pairs compared.
    pub compared: u64,
    /// Pairs with at least one real difference.
    pub different: u64,
    /// `different` over `compared`.
    pub rate: Figure,
    /// Per route with comparisons.
    pub routes: Vec<DiffRouteRow>,
    /// Fields that differ for real, most frequent first.
    pub fields: Vec<FieldRow>,
    /// Fields that differ between two legacy answers too, and are not counted.
    pub noise: Vec<FieldRow>,
    /// Input files every count and rate of this view came from.
    pub sources: Vec<String>,
}

/// One system's replayed answers against the recorded primary's answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayDiffView {
    /// The system the recording was replayed against.
    pub target: String,
    /// Its findings, as the proxy's snapshots show them.
    pub diff: DiffView,
}

/// Comparison counts of one route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffRouteRow {
    /// Route template.
    pub route: String,
    /// Pairs compared.
    pub compared: String,
    /// Pairs with no difference.
    pub identical: String,
    /// Pairs with a real difference.
    pub different: String,
    /// Pairs whose differences were all noise.
    pub noise_only: String,
    /// Share of compared pairs with a real difference.
    pub rate: String,
}

/// One field path that differed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldRow {
    /// Route template.
    pub route: String,
    /// Field path, e.g. `$.booking.price.amount`.
    pub path: String,
    /// Kind of difference, e.g. `value_changed`.
    pub kind: String,
    /// Pairs in which it differed.
    pub count: String,
    /// Share of the route's compared pairs (for noise: of its reference comparisons).
    pub rate: String,
    /// A rule that would silence it, for noise.
    pub suggested_ignore: Option<String>,
}

/// The canary as the proxy recorded it: where it stands, how far it got, and why it was held
/// back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryView {
    /// `running`, `paused` or `rolled_back`.
    pub state: String,
    /// The candidate's share of live traffic when the snapshot was taken.
    pub weight: Figure,
    /// The highest share the candidate served.
    pub peak: Figure,
    /// The ramp step in force, e.g. `2 of 4`; absent without a ramp or once rolled back.
    pub step: Option<String>,
    /// The configured ramp, e.g. `1% → 5% → 25% → 100%`; empty without one.
    pub ramp: String,
    /// The judge's passing verdicts.
    pub passes: Figure,
    /// The judge's failing verdicts.
    pub fails: Figure,
    /// The judge's inconclusive verdicts.
    pub inconclusive: Figure,
    /// Steps up the ramp.
    pub advances: Figure,
    /// Rollbacks, by the judge or an operator.
    pub rollbacks: Figure,
    /// The last rollback, with the failing checks that caused it when the judge did.
    pub last_rollback: Option<CanaryRollback>,
    /// The entries that changed something (start, advance, rollback and every admin change),
    /// oldest first.
    pub changes: Vec<CanaryChange>,
    /// The failing checks of the last failing verdicts, oldest first.
    pub failures: Vec<CanaryReasonRow>,
    /// Input files the history came from.
    pub sources: Vec<String>,
}

/// One entry of the canary history that changed something.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryChange {
    /// When (RFC 3339).
    pub at: String,
    /// `start`, `advance`, `rollback`, `weight`, `pause`, `resume` or `promote`.
    pub decision: String,
    /// `judge`, `config` or `admin (ADDRESS)`.
    pub by: String,
    /// The candidate's share of traffic after it, e.g. `25%`.
    pub weight: String,
    /// Why, in one line.
    pub summary: String,
}

/// A rollback of the canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryRollback {
    /// When (RFC 3339).
    pub at: String,
    /// `judge` or `admin (ADDRESS)`.
    pub by: String,
    /// The candidate's share of traffic just before it, when an earlier entry says.
    pub from: Option<Figure>,
    /// The failing checks of the verdict that led to it; empty for an operator's rollback.
    pub cause: Vec<CanaryReasonRow>,
}

/// One failing check of a judge's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryReasonRow {
    /// When the verdict was made (RFC 3339).
    pub at: String,
    /// The candidate's share of traffic when it was made, e.g. `25%`.
    pub weight: String,
    /// `requests`, `error_rate`, `error_delta`, `latency_p99`, `latency_shift` or `diff_rate`.
    pub metric: String,
    /// The candidate's figure.
    pub candidate: Figure,
    /// The primary's figure, for checks that compare the two.
    pub primary: Option<Figure>,
    /// The limit the candidate's figure was held to.
    pub threshold: Figure,
    /// The check in words, as the proxy wrote it.
    pub detail: String,
}

/// A chart of the page and where its data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartInfo {
    /// `percentiles`, `timeline`, `delta` or `canary`.
    pub id: String,
    /// Caption.
    pub title: String,
    /// Input files drawn from.
    pub sources: Vec<String>,
    /// What in those files was drawn.
    pub derivation: String,
}

/// What is needed to run the measurement again, and the versions measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reproducibility {
    /// Scenario name, from run records.
    pub scenario: Option<String>,
    /// SHA-256 of the scenario file as run.
    pub scenario_sha256: Option<String>,
    /// SHA-256 of the proxy configuration, from snapshots.
    pub proxy_config_sha256: Vec<String>,
    /// Seed of the request data.
    pub seed: Option<u64>,
    /// Rate multiplier, per system when they differ: `1×` or `legacy 1×, rebuilt 2×`.
    pub scale: Option<String>,
    /// Component versions, e.g. `twinpeak` → `0.1.0`.
    pub versions: BTreeMap<String, String>,
    /// When the load run started (RFC 3339).
    pub run_started: Option<String>,
    /// When the load run ended (RFC 3339).
    pub run_ended: Option<String>,
    /// When the proxy began counting (RFC 3339).
    pub snapshot_started: Option<String>,
    /// When the snapshot was taken (RFC 3339).
    pub snapshot_taken: Option<String>,
}

/// Whether the load generator kept up during one phase against one system, and whether the
/// system took the load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthRow {
    /// Phase name.
    pub phase: String,
    /// System name.
    pub target: String,
    /// Arrival rate the schedule asked for.
    pub intended: Figure,
    /// Rate actually sent.
    pub achieved: Figure,
    /// `achieved` over `intended`, e.g. `99.8%`.
    pub achieved_share: String,
    /// Arrivals dropped, of both kinds.
    pub dropped: Figure,
    /// Arrivals dropped because every load user was busy waiting for the system: the ones it
    /// could not take.
    pub dropped_by_target: Figure,
    /// Arrivals dropped because the generator was late while a user was free.
    pub dropped_by_generator: Figure,
    /// Arrivals sent late because every load user was busy when they fell due.
    pub queued: Figure,
    /// Median of the generator's own scheduling lag (actual − intended send, with a user free).
    pub lag_p50: Option<Figure>,
    /// 99th percentile of the generator's own scheduling lag.
    pub lag_p99: Option<Figure>,
    /// 99th percentile of coordinated-omission-corrected latency.
    pub corrected_p99: Option<Figure>,
    /// 99th percentile of latency from the actual send.
    pub raw_p99: Option<Figure>,
    /// Corrected over raw p99, e.g. `1.02×`.
    pub gap: String,
    /// Whether the system was saturated, in words: every user busy waiting for it while
    /// arrivals fell due, and how many it could not take; `None` when it took them all.
    pub saturated: Option<String>,
    /// What looks wrong with the generator, in words; empty when it kept up.
    pub warnings: Vec<String>,
}

/// What one load worker of a run offered in one phase against one system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerRow {
    /// The worker, `K/N` (K from 0).
    pub worker: String,
    /// Its record file.
    pub file: String,
    /// Phase name.
    pub phase: String,
    /// System name.
    pub target: String,
    /// Its share of the schedule's rate.
    pub intended: Figure,
    /// Rate it sent.
    pub achieved: Figure,
    /// `achieved` over `intended`, e.g. `99.8%`.
    pub achieved_share: String,
    /// Requests it sent.
    pub sent: Figure,
    /// Arrivals it dropped with every user busy waiting for the system.
    pub not_taken: Figure,
    /// Arrivals it was itself too late for.
    pub dropped_by_generator: Figure,
    /// Arrivals it sent late, every user busy.
    pub queued: Figure,
    /// Median of its scheduling lag.
    pub lag_p50: Figure,
    /// 99th percentile of its scheduling lag.
    pub lag_p99: Figure,
    /// How it started: `on time`, or how late and how far its clock was off.
    pub start: String,
    /// What was wrong with its start, in words.
    pub warnings: Vec<String>,
}

/// One input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputInfo {
    /// The path as given.
    pub path: String,
    /// Its schema tag.
    pub schema: String,
    /// What it holds, in words.
    pub description: String,
}
