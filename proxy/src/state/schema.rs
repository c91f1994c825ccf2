//! The store's tables, and the migrations that bring an older store forward. The version is
//! recorded in `twinpeak_meta`; a store newer than this binary is refused before anything is
//! written to it. Migrations run in one transaction, under a lock, so replicas starting
//! together migrate once.
//!
//! Tables (every replica's rows are keyed by its name):
//! - `twinpeak_windows`: per replica × window (start, width: a minute, or an hour once
//!   coarsened) × kind × key, one row: a latency histogram (route, series), a counter (name,
//!   labels) or the findings of a route, each as the delta of that window.
//! - `twinpeak_replicas`: when each replica last flushed (a judge over the fleet's data knows
//!   whether every replica's latest is in), and that flush's writer and number (a flush is
//!   written once).
//! - `twinpeak_findings`: per replica × route, the findings as a whole and their kept
//!   examples: what a restarted replica restores.
//! - `twinpeak_canary`: the canary's state machine, one row with a generation every change
//!   increments (what every replica polls).
//! - `twinpeak_decisions`, `twinpeak_audit`: the canary's history and the admin audit trail.
//! - `twinpeak_lease`: who holds the judge, until when.
//! - `twinpeak_intervals`: per judge interval × replica, what the primary and the candidate
//!   did there (the judge adds every replica's row of an interval).

use super::conn::{transaction, Conn, Dialect, Value};
use super::error::{DbError, StateError};

/// The newest schema this binary knows.
pub const SCHEMA_VERSION: i64 = 5;

/// Version 1: what a replica learns.
const V1: &str = "
CREATE TABLE twinpeak_windows (
    replica TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    width_s BIGINT NOT NULL,
    start_s BIGINT NOT NULL,
    count BIGINT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (replica, width_s, start_s, kind, key)
);
CREATE INDEX twinpeak_windows_by_time ON twinpeak_windows (start_s);
CREATE TABLE twinpeak_replicas (
    replica TEXT PRIMARY KEY,
    flushed_ms BIGINT NOT NULL
);
CREATE TABLE twinpeak_findings (
    replica TEXT NOT NULL,
    route TEXT NOT NULL,
    summary TEXT NOT NULL,
    examples TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (replica, route)
);
";

/// Version 2: the canary, shared by the fleet (the `id` column differs by dialect).
const V2: &str = "
CREATE TABLE twinpeak_canary (
    name TEXT PRIMARY KEY,
    generation BIGINT NOT NULL,
    record TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);
CREATE TABLE twinpeak_decisions (
    id {ID},
    at_ms BIGINT NOT NULL,
    replica TEXT NOT NULL,
    decision TEXT NOT NULL
);
CREATE TABLE twinpeak_audit (
    id {ID},
    at_ms BIGINT NOT NULL,
    replica TEXT NOT NULL,
    by_whom TEXT NOT NULL,
    action TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE TABLE twinpeak_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    term BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
";

/// Version 3: the canary judge's intervals, one row per replica and interval.
const V3: &str = "
CREATE TABLE twinpeak_intervals (
    width_ms BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    replica TEXT NOT NULL,
    written_ms BIGINT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (width_ms, seq, replica)
);
";

/// Version 4: indexes for what every replica reads and deletes whatever replica wrote it: the
/// fleet's all-time totals and old minutes by width, judge intervals by age.
const V4: &str = "
CREATE INDEX twinpeak_windows_by_width ON twinpeak_windows (width_s, start_s);
CREATE INDEX twinpeak_intervals_by_age ON twinpeak_intervals (written_ms);
";

/// Version 5: each replica's last flush numbered by its writer (a process), so a flush whose
/// outcome was unknown is not written twice.
const V5: &str = "
ALTER TABLE twinpeak_replicas ADD COLUMN writer TEXT NOT NULL DEFAULT '';
ALTER TABLE twinpeak_replicas ADD COLUMN flush_number BIGINT NOT NULL DEFAULT 0;
";

/// The statements that bring a store from version `n - 1` to `n`, for `n` in 1..=`SCHEMA_VERSION`.
fn migration(dialect: Dialect, to: i64) -> String {
    let id = match dialect {
        Dialect::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        Dialect::Postgres => "BIGSERIAL PRIMARY KEY",
    };
    match (to, dialect) {
        // Rows are rewritten every flush: compressing them would cost the server more than
        // the space saved.
        (1, Dialect::Postgres) => {
            format!("{V1}ALTER TABLE twinpeak_windows ALTER COLUMN data SET STORAGE EXTERNAL;")
        }
        (1, Dialect::Sqlite) => V1.to_string(),
        (2, _) => V2.replace("{ID}", id),
        (3, _) => V3.to_string(),
        (4, _) => V4.to_string(),
        (5, _) => V5.to_string(),
        _ => unreachable!("no migration to version {to}"),
    }
}

/// Sets the schema up or brings it forward to `target` (normally [`SCHEMA_VERSION`]);
/// refuses a store newer than this binary. Returns the version found before.
pub(crate) fn migrate(conn: &mut dyn Conn, target: i64, location: &str) -> Result<i64, StateError> {
    /// What stops a migration: the database, or a store newer than this binary.
    enum Stop {
        Db(DbError),
        TooNew(i64),
    }
    impl From<DbError> for Stop {
        fn from(e: DbError) -> Self {
            Stop::Db(e)
        }
    }
    let migrated = transaction(conn, |conn| {
        let dialect = conn.dialect();
        if dialect == Dialect::Postgres {
            // Held to the end of the transaction: replicas starting together migrate once.
            conn.execute("SELECT pg_advisory_xact_lock(7466201512)", &[])?;
        }
        conn.batch(
            "CREATE TABLE IF NOT EXISTS twinpeak_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        )?;
        let found = version(conn)?;
        if found > SCHEMA_VERSION {
            return Err(Stop::TooNew(found));
        }
        for to in found + 1..=target {
            conn.batch(&migration(dialect, to))?;
        }
        if target > found {
            conn.execute(
                "INSERT INTO twinpeak_meta (key, value) VALUES ('schema_version', $1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[Value::Text(target.to_string())],
            )?;
        }
        Ok(found)
    });
    migrated.map_err(|stop| match stop {
        Stop::Db(source) => StateError::Open {
            location: location.to_string(),
            source,
        },
        Stop::TooNew(found) => StateError::SchemaTooNew {
            location: location.to_string(),
            found,
            known: SCHEMA_VERSION,
        },
    })
}

/// The version recorded, 0 for a store never set up.
pub(crate) fn version(conn: &mut dyn Conn) -> Result<i64, DbError> {
    let rows = conn.query(
        "SELECT value FROM twinpeak_meta WHERE key = 'schema_version'",
        &[],
    )?;
    Ok(rows
        .into_iter()
        .next()
        .and_then(|row| row.into_iter().next())
        .and_then(Value::into_text)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Records `version` as the store's (a test makes a store "from the future" with it).
#[cfg(test)]
pub(crate) fn force_version(conn: &mut dyn Conn, version: i64) -> Result<(), DbError> {
    conn.execute(
        "UPDATE twinpeak_meta SET value = $1 WHERE key = 'schema_version'",
        &[Value::Text(version.to_string())],
    )
    .map(drop)
}
