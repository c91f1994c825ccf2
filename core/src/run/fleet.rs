//! A run spread over load workers. Worker K of N sends its share of the one schedule, and its
//! record says so ([`WorkerMark`]); the records of one run merge into the record of the whole
//! run ([`merge_workers`]) once they are shown to belong together: one run id, scenario, seed
//! and number of workers, each worker once. The merged record keeps each worker's generator
//! health ([`WorkerHealth`]) beside the figures it adds up.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{PhaseRecord, RunMergeError, RunRecord};

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
        /// Which field differs: `scenario`, `seed`, `number of workers`.
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
/// SHA-256), seed and number of workers in every record, and each worker exactly once; the
/// errors name the files at fault and the workers missing or duplicated. A run's merged record
/// has the run's scale (each worker ran the scenario at it), no worker mark, the workers' health
/// in worker order, and no verdicts yet: judge the merged figures against its thresholds.
pub fn merge_workers(
    records: Vec<FiledRecord>,
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
        merged.push(merge_run(&run_id, members, others)?);
    }
    Ok((merged, single))
}

/// Checks that `members` are the whole of run `run_id`, and merges them.
fn merge_run(
    run_id: &str,
    mut members: Vec<FiledRecord>,
    others: Vec<(PathBuf, String)>,
) -> Result<MergedRun, FleetError> {
    let mark = |r: &RunRecord| r.worker.as_deref().cloned().unwrap_or_default();
    for (path, record) in &members {
        check_finished(path, record)?;
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
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::histogram::record_saturating;
    use crate::run::RequestRecord;

    /// Worker `index` of `count` of run `run_id`, having sent requests `index, index + count, …`
    /// of 0..400 at 1..=400 ms.
    fn worker(run_id: &str, index: u32, count: u32) -> (PathBuf, RunRecord) {
        let mut record =
            RunRecord::new("fleet", "ab12", 7, 1.0, SystemTime::now(), BTreeMap::new());
        let mut request = RequestRecord::default();
        for ms in (1..=400u64).filter(|ms| ms % u64::from(count) == u64::from(index)) {
            record_saturating(&mut request.corrected_us, ms * 1_000);
            request.sent += 1;
        }
        let mut lag = crate::histogram::EncodedHistogram::default();
        record_saturating(&mut lag.0, 50 + u64::from(index));
        record.phases.push(PhaseRecord {
            name: "peak".into(),
            target: "target".into(),
            intended_rps: 100.0 / f64::from(count),
            achieved_rps: request.sent as f64 / 4.0,
            lag_us: lag,
            requests: BTreeMap::from([("get".to_owned(), request)]),
            ..PhaseRecord::default()
        });
        record.worker = Some(Box::new(WorkerMark {
            run_id: run_id.into(),
            index,
            count,
            ..WorkerMark::default()
        }));
        (PathBuf::from(format!("{run_id}/w{index}/run.json")), record)
    }

    fn error(records: Vec<(PathBuf, RunRecord)>) -> String {
        merge_workers(records).unwrap_err().to_string()
    }

    #[test]
    fn a_whole_run_adds_up_to_the_single_machine_figures() {
        let records: Vec<_> = [2, 0, 3, 1].map(|k| worker("r1", k, 4)).into();
        let (runs, single) = merge_workers(records).unwrap();
        assert!(single.is_empty());
        let run = &runs[0];
        assert_eq!(run.files[0], PathBuf::from("r1/w0/run.json"));
        let phase = &run.record.phases[0];
        let all = worker("one", 0, 1).1;
        let alone = &all.phases[0];
        assert_eq!(
            phase.requests["get"].corrected_us,
            alone.requests["get"].corrected_us
        );
        assert_eq!(phase.intended_rps, alone.intended_rps);
        assert_eq!(phase.achieved_rps, alone.achieved_rps);
        assert_eq!(run.record.scale, 1.0);
        assert!(run.record.worker.is_none());
        let health: Vec<_> = run
            .record
            .workers
            .iter()
            .map(|w| (w.mark.index, w.phases[0].sent))
            .collect();
        assert_eq!(health, [(0, 100), (1, 100), (2, 100), (3, 100)]);
    }

    #[test]
    fn a_missing_worker_is_named_with_the_files_given() {
        let message = error([0, 1, 3].map(|k| worker("r1", k, 4)).into());
        assert!(
            message.contains("lacks the record of worker 2/4"),
            "{message}"
        );
        assert!(message.contains("r1/w3/run.json"), "{message}");
    }

    #[test]
    fn a_duplicated_worker_names_both_records() {
        let mut records: Vec<_> = [0, 1, 2, 3].map(|k| worker("r1", k, 4)).into();
        let (_, again) = worker("r1", 1, 4);
        records.push((PathBuf::from("copy/run.json"), again));
        let message = error(records);
        assert!(
            message.contains("worker 1/4 of run `r1` appears more than once"),
            "{message}"
        );
        assert!(
            message.contains("r1/w1/run.json, copy/run.json"),
            "{message}"
        );
    }

    #[test]
    fn a_record_of_another_run_is_named() {
        let mut records: Vec<_> = [0, 1, 3].map(|k| worker("r1", k, 4)).into();
        records.push(worker("r2", 2, 4));
        let message = error(records);
        assert!(
            message.contains("of other runs: r2/w2/run.json (run `r2`)"),
            "{message}"
        );
        let mut records: Vec<_> = [0, 1, 2].map(|k| worker("r1", k, 4)).into();
        let (path, mut other) = worker("r1", 3, 4);
        other.seed = 8;
        records.push((path, other));
        assert!(error(records)
            .contains("r1/w3/run.json and r1/w0/run.json are not of one run: seed 8 ≠ 7"));
    }

    #[test]
    fn an_unfinished_or_interrupted_worker_is_refused_by_name() {
        let mut records: Vec<_> = [0, 1, 2, 3].map(|k| worker("r1", k, 4)).into();
        records[2].1.partial = true;
        let message = error(records);
        assert!(
            message
                .starts_with("r1/w2/run.json is not the whole of worker 2/4's share of run `r1`"),
            "{message}"
        );
        assert!(message.contains("partial"), "{message}");
        let mut records: Vec<_> = [0, 1, 2, 3].map(|k| worker("r1", k, 4)).into();
        records[1].1.interrupted = Some("SIGTERM".into());
        let message = error(records);
        assert!(
            message.contains("r1/w1/run.json is not the whole")
                && message.contains("stopped by SIGTERM"),
            "{message}"
        );
    }

    #[test]
    fn a_merged_record_given_with_its_workers_is_refused() {
        let records: Vec<_> = [0, 1, 2, 3].map(|k| worker("r1", k, 4)).into();
        let (mut runs, _) = merge_workers(records.clone()).unwrap();
        let merged = (PathBuf::from("merged/run.json"), runs.remove(0).record);
        let mut again = records;
        again.push(merged.clone());
        let message = error(again);
        assert!(
            message.starts_with("merged/run.json is the record merged from run `r1`, which r1/w0/run.json, r1/w1/run.json"),
            "{message}"
        );
        assert!(message.contains("count twice"), "{message}");
        let message = error(vec![
            merged.clone(),
            (PathBuf::from("copy.json"), merged.1.clone()),
        ]);
        assert!(message.contains("which copy.json also holds"), "{message}");
        let (_, single) = merge_workers(vec![merged]).unwrap();
        assert_eq!(single.len(), 1, "alone, a merged record is one run's");
    }

    #[test]
    fn records_of_one_machine_pass_through() {
        let (path, mut alone) = worker("x", 0, 1);
        alone.worker = None;
        let (runs, single) = merge_workers(vec![(path.clone(), alone)]).unwrap();
        assert!(runs.is_empty());
        assert_eq!(single[0].0, path);
    }
}
