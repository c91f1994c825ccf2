//! The proxy's state store: what it learns, kept in an SQLite file (the default) or in
//! PostgreSQL shared by a fleet of replicas, so a shadow run survives redeploys and `kill -9`,
//! a rolled-back canary stays rolled back, and replicas make one canary decision.
//!
//! The store is written off the request path: the proxy's in-memory aggregates stay the source
//! there, and a flush task hands the store a [`Batch`] every `flush_interval` (made by a
//! [`Tracker`] from the proxy's totals) and one on shutdown; each is written in one
//! transaction, so `kill -9` loses at most one interval. While the database cannot be reached
//! batches are merged into a buffer bounded in bytes, retried with backoff, and written when
//! it returns; what does not fit is dropped and counted ([`Health`]). A flush whose outcome
//! is unknown (its COMMIT failed on the client's side) is written again only if it did not
//! land: each flush is numbered, and the number recorded with it.
//!
//! Every replica writes its own rows (keyed by its name); readers ([`Store::read_view`])
//! merge the rows of one or all replicas exactly. Latency and counters are kept per minute,
//! merged into hours past `coarsen_after`, deleted past `retention`, and as all-time totals;
//! a replica that stopped has its old minutes merged by the others, and is forgotten once
//! silent past `retention`.
//! The canary's state machine is one row every replica polls, changed compare-and-set
//! ([`Store::change_canary`]); one replica at a time holds the judge's lease
//! ([`Store::try_lease`]).
//!
//! Every call blocks on the database: run them off the async runtime ([`SharedStore`]).

mod batch;
mod canary;
mod codec;
mod config;
mod conn;
mod error;
mod flush;
mod handle;
mod intervals;
pub(crate) mod live;
pub mod metrics;
mod pending;
mod rows;
mod schema;
mod tls;
mod view;
mod windows;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

pub use batch::{counters_from_families, Batch, RouteFindings, Tracker};
pub use canary::{
    AuditEntry, AuditRecord, CanaryRecord, CanaryRow, CanaryUpdate, CanaryWrite, Lease,
};
pub use config::{Location, PostgresConfig, PostgresTarget, Settings, StateConfig, TlsSettings};
pub use error::{DbError, StateError};
pub use handle::SharedStore;
pub use intervals::{interval_of, interval_start, IntervalWindow, SideCounts};
pub use rows::{CounterKey, Series};
pub use schema::SCHEMA_VERSION;
pub use view::{RouteView, View};

use conn::{Conn, PostgresConn, SqliteConn};
use flush::{Backoff, Flushes};
use pending::Pending;
use twinpeak_core::CanaryDecision;

/// How the store's writes are going.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// Whether the last write succeeded.
    pub up: bool,
    /// When a write last succeeded.
    pub last_ok: Option<SystemTime>,
    /// Why the last write failed, while it is failing.
    pub last_error: Option<String>,
    /// Flushes written.
    pub writes_ok: u64,
    /// Flushes that could not be written (kept in the buffer, or dropped).
    pub writes_failed: u64,
    /// Bytes of deltas waiting to be written.
    pub buffered_bytes: usize,
    /// Batches that did not fit in the buffer and were dropped.
    pub dropped: u64,
    /// Stored rows that could not be merged and were replaced.
    pub replaced_rows: u64,
}

impl Health {
    /// Whether a write succeeded within `within` of `now` with nothing left waiting: what a
    /// fresh judgement over the fleet's data needs.
    pub fn fresh(&self, now: SystemTime, within: Duration) -> bool {
        self.up
            && self.buffered_bytes == 0
            && self
                .last_ok
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age <= within)
    }
}

/// What a [`Store::change_canary_with`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum CanaryChange<T> {
    /// The update worked out on the row as it then was is written.
    Written {
        /// The row as written.
        row: CanaryRow,
        /// What was worked out with the update written.
        outcome: T,
    },
    /// Nothing was written: the row as it is (none yet: `None`).
    Unchanged(Option<CanaryRow>),
}

/// What became of a batch handed to [`Store::flush`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Written, with anything buffered before it.
    Written,
    /// Kept in the buffer, to be written when the database can be reached.
    Buffered,
    /// Did not fit in the buffer: lost, and counted.
    Dropped,
}

/// What a replica finds in the store when it starts.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// Its findings per route, as a whole, with their examples.
    pub findings: BTreeMap<String, RouteFindings>,
    /// The canary row (shared by the fleet).
    pub canary: Option<CanaryRow>,
    /// The newest canary decisions, oldest first.
    pub decisions: Vec<CanaryDecision>,
}

/// Decisions handed back by [`Store::restore`].
const RESTORED_DECISIONS: usize = 1_000;

/// Attempts of a compare-and-set change before giving up on a busy row.
const CHANGE_ATTEMPTS: usize = 8;

/// The state store: one connection, this replica's buffer and health.
pub struct Store {
    conn: Box<dyn Conn>,
    location: String,
    settings: Settings,
    pending: Pending,
    flushes: Flushes,
    health: Health,
    backoff: Backoff,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .field("replica", &self.settings.replica)
            .field("health", &self.health)
            .finish()
    }
}

impl Store {
    /// Opens the store at `location` (creating an SQLite file, or connecting to PostgreSQL),
    /// and sets its schema up or migrates it forward; refuses a schema newer than this binary.
    pub fn open(location: &Location, settings: Settings) -> Result<Store, StateError> {
        let described = location.describe();
        let open_error = |source| StateError::Open {
            location: described.clone(),
            source,
        };
        let mut conn: Box<dyn Conn> = match location {
            Location::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| StateError::Config {
                        message: format!(
                            "state.sqlite: cannot create the directory {}: {e}",
                            parent.display()
                        ),
                    })?;
                }
                Box::new(SqliteConn::open(path).map_err(open_error)?)
            }
            Location::Postgres(target) => {
                Box::new(PostgresConn::connect(target.as_ref().clone()).map_err(open_error)?)
            }
        };
        schema::migrate(conn.as_mut(), SCHEMA_VERSION, &described)?;
        Ok(Store {
            conn,
            location: described,
            settings,
            pending: Pending::default(),
            flushes: Flushes::new(),
            health: Health {
                up: true,
                ..Health::default()
            },
            backoff: Backoff::default(),
        })
    }

    /// Where it is, in words (no password).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// This replica's name.
    pub fn replica(&self) -> &str {
        &self.settings.replica
    }

    /// How writes are going.
    pub fn health(&self) -> Health {
        Health {
            buffered_bytes: self.buffered_bytes(),
            ..self.health.clone()
        }
    }

    /// The schema version recorded in the store.
    pub fn schema_version(&mut self) -> Result<i64, StateError> {
        schema::version(self.conn.as_mut()).map_err(|e| self.failed(e))
    }

    fn failed(&self, source: DbError) -> StateError {
        StateError::Database {
            location: self.location.clone(),
            source,
        }
    }

    /// What this replica left in the store: its findings, the canary row and the newest
    /// decisions.
    pub fn restore(&mut self) -> Result<Restored, StateError> {
        let replica = self.settings.replica.clone();
        let result = (|| {
            let findings = view::findings(self.conn.as_mut(), Some(&replica))?
                .into_iter()
                .map(|((_, route), f)| (route, f))
                .collect();
            Ok(Restored {
                findings,
                canary: canary::read(self.conn.as_mut())?,
                decisions: canary::decisions(self.conn.as_mut(), RESTORED_DECISIONS)?,
            })
        })();
        self.note(result)
    }

    /// A call's result, its error saying where. Only a flush's write changes the health:
    /// `twinpeak_state_up` says whether writes land, whatever reads do.
    fn note<T>(&self, result: Result<T, DbError>) -> Result<T, StateError> {
        result.map_err(|e| self.failed(e))
    }

    /// Latency, counters and findings of the period `[from, to)` (whole windows that overlap
    /// it), or since the store began when both are `None`; of `replica`, or of every replica
    /// merged.
    pub fn read_view(
        &mut self,
        from: Option<SystemTime>,
        to: Option<SystemTime>,
        replica: Option<&str>,
    ) -> Result<View, StateError> {
        let result = view::read(self.conn.as_mut(), from, to, replica);
        self.note(result)
    }

    /// Findings as a whole with their kept examples, per replica and route (of `replica`, or
    /// of all).
    pub fn findings(
        &mut self,
        replica: Option<&str>,
    ) -> Result<BTreeMap<(String, String), RouteFindings>, StateError> {
        let result = view::findings(self.conn.as_mut(), replica);
        self.note(result)
    }

    /// Every replica that ever flushed to the store, with when it last did (its own clock):
    /// the fleet, and whether each one's latest data is in.
    pub fn replicas(&mut self) -> Result<Vec<(String, SystemTime)>, StateError> {
        let result = windows::replicas(self.conn.as_mut());
        self.note(result).map(|replicas| {
            replicas
                .into_iter()
                .map(|(name, ms)| (name, canary::from_unix_ms(ms)))
                .collect()
        })
    }

    /// The canary row, if one was ever written.
    pub fn canary(&mut self) -> Result<Option<CanaryRow>, StateError> {
        let result = canary::read(self.conn.as_mut());
        self.note(result)
    }

    /// The canary row's generation: the cheap poll (read the row when it moved).
    pub fn canary_generation(&mut self) -> Result<Option<u64>, StateError> {
        let result = canary::generation(self.conn.as_mut());
        self.note(result)
    }

    /// Writes `update` if the canary row is still at generation `expected` (`None`: no row
    /// yet), with its decisions and audit entry, in one transaction. A write that failed is
    /// looked for in the row before it is reported failed: its COMMIT may have failed on the
    /// client's side after the server committed.
    pub fn write_canary(
        &mut self,
        expected: Option<u64>,
        update: &CanaryUpdate,
    ) -> Result<CanaryWrite, StateError> {
        let replica = self.settings.replica.clone();
        let max = self.settings.max_history;
        let result = canary::write(self.conn.as_mut(), &replica, expected, update, max);
        let Err(e) = result else {
            return self.note(result);
        };
        match canary::read(self.conn.as_mut()) {
            Ok(Some(row))
                if row.generation == expected.map_or(1, |g| g + 1)
                    && row.updated_by == replica
                    && row.record == update.record =>
            {
                log::info!("state: a canary change reported failed had been written");
                Ok(CanaryWrite::Written(row))
            }
            _ => Err(self.failed(e)),
        }
    }

    /// Applies `change` to the canary row as it is now (`None` when there is none yet) and
    /// writes what it returns, compare-and-set, reading again and retrying when another
    /// replica wrote in between: so a change is written exactly once, after every other.
    /// `change` returning `None` writes nothing. Returns the row as written, or as it is when
    /// nothing was.
    pub fn change_canary(
        &mut self,
        mut change: impl FnMut(Option<&CanaryRow>) -> Option<CanaryUpdate>,
    ) -> Result<Option<CanaryRow>, StateError> {
        Ok(
            match self.change_canary_with(|row| change(row).map(|u| (u, ())))? {
                CanaryChange::Written { row, .. } => Some(row),
                CanaryChange::Unchanged(row) => row,
            },
        )
    }

    /// [`Store::change_canary`], where `change` also works out an outcome with its update
    /// (the judgement or the operator's change it writes): returned with the row when that
    /// update is the one written, so an attempt that lost to another writer leaves nothing
    /// behind.
    pub fn change_canary_with<T>(
        &mut self,
        mut change: impl FnMut(Option<&CanaryRow>) -> Option<(CanaryUpdate, T)>,
    ) -> Result<CanaryChange<T>, StateError> {
        let mut current = self.canary()?;
        for _ in 0..CHANGE_ATTEMPTS {
            let Some((update, outcome)) = change(current.as_ref()) else {
                return Ok(CanaryChange::Unchanged(current));
            };
            match self.write_canary(current.as_ref().map(|r| r.generation), &update)? {
                CanaryWrite::Written(row) => return Ok(CanaryChange::Written { row, outcome }),
                CanaryWrite::Conflict(row) => current = row,
            }
        }
        Err(StateError::Contended {
            location: self.location.clone(),
            attempts: CHANGE_ATTEMPTS,
        })
    }

    /// The newest `limit` canary decisions written after the one numbered `after` (the newest
    /// `limit` when `None`), oldest first, each with its number: what a replica that applied
    /// decisions up to `after` has not seen yet.
    pub fn decisions_after(
        &mut self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, CanaryDecision)>, StateError> {
        let result = canary::decisions_after(self.conn.as_mut(), after, limit);
        self.note(result)
    }

    /// Writes this replica's window of judge interval `seq` (of `width`).
    pub fn write_interval(
        &mut self,
        width: Duration,
        seq: i64,
        window: &IntervalWindow,
    ) -> Result<(), StateError> {
        let replica = self.settings.replica.clone();
        let result = intervals::write(self.conn.as_mut(), &replica, width, seq, window);
        self.note(result)
    }

    /// Every replica's windows of judge intervals `from..=to` (of `width`), per interval and
    /// replica.
    pub fn intervals(
        &mut self,
        width: Duration,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<i64, BTreeMap<String, IntervalWindow>>, StateError> {
        let result = intervals::read(self.conn.as_mut(), width, from, to);
        self.note(result)
    }

    /// Every replica that wrote a judge interval at or after `since`, with the width of its
    /// newest one.
    pub fn interval_widths(
        &mut self,
        since: SystemTime,
    ) -> Result<BTreeMap<String, Duration>, StateError> {
        let result = intervals::widths(self.conn.as_mut(), since);
        self.note(result)
    }

    /// The newest `limit` canary decisions, oldest first.
    pub fn decisions(&mut self, limit: usize) -> Result<Vec<CanaryDecision>, StateError> {
        let result = canary::decisions(self.conn.as_mut(), limit);
        self.note(result)
    }

    /// The newest `limit` audit entries, oldest first.
    pub fn audit(&mut self, limit: usize) -> Result<Vec<AuditRecord>, StateError> {
        let result = canary::audit(self.conn.as_mut(), limit);
        self.note(result)
    }

    /// Takes the lease `name` (`judge`) for `ttl` if it is free or expired, or renews it if
    /// this replica holds it. Renew every `ttl / 3`: a holder that stops renewing is
    /// replaced within `ttl` plus the others' renewal interval.
    pub fn try_lease(&mut self, name: &str, ttl: Duration) -> Result<Lease, StateError> {
        let replica = self.settings.replica.clone();
        let result = canary::try_lease(self.conn.as_mut(), &replica, name, ttl);
        self.note(result)
    }

    /// Gives the lease up if this replica holds it (on a clean shutdown).
    pub fn release_lease(&mut self, name: &str) -> Result<(), StateError> {
        let replica = self.settings.replica.clone();
        let result = canary::release_lease(self.conn.as_mut(), &replica, name);
        self.note(result)
    }
}
