//! Opening the database: connection settings per build, the schema, and seeding an empty file.
//!
//! Both builds share the tables and the one constraint that keeps bookings correct (at most one
//! confirmed booking per partner and slot). Only rebuilt adds the indexes its queries search by,
//! and only rebuilt runs in WAL mode.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::error::TestbedError;
use crate::Build;

/// Tables and the correctness constraint, for both builds.
const TABLES: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE partners (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    city TEXT NOT NULL
);
CREATE TABLE partner_services (
    partner_id INTEGER NOT NULL,
    service TEXT NOT NULL,
    base_rupees INTEGER NOT NULL
);
CREATE TABLE reviews (
    id INTEGER PRIMARY KEY,
    partner_id INTEGER NOT NULL,
    stars INTEGER NOT NULL
);
CREATE TABLE bookings (
    seq INTEGER PRIMARY KEY,
    partner_id INTEGER NOT NULL,
    service TEXT NOT NULL,
    day TEXT NOT NULL,
    slot INTEGER NOT NULL,
    customer TEXT NOT NULL,
    price_paise INTEGER NOT NULL,
    status TEXT NOT NULL
);
CREATE UNIQUE INDEX bookings_one_per_slot ON bookings (partner_id, day, slot)
    WHERE status = 'confirmed';
";

/// The indexes rebuilt searches by; legacy has none of them.
const REBUILT_INDEXES: &str = "
CREATE INDEX partners_by_city ON partners (city);
CREATE UNIQUE INDEX partner_services_by_service ON partner_services (service, partner_id);
CREATE UNIQUE INDEX partner_services_by_partner ON partner_services (partner_id, service);
CREATE INDEX reviews_by_partner ON reviews (partner_id, stars);
";

/// How long a connection waits for another one's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens one connection with `build`'s settings.
pub(crate) fn connect(path: &Path, build: Build) -> Result<Connection, TestbedError> {
    let failed = |source| TestbedError::Database {
        path: path.to_path_buf(),
        source,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(failed)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(failed)?;
    if build == Build::Rebuilt {
        // WAL lets readers go on while one connection writes; NORMAL syncs at checkpoints
        // rather than at every commit, which WAL keeps safe against corruption.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(failed)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(failed)?;
    }
    Ok(conn)
}

/// Makes the database at `path` ready for `build`: creates and seeds it when it has no tables,
/// otherwise checks that `build` made it and keeps its data.
pub(crate) fn prepare(
    conn: &mut Connection,
    path: &Path,
    build: Build,
) -> Result<(), TestbedError> {
    let failed = |source| TestbedError::Database {
        path: path.to_path_buf(),
        source,
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failed)?;
    let tables: i64 = tx
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |row| row.get(0),
        )
        .map_err(failed)?;
    if tables > 0 {
        return check_owner(&tx, path, build);
    }
    tx.execute_batch(TABLES).map_err(failed)?;
    let summary = crate::seed::seed(&tx).map_err(failed)?;
    if build == Build::Rebuilt {
        tx.execute_batch(REBUILT_INDEXES).map_err(failed)?;
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('build', ?1), ('seed', ?2)",
        (build.name(), crate::seed::SEED.to_string()),
    )
    .map_err(failed)?;
    tx.commit().map_err(failed)?;
    log::debug!(
        "seeded {}: {} partners, {} offers, {} reviews",
        path.display(),
        summary.partners,
        summary.offers,
        summary.reviews
    );
    Ok(())
}

fn check_owner(conn: &Connection, path: &Path, build: Build) -> Result<(), TestbedError> {
    let has_meta: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(|source| TestbedError::Database {
            path: path.to_path_buf(),
            source,
        })?;
    let owner: Option<String> = if has_meta {
        conn.query_row("SELECT value FROM meta WHERE key = 'build'", [], |row| {
            row.get(0)
        })
        .optional()
        .map_err(|source| TestbedError::Database {
            path: path.to_path_buf(),
            source,
        })?
    } else {
        None
    };
    match owner {
        Some(found) if found == build.name() => Ok(()),
        Some(found) => Err(TestbedError::WrongBuild {
            path: path.to_path_buf(),
            found,
            wanted: build,
        }),
        None => Err(TestbedError::Foreign {
            path: path.to_path_buf(),
        }),
    }
}
