//! The canary judge's intervals, one row per replica and interval: what the primary and the
//! candidate did on that replica (requests, failures, a latency histogram each) and its compared
//! pairs. Every replica writes its row when an interval ends; the judge adds the rows of one
//! interval from every replica, so it judges the fleet's traffic exactly (histograms added,
//! counts summed), over the same interval it would judge alone.
//!
//! Intervals are numbered on the wall clock: interval `n` of width `w` is `[n·w, (n+1)·w)`, so
//! replicas agree on it without talking to each other.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use twinpeak_core::merge::add_histogram;
use twinpeak_core::new_latency_histogram;

use super::canary::unix_ms;
use super::codec;
use super::conn::{transaction, Conn, Dialect, Value};
use super::error::DbError;

/// Intervals a replica's write keeps: rows older than this many of its intervals are deleted,
/// whichever replica wrote them (one that stopped writes no more).
const KEPT_INTERVALS: u32 = 64;

/// One side over one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct SideCounts {
    /// Requests the side served (or failed to).
    pub requests: u64,
    /// Of those, the ones that failed.
    pub errors: u64,
    /// Time to the end of each answer, µs (answered requests only).
    pub latency: Histogram<u64>,
}

impl Default for SideCounts {
    fn default() -> Self {
        SideCounts {
            requests: 0,
            errors: 0,
            latency: new_latency_histogram(),
        }
    }
}

impl SideCounts {
    fn add(&mut self, other: &SideCounts) -> Result<(), String> {
        self.requests += other.requests;
        self.errors += other.errors;
        add_histogram(&mut self.latency, &other.latency).map_err(|e| format!("{e:?}"))
    }
}

/// What one replica (or, added, the fleet) saw over one interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntervalWindow {
    /// The legacy backend.
    pub primary: SideCounts,
    /// The rebuilt backend serving the canary share.
    pub candidate: SideCounts,
    /// Mirrored pairs compared against the candidate.
    pub compared: u64,
    /// Of those, pairs with a real difference (with the noise known when the interval ended).
    pub different: u64,
}

impl IntervalWindow {
    /// Adds another replica's window of the same interval.
    pub(crate) fn add(&mut self, other: &IntervalWindow) -> Result<(), String> {
        self.primary.add(&other.primary)?;
        self.candidate.add(&other.candidate)?;
        self.compared += other.compared;
        self.different += other.different;
        Ok(())
    }
}

/// The stored form: counts, and histograms as base64 V2.
#[derive(Serialize, Deserialize)]
struct StoredSide {
    requests: u64,
    errors: u64,
    latency: String,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    primary: StoredSide,
    candidate: StoredSide,
    compared: u64,
    different: u64,
}

fn encode(window: &IntervalWindow) -> String {
    let side = |s: &SideCounts| StoredSide {
        requests: s.requests,
        errors: s.errors,
        latency: codec::encode(&s.latency),
    };
    let stored = Stored {
        primary: side(&window.primary),
        candidate: side(&window.candidate),
        compared: window.compared,
        different: window.different,
    };
    serde_json::to_string(&stored).expect("plain data encodes")
}

fn decode(text: &str) -> Result<IntervalWindow, String> {
    let stored: Stored = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let side = |s: StoredSide| -> Result<SideCounts, String> {
        Ok(SideCounts {
            requests: s.requests,
            errors: s.errors,
            latency: codec::decode(&s.latency)?,
        })
    };
    Ok(IntervalWindow {
        primary: side(stored.primary)?,
        candidate: side(stored.candidate)?,
        compared: stored.compared,
        different: stored.different,
    })
}

/// The number of the interval of `width` holding `at`.
pub fn interval_of(at: SystemTime, width: Duration) -> i64 {
    let width_ms = width_ms(width);
    unix_ms(at).div_euclid(width_ms)
}

/// When interval `seq` of `width` starts.
pub fn interval_start(seq: i64, width: Duration) -> SystemTime {
    super::canary::from_unix_ms(seq.saturating_mul(width_ms(width)))
}

fn width_ms(width: Duration) -> i64 {
    i64::try_from(width.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// Adds `window` to `replica`'s row of interval `seq` (making it when there is none), and
/// deletes every replica's rows written more than [`KEPT_INTERVALS`] intervals ago.
///
/// Added, not replaced: a process writes each interval once, but two processes of one replica
/// (a binary upgrade's overlap, or a restart within an interval) each serve part of one, and the
/// judge must see both parts. One transaction: the row is made first (so that with PostgreSQL
/// a second writer waits for the first to commit rather than replace its row), then read locked,
/// added to and written back.
pub(crate) fn write(
    conn: &mut dyn Conn,
    replica: &str,
    width: Duration,
    seq: i64,
    window: &IntervalWindow,
) -> Result<(), DbError> {
    let now = SystemTime::now();
    let cutoff = now
        .checked_sub(width.saturating_mul(KEPT_INTERVALS))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let width = width_ms(width);
    let lock = match conn.dialect() {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    };
    transaction(conn, |conn| {
        let key = [width.into(), seq.into(), replica.into()];
        conn.execute(
            "INSERT INTO twinpeak_intervals (width_ms, seq, replica, written_ms, data) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (width_ms, seq, replica) DO NOTHING",
            &[
                width.into(),
                seq.into(),
                replica.into(),
                unix_ms(now).into(),
                encode(&IntervalWindow::default()).into(),
            ],
        )?;
        let rows = conn.query(
            &format!(
                "SELECT data FROM twinpeak_intervals \
                 WHERE width_ms = $1 AND seq = $2 AND replica = $3{lock}"
            ),
            &key,
        )?;
        let held = rows
            .into_iter()
            .next()
            .and_then(|row| row.into_iter().next())
            .and_then(Value::into_text);
        let mut total = window.clone();
        if let Some(held) = held {
            let added = decode(&held).and_then(|held| total.add(&held));
            if let Err(e) = added {
                log::warn!("canary: replica {replica}'s row of interval {seq} is replaced: {e}");
                total = window.clone();
            }
        }
        conn.execute(
            "UPDATE twinpeak_intervals SET written_ms = $4, data = $5 \
             WHERE width_ms = $1 AND seq = $2 AND replica = $3",
            &[
                width.into(),
                seq.into(),
                replica.into(),
                unix_ms(now).into(),
                encode(&total).into(),
            ],
        )?;
        conn.execute(
            "DELETE FROM twinpeak_intervals WHERE written_ms < $1",
            &[unix_ms(cutoff).into()],
        )?;
        Ok(())
    })
}

/// Every replica's windows of intervals `from..=to` of `width`, per interval and replica
/// (rows that do not decode are left out, and logged).
pub(crate) fn read(
    conn: &mut dyn Conn,
    width: Duration,
    from: i64,
    to: i64,
) -> Result<BTreeMap<i64, BTreeMap<String, IntervalWindow>>, DbError> {
    let rows = conn.query(
        "SELECT seq, replica, data FROM twinpeak_intervals \
         WHERE width_ms = $1 AND seq >= $2 AND seq <= $3",
        &[width_ms(width).into(), from.into(), to.into()],
    )?;
    let mut out: BTreeMap<i64, BTreeMap<String, IntervalWindow>> = BTreeMap::new();
    for row in rows {
        let mut row = row.into_iter();
        let (Some(seq), Some(replica), Some(data)) = (
            row.next().and_then(|v| v.int()),
            row.next().and_then(Value::into_text),
            row.next().and_then(Value::into_text),
        ) else {
            continue;
        };
        match decode(&data) {
            Ok(window) => {
                out.entry(seq).or_default().insert(replica, window);
            }
            Err(e) => log::warn!("state: interval {seq} of {replica} does not decode: {e}"),
        }
    }
    Ok(out)
}

/// Every replica that wrote an interval row at or after `since` (its clock), with the width
/// of its newest one: whether the fleet counts intervals of one width.
pub(crate) fn widths(
    conn: &mut dyn Conn,
    since: SystemTime,
) -> Result<BTreeMap<String, Duration>, DbError> {
    let rows = conn.query(
        "SELECT replica, width_ms, MAX(written_ms) FROM twinpeak_intervals \
         WHERE written_ms >= $1 GROUP BY replica, width_ms",
        &[unix_ms(since).into()],
    )?;
    let mut newest: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for row in rows {
        let mut row = row.into_iter();
        let (Some(replica), Some(width), Some(written)) = (
            row.next().and_then(Value::into_text),
            row.next().and_then(|v| v.int()),
            row.next().and_then(|v| v.int()),
        ) else {
            continue;
        };
        let entry = newest.entry(replica).or_insert((written, width));
        if written > entry.0 {
            *entry = (written, width);
        }
    }
    Ok(newest
        .into_iter()
        .map(|(replica, (_, width))| {
            (
                replica,
                Duration::from_millis(u64::try_from(width).unwrap_or(0)),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinpeak_core::record_saturating;

    #[test]
    fn windows_round_trip_and_add() {
        let mut a = IntervalWindow::default();
        a.candidate.requests = 10;
        a.candidate.errors = 1;
        record_saturating(&mut a.candidate.latency, 1_500);
        a.compared = 4;
        let back = decode(&encode(&a)).unwrap();
        assert_eq!(back, a);
        let mut sum = back.clone();
        sum.add(&a).unwrap();
        assert_eq!((sum.candidate.requests, sum.candidate.errors), (20, 2));
        assert_eq!(sum.candidate.latency.len(), 2);
        assert!(decode("{\"primary\": 1}").is_err());
        let width = Duration::from_secs(30);
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(95);
        assert_eq!(interval_of(t, width), 3);
        assert_eq!(
            interval_start(3, width),
            SystemTime::UNIX_EPOCH + Duration::from_secs(90)
        );
    }
}
