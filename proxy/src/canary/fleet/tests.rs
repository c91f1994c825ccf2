//! The fleet link against a real SQLite store.

use super::*;
use crate::state::IntervalWindow;
use std::collections::BTreeMap;

fn window(candidate: u64, errors: u64) -> IntervalWindow {
    let mut w = IntervalWindow::default();
    w.candidate.requests = candidate;
    w.candidate.errors = errors;
    w.primary.requests = candidate * 4;
    w
}

#[test]
fn the_fleet_window_adds_every_replica_and_refuses_a_missing_one() {
    let mut rows: BTreeMap<i64, BTreeMap<String, IntervalWindow>> = BTreeMap::new();
    for (seq, replicas) in [(7, vec!["a", "b"]), (8, vec!["a", "b", "c"])] {
        for (i, r) in replicas.into_iter().enumerate() {
            rows.entry(seq)
                .or_default()
                .insert(r.to_string(), window(10 * (i as u64 + 1), i as u64));
        }
    }
    let fleet = fleet_window(&rows, 8).unwrap();
    assert_eq!(fleet.replicas, ["a", "b", "c"]);
    assert_eq!(fleet.window.candidate.requests, 60);
    assert_eq!(fleet.window.candidate.errors, 3);
    assert_eq!(fleet.window.primary.requests, 240);
    rows.get_mut(&8).unwrap().remove("b");
    let refused = fleet_window(&rows, 8).unwrap_err();
    assert!(refused.contains("from b"), "{refused}");
    assert!(fleet_window(&rows, 9).is_err());
}

fn store(dir: &std::path::Path, replica: &str) -> Store {
    let settings = crate::state::Settings {
        replica: replica.into(),
        ..crate::state::Settings::default()
    };
    Store::open(
        &crate::state::Location::Sqlite(dir.join("state.sqlite3")),
        settings,
    )
    .unwrap()
}

fn fleet(dir: &std::path::Path, replica: &str, config: &str) -> Fleet {
    let canary = Arc::new(crate::canary::tests::canary(config));
    Fleet::bootstrap(canary, store(dir, replica)).unwrap()
}

impl Fleet {
    /// Writes this replica's (empty) row of interval `seq` and judges it.
    async fn write_and_judge(&self, seq: i64) -> Result<(), String> {
        self.write_interval(seq, PairWindow::default(), None).await;
        self.judge(seq).await
    }

    async fn row(&self) -> CanaryRow {
        self.store.call(|s| s.canary()).await.unwrap().unwrap()
    }

    fn verdicts(&self) -> usize {
        self.canary
            .history()
            .decisions
            .iter()
            .filter(|d| History::is_verdict(d))
            .count()
    }
}

use super::super::History;

#[tokio::test]
async fn a_longer_judge_interval_after_a_restart_goes_on_judging_after_what_was_judged() {
    let dir = tempfile::tempdir().unwrap();
    let short = fleet(dir.path(), "a", "{weight: 20, judge: {interval: 300ms}}");
    let seq = interval_of(SystemTime::now(), Duration::from_millis(300)) - 1;
    short.write_and_judge(seq).await.unwrap();
    assert_eq!(short.verdicts(), 1);
    let judged_until = interval_start(seq + 1, Duration::from_millis(300));
    drop(short);

    // The same plan with a longer interval: the stored canary is taken up.
    let long = fleet(dir.path(), "a", "{weight: 20, judge: {interval: 1s}}");
    let width = Duration::from_secs(1);
    let overlapping = interval_of(judged_until, width);
    if interval_start(overlapping, width) < judged_until {
        // Partly judged already: not judged again.
        long.write_and_judge(overlapping).await.unwrap();
        assert_eq!(long.verdicts(), 1, "{:?}", long.canary.history());
    }
    let next = overlapping + 1;
    long.write_and_judge(next).await.unwrap();
    assert_eq!(long.verdicts(), 2, "{:?}", long.canary.history());
    let row = long.row().await;
    assert!(row
        .record
        .judged_since(interval_start(next + 1, width) - Duration::from_millis(1)));
    assert!(!row.record.judged_since(interval_start(next + 1, width)));
    // Judged once: the same interval again writes nothing.
    long.judge(next).await.unwrap();
    assert_eq!(long.row().await.generation, row.generation);
}

#[tokio::test]
async fn a_replica_counting_intervals_of_another_width_holds_the_judge() {
    let dir = tempfile::tempdir().unwrap();
    let judge = fleet(dir.path(), "a", "{weight: 20, judge: {interval: 1s}}");
    let seq = interval_of(SystemTime::now(), Duration::from_secs(1)) - 1;
    judge.write_and_judge(seq).await.unwrap();
    let mut other = store(dir.path(), "b");
    let short = Duration::from_millis(500);
    other
        .write_interval(
            short,
            interval_of(SystemTime::now(), short),
            &IntervalWindow::default(),
        )
        .unwrap();
    let refused = judge.write_and_judge(seq + 1).await.unwrap_err();
    assert!(refused.contains("judge.interval differs"), "{refused}");
    assert!(refused.contains("b (500ms)"), "{refused}");
    assert_eq!(judge.verdicts(), 1);
}

#[tokio::test]
async fn a_rollback_survives_a_rollout_of_another_plan_and_the_old_plan_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let old = fleet(dir.path(), "a", "{weight: 20, judge: {interval: 1s}}");
    old.admin(AdminAction::Rollback, "sre").await.unwrap();
    let seq = interval_of(SystemTime::now(), Duration::from_secs(1)) - 1;

    // A replica of a new plan starts: the canary stays rolled back under it.
    let new = fleet(dir.path(), "b", "{weight: 30, judge: {interval: 1s}}");
    assert_eq!(new.canary.weight(), 0.0);
    let row = new.row().await;
    assert_eq!(row.record.state, "rolled_back");
    assert_eq!(row.record.plan, new.canary.plan());
    assert!(
        new.canary
            .history()
            .decisions
            .iter()
            .any(|d| d.by == "config" && d.summary.contains("rolled back under the plan before")),
        "{:?}",
        new.canary.history()
    );

    // The old plan's judge and operators write nothing over it, and say why.
    let refused = old.write_and_judge(seq).await.unwrap_err();
    assert!(
        refused.contains("another plan in force (written by b)"),
        "{refused}"
    );
    assert_eq!(
        old.judge_or_hold(seq).await.as_deref(),
        Some(refused.as_str())
    );
    let resumed = old.admin(AdminAction::Resume, "sre").await.unwrap_err();
    assert_eq!(resumed, FleetRefusal::OtherPlan("b".into()));
    assert_eq!(old.row().await, row, "the old plan wrote over the new one");
    old.poll().await.unwrap();
    assert_eq!(old.canary.weight(), 0.0);

    // The new plan's replicas go on with it: an operator resumes it at its own weight.
    new.admin(AdminAction::Resume, "sre").await.unwrap();
    assert_eq!(new.canary.weight(), 30.0);
    new.write_and_judge(seq).await.unwrap();
    assert_eq!(new.row().await.record.state, "running");
}
