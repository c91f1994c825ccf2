//! Writing window rows (read, merge, upsert: a running replica is the only writer of its
//! rows), keeping the all-time totals beside them, coarsening old minutes into hours, and
//! deleting what is past retention. A replica that stopped no longer does that for itself:
//! the others coarsen its old minutes (one at a time), and once it has been silent past
//! retention it is forgotten, its totals and findings with it. Each runs inside the flush's
//! transaction.

use std::collections::BTreeMap;

use super::batch::{Batch, RouteFindings};
use super::conn::{Conn, Dialect, Value};
use super::error::DbError;
use super::pending::{unix_s, Pending};
use super::rows::{window_start, Cell, RowKey, RowValue, HOUR_S, MINUTE_S};

/// Width of the row that holds a replica's totals since the store began (start 0).
pub(crate) const ALL_TIME: i64 = 0;

/// Rows per multi-row upsert statement.
const ROWS_PER_STATEMENT: usize = 100;

/// Hours coarsened per flush at most, so a store that was away for long catches up in steps.
const HOURS_PER_FLUSH: usize = 24;

/// One flush's mark: whose it is, its writer (a process of that replica) and number, and
/// when it was made (Unix ms).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flush<'a> {
    pub replica: &'a str,
    pub writer: &'a str,
    pub number: i64,
    pub at_ms: i64,
}

/// What one write adds: decoded values per minute window and key, and findings as a whole.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    pub values: BTreeMap<(i64, RowKey), RowValue>,
    pub totals: BTreeMap<String, RouteFindings>,
}

impl Rows {
    /// The rows of one batch, as they are (nothing encoded).
    pub(crate) fn of_batch(batch: &Batch) -> Rows {
        let start = window_start(unix_s(batch.at), MINUTE_S);
        Rows {
            values: batch
                .values()
                .into_iter()
                .map(|(key, value)| ((start, key), value))
                .collect(),
            totals: batch.totals.clone(),
        }
    }

    /// The rows waiting in `pending`, decoded (a row that cannot be is left out, and logged).
    pub(crate) fn of_pending(pending: &Pending) -> Rows {
        Rows {
            values: pending
                .cells
                .iter()
                .filter_map(|(slot, cell)| match RowValue::decode(&slot.1, cell) {
                    Ok(value) => Some((slot.clone(), value)),
                    Err(e) => {
                        log::warn!("state: dropping a buffered row: {e}");
                        None
                    }
                })
                .collect(),
            totals: pending
                .totals
                .iter()
                .map(|(route, (findings, _))| (route.clone(), findings.clone()))
                .collect(),
        }
    }
}

/// Adds `value` into `into`, or replaces `into` (logged and counted) when they do not add.
fn add_or_replace(key: &RowKey, into: &mut RowValue, value: &RowValue, replaced: &mut u64) {
    if let Err(e) = into.add(value) {
        log::warn!(
            "state: replacing a {} row that cannot be merged: {e}",
            key.kind()
        );
        *replaced += 1;
        *into = value.clone();
    }
}

/// Rows of `replica` at one window, by key.
fn rows_at(
    conn: &mut dyn Conn,
    replica: &str,
    width_s: i64,
    start_s: i64,
) -> Result<BTreeMap<RowKey, Cell>, DbError> {
    let rows = conn.query(
        "SELECT kind, key, count, data FROM twinpeak_windows \
         WHERE replica = $1 AND width_s = $2 AND start_s = $3",
        &[replica.into(), width_s.into(), start_s.into()],
    )?;
    Ok(decode_rows(rows))
}

/// Rows of `kind, key, count, data`, by key; rows with a key that does not parse are skipped.
pub(crate) fn decode_rows(rows: Vec<Vec<Value>>) -> BTreeMap<RowKey, Cell> {
    rows.into_iter()
        .filter_map(|row| {
            let mut row = row.into_iter();
            let kind = row.next()?.into_text()?;
            let key = row.next()?.into_text()?;
            let count = row.next()?.int()?;
            let data = row.next()?.into_text()?;
            match RowKey::parse(&kind, &key) {
                Ok(key) => Some((key, Cell { count, data })),
                Err(e) => {
                    log::warn!("state: skipping a row: {e}");
                    None
                }
            }
        })
        .collect()
}

/// Upserts `cells` at one window of `replica`, replacing what is there.
fn upsert(
    conn: &mut dyn Conn,
    replica: &str,
    width_s: i64,
    start_s: i64,
    cells: &BTreeMap<RowKey, Cell>,
) -> Result<(), DbError> {
    let cells: Vec<_> = cells.iter().collect();
    for chunk in cells.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::from(
            "INSERT INTO twinpeak_windows (replica, kind, key, width_s, start_s, count, data) VALUES ",
        );
        let mut params = Vec::with_capacity(chunk.len() * 7);
        for (i, (key, cell)) in chunk.iter().enumerate() {
            let n = i * 7;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${},${},${},${},${},${},${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 6,
                n + 7
            ));
            params.extend([
                Value::from(replica),
                key.kind().into(),
                key.key_text().into(),
                width_s.into(),
                start_s.into(),
                cell.count.into(),
                cell.data.clone().into(),
            ]);
        }
        sql.push_str(
            " ON CONFLICT (replica, width_s, start_s, kind, key) \
             DO UPDATE SET count = excluded.count, data = excluded.data",
        );
        conn.execute(&sql, &params)?;
    }
    Ok(())
}

/// Adds `values` into the rows of one window of `replica`. Returns rows replaced because what
/// was stored could not be merged.
fn add_at(
    conn: &mut dyn Conn,
    replica: &str,
    width_s: i64,
    start_s: i64,
    values: BTreeMap<RowKey, RowValue>,
) -> Result<u64, DbError> {
    let existing = rows_at(conn, replica, width_s, start_s)?;
    let mut replaced = 0;
    let merged: BTreeMap<RowKey, Cell> = values
        .into_iter()
        .map(|(key, value)| {
            let cell = match existing.get(&key) {
                None => value.encode(),
                Some(stored) => match RowValue::decode(&key, stored) {
                    Ok(mut total) => {
                        add_or_replace(&key, &mut total, &value, &mut replaced);
                        total.encode()
                    }
                    Err(e) => {
                        log::warn!("state: replacing a {} row: {e}", key.kind());
                        replaced += 1;
                        value.encode()
                    }
                },
            };
            (key, cell)
        })
        .collect();
    upsert(conn, replica, width_s, start_s, &merged)?;
    Ok(replaced)
}

/// Writes `rows` for `replica`: its minute rows, the all-time totals (all but findings, whose
/// totals are the findings table), and the findings as a whole. Returns rows replaced because
/// they could not be merged.
pub(crate) fn write(conn: &mut dyn Conn, flush: &Flush<'_>, rows: Rows) -> Result<u64, DbError> {
    let (replica, now_ms) = (flush.replica, flush.at_ms);
    let mut by_window: BTreeMap<i64, BTreeMap<RowKey, RowValue>> = BTreeMap::new();
    let mut all_time: BTreeMap<RowKey, RowValue> = BTreeMap::new();
    let mut replaced = 0;
    for ((start, key), value) in rows.values {
        if !matches!(key, RowKey::Findings(_)) {
            match all_time.get_mut(&key) {
                Some(total) => add_or_replace(&key, total, &value, &mut replaced),
                None => {
                    all_time.insert(key.clone(), value.clone());
                }
            }
        }
        by_window.entry(start).or_default().insert(key, value);
    }
    for (start, values) in by_window {
        replaced += add_at(conn, replica, MINUTE_S, start, values)?;
    }
    replaced += add_at(conn, replica, ALL_TIME, 0, all_time)?;
    for (route, findings) in &rows.totals {
        write_findings(conn, replica, route, findings, now_ms)?;
    }
    conn.execute(
        "INSERT INTO twinpeak_replicas (replica, flushed_ms, writer, flush_number) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (replica) DO UPDATE SET \
         flushed_ms = excluded.flushed_ms, writer = excluded.writer, \
         flush_number = excluded.flush_number",
        &[
            replica.into(),
            now_ms.into(),
            flush.writer.into(),
            flush.number.into(),
        ],
    )?;
    Ok(replaced)
}

/// Whether `flush` (or a later one of its writer) is written already: a write whose outcome
/// was unknown that landed. With PostgreSQL the replica's row is locked to the end of the
/// transaction, so a commit still in progress is waited for.
pub(crate) fn written_already(conn: &mut dyn Conn, flush: &Flush<'_>) -> Result<bool, DbError> {
    let lock = match conn.dialect() {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    };
    let rows = conn.query(
        &format!("SELECT writer, flush_number FROM twinpeak_replicas WHERE replica = $1{lock}"),
        &[flush.replica.into()],
    )?;
    let mut row = rows.into_iter().next().unwrap_or_default().into_iter();
    let writer = row.next().and_then(Value::into_text);
    let number = row.next().and_then(|v| v.int());
    Ok(writer.as_deref() == Some(flush.writer) && number.is_some_and(|n| n >= flush.number))
}

/// Every replica that ever flushed, with when it last did.
pub(crate) fn replicas(conn: &mut dyn Conn) -> Result<Vec<(String, i64)>, DbError> {
    let rows = conn.query(
        "SELECT replica, flushed_ms FROM twinpeak_replicas ORDER BY replica",
        &[],
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let mut row = row.into_iter();
            Some((row.next()?.into_text()?, row.next()?.int()?))
        })
        .collect())
}

/// Replaces a route's findings as a whole; its examples only when the batch carries them.
fn write_findings(
    conn: &mut dyn Conn,
    replica: &str,
    route: &str,
    findings: &RouteFindings,
    now_ms: i64,
) -> Result<(), DbError> {
    let summary = serde_json::to_string(&findings.summary).expect("findings always encode");
    conn.execute(
        "INSERT INTO twinpeak_findings (replica, route, summary, examples, updated_ms) \
         VALUES ($1, $2, $3, 'null', $4) ON CONFLICT (replica, route) \
         DO UPDATE SET summary = excluded.summary, updated_ms = excluded.updated_ms",
        &[replica.into(), route.into(), summary.into(), now_ms.into()],
    )?;
    if !findings.examples.is_null() {
        conn.execute(
            "UPDATE twinpeak_findings SET examples = $3 WHERE replica = $1 AND route = $2",
            &[
                replica.into(),
                route.into(),
                findings.examples.to_string().into(),
            ],
        )?;
    }
    Ok(())
}

/// Merges `replica`'s minute rows older than `cutoff_s` into hour rows, an hour at a time, at
/// most [`HOURS_PER_FLUSH`] hours. Returns the hours coarsened.
pub(crate) fn coarsen(conn: &mut dyn Conn, replica: &str, cutoff_s: i64) -> Result<usize, DbError> {
    coarsen_hours(conn, replica, cutoff_s, HOURS_PER_FLUSH)
}

/// Coarsens the old minutes (older than `cutoff_s`) of replicas other than `own` that stopped
/// (no flush since before `cutoff_s`, their clock), at most [`HOURS_PER_FLUSH`] hours in all.
/// With PostgreSQL one replica at a time does it: the one whose flush takes the maintenance
/// lock; the others leave it for a later flush. Returns the hours coarsened.
pub(crate) fn coarsen_stopped(
    conn: &mut dyn Conn,
    own: &str,
    cutoff_s: i64,
) -> Result<usize, DbError> {
    let cutoff_s = window_start(cutoff_s, HOUR_S);
    let stopped = conn.query(
        "SELECT DISTINCT w.replica FROM twinpeak_windows w \
         JOIN twinpeak_replicas r ON r.replica = w.replica \
         WHERE w.width_s = $1 AND w.start_s < $2 AND r.flushed_ms < $3 AND w.replica <> $4 \
         ORDER BY w.replica",
        &[
            MINUTE_S.into(),
            cutoff_s.into(),
            cutoff_s.saturating_mul(1_000).into(),
            own.into(),
        ],
    )?;
    let stopped: Vec<String> = stopped
        .into_iter()
        .filter_map(|row| row.into_iter().next()?.into_text())
        .collect();
    if stopped.is_empty() || !maintenance_lock(conn)? {
        return Ok(0);
    }
    let mut done = 0;
    for replica in stopped {
        if done == HOURS_PER_FLUSH {
            break;
        }
        done += coarsen_hours(conn, &replica, cutoff_s, HOURS_PER_FLUSH - done)?;
    }
    Ok(done)
}

/// Takes the lock of the work one replica does for all, to the end of the transaction, if it
/// is free (SQLite: always, its writers take turns).
fn maintenance_lock(conn: &mut dyn Conn) -> Result<bool, DbError> {
    Ok(match conn.dialect() {
        Dialect::Sqlite => true,
        Dialect::Postgres => {
            conn.query(
                "SELECT CAST(pg_try_advisory_xact_lock(7466201513) AS INTEGER)",
                &[],
            )?
            .first()
            .and_then(|row| row.first())
            .and_then(Value::int)
                == Some(1)
        }
    })
}

/// Forgets every replica silent since before `cutoff_s` (its last flush, its clock): its
/// windows, totals, findings and judge intervals, and its place among the replicas, so the
/// fleet's views leave it out. Returns the replicas forgotten.
pub(crate) fn forget_silent(conn: &mut dyn Conn, cutoff_s: i64) -> Result<usize, DbError> {
    let silent = conn.query(
        "SELECT replica FROM twinpeak_replicas WHERE flushed_ms < $1",
        &[cutoff_s.saturating_mul(1_000).into()],
    )?;
    let silent: Vec<String> = silent
        .into_iter()
        .filter_map(|row| row.into_iter().next()?.into_text())
        .collect();
    for replica in &silent {
        log::info!("state: forgetting replica {replica}, silent past the retention");
        for table in [
            "twinpeak_windows",
            "twinpeak_findings",
            "twinpeak_intervals",
            "twinpeak_replicas",
        ] {
            conn.execute(
                &format!("DELETE FROM {table} WHERE replica = $1"),
                &[replica.as_str().into()],
            )?;
        }
    }
    Ok(silent.len())
}

fn coarsen_hours(
    conn: &mut dyn Conn,
    replica: &str,
    cutoff_s: i64,
    max_hours: usize,
) -> Result<usize, DbError> {
    let cutoff_s = window_start(cutoff_s, HOUR_S);
    for done in 0..max_hours {
        let oldest = conn.query(
            "SELECT MIN(start_s) FROM twinpeak_windows \
             WHERE replica = $1 AND width_s = $2 AND start_s < $3",
            &[replica.into(), MINUTE_S.into(), cutoff_s.into()],
        )?;
        let Some(oldest) = oldest
            .first()
            .and_then(|row| row.first())
            .and_then(Value::int)
        else {
            return Ok(done);
        };
        let hour = window_start(oldest, HOUR_S);
        let minutes = conn.query(
            "SELECT kind, key, count, data FROM twinpeak_windows \
             WHERE replica = $1 AND width_s = $2 AND start_s >= $3 AND start_s < $4",
            &[
                replica.into(),
                MINUTE_S.into(),
                hour.into(),
                (hour + HOUR_S).into(),
            ],
        )?;
        let mut values: BTreeMap<RowKey, RowValue> = BTreeMap::new();
        let mut replaced = 0;
        for (key, cell) in minutes.into_iter().flat_map(|row| decode_rows(vec![row])) {
            let value = match RowValue::decode(&key, &cell) {
                Ok(value) => value,
                Err(e) => {
                    log::warn!("state: dropping a minute row while coarsening: {e}");
                    continue;
                }
            };
            match values.get_mut(&key) {
                Some(total) => add_or_replace(&key, total, &value, &mut replaced),
                None => {
                    values.insert(key, value);
                }
            }
        }
        add_at(conn, replica, HOUR_S, hour, values)?;
        conn.execute(
            "DELETE FROM twinpeak_windows \
             WHERE replica = $1 AND width_s = $2 AND start_s >= $3 AND start_s < $4",
            &[
                replica.into(),
                MINUTE_S.into(),
                hour.into(),
                (hour + HOUR_S).into(),
            ],
        )?;
    }
    Ok(max_hours)
}

/// Deletes every replica's windows that ended before `cutoff_s` (the all-time totals stay).
pub(crate) fn prune(conn: &mut dyn Conn, cutoff_s: i64) -> Result<u64, DbError> {
    conn.execute(
        "DELETE FROM twinpeak_windows \
         WHERE start_s < $1 AND width_s > 0 AND start_s + width_s <= $1",
        &[cutoff_s.into()],
    )
}
