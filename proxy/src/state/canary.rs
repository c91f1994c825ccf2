//! The canary's shared state: one row holding the state machine, with a generation every
//! change increments (replicas poll it), written compare-and-set so a change made on any
//! replica is written once, with its decisions and its audit entry in the same transaction;
//! and the judge's lease.
//!
//! The lease is a row with an expiry on the database's clock, not an advisory lock: a session
//! lock vanishes with its connection, so a blip hands the judge to another replica while the
//! old one, not having noticed, still judges; a row's holder knows until when it holds
//! (renewed in time, a blip shorter than the expiry loses nothing), and it works through
//! connection poolers. Each change of holder increments the lease's `term`.

use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use twinpeak_core::CanaryDecision;

use super::conn::{transaction, Conn, Value};
use super::error::DbError;

/// The canary state machine as stored (see `canary::ramp::Machine`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CanaryRecord {
    /// `running`, `paused` or `rolled_back`.
    pub state: String,
    /// The candidate's share in percent.
    pub weight: f64,
    /// The ramp step in force, when there is a ramp.
    pub step: Option<usize>,
    /// When the hold in progress began (RFC 3339, wall clock: it outlives the process).
    pub hold_since: String,
    /// Passing verdicts since the hold began.
    pub passes: u32,
    /// Failing verdicts in a row.
    pub fails_in_a_row: u32,
    /// The weight before the last rollback.
    pub weight_before_rollback: f64,
    /// A digest of the plan this state follows (candidate, weight, ramp): a replica started
    /// with another plan starts the canary over, and a replica of another plan never writes it.
    pub plan: String,
    /// When the last judged interval ended (Unix ms, wall clock; none yet: `None`): an
    /// interval that starts before it is not judged, so no traffic is judged twice, whatever
    /// the judge interval was then and is now.
    pub judged_until_ms: Option<i64>,
    /// When the judge last judged (RFC 3339), or last tried to.
    pub judged_at: String,
    /// Why the judge holds the weight (no fresh judgement possible), empty when it does not.
    pub holding: String,
}

impl CanaryRecord {
    /// Whether traffic at `start` was judged already: the last judged interval ended after
    /// it (wall clock, so it holds across a change of the judge interval).
    pub fn judged_since(&self, start: SystemTime) -> bool {
        self.judged_until_ms
            .is_some_and(|until| until > unix_ms(start))
    }

    /// Records that the interval judged ended at `end`.
    pub fn judged_until(&mut self, end: SystemTime) {
        self.judged_until_ms = Some(unix_ms(end));
    }
}

/// The stored canary row.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryRow {
    /// Incremented by every change; a poller compares it with the one it applied.
    pub generation: u64,
    /// The state machine.
    pub record: CanaryRecord,
    /// When it was last written (the writer's clock).
    pub updated_at: SystemTime,
    /// The replica that wrote it.
    pub updated_by: String,
}

/// One admin change, as the audit trail keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// When it was made.
    pub at: SystemTime,
    /// Who made it (`alice (token, 10.0.0.7:51234) because ...`).
    pub by: String,
    /// What it was (`weight`, `pause`, `resume`, `promote`, `rollback`, ...).
    pub action: String,
    /// What changed, in words.
    pub summary: String,
}

/// An audit entry with the replica it was made on.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// The entry.
    pub entry: AuditEntry,
    /// The replica whose admin API took the change.
    pub replica: String,
}

/// A change of the canary: the new state, and what to add to the history and the audit trail
/// with it (in the same transaction).
#[derive(Debug, Clone, Default)]
pub struct CanaryUpdate {
    /// The state after the change.
    pub record: CanaryRecord,
    /// Decisions to add to the history.
    pub decisions: Vec<CanaryDecision>,
    /// The admin change, when it is one.
    pub audit: Option<AuditEntry>,
}

/// What a compare-and-set write of the canary did.
#[derive(Debug, Clone, PartialEq)]
pub enum CanaryWrite {
    /// Written: the row as it now is.
    Written(CanaryRow),
    /// Another writer came first: the row as it now is (nothing was written).
    Conflict(Option<CanaryRow>),
}

/// The judge's lease as it stands after an attempt to take or renew it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Whether this replica holds it.
    pub held: bool,
    /// Who holds it (possibly expired, when nobody renewed it).
    pub holder: String,
    /// Incremented at every change of holder.
    pub term: u64,
    /// Until when this replica may act as the holder, on its own clock: measured from before
    /// the attempt was sent, so never later than the database's expiry. `None` unless held.
    pub valid_until: Option<Instant>,
}

impl Lease {
    /// Whether this replica holds it at `now`.
    pub fn holds(&self, now: Instant) -> bool {
        self.held && self.valid_until.is_some_and(|until| now < until)
    }
}

const CANARY: &str = "canary";

pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

pub(crate) fn from_unix_ms(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The canary row, if one was ever written.
pub(crate) fn read(conn: &mut dyn Conn) -> Result<Option<CanaryRow>, DbError> {
    let rows = conn.query(
        "SELECT generation, record, updated_ms, updated_by FROM twinpeak_canary WHERE name = $1",
        &[CANARY.into()],
    )?;
    Ok(rows.into_iter().next().and_then(|row| {
        let mut row = row.into_iter();
        let generation = u64::try_from(row.next()?.int()?).ok()?;
        let record = row.next()?.into_text()?;
        let updated_ms = row.next()?.int()?;
        let updated_by = row.next()?.into_text()?;
        let record = serde_json::from_str(&record)
            .map_err(|e| log::warn!("state: the canary row does not decode: {e}"))
            .ok()?;
        Some(CanaryRow {
            generation,
            record,
            updated_at: from_unix_ms(updated_ms),
            updated_by,
        })
    }))
}

/// The canary row's generation, if one was ever written: the cheap poll.
pub(crate) fn generation(conn: &mut dyn Conn) -> Result<Option<u64>, DbError> {
    let rows = conn.query(
        "SELECT generation FROM twinpeak_canary WHERE name = $1",
        &[CANARY.into()],
    )?;
    Ok(rows
        .first()
        .and_then(|row| row.first())
        .and_then(Value::int)
        .and_then(|g| u64::try_from(g).ok()))
}

/// Writes `update` if the row is still at generation `expected` (`None`: no row yet), with
/// its decisions and audit entry, in one transaction; keeps the newest `max_history` of each.
/// A write that committed is never reported as failed: the row written is what was written,
/// and a conflict's row is read in the same transaction.
pub(crate) fn write(
    conn: &mut dyn Conn,
    replica: &str,
    expected: Option<u64>,
    update: &CanaryUpdate,
    max_history: usize,
) -> Result<CanaryWrite, DbError> {
    let now = SystemTime::now();
    let record = serde_json::to_string(&update.record).expect("the canary record encodes");
    transaction(conn, |conn| {
        let changed = match expected {
            None => conn.execute(
                "INSERT INTO twinpeak_canary (name, generation, record, updated_ms, updated_by) \
                 VALUES ($1, 1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
                &[
                    CANARY.into(),
                    record.clone().into(),
                    unix_ms(now).into(),
                    replica.into(),
                ],
            )?,
            Some(generation) => conn.execute(
                "UPDATE twinpeak_canary SET generation = generation + 1, record = $2, \
                 updated_ms = $3, updated_by = $4 WHERE name = $1 AND generation = $5",
                &[
                    CANARY.into(),
                    record.clone().into(),
                    unix_ms(now).into(),
                    replica.into(),
                    i64::try_from(generation).unwrap_or(i64::MAX).into(),
                ],
            )?,
        };
        if changed == 0 {
            return Ok(CanaryWrite::Conflict(read(conn)?));
        }
        for decision in &update.decisions {
            conn.execute(
                "INSERT INTO twinpeak_decisions (at_ms, replica, decision) VALUES ($1, $2, $3)",
                &[
                    unix_ms(now).into(),
                    replica.into(),
                    serde_json::to_string(decision)
                        .expect("a decision encodes")
                        .into(),
                ],
            )?;
        }
        if let Some(audit) = &update.audit {
            conn.execute(
                "INSERT INTO twinpeak_audit (at_ms, replica, by_whom, action, summary) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    unix_ms(audit.at).into(),
                    replica.into(),
                    audit.by.clone().into(),
                    audit.action.clone().into(),
                    audit.summary.clone().into(),
                ],
            )?;
        }
        let keep = i64::try_from(max_history).unwrap_or(i64::MAX);
        for table in ["twinpeak_decisions", "twinpeak_audit"] {
            conn.execute(
                &format!("DELETE FROM {table} WHERE id <= (SELECT MAX(id) FROM {table}) - $1"),
                &[keep.into()],
            )?;
        }
        Ok(CanaryWrite::Written(CanaryRow {
            generation: expected.map_or(1, |g| g + 1),
            record: update.record.clone(),
            updated_at: from_unix_ms(unix_ms(now)),
            updated_by: replica.to_string(),
        }))
    })
}

/// The newest `limit` decisions, oldest first.
pub(crate) fn decisions(conn: &mut dyn Conn, limit: usize) -> Result<Vec<CanaryDecision>, DbError> {
    Ok(decisions_after(conn, None, limit)?
        .into_iter()
        .map(|(_, d)| d)
        .collect())
}

/// The newest `limit` decisions written after the one numbered `after` (all of them when
/// `None`), oldest first, each with its number.
pub(crate) fn decisions_after(
    conn: &mut dyn Conn,
    after: Option<i64>,
    limit: usize,
) -> Result<Vec<(i64, CanaryDecision)>, DbError> {
    let rows = conn.query(
        "SELECT id, decision FROM twinpeak_decisions WHERE id > $1 ORDER BY id DESC LIMIT $2",
        &[
            after.unwrap_or(i64::MIN).into(),
            i64::try_from(limit).unwrap_or(i64::MAX).into(),
        ],
    )?;
    let mut decisions: Vec<(i64, CanaryDecision)> = rows
        .into_iter()
        .filter_map(|row| {
            let mut row = row.into_iter();
            let id = row.next()?.int()?;
            let decision = serde_json::from_str(&row.next()?.into_text()?).ok()?;
            Some((id, decision))
        })
        .collect();
    decisions.reverse();
    Ok(decisions)
}

/// The newest `limit` audit entries, oldest first.
pub(crate) fn audit(conn: &mut dyn Conn, limit: usize) -> Result<Vec<AuditRecord>, DbError> {
    let rows = conn.query(
        "SELECT at_ms, replica, by_whom, action, summary FROM twinpeak_audit \
         ORDER BY id DESC LIMIT $1",
        &[i64::try_from(limit).unwrap_or(i64::MAX).into()],
    )?;
    let mut entries: Vec<AuditRecord> = rows
        .into_iter()
        .filter_map(|row| {
            let mut row = row.into_iter();
            let at = from_unix_ms(row.next()?.int()?);
            let replica = row.next()?.into_text()?;
            Some(AuditRecord {
                entry: AuditEntry {
                    at,
                    by: row.next()?.into_text()?,
                    action: row.next()?.into_text()?,
                    summary: row.next()?.into_text()?,
                },
                replica,
            })
        })
        .collect();
    entries.reverse();
    Ok(entries)
}

/// Takes the lease `name` for `ttl` if it is free or expired, or renews it if `replica` holds
/// it; reports who holds it either way. Times are the database's.
pub(crate) fn try_lease(
    conn: &mut dyn Conn,
    replica: &str,
    name: &str,
    ttl: Duration,
) -> Result<Lease, DbError> {
    let sent = Instant::now();
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let now_sql = conn.dialect().now_ms();
    let (holder, term, expires_ms, now_ms) = transaction(conn, |conn| {
        let now_ms = conn
            .query(now_sql, &[])?
            .first()
            .and_then(|row| row.first())
            .and_then(Value::int)
            .unwrap_or(0);
        conn.execute(
            "INSERT INTO twinpeak_lease (name, holder, term, expires_ms) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (name) DO UPDATE SET \
               term = CASE WHEN twinpeak_lease.holder = excluded.holder \
                      THEN twinpeak_lease.term ELSE twinpeak_lease.term + 1 END, \
               holder = excluded.holder, expires_ms = excluded.expires_ms \
             WHERE twinpeak_lease.holder = excluded.holder OR twinpeak_lease.expires_ms <= $4",
            &[
                name.into(),
                replica.into(),
                now_ms.saturating_add(ttl_ms).into(),
                now_ms.into(),
            ],
        )?;
        let rows = conn.query(
            "SELECT holder, term, expires_ms FROM twinpeak_lease WHERE name = $1",
            &[name.into()],
        )?;
        let mut row = rows.into_iter().next().unwrap_or_default().into_iter();
        let holder = row.next().and_then(Value::into_text).unwrap_or_default();
        let term = row.next().and_then(|v| v.int()).unwrap_or(0);
        let expires = row.next().and_then(|v| v.int()).unwrap_or(0);
        Ok::<_, DbError>((holder, term, expires, now_ms))
    })?;
    let held = holder == replica && expires_ms > now_ms;
    let left = Duration::from_millis(u64::try_from(expires_ms - now_ms).unwrap_or(0));
    Ok(Lease {
        held,
        holder,
        term: u64::try_from(term).unwrap_or(0),
        valid_until: held.then(|| sent + left),
    })
}

/// Gives the lease up at once if `replica` holds it (a clean shutdown), so another replica
/// need not wait for it to expire.
pub(crate) fn release_lease(conn: &mut dyn Conn, replica: &str, name: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE twinpeak_lease SET expires_ms = 0 WHERE name = $1 AND holder = $2",
        &[name.into(), replica.into()],
    )
    .map(drop)
}
