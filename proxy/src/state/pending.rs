//! Deltas not yet written, while the database cannot be reached: merged into one set of rows
//! per window (so a long outage grows it by windows, not by flushes), bounded in bytes. A batch
//! that does not fit is dropped whole, so what is kept stays consistent, and counted.

use std::collections::BTreeMap;

use super::batch::{Batch, RouteFindings};
use super::rows::{merge_cells, window_start, Cell, RowKey, MINUTE_S};

/// A window row's place: start of its minute, and what it is about.
pub(crate) type Slot = (i64, RowKey);

/// Rows and findings waiting to be written.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub cells: BTreeMap<Slot, Cell>,
    pub totals: BTreeMap<String, (RouteFindings, usize)>,
    bytes: usize,
}

/// Why a batch was not taken in.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DidNotFit;

impl Pending {
    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.cells.is_empty() && self.totals.is_empty()
    }

    /// Takes `batch` in, merged with what waits, unless that would hold more than `max` bytes.
    /// A row that cannot be merged (undecodable) is replaced by the new one.
    pub(crate) fn absorb(&mut self, batch: &Batch, max: usize) -> Result<(), DidNotFit> {
        let start = window_start(unix_s(batch.at), MINUTE_S);
        let mut merged = Vec::new();
        let mut bytes = self.bytes;
        for (key, cell) in batch.cells() {
            let slot = (start, key);
            let new = match self.cells.get(&slot) {
                Some(old) => {
                    let new = merge_cells(&slot.1, old, &cell).unwrap_or(cell);
                    bytes = bytes - old.size() + new.size();
                    new
                }
                None => {
                    bytes += cell.size() + slot.1.key_text().len();
                    cell
                }
            };
            merged.push((slot, new));
        }
        let mut totals = Vec::new();
        for (route, findings) in &batch.totals {
            let mut findings = findings.clone();
            let older = self.totals.get(route);
            if findings.examples.is_null() {
                // Unchanged since the older one: keep its examples.
                if let Some((older, _)) = older {
                    findings.examples = older.examples.clone();
                }
            }
            let size = serde_json::to_string(&findings).map_or(0, |t| t.len()) + route.len();
            bytes = bytes - older.map_or(0, |(_, s)| *s) + size;
            totals.push((route.clone(), (findings, size)));
        }
        if bytes > max {
            return Err(DidNotFit);
        }
        self.cells.extend(merged);
        self.totals.extend(totals);
        self.bytes = bytes;
        Ok(())
    }
}

/// Seconds since the Unix epoch (negative before it).
pub(crate) fn unix_s(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::rows::{CounterKey, Series};
    use std::time::{Duration, SystemTime};
    use twinpeak_core::{new_latency_histogram, record_saturating};

    fn batch(at: SystemTime, values: &[u64]) -> Batch {
        let mut b = Batch::new(at);
        let mut h = new_latency_histogram();
        values.iter().for_each(|v| record_saturating(&mut h, *v));
        b.latency.insert(("/a".into(), Series::Primary), h);
        b.counters.insert(
            CounterKey::new("twinpeak_requests_total", [("route", "/a")]),
            2,
        );
        b
    }

    #[test]
    fn batches_of_one_window_merge_and_the_bound_drops_whole_batches() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut pending = Pending::default();
        pending.absorb(&batch(at, &[10, 20]), 1 << 20).unwrap();
        let one_window = pending.bytes();
        pending
            .absorb(&batch(at + Duration::from_secs(5), &[30]), 1 << 20)
            .unwrap();
        assert_eq!(pending.cells.len(), 2, "same minute, same rows");
        assert!(
            pending.bytes() < one_window * 2,
            "{} vs {one_window}",
            pending.bytes()
        );
        let counter = pending
            .cells
            .iter()
            .find(|((_, k), _)| matches!(k, RowKey::Counter(_)))
            .unwrap();
        assert_eq!(counter.1.count, 4);

        let before = pending.bytes();
        let next_minute = at + Duration::from_secs(120);
        assert_eq!(
            pending.absorb(&batch(next_minute, &[1]), before + 10),
            Err(DidNotFit)
        );
        assert_eq!(
            pending.bytes(),
            before,
            "nothing of a dropped batch is kept"
        );
        assert_eq!(pending.cells.len(), 2);
        assert!(Pending::default().is_empty());
    }
}
