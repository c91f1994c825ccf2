//! The store's internals against a real SQLite file (migrations, coarsening, retention, the
//! health, the buffer, compare-and-set changes) and a throwaway PostgreSQL (a connection lost
//! inside a transaction).

use std::time::{Duration, SystemTime};

use twinpeak_core::{new_latency_histogram, record_saturating};

use super::conn::{transaction, Conn, PostgresConn, SqliteConn};
use super::rows::{RowKey, HOUR_S, MINUTE_S};
use super::*;

fn settings() -> Settings {
    Settings {
        replica: "r1".into(),
        ..Settings::default()
    }
}

fn batch(at: SystemTime, values: &[u64], requests: u64) -> Batch {
    let mut b = Batch::new(at);
    let mut h = new_latency_histogram();
    values.iter().for_each(|v| record_saturating(&mut h, *v));
    b.latency.insert(("/a".into(), Series::Primary), h);
    b.counters.insert(
        CounterKey::new(
            "twinpeak_requests_total",
            [("route", "/a"), ("side", "primary")],
        ),
        requests,
    );
    b
}

#[test]
fn an_older_schema_is_migrated_forward_keeping_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite3");
    {
        let mut conn = SqliteConn::open(&path).unwrap();
        assert_eq!(schema::migrate(&mut conn, 1, "test").unwrap(), 0);
        conn.execute(
            "INSERT INTO twinpeak_findings (replica, route, summary, examples, updated_ms) \
             VALUES ('r1', '/a', '{\"compared\": 7}', 'null', 0)",
            &[],
        )
        .unwrap();
        assert_eq!(schema::version(&mut conn).unwrap(), 1);
    }
    let mut store = Store::open(&Location::Sqlite(path.clone()), settings()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let restored = store.restore().unwrap();
    assert_eq!(restored.findings["/a"].summary.compared, 7);
    assert!(
        restored.canary.is_none(),
        "the version 2 tables exist and are empty"
    );
}

#[test]
fn a_newer_schema_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite3");
    drop(Store::open(&Location::Sqlite(path.clone()), settings()).unwrap());
    let mut conn = SqliteConn::open(&path).unwrap();
    schema::force_version(&mut conn, SCHEMA_VERSION + 5).unwrap();
    let err = Store::open(&Location::Sqlite(path), settings()).unwrap_err();
    assert!(
        matches!(err, StateError::SchemaTooNew { found, known, .. } if found == SCHEMA_VERSION + 5 && known == SCHEMA_VERSION),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("schema version {}", SCHEMA_VERSION + 5)),
        "{text}"
    );
    assert!(
        text.contains(&format!("versions up to {SCHEMA_VERSION}")),
        "{text}"
    );
}

#[test]
fn old_minutes_are_coarsened_into_hours_and_expired_windows_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let location = Location::Sqlite(dir.path().join("state.sqlite3"));
    let mut store = Store::open(&location, settings()).unwrap();
    let now = SystemTime::now();
    // Three minutes of one hour, 30 hours ago; one window 40 days ago; one now.
    let hour_ago_30 = now - Duration::from_secs(30 * 3600);
    let base = SystemTime::UNIX_EPOCH
        + Duration::from_secs(rows::window_start(pending::unix_s(hour_ago_30), HOUR_S) as u64);
    for (minute, values) in [(1u64, vec![100]), (2, vec![200, 300]), (59, vec![400])] {
        let at = base + Duration::from_secs(minute * 60 + 5);
        assert_eq!(
            store.flush(&batch(at, &values, values.len() as u64)),
            Flushed::Written
        );
    }
    store.flush(&batch(now - Duration::from_secs(40 * 86_400), &[9], 1));
    store.flush(&batch(now, &[50], 1));

    let mut conn = SqliteConn::open(dir.path().join("state.sqlite3").as_path()).unwrap();
    let hours = view::rows_of_width(&mut conn, HOUR_S).unwrap();
    let latency: Vec<_> = hours
        .iter()
        .filter(|(_, k, _)| matches!(k, RowKey::Latency(..)))
        .collect();
    assert_eq!(latency.len(), 1, "{hours:?}");
    assert_eq!(latency[0].0, pending::unix_s(base));
    assert_eq!(
        latency[0].2.count, 4,
        "the hour holds its three minutes' four values"
    );
    let minutes = view::rows_of_width(&mut conn, MINUTE_S).unwrap();
    assert!(
        minutes
            .iter()
            .all(|(start, _, _)| *start > pending::unix_s(base) + HOUR_S),
        "only the recent minute is left: {minutes:?}"
    );
    assert_eq!(
        minutes.len(),
        2,
        "the recent minute's histogram and counter"
    );

    // The period view sees the hour whole; all time still counts the expired window.
    let period = store
        .read_view(Some(base), Some(base + Duration::from_secs(600)), None)
        .unwrap();
    let h = &period.routes["/a"].latency[&Series::Primary];
    assert_eq!(h.len(), 4);
    let all = store.read_view(None, None, None).unwrap();
    assert_eq!(all.routes["/a"].latency[&Series::Primary].len(), 6);
    let requests = CounterKey::new(
        "twinpeak_requests_total",
        [("route", "/a"), ("side", "primary")],
    );
    assert_eq!(all.counters[&requests], 6);
}

#[test]
fn a_stored_row_that_cannot_be_merged_is_replaced_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite3");
    let mut store = Store::open(&Location::Sqlite(path.clone()), settings()).unwrap();
    let at = SystemTime::now();
    store.flush(&batch(at, &[10], 1));
    let mut conn = SqliteConn::open(&path).unwrap();
    conn.execute(
        "UPDATE twinpeak_windows SET data = '\"garbage\"' WHERE kind = 'latency'",
        &[],
    )
    .unwrap();
    assert_eq!(store.flush(&batch(at, &[20], 1)), Flushed::Written);
    assert_eq!(
        store.health().replaced_rows,
        2,
        "the minute and the all-time row"
    );
    let view = store.read_view(None, None, Some("r1")).unwrap();
    assert_eq!(view.routes["/a"].latency[&Series::Primary].len(), 1);
    assert_eq!(view.skipped_rows, 0);
}

/// Makes every flush fail (a trigger refuses the row each one writes) until `allow`.
fn refuse_flushes(conn: &mut SqliteConn) {
    conn.batch(
        "CREATE TRIGGER refuse_flushes BEFORE INSERT ON twinpeak_replicas \
         BEGIN SELECT RAISE(FAIL, 'the disk is full'); END",
    )
    .unwrap();
}

fn allow_flushes(conn: &mut SqliteConn) {
    conn.batch("DROP TRIGGER refuse_flushes").unwrap();
}

#[test]
fn reads_leave_the_health_to_writes_and_the_flush_on_which_writes_return_keeps_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite3");
    let settings = Settings {
        max_buffered_bytes: 4 * 1024,
        max_retry_backoff: Duration::from_millis(1),
        ..settings()
    };
    let mut store = Store::open(&Location::Sqlite(path.clone()), settings).unwrap();
    let now = SystemTime::now();
    assert_eq!(store.flush(&batch(now, &[10], 1)), Flushed::Written);
    let mut conn = SqliteConn::open(&path).unwrap();
    refuse_flushes(&mut conn);

    // Earlier minutes each: the buffer grows until a batch does not fit.
    let mut buffered = 0u64;
    let mut dropped = false;
    for i in 1..=200u64 {
        std::thread::sleep(Duration::from_millis(2));
        let values: Vec<u64> = (0..50).map(|v| 1_000 + v * 37 + i).collect();
        match store.flush(&batch(now - Duration::from_secs(60 * i), &values, 1)) {
            Flushed::Buffered => buffered += 1,
            Flushed::Dropped => {
                dropped = true;
                break;
            }
            Flushed::Written => panic!("written while every flush fails"),
        }
    }
    assert!(dropped && buffered > 0, "the buffer never filled");
    let health = store.health();
    assert!(!health.up && health.last_error.is_some(), "{health:?}");

    // Reads still work, and say nothing of whether writes do.
    assert!(store.canary().unwrap().is_none());
    store.read_view(None, None, None).unwrap();
    let health = store.health();
    assert!(!health.up, "a read made the store look up: {health:?}");
    assert!(
        health
            .last_error
            .as_deref()
            .unwrap()
            .contains("disk is full"),
        "{health:?}"
    );

    // Writes work again: the full buffer lands, and the batch of that flush with it.
    allow_flushes(&mut conn);
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(store.flush(&batch(now, &[20], 7)), Flushed::Written);
    let health = store.health();
    assert!(health.up && health.buffered_bytes == 0, "{health:?}");
    let requests = CounterKey::new(
        "twinpeak_requests_total",
        [("route", "/a"), ("side", "primary")],
    );
    let all = store.read_view(None, None, None).unwrap();
    assert_eq!(all.counters[&requests], 1 + buffered + 7);
}

#[test]
fn a_change_that_lost_to_another_writer_and_then_gave_up_returns_no_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let location = Location::Sqlite(dir.path().join("state.sqlite3"));
    let mut store = Store::open(&location, settings()).unwrap();
    let mut other = Store::open(
        &location,
        Settings {
            replica: "r2".into(),
            ..settings()
        },
    )
    .unwrap();
    let update = |weight: f64| CanaryUpdate {
        record: CanaryRecord {
            state: "running".into(),
            weight,
            ..CanaryRecord::default()
        },
        ..CanaryUpdate::default()
    };
    store.change_canary(|_| Some(update(5.0))).unwrap();

    // The first attempt loses to r2's write; seeing it, the second writes nothing.
    let mut attempts = 0;
    let changed = store
        .change_canary_with(|row| {
            attempts += 1;
            let row = row.unwrap();
            if row.record.weight != 5.0 {
                return None;
            }
            other.change_canary(|_| Some(update(50.0))).unwrap();
            Some((update(10.0), "weight 5 → 10"))
        })
        .unwrap();
    assert_eq!(attempts, 2);
    let CanaryChange::Unchanged(Some(row)) = changed else {
        panic!("an attempt that lost left its outcome behind: {changed:?}");
    };
    assert_eq!((row.record.weight, row.updated_by.as_str()), (50.0, "r2"));

    // A change that is written returns the row as the store now holds it, with its outcome.
    let changed = store
        .change_canary_with(|_| Some((update(60.0), "weight 50 → 60")))
        .unwrap();
    let CanaryChange::Written { row, outcome } = changed else {
        panic!("not written: {changed:?}");
    };
    assert_eq!(outcome, "weight 50 → 60");
    assert_eq!(Some(row), store.canary().unwrap());
}

#[path = "../../tests/support/postgres.rs"]
mod pg;

#[test]
fn a_postgres_connection_lost_inside_a_transaction_is_not_made_again_until_it_ends() {
    let server = pg::ThrowawayPostgres::start();
    let config = PostgresConfig {
        url: Some(server.url()),
        password_file: Some(server.password_file()),
        ..PostgresConfig::default()
    };
    let mut conn = PostgresConn::connect(config.target().unwrap()).unwrap();
    let mut admin = PostgresConn::connect(config.target().unwrap()).unwrap();
    conn.batch("CREATE TABLE t (a BIGINT NOT NULL)").unwrap();
    let insert =
        |conn: &mut dyn Conn, a: i64| conn.execute("INSERT INTO t VALUES ($1)", &[a.into()]);
    let pid = conn
        .query("SELECT CAST(pg_backend_pid() AS BIGINT)", &[])
        .unwrap()[0][0]
        .int()
        .unwrap();

    let mut attempts = Vec::new();
    let written: Result<(), DbError> = transaction(&mut conn, |conn| {
        insert(conn, 1)?;
        admin
            .query(
                "SELECT CAST(pg_terminate_backend(CAST(CAST($1 AS BIGINT) AS INTEGER)) AS TEXT)",
                &[pid.into()],
            )
            .unwrap();
        // Whatever the statements after it do, none runs outside the transaction.
        for a in 2..=4 {
            attempts.push(insert(conn, a).map(drop).map_err(|e| e.to_string()));
        }
        Ok(())
    });
    assert!(
        written.is_err(),
        "the transaction was reported committed: {attempts:?}"
    );
    assert!(attempts.iter().all(Result::is_err), "{attempts:?}");
    assert!(
        attempts
            .last()
            .unwrap()
            .as_ref()
            .unwrap_err()
            .contains("lost inside a transaction"),
        "{attempts:?}"
    );
    // Once it ended, the next call connects again.
    assert_eq!(
        conn.query("SELECT CAST(COUNT(*) AS BIGINT) FROM t", &[])
            .unwrap(),
        vec![vec![conn::Value::Int(0)]],
        "a part of the transaction was written"
    );
}

#[test]
fn a_stopped_replicas_old_minutes_are_coarsened_by_another_and_a_silent_one_is_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite3");
    let location = Location::Sqlite(path.clone());
    let mut r1 = Store::open(&location, settings()).unwrap();
    let r2_settings = Settings {
        replica: "r2".into(),
        ..settings()
    };
    let mut r2 = Store::open(&location, r2_settings).unwrap();
    let now = SystemTime::now();
    let hour_ago_30 = now - Duration::from_secs(30 * 3600);
    let base = SystemTime::UNIX_EPOCH
        + Duration::from_secs(rows::window_start(pending::unix_s(hour_ago_30), HOUR_S) as u64);
    // r2 flushed two minutes of an hour 30 hours ago, wrote a judge interval, and stopped.
    for (minute, values) in [(1u64, vec![100]), (2, vec![200, 300])] {
        let at = base + Duration::from_secs(minute * 60);
        assert_eq!(
            r2.flush(&batch(at, &values, values.len() as u64)),
            Flushed::Written
        );
    }
    r2.write_interval(Duration::from_secs(1), 7, &IntervalWindow::default())
        .unwrap();
    drop(r2);
    let mut conn = SqliteConn::open(&path).unwrap();
    let stopped_at = |conn: &mut SqliteConn, at: SystemTime| {
        let ms = canary::unix_ms(at);
        conn.execute(
            "UPDATE twinpeak_replicas SET flushed_ms = $1 WHERE replica = 'r2'",
            &[ms.into()],
        )
        .unwrap();
        conn.execute(
            "UPDATE twinpeak_intervals SET written_ms = $1 WHERE replica = 'r2'",
            &[ms.into()],
        )
        .unwrap();
    };
    stopped_at(&mut conn, base + Duration::from_secs(180));

    // r1's flushes coarsen r2's old minutes; r1's judge intervals delete r2's old ones.
    assert_eq!(r1.flush(&batch(now, &[50], 1)), Flushed::Written);
    r1.write_interval(Duration::from_secs(1), 8, &IntervalWindow::default())
        .unwrap();
    let minutes = view::rows_of_width(&mut conn, MINUTE_S).unwrap();
    assert!(
        minutes
            .iter()
            .all(|(start, _, _)| *start > pending::unix_s(base) + HOUR_S),
        "r2's old minutes are left: {minutes:?}"
    );
    let hours = view::rows_of_width(&mut conn, HOUR_S).unwrap();
    let latency: Vec<_> = hours
        .iter()
        .filter(|(_, k, _)| matches!(k, RowKey::Latency(..)))
        .collect();
    assert_eq!(latency.len(), 1, "{hours:?}");
    assert_eq!(latency[0].2.count, 3, "r2's hour holds its three values");
    let intervals = r1.intervals(Duration::from_secs(1), 0, 100).unwrap();
    assert_eq!(intervals.keys().collect::<Vec<_>>(), [&8], "{intervals:?}");
    let fleet = r1.read_view(None, None, None).unwrap();
    assert_eq!(fleet.replicas, ["r1", "r2"].map(String::from).into());
    assert_eq!(fleet.routes["/a"].latency[&Series::Primary].len(), 4);

    // Silent past the retention, r2 leaves the store and the fleet's views.
    conn.execute(
        "INSERT INTO twinpeak_findings (replica, route, summary, examples, updated_ms) \
         VALUES ('r2', '/a', '{\"compared\": 7}', 'null', 0)",
        &[],
    )
    .unwrap();
    assert_eq!(r1.findings(Some("r2")).unwrap().len(), 1);
    stopped_at(&mut conn, now - Duration::from_secs(40 * 86_400));
    assert_eq!(r1.flush(&batch(now, &[60], 1)), Flushed::Written);
    let fleet = r1.read_view(None, None, None).unwrap();
    assert_eq!(fleet.replicas, ["r1"].map(String::from).into());
    assert_eq!(fleet.routes["/a"].latency[&Series::Primary].len(), 2);
    let replicas: Vec<String> = r1.replicas().unwrap().into_iter().map(|(r, _)| r).collect();
    assert_eq!(replicas, ["r1"]);
    assert!(r1.findings(Some("r2")).unwrap().is_empty());

    // The fleet's all-time totals and old minutes are found by width.
    let plan = conn
        .query(
            "EXPLAIN QUERY PLAN SELECT kind, key, count, data, replica FROM twinpeak_windows \
             WHERE width_s = $1",
            &[0.into()],
        )
        .unwrap();
    assert!(
        format!("{plan:?}").contains("twinpeak_windows_by_width"),
        "{plan:?}"
    );
}

/// An SQLite connection whose next COMMIT is reported failed after it committed: what a
/// client sees when the connection breaks as the server commits.
struct CommitLost {
    inner: SqliteConn,
    lose_next: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Conn for CommitLost {
    fn dialect(&self) -> conn::Dialect {
        self.inner.dialect()
    }
    fn execute(&mut self, sql: &str, params: &[conn::Value]) -> Result<u64, DbError> {
        self.inner.execute(sql, params)
    }
    fn query(&mut self, sql: &str, params: &[conn::Value]) -> Result<Vec<conn::Row>, DbError> {
        self.inner.query(sql, params)
    }
    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.inner.batch(sql)
    }
    fn commit(&mut self) -> Result<(), DbError> {
        self.inner.commit()?;
        if self
            .lose_next
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            return Err(DbError::LostInTransaction);
        }
        Ok(())
    }
}

#[test]
fn a_flush_whose_commit_was_reported_failed_after_it_landed_is_not_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite3");
    let settings = Settings {
        max_retry_backoff: Duration::from_millis(1),
        ..settings()
    };
    let mut store = Store::open(&Location::Sqlite(path.clone()), settings).unwrap();
    let lose_next = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    store.conn = Box::new(CommitLost {
        inner: SqliteConn::open(&path).unwrap(),
        lose_next: lose_next.clone(),
    });
    let now = SystemTime::now();
    assert_eq!(store.flush(&batch(now, &[10], 1)), Flushed::Written);
    lose_next.store(true, std::sync::atomic::Ordering::Relaxed);
    // Written, but reported failed: kept in doubt.
    assert_eq!(store.flush(&batch(now, &[20, 30], 2)), Flushed::Buffered);
    assert!(store.health().buffered_bytes > 0);
    std::thread::sleep(Duration::from_millis(2));
    // Buffered behind it while it is in doubt, then both written at the next flush.
    assert_eq!(store.flush(&batch(now, &[40], 4)), Flushed::Written);
    let health = store.health();
    assert!(health.up && health.buffered_bytes == 0, "{health:?}");
    let view = store.read_view(None, None, None).unwrap();
    let requests = CounterKey::new(
        "twinpeak_requests_total",
        [("route", "/a"), ("side", "primary")],
    );
    assert_eq!(view.counters[&requests], 1 + 2 + 4, "a flush written twice");
    assert_eq!(view.routes["/a"].latency[&Series::Primary].len(), 4);
}

#[test]
fn a_canary_change_whose_commit_was_reported_failed_after_it_landed_is_reported_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite3");
    let mut store = Store::open(&Location::Sqlite(path.clone()), settings()).unwrap();
    let lose_next = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    store.conn = Box::new(CommitLost {
        inner: SqliteConn::open(&path).unwrap(),
        lose_next: lose_next.clone(),
    });
    let update = |weight: f64| CanaryUpdate {
        record: CanaryRecord {
            state: "rolled_back".into(),
            weight,
            ..CanaryRecord::default()
        },
        audit: Some(AuditEntry {
            at: SystemTime::now(),
            by: "sre".into(),
            action: "rollback".into(),
            summary: format!("weight {weight}"),
        }),
        ..CanaryUpdate::default()
    };
    let CanaryWrite::Written(row) = store.write_canary(None, &update(0.0)).unwrap() else {
        panic!("a change that landed was reported a conflict");
    };
    assert_eq!((row.generation, row.record.weight), (1, 0.0));
    assert!(!lose_next.load(std::sync::atomic::Ordering::Relaxed));
    assert_eq!(store.audit(10).unwrap().len(), 1);

    // A change that did not land is still reported failed.
    let mut conn = SqliteConn::open(&path).unwrap();
    conn.batch(
        "CREATE TRIGGER refuse_changes BEFORE UPDATE ON twinpeak_canary \
         BEGIN SELECT RAISE(FAIL, 'the disk is full'); END",
    )
    .unwrap();
    let failed = store.write_canary(Some(1), &update(5.0)).unwrap_err();
    assert!(failed.to_string().contains("disk is full"), "{failed}");
    assert_eq!(store.canary().unwrap(), Some(row));
}

/// A window of `requests` primary requests of 1 ms each.
fn primary_part(requests: u64) -> IntervalWindow {
    let mut window = IntervalWindow::default();
    window.primary.requests = requests;
    for _ in 0..requests {
        record_saturating(&mut window.primary.latency, 1_000);
    }
    window
}

/// Two processes of one replica (an upgrade's overlap) write their parts of one interval, at
/// the same time: the row holds both.
fn parts_of_one_interval_add_up(location: Location) {
    let width = Duration::from_secs(1);
    let writers: Vec<_> = (1..=4u64)
        .map(|requests| {
            let location = location.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&location, settings()).unwrap();
                store
                    .write_interval(width, 11, &primary_part(requests))
                    .unwrap();
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let mut store = Store::open(&location, settings()).unwrap();
    let rows = store.intervals(width, 11, 11).unwrap();
    let row = &rows[&11][&settings().replica];
    assert_eq!(row.primary.requests, 1 + 2 + 3 + 4);
    assert_eq!(row.primary.latency.len(), 10);
}

#[test]
fn parts_of_one_interval_add_up_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    parts_of_one_interval_add_up(Location::Sqlite(dir.path().join("state.sqlite3")));
}

#[test]
fn parts_of_one_interval_add_up_in_postgres() {
    let server = pg::ThrowawayPostgres::start();
    let config = PostgresConfig {
        url: Some(server.url()),
        password_file: Some(server.password_file()),
        ..PostgresConfig::default()
    };
    parts_of_one_interval_add_up(Location::Postgres(Box::new(config.target().unwrap())));
}
