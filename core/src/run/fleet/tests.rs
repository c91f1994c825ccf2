use std::time::SystemTime;

use super::*;
use crate::histogram::record_saturating;
use crate::run::RequestRecord;

/// The late start allowed, as `twinpeak report` allows by default.
const ON_TIME: Duration = Duration::from_secs(1);

/// Worker `index` of `count` of run `run_id`, having sent requests `index, index + count, …`
/// of 0..400 at 1..=400 ms.
fn worker(run_id: &str, index: u32, count: u32) -> (PathBuf, RunRecord) {
    let mut record = RunRecord::new("fleet", "ab12", 7, 1.0, SystemTime::now(), BTreeMap::new());
    record.started_at = "2026-01-01T00:00:00Z".into();
    record.ended_at = "2026-01-01T00:00:04Z".into();
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
    merge_workers(records, ON_TIME).unwrap_err().to_string()
}

#[test]
fn a_whole_run_adds_up_to_the_single_machine_figures() {
    let records: Vec<_> = [2, 0, 3, 1].map(|k| worker("r1", k, 4)).into();
    let (runs, single) = merge_workers(records, ON_TIME).unwrap();
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
    assert!(
        error(records).contains("r1/w3/run.json and r1/w0/run.json are not of one run: seed 8 ≠ 7")
    );
}

#[test]
fn an_unfinished_or_interrupted_worker_is_refused_by_name() {
    let mut records: Vec<_> = [0, 1, 2, 3].map(|k| worker("r1", k, 4)).into();
    records[2].1.partial = true;
    let message = error(records);
    assert!(
        message.starts_with("r1/w2/run.json is not the whole of worker 2/4's share of run `r1`"),
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
    let (mut runs, _) = merge_workers(records.clone(), ON_TIME).unwrap();
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
    let (_, single) = merge_workers(vec![merged], ON_TIME).unwrap();
    assert_eq!(single.len(), 1, "alone, a merged record is one run's");
}

#[test]
fn records_of_another_launch_are_refused() {
    let launch = |change: fn(&mut RunRecord)| {
        let mut records: Vec<_> = [0, 1, 2, 3].map(|k| worker("r1", k, 4)).into();
        change(&mut records[3].1);
        error(records)
    };
    let message = launch(|r| r.scale = 2.0);
    assert!(
        message.contains("r1/w3/run.json and r1/w0/run.json are not of one run: scale 2 ≠ 1"),
        "{message}"
    );
    let message = launch(|r| {
        r.targets = vec![crate::run::RunTarget {
            name: "legacy".into(),
            url: "http://staging".into(),
            ..Default::default()
        }]
    });
    assert!(
        message.contains("targets legacy=http://staging ≠"),
        "{message}"
    );
    let message = launch(|r| r.phases[0].late_limit_ms = 2_000.0);
    assert!(message.contains("late limit 2000 ms ≠ 0 ms"), "{message}");
    let message = launch(|r| r.worker.as_mut().unwrap().start_at = "2026-12-24T18:00:00Z".into());
    assert!(
        message.contains("start 2026-12-24T18:00:00Z ≠ (none)"),
        "{message}"
    );
    let message = launch(|r| {
        r.started_at = "2099-01-01T00:00:00Z".into();
        r.ended_at = "2099-01-01T00:10:00Z".into();
    });
    assert!(
        message.contains("r1/w3/run.json and r1/w0/run.json are not of one run: the first started after the second ended")
            && message.contains("--run-id"),
        "{message}"
    );
}

#[test]
fn a_worker_that_started_late_is_named() {
    let mut records: Vec<_> = [0, 1, 2, 3].map(|k| worker("r1", k, 4)).into();
    records[2].1.worker.as_mut().unwrap().late_ms = 1_000.0;
    assert!(
        merge_workers(records.clone(), ON_TIME).is_ok(),
        "at the limit"
    );
    records[2].1.worker.as_mut().unwrap().late_ms = 120_000.0;
    let message = error(records.clone());
    assert!(
        message.starts_with(
            "worker 2/4 of run `r1` (r1/w2/run.json) started its schedule 120000 ms after --start-at, more than the 1000 ms allowed"
        ),
        "{message}"
    );
    assert!(merge_workers(records, Duration::from_secs(180)).is_ok());
}

#[test]
fn records_of_one_machine_pass_through() {
    let (path, mut alone) = worker("x", 0, 1);
    alone.worker = None;
    let (runs, single) = merge_workers(vec![(path.clone(), alone)], ON_TIME).unwrap();
    assert!(runs.is_empty());
    assert_eq!(single[0].0, path);
}
