use std::time::Duration;

use super::*;
use crate::histogram::{record_saturating, LatencySummary};

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("twinpeak-run-{}-{test}", std::process::id()));
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
        ..RunTarget::default()
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
                latency_us: None,
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
fn merge_adds_each_targets_comparison_by_route() {
    let summary = |compared, different| crate::DiffSummary {
        compared,
        identical: compared - different,
        different,
        ..crate::DiffSummary::default()
    };
    let mut ours = run(0, 1, 0..10);
    ours.targets[0]
        .comparison
        .insert("/bookings/{id}".to_owned(), summary(10, 2));
    let mut theirs = run(0, 1, 10..20);
    theirs.targets[0]
        .comparison
        .insert("/bookings/{id}".to_owned(), summary(30, 3));
    theirs.targets[0]
        .comparison
        .insert("/search".to_owned(), summary(5, 0));
    ours.merge(&theirs).unwrap();
    let merged = &ours.targets[0].comparison;
    assert_eq!(merged.len(), 2);
    assert_eq!(
        (
            merged["/bookings/{id}"].compared,
            merged["/bookings/{id}"].different
        ),
        (40, 5)
    );
    assert_eq!(merged["/search"].compared, 5);
    let text = serde_json::to_string(&run(0, 1, 0..1)).unwrap();
    assert!(
        !text.contains("comparison"),
        "an empty comparison is left out"
    );
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

/// A timeline point of second 0 holding `values` (µs) in its latency histogram, with their p99.
fn point_of(values: &[u64]) -> TimelinePoint {
    let mut latency = hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 2).unwrap();
    for &v in values {
        latency.record(v).unwrap();
    }
    TimelinePoint {
        target: "legacy".to_owned(),
        requests: values.len() as u64,
        p99_us: latency.value_at_quantile(0.99),
        latency_us: Some(EncodedHistogram(latency)),
        ..TimelinePoint::default()
    }
}

#[test]
fn merged_seconds_read_p99_from_the_added_histograms() {
    let mut fast = vec![1_000; 100];
    let calm = point_of(&fast);
    fast[..2].copy_from_slice(&[100_000, 100_000]);
    let spiky = point_of(&fast);
    assert_eq!((calm.p99_us / 1_000, spiky.p99_us / 1_000), (1, 100));
    let mut ours = PhaseRecord {
        timeline: vec![calm.clone()],
        ..PhaseRecord::default()
    };
    let theirs = PhaseRecord {
        timeline: vec![spiky.clone()],
        ..PhaseRecord::default()
    };
    ours.merge(&theirs).unwrap();
    let merged = &ours.timeline[0];
    let mut added = calm.latency_us.clone().unwrap();
    added.add(&*spiky.latency_us.clone().unwrap()).unwrap();
    assert_eq!(merged.latency_us.as_ref(), Some(&added));
    // 198 of the 200 answers took 1 ms: the second's p99 is 1 ms, not the spiky worker's.
    assert_eq!(merged.p99_us, added.value_at_quantile(0.99));
    assert_eq!(merged.p99_us, calm.p99_us);
    assert_eq!(merged.requests, 200);

    // A point without its histogram (one machine's record) leaves an upper bound only.
    let mut older = PhaseRecord {
        timeline: vec![TimelinePoint {
            latency_us: None,
            ..spiky
        }],
        ..PhaseRecord::default()
    };
    older.merge(&theirs_of(calm)).unwrap();
    assert_eq!(older.timeline[0].latency_us, None);
    assert_eq!(older.timeline[0].p99_us / 1_000, 100);
}

fn theirs_of(point: TimelinePoint) -> PhaseRecord {
    PhaseRecord {
        timeline: vec![point],
        ..PhaseRecord::default()
    }
}

/// An hour of timeline against one system as a load worker keeps it, `points` points of
/// `per_point` answers each (latencies spread over 1 ms .. 1 s), serialized: its size in bytes.
fn hour_of_timeline_bytes(points: u64, per_point: u64) -> usize {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let timeline: Vec<TimelinePoint> = (0..points)
        .map(|t| {
            let values: Vec<u64> = (0..per_point)
                .map(|_| {
                    // Mostly 5..40 ms, one in a hundred up to a second.
                    let spread = if next() % 100 == 0 { 1_000_000 } else { 35_000 };
                    5_000 + next() % spread
                })
                .collect();
            TimelinePoint {
                t_s: t as f64,
                ..point_of(&values)
            }
        })
        .collect();
    serde_json::to_string_pretty(&timeline).unwrap().len()
}

#[test]
fn an_hour_of_point_histograms_stays_small() {
    // What the recorder keeps of an hour (720 points of 5 s) at 1,000 answers a second, and an
    // hour at one point a second.
    let kept = hour_of_timeline_bytes(720, 5_000);
    let per_second = hour_of_timeline_bytes(3_600, 1_000);
    eprintln!("an hour of timeline: {kept} bytes as kept (720 × 5 s), {per_second} at 1 s");
    assert!(kept < 1 << 20, "{kept} bytes");
    assert!(per_second < 4 << 20, "{per_second} bytes");
}
