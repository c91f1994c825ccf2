//! The state store on a real SQLite file: what is flushed is restored after a restart, a
//! process killed with SIGKILL loses at most its last flush interval, and the canary row is
//! changed compare-and-set and survives a restart.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use twinpeak_core::diff::{NoiseRule, Signature};
use twinpeak_core::{
    new_latency_histogram, record_saturating, DiffSummary, EncodedHistogram, FieldSummary,
    RouteSnapshot, Snapshot,
};
use twinpeak_proxy::state::{
    AuditEntry, Batch, CanaryRecord, CanaryUpdate, CanaryWrite, CounterKey, Flushed, Location,
    Series, Settings, SharedStore, Store, Tracker,
};

fn open(path: &Path) -> Store {
    let settings = Settings {
        replica: "solo".into(),
        ..Settings::default()
    };
    Store::open(&Location::Sqlite(path.to_path_buf()), settings).unwrap()
}

fn findings(compared: u64, price: u64) -> DiffSummary {
    let mut s = DiffSummary {
        compared,
        identical: compared - price,
        fields: vec![FieldSummary {
            path: "$.price".into(),
            kind: "value_changed".into(),
            count: price,
            rate: 0.0,
            reference_count: 0,
            reference_rate: None,
            first_seen: "2026-03-01T10:00:00.000Z".into(),
            last_seen: "2026-03-01T10:05:00.000Z".into(),
            suggested_ignore: None,
        }],
        noise_rule: Some(NoiseRule {
            min_samples: 10,
            absolute_threshold: 0.03,
            relative_threshold: 0.2,
        }),
        signatures: vec![Signature {
            fields: vec![("$.price".into(), "value_changed".into())],
            pairs: price,
        }],
        ..DiffSummary::default()
    };
    s.classify();
    s
}

/// A proxy's totals after `n` requests to `/bookings/{id}`: latencies 1..=n ms, every tenth
/// pair differing on the price.
fn totals(n: u64) -> (Snapshot, BTreeMap<CounterKey, u64>) {
    let mut route = RouteSnapshot::default();
    let mut h = new_latency_histogram();
    for i in 1..=n {
        record_saturating(&mut h, i * 1000);
        route.delta.record(i as i64 * 10 - 500);
    }
    route.primary.latency_us = EncodedHistogram(h);
    route.diff = Some(findings(n, n / 10));
    let mut snapshot = Snapshot::new("sha", SystemTime::now(), BTreeMap::new());
    snapshot.routes.insert("/bookings/{id}".into(), route);
    let requests = CounterKey::new(
        "twinpeak_requests_total",
        [
            ("route", "/bookings/{id}"),
            ("side", "primary"),
            ("status_class", "2xx"),
        ],
    );
    (snapshot, BTreeMap::from([(requests, n)]))
}

#[test]
fn what_is_flushed_is_restored_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.state.sqlite3");
    let mut tracker = Tracker::new();
    {
        let mut store = open(&path);
        for n in [40, 90, 150] {
            let (snapshot, counters) = totals(n);
            let examples = BTreeMap::from([(
                "/bookings/{id}".to_string(),
                serde_json::json!([{"request_id": format!("r{n}")}]),
            )]);
            let batch = tracker.batch(SystemTime::now(), &snapshot, &counters, examples);
            assert_eq!(store.flush(&batch), Flushed::Written);
        }
        assert!(store.health().up);
        assert_eq!(store.health().writes_ok, 3);
    }
    let mut store = open(&path);
    let restored = store.restore().unwrap();
    let route = &restored.findings["/bookings/{id}"];
    assert_eq!(route.summary, findings(150, 15));
    assert_eq!(route.examples, serde_json::json!([{"request_id": "r150"}]));

    let (snapshot, counters) = totals(150);
    let view = store.read_view(None, None, Some("solo")).unwrap();
    let latency = &view.routes["/bookings/{id}"].latency[&Series::Primary];
    assert_eq!(
        latency,
        &snapshot.routes["/bookings/{id}"].primary.latency_us.0
    );
    assert_eq!(
        view.routes["/bookings/{id}"].delta,
        snapshot.routes["/bookings/{id}"].delta
    );
    assert_eq!(view.counters, counters);
    // The last hour's windows hold the same, findings included.
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let period = store.read_view(Some(hour_ago), None, None).unwrap();
    let summary = period.routes["/bookings/{id}"].findings.as_ref().unwrap();
    assert_eq!((summary.compared, summary.different), (150, 15));
    assert_eq!(period.counters, counters);
    // As a snapshot for the report.
    let report = period.snapshot("sha");
    let primary = &report.routes["/bookings/{id}"].primary;
    assert_eq!((primary.requests, primary.latency_us.len()), (150, 150));
    assert_eq!(primary.status_classes["2xx"], 150);
    // An idle flush still shows the store is reachable.
    let quiet = SystemTime::now() + Duration::from_secs(1);
    assert_eq!(store.flush(&Batch::new(quiet)), Flushed::Written);
    let health = store.health();
    assert!(health
        .last_ok
        .is_some_and(|t| t >= quiet - Duration::from_secs(1)));
    assert!(health.fresh(SystemTime::now(), Duration::from_secs(60)));
}

/// Where the child of the SIGKILL test writes.
const CHILD_STORE: &str = "TWINPEAK_STATE_KILL_CHILD";

/// The child: flushes one request more every 50 ms, printing each count once it is written.
fn flush_until_killed(path: &Path) -> ! {
    let mut store = open(path);
    let mut tracker = Tracker::new();
    for n in 1.. {
        let (snapshot, counters) = totals(n);
        let batch = tracker.batch(SystemTime::now(), &snapshot, &counters, BTreeMap::new());
        assert_eq!(store.flush(&batch), Flushed::Written);
        println!("flushed {n}");
        std::thread::sleep(Duration::from_millis(50));
        assert!(n < 2_000, "never killed");
    }
    unreachable!()
}

#[test]
fn a_process_killed_mid_run_loses_at_most_its_last_interval() {
    if let Some(path) = std::env::var_os(CHILD_STORE) {
        flush_until_killed(Path::new(&path));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.sqlite3");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_process_killed_mid_run_loses_at_most_its_last_interval",
            "--nocapture",
        ])
        .env(CHILD_STORE, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = 0;
    while last < 8 && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(n) = line.strip_prefix("flushed ") {
            last = n.parse().unwrap();
        }
    }
    child.kill().unwrap(); // SIGKILL: no shutdown flush, no destructor
    child.wait().unwrap();
    assert!(last >= 8, "the child flushed {last} times");

    let mut store = open(&path);
    let view = store.read_view(None, None, None).unwrap();
    let requests: u64 = view.counters.values().sum();
    assert!(
        requests == last || requests == last + 1,
        "{requests} requests kept, {last} flushed when killed"
    );
    let restored = store.restore().unwrap();
    let compared = restored.findings["/bookings/{id}"].summary.compared;
    assert_eq!(
        compared, requests,
        "findings and counters come from the same flushes"
    );
}

fn record(state: &str, weight: f64, step: usize) -> CanaryRecord {
    CanaryRecord {
        state: state.into(),
        weight,
        step: Some(step),
        hold_since: "2026-03-01T10:00:00.000Z".into(),
        passes: 1,
        fails_in_a_row: 0,
        weight_before_rollback: 0.0,
        ..CanaryRecord::default()
    }
}

#[test]
fn the_canary_row_is_written_compare_and_set_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("canary.sqlite3");
    {
        let mut store = open(&path);
        let first = CanaryUpdate {
            record: record("running", 5.0, 0),
            ..CanaryUpdate::default()
        };
        let CanaryWrite::Written(row) = store.write_canary(None, &first).unwrap() else {
            panic!("first write conflicted");
        };
        assert_eq!(row.generation, 1);
        // A writer that read generation 1 after another wrote generation 2 does not win.
        let second = CanaryUpdate {
            record: record("running", 10.0, 1),
            ..CanaryUpdate::default()
        };
        assert!(matches!(
            store.write_canary(Some(1), &second).unwrap(),
            CanaryWrite::Written(_)
        ));
        let stale = store.write_canary(Some(1), &first).unwrap();
        let CanaryWrite::Conflict(Some(current)) = stale else {
            panic!("a stale write went through: {stale:?}");
        };
        assert_eq!((current.generation, current.record.weight), (2, 10.0));
        // A rollback with its audit entry.
        let row = store
            .change_canary(|current| {
                let mut record = current?.record.clone();
                record.weight_before_rollback = record.weight;
                record.weight = 0.0;
                record.state = "rolled_back".into();
                Some(CanaryUpdate {
                    record,
                    decisions: vec![twinpeak_core::CanaryDecision {
                        decision: "rollback".into(),
                        by: "admin (local)".into(),
                        ..Default::default()
                    }],
                    audit: Some(AuditEntry {
                        at: SystemTime::now(),
                        by: "alice (local)".into(),
                        action: "rollback".into(),
                        summary: "weight 10 → 0".into(),
                    }),
                })
            })
            .unwrap()
            .unwrap();
        assert_eq!(row.generation, 3);
    }
    let mut store = open(&path);
    let restored = store.restore().unwrap();
    let canary = restored.canary.unwrap();
    assert_eq!(canary.record.state, "rolled_back");
    assert_eq!(canary.record.weight_before_rollback, 10.0);
    assert_eq!(canary.updated_by, "solo");
    assert_eq!(restored.decisions.len(), 1);
    let audit = store.audit(10).unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].entry.by.as_str(), audit[0].replica.as_str()),
        ("alice (local)", "solo")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_callers_reach_the_store_off_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let store = SharedStore::new(open(&dir.path().join("async.sqlite3")));
    let mut batch = Batch::new(SystemTime::now());
    let mut h = new_latency_histogram();
    record_saturating(&mut h, 1234);
    batch.latency.insert(("/a".into(), Series::Shadow), h);
    let flushed = store.call(move |s| s.flush(&batch)).await;
    assert_eq!(flushed, Flushed::Written);
    let count = store
        .call(|s| {
            s.read_view(None, None, None)
                .map(|v| v.routes["/a"].latency[&Series::Shadow].len())
        })
        .await
        .unwrap();
    assert_eq!(count, 1);
}
