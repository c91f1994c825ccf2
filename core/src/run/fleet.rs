//! A run spread over load workers. Worker K of N sends its share of the one schedule, and its
//! record says so ([`WorkerMark`]); the records of one run merge into the record of the whole
//! run ([`merge_workers`]) once they are shown to belong together: one run id, scenario, seed,
//! number of workers and launch (scale, common start, targets, late limit), each worker once,
//! on time and finished, and no merge of the same run beside them. The merged record keeps
//! each worker's generator health ([`WorkerHealth`]) beside the figures it adds up.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{PhaseRecord, RunMergeError, RunRecord};
use crate::timestamp::parse_rfc3339;

/// Which share of a run spread over several load workers a record holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerMark {
    /// Names the run every worker of it shares.
    pub run_id: String,
    /// This worker, counted from 0.
    pub index: u32,
    /// Workers in the run.
    pub count: u32,
    /// When every worker was to start its schedule (RFC 3339); empty without a common start.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start_at: String,
    /// How much later than `start_at` this worker's schedule began, in ms (0 when on time).
    #[serde(default)]
    pub late_ms: f64,
    /// How far ahead of the first target's clock (its `Date` header) this worker's clock was,
    /// in ms, when measured; negative when behind. The header counts whole seconds, so only an
    /// offset of more than a second or so says anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<f64>,
    /// What was wrong with this worker's start, in words (a late start, a clock visibly off).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One worker's generator health, kept in the record merged from its run's workers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerHealth {
    /// The worker, counted from 0, and how it started.
    pub mark: WorkerMark,
    /// The record file it came from.
    pub file: String,
    /// Per phase and system, what the worker offered.
    pub phases: Vec<WorkerPhase>,
}

/// What one worker offered in one phase against one system.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerPhase {
    /// Name of the phase.
    pub name: String,
    /// Name of the system.
    pub target: String,
    /// Its share of the schedule's rate, requests per second.
    pub intended_rps: f64,
    /// Requests it sent per second.
    pub achieved_rps: f64,
    /// Requests it sent.
    pub sent: u64,
    /// Arrivals it dropped, of both kinds.
    pub dropped: u64,
    /// Of those, arrivals it was itself too late for.
    pub dropped_by_generator: u64,
    /// Arrivals it sent late, every user busy.
    pub queued: u64,
    /// Its scheduling lag, median, µs.
    pub lag_p50_us: u64,
    /// Its scheduling lag, 99th percentile, µs.
    pub lag_p99_us: u64,
}

/// Why worker records could not be merged into their run.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Two records claim to be of one run but differ in what makes a run.
    #[error(
        "{} and {} are not of one run: {what} {theirs} ≠ {ours}",
        file.display(),
        first.display()
    )]
    Mismatch {
        /// The record that differs.
        file: PathBuf,
        /// The first record of the run.
        first: PathBuf,
        /// Which field differs: `scenario`, `seed`, `number of workers`, `scale`, `start`,
        /// `targets`, `late limit`.
        what: &'static str,
        /// Its value in `file`.
        theirs: String,
        /// Its value in `first`.
        ours: String,
    },
    /// A worker's record is a checkpoint of a run still going, or of one stopped before its
    /// schedule was over: the arrivals it never sent are counted nowhere, so the run cannot be
    /// judged from it.
    #[error(
        "{} is not the whole of worker {index}/{count}'s share of run `{run_id}`: {why}; \
         the run cannot be judged without it",
        file.display()
    )]
    Unfinished {
        /// The record.
        file: PathBuf,
        /// The run.
        run_id: String,
        /// The worker, from 0.
        index: u32,
        /// Workers in the run.
        count: u32,
        /// What is unfinished about it.
        why: String,
    },
    /// A record merged from a run's workers is given with records of that run (its workers',
    /// or another merge of it): their figures would count twice.
    #[error(
        "{} is the record merged from run `{run_id}`, which {} also hold{}: its requests would \
         count twice; give the workers' records or the merged one, not both",
        merged.display(),
        list(files),
        if files.len() == 1 { "s" } else { "" }
    )]
    MergedTwice {
        /// The merged record.
        merged: PathBuf,
        /// The run.
        run_id: String,
        /// The other records of the run given.
        files: Vec<PathBuf>,
    },
    /// A worker started its schedule so long after the common start that its share was sent
    /// at other times than the others': the merged run is not the one scheduled.
    #[error(
        "worker {index}/{count} of run `{run_id}` ({}) started its schedule {late_ms:.0} ms \
         after --start-at, more than the {max_late_ms:.0} ms allowed (--max-late): its share \
         was sent at other times than the others', so together they are not the run scheduled",
        file.display()
    )]
    Late {
        /// The record.
        file: PathBuf,
        /// The run.
        run_id: String,
        /// The worker, from 0.
        index: u32,
        /// Workers in the run.
        count: u32,
        /// How late it started, ms.
        late_ms: f64,
        /// The most allowed, ms.
        max_late_ms: f64,
    },
    /// Two records of a run without a common start ran at different times: two launches.
    #[error(
        "{} and {} are not of one run: the first started after the second ended; without \
         --start-at their run id is the same for every launch, so give each launch its own \
         --run-id (or a common --start-at)",
        file.display(),
        first.display()
    )]
    Apart {
        /// The record that started last.
        file: PathBuf,
        /// The record that ended first.
        first: PathBuf,
    },
    /// One worker's share appears in several records.
    #[error(
        "worker {index}/{count} of run `{run_id}` appears more than once: {}",
        list(files)
    )]
    Duplicate {
        /// The run.
        run_id: String,
        /// The worker, from 0.
        index: u32,
        /// Workers in the run.
        count: u32,
        /// The records that claim it.
        files: Vec<PathBuf>,
    },
    /// Some workers' records are not among the inputs.
    #[error("{}", missing_message(run_id, missing, *count, files, others))]
    Missing {
        /// The run.
        run_id: String,
        /// The workers whose records are missing, from 0.
        missing: Vec<u32>,
        /// Workers in the run.
        count: u32,
        /// The records of the run that were given.
        files: Vec<PathBuf>,
        /// Records of other runs among the inputs, with their run id.
        others: Vec<(PathBuf, String)>,
    },
    /// A worker's figures could not be added to the others'.
    #[error("while merging {} into the run", file.display())]
    Merge {
        /// The record.
        file: PathBuf,
        /// What failed.
        #[source]
        source: Box<RunMergeError>,
    },
}

fn list(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn missing_message(
    run_id: &str,
    missing: &[u32],
    count: u32,
    files: &[PathBuf],
    others: &[(PathBuf, String)],
) -> String {
    let workers: Vec<String> = missing.iter().map(|k| format!("{k}/{count}")).collect();
    let mut message = format!(
        "run `{run_id}` lacks the record of worker {} (workers count from 0); its records given: {}",
        workers.join(", "),
        list(files)
    );
    if !others.is_empty() {
        let others: Vec<String> = others
            .iter()
            .map(|(file, run)| format!("{} (run `{run}`)", file.display()))
            .collect();
        let _ = write!(message, "; of other runs: {}", others.join(", "));
    }
    message
}

/// The run a set of worker records adds up to.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedRun {
    /// The records it was merged from, in worker order.
    pub files: Vec<PathBuf>,
    /// The whole run's record: figures added, each worker's health in `workers`.
    pub record: RunRecord,
}

/// A record with the file it was read from.
pub type FiledRecord = (PathBuf, RunRecord);

/// Splits `records` into those of runs spread over load workers, merged run by run, and the
/// others, left as they are (in the order given).
///
/// A record merged earlier from a run's workers (its `workers` list names the run) passes
/// through as one run's record, but never beside a worker record of the same run or another
/// merge of it: those would count the run twice. Worker records are grouped by run id; each
/// must be finished (neither a checkpoint, `partial`, nor `interrupted`). Each run must have the same scenario (name and
/// SHA-256), seed, number of workers, scale, common start, targets and late limits in every
/// record, spans that overlap when there is no common start, each worker started no more than
/// `max_late` after the common start, and each worker exactly once; the
/// errors name the files at fault and the workers missing or duplicated. A run's merged record
/// has the run's scale (each worker ran the scenario at it), no worker mark, the workers' health
/// in worker order, and no verdicts yet: judge the merged figures against its thresholds.
pub fn merge_workers(
    records: Vec<FiledRecord>,
    max_late: Duration,
) -> Result<(Vec<MergedRun>, Vec<FiledRecord>), FleetError> {
    let marked: Vec<(PathBuf, String)> = records
        .iter()
        .filter_map(|(p, r)| Some((p.clone(), r.worker.as_ref()?.run_id.clone())))
        .collect();
    check_merged_once(&records)?;
    let mut runs: BTreeMap<String, Vec<FiledRecord>> = BTreeMap::new();
    let mut single = Vec::new();
    let mut order = Vec::new();
    for (path, record) in records {
        match &record.worker {
            Some(mark) => {
                if !runs.contains_key(&mark.run_id) {
                    order.push(mark.run_id.clone());
                }
                runs.entry(mark.run_id.clone())
                    .or_default()
                    .push((path, record));
            }
            None => single.push((path, record)),
        }
    }
    let mut merged = Vec::new();
    for run_id in order {
        let members = runs.remove(&run_id).unwrap_or_default();
        let others = marked
            .iter()
            .filter(|(_, run)| *run != run_id)
            .cloned()
            .collect();
        merged.push(merge_run(&run_id, members, others, max_late)?);
    }
    Ok((merged, single))
}

/// Checks that `members` are the whole of run `run_id`, and merges them.
fn merge_run(
    run_id: &str,
    mut members: Vec<FiledRecord>,
    others: Vec<(PathBuf, String)>,
    max_late: Duration,
) -> Result<MergedRun, FleetError> {
    let mark = |r: &RunRecord| r.worker.as_deref().cloned().unwrap_or_default();
    for (path, record) in &members {
        check_finished(path, record)?;
        check_on_time(path, record, max_late)?;
    }
    let (first_path, first) = members[0].clone();
    let count = mark(&first).count;
    for (path, record) in &members[1..] {
        let mismatch = |what, theirs: String, ours: String| FleetError::Mismatch {
            file: path.clone(),
            first: first_path.clone(),
            what,
            theirs,
            ours,
        };
        let scenario = |r: &RunRecord| format!("`{}` ({})", r.scenario, r.scenario_sha256);
        if scenario(record) != scenario(&first) {
            return Err(mismatch("scenario", scenario(record), scenario(&first)));
        }
        if record.seed != first.seed {
            return Err(mismatch(
                "seed",
                record.seed.to_string(),
                first.seed.to_string(),
            ));
        }
        if mark(record).count != count {
            return Err(mismatch(
                "number of workers",
                mark(record).count.to_string(),
                count.to_string(),
            ));
        }
        for (what, of) in LAUNCH {
            if of(record) != of(&first) {
                return Err(mismatch(what, of(record), of(&first)));
            }
        }
    }
    if mark(&first).start_at.is_empty() {
        check_overlap(&members)?;
    }
    members.sort_by_key(|(_, r)| mark(r).index);
    for pair in members.windows(2) {
        if mark(&pair[0].1).index == mark(&pair[1].1).index {
            let index = mark(&pair[0].1).index;
            return Err(FleetError::Duplicate {
                run_id: run_id.to_owned(),
                index,
                count,
                files: members
                    .iter()
                    .filter(|(_, r)| mark(r).index == index)
                    .map(|(p, _)| p.clone())
                    .collect(),
            });
        }
    }
    let present: Vec<u32> = members.iter().map(|(_, r)| mark(r).index).collect();
    let missing: Vec<u32> = (0..count).filter(|k| !present.contains(k)).collect();
    let stray = present.iter().any(|&k| k >= count);
    if !missing.is_empty() || stray {
        return Err(FleetError::Missing {
            run_id: run_id.to_owned(),
            missing,
            count,
            files: members.iter().map(|(p, _)| p.clone()).collect(),
            others,
        });
    }
    let mut record = members[0].1.clone();
    for (path, member) in &members[1..] {
        record.merge(member).map_err(|source| FleetError::Merge {
            file: path.clone(),
            source: Box::new(source),
        })?;
    }
    record.scale = first.scale;
    record.worker = None;
    record.workers = members
        .iter()
        .map(|(path, member)| health(path, member))
        .collect();
    let files = members.into_iter().map(|(p, _)| p).collect();
    Ok(MergedRun { files, record })
}

/// One of [`LAUNCH`]: a record's value of it, in words.
type LaunchField = fn(&RunRecord) -> String;

/// What every worker of one launch ran with, beside the scenario, seed and N: a record that
/// differs in one was launched apart, whatever its run id says.
const LAUNCH: [(&str, LaunchField); 4] = [
    ("scale", |r| format!("{}", r.scale)),
    ("start", |r| {
        let start = r.worker.as_ref().map_or("", |m| m.start_at.as_str());
        if start.is_empty() {
            "(none)".to_owned()
        } else {
            start.to_owned()
        }
    }),
    ("targets", |r| {
        let mut targets: Vec<String> = r
            .targets
            .iter()
            .map(|t| format!("{}={}", t.name, t.url))
            .collect();
        targets.sort();
        targets.join(", ")
    }),
    ("late limit", |r| {
        let mut limits: Vec<String> = r
            .phases
            .iter()
            .map(|p| format!("{} ms", p.late_limit_ms))
            .collect();
        limits.sort();
        limits.dedup();
        limits.join(", ")
    }),
];

/// Fails unless the workers of a run without a common start ran at one time: every record's
/// span (`started_at` to `ended_at`) overlaps every other's. Their run id, derived from the
/// scenario, seed, N and scale alone, is the same for every launch of those, so time is what
/// tells two launches apart.
fn check_overlap(members: &[FiledRecord]) -> Result<(), FleetError> {
    let span = |r: &RunRecord| (parse_rfc3339(&r.started_at), parse_rfc3339(&r.ended_at));
    let latest_start = members
        .iter()
        .filter_map(|(p, r)| Some((p, span(r).0?)))
        .max_by_key(|(_, at)| *at);
    let earliest_end = members
        .iter()
        .filter_map(|(p, r)| Some((p, span(r).1?)))
        .min_by_key(|(_, at)| *at);
    match (latest_start, earliest_end) {
        (Some((late, start)), Some((early, end))) if end < start => Err(FleetError::Apart {
            file: late.clone(),
            first: early.clone(),
        }),
        _ => Ok(()),
    }
}

/// Fails when a merged record (one with worker health) shares its run with another input: a
/// worker record of that run or another merged record of it.
fn check_merged_once(records: &[FiledRecord]) -> Result<(), FleetError> {
    let run_ids = |record: &RunRecord| -> Vec<String> {
        let mut ids: Vec<String> = match &record.worker {
            Some(mark) => vec![mark.run_id.clone()],
            None => record
                .workers
                .iter()
                .map(|w| w.mark.run_id.clone())
                .collect(),
        };
        ids.dedup();
        ids
    };
    for (n, (merged, record)) in records.iter().enumerate() {
        if record.worker.is_some() {
            continue;
        }
        for run_id in run_ids(record) {
            let files: Vec<PathBuf> = records
                .iter()
                .enumerate()
                .filter(|(m, (_, other))| *m != n && run_ids(other).contains(&run_id))
                .map(|(_, (path, _))| path.clone())
                .collect();
            if !files.is_empty() {
                return Err(FleetError::MergedTwice {
                    merged: merged.clone(),
                    run_id,
                    files,
                });
            }
        }
    }
    Ok(())
}

/// Fails when `record`'s worker started its schedule more than `max_late` after the common
/// start.
fn check_on_time(path: &Path, record: &RunRecord, max_late: Duration) -> Result<(), FleetError> {
    let mark = record.worker.as_deref().cloned().unwrap_or_default();
    let max_late_ms = max_late.as_secs_f64() * 1_000.0;
    if mark.late_ms <= max_late_ms {
        return Ok(());
    }
    Err(FleetError::Late {
        file: path.to_owned(),
        run_id: mark.run_id,
        index: mark.index,
        count: mark.count,
        late_ms: mark.late_ms,
        max_late_ms,
    })
}

/// Fails unless `record` holds its worker's whole share: not a checkpoint written while the
/// worker was still running (`partial`), nor the record of a worker stopped by a signal.
fn check_finished(path: &Path, record: &RunRecord) -> Result<(), FleetError> {
    let why = match (&record.interrupted, record.partial) {
        (Some(signal), _) => format!("it was stopped by {signal} before its schedule was over"),
        (None, true) => "it is a checkpoint written while the worker was still running (partial), \
             the last one of a worker that died or one not finished yet"
            .to_owned(),
        (None, false) => return Ok(()),
    };
    let mark = record.worker.as_deref().cloned().unwrap_or_default();
    Err(FleetError::Unfinished {
        file: path.to_owned(),
        run_id: mark.run_id,
        index: mark.index,
        count: mark.count,
        why,
    })
}

/// What `record`'s worker offered, phase by phase.
fn health(path: &Path, record: &RunRecord) -> WorkerHealth {
    WorkerHealth {
        mark: record.worker.as_deref().cloned().unwrap_or_default(),
        file: path.display().to_string(),
        phases: record.phases.iter().map(worker_phase).collect(),
    }
}

fn worker_phase(phase: &PhaseRecord) -> WorkerPhase {
    let lag = &phase.lag_us.0;
    let quantile = |q| {
        if lag.is_empty() {
            0
        } else {
            lag.value_at_quantile(q)
        }
    };
    WorkerPhase {
        name: phase.name.clone(),
        target: phase.target.clone(),
        intended_rps: phase.intended_rps,
        achieved_rps: phase.achieved_rps,
        sent: phase.requests.values().map(|r| r.sent).sum(),
        dropped: phase.dropped,
        dropped_by_generator: phase.dropped_by_generator,
        queued: phase.queued,
        lag_p50_us: quantile(0.5),
        lag_p99_us: quantile(0.99),
    }
}

#[cfg(test)]
mod tests;
