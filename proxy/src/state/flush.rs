//! A replica's flushes: each batch written in one transaction with the store's upkeep
//! (coarsening, retention); while the database cannot be reached, batches are merged into a
//! buffer bounded in bytes and retried with backoff.
//!
//! A flush is written exactly once even when its outcome is unknown (COMMIT failed on the
//! client's side, perhaps after the server committed): each write carries this process's
//! writer id and the next number of its flushes, recorded in `twinpeak_replicas` in the same
//! transaction. A write that failed is kept as it was, in doubt, apart from later batches, and
//! written again under the same number; the store's record tells whether it landed already.

use std::time::{Duration, Instant, SystemTime};

use super::batch::Batch;
use super::conn::transaction;
use super::error::DbError;
use super::pending::{unix_s, Pending};
use super::windows::{self, Rows};
use super::{canary, Flushed, Store};

/// Exponential backoff between failed writes.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    failures: u32,
    next: Option<Instant>,
}

impl Backoff {
    fn ready(&self, now: Instant) -> bool {
        self.next.is_none_or(|next| now >= next)
    }

    fn failed(&mut self, now: Instant, max: Duration) {
        self.failures = self.failures.saturating_add(1);
        let wait = Duration::from_secs(1)
            .saturating_mul(1 << self.failures.min(16).saturating_sub(1))
            .min(max);
        self.next = Some(now + wait);
    }

    fn succeeded(&mut self) {
        *self = Backoff::default();
    }
}

/// What a flush wrote or keeps: the writer it is numbered by, its numbers, and the write that
/// failed, if one did.
#[derive(Debug)]
pub(super) struct Flushes {
    /// This process's writer id (another process of the same replica numbers its own).
    writer: String,
    /// The number of the last write tried.
    last: i64,
    /// A write that failed, as it was: it may have landed.
    doubt: Option<InDoubt>,
}

/// A write whose outcome is unknown, kept to be written again under its number.
#[derive(Debug)]
struct InDoubt {
    number: i64,
    rows: Pending,
}

impl Flushes {
    /// This process's flushes: none yet.
    pub(super) fn new() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Flushes {
            writer: format!("{}-{}", std::process::id(), since_epoch.as_nanos()),
            last: 0,
            doubt: None,
        }
    }

    /// Bytes held by the write in doubt.
    pub(super) fn bytes(&self) -> usize {
        self.doubt.as_ref().map_or(0, |d| d.rows.bytes())
    }

    fn next(&mut self) -> i64 {
        self.last += 1;
        self.last
    }
}

/// What to write: a batch as it is, or rows merged in a buffer.
enum Write<'a> {
    Batch(&'a Batch),
    Buffered(&'a Pending),
}

impl Store {
    /// Writes `batch` in one transaction that also coarsens old windows and deletes expired
    /// ones (an empty batch still does, and so shows the database is reachable). A write in
    /// doubt and anything buffered are written first, in transactions of their own, so the
    /// flush on which the database returns writes its batch too even when the buffer is full.
    /// While the database cannot be reached, keeps the batch in the buffer (merged, bounded)
    /// and tries again after a backoff; never fails.
    pub fn flush(&mut self, batch: &Batch) -> Flushed {
        let now = Instant::now();
        if !self.backoff.ready(now) {
            return self.keep(batch);
        }
        if let Some(doubt) = self.flushes.doubt.take() {
            if self
                .write(Write::Buffered(&doubt.rows), doubt.number, now)
                .is_err()
            {
                self.flushes.doubt = Some(doubt);
                return self.keep(batch);
            }
        }
        if !self.pending.is_empty() {
            let rows = std::mem::take(&mut self.pending);
            let number = self.flushes.next();
            if self.write(Write::Buffered(&rows), number, now).is_err() {
                self.flushes.doubt = Some(InDoubt { number, rows });
                return self.keep(batch);
            }
        }
        let number = self.flushes.next();
        if self.write(Write::Batch(batch), number, now).is_ok() {
            return Flushed::Written;
        }
        let mut rows = Pending::default();
        match rows.absorb(batch, self.settings.max_buffered_bytes) {
            Ok(()) => {
                self.flushes.doubt = Some(InDoubt { number, rows });
                Flushed::Buffered
            }
            Err(_) => {
                self.health.dropped += 1;
                Flushed::Dropped
            }
        }
    }

    /// Bytes of deltas waiting to be written.
    pub(super) fn buffered_bytes(&self) -> usize {
        self.pending.bytes() + self.flushes.bytes()
    }

    /// Keeps `batch` in the buffer, or drops it (counted) when it does not fit.
    fn keep(&mut self, batch: &Batch) -> Flushed {
        let room = self
            .settings
            .max_buffered_bytes
            .saturating_sub(self.flushes.bytes());
        match self.pending.absorb(batch, room) {
            Ok(()) => Flushed::Buffered,
            Err(_) => {
                self.health.dropped += 1;
                Flushed::Dropped
            }
        }
    }

    /// One write, numbered `number` (skipped when the store records it written already),
    /// recorded in the health and the backoff.
    fn write(&mut self, what: Write<'_>, number: i64, now: Instant) -> Result<(), ()> {
        let replica = self.settings.replica.clone();
        let writer = self.flushes.writer.clone();
        let wall = SystemTime::now();
        let coarsen_cutoff = unix_s(wall) - secs(self.settings.coarsen_after);
        let prune_cutoff = unix_s(wall) - secs(self.settings.retention);
        let result = transaction(self.conn.as_mut(), move |conn| {
            let flush = windows::Flush {
                replica: &replica,
                writer: &writer,
                number,
                at_ms: canary::unix_ms(wall),
            };
            let replaced = if windows::written_already(conn, &flush)? {
                log::info!("state: flush {number} had landed already; it is not written again");
                0
            } else {
                let rows = match what {
                    Write::Batch(batch) => Rows::of_batch(batch),
                    Write::Buffered(pending) => Rows::of_pending(pending),
                };
                windows::write(conn, &flush, rows)?
            };
            windows::coarsen(conn, &replica, coarsen_cutoff)?;
            windows::coarsen_stopped(conn, &replica, coarsen_cutoff)?;
            windows::prune(conn, prune_cutoff)?;
            windows::forget_silent(conn, prune_cutoff)?;
            Ok::<_, DbError>(replaced)
        });
        match result {
            Ok(replaced) => {
                self.health.replaced_rows += replaced;
                self.health.writes_ok += 1;
                self.health.last_ok = Some(wall);
                self.health.up = true;
                self.health.last_error = None;
                self.backoff.succeeded();
                Ok(())
            }
            Err(e) => {
                log::warn!("state: write to {} failed: {e}", self.location);
                self.health.writes_failed += 1;
                self.health.up = false;
                self.health.last_error = Some(e.to_string());
                self.backoff.failed(now, self.settings.max_retry_backoff);
                Err(())
            }
        }
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)
}
