//! How records combine: histograms are added and counters summed, never percentiles averaged.

use std::collections::BTreeMap;

use hdrhistogram::{AdditionError, Histogram};

/// Why two records could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The records are of different schemas (or versions of one).
    #[error("cannot merge a `{theirs}` record into a `{ours}` record")]
    SchemaMismatch {
        /// Schema of the record merged into.
        ours: String,
        /// Schema of the record merged from.
        theirs: String,
    },
    /// A histogram of `route` could not hold the other's values.
    #[error("while merging the histograms of route `{route}`")]
    Histogram {
        /// Route whose histograms failed to add.
        route: String,
        /// What hdrhistogram reported.
        #[source]
        source: AdditionError,
    },
}

/// Adds `from` into `into`, widening `into` if `from` holds values beyond its range.
///
/// Records written by other tools may use wider bounds; widening keeps every value exact
/// rather than refusing the merge. Auto-resize is off again afterwards.
pub fn add_histogram(
    into: &mut Histogram<u64>,
    from: &Histogram<u64>,
) -> Result<(), AdditionError> {
    into.auto(true);
    let added = into.add(from);
    into.auto(false);
    added
}

/// Adds each counter of `from` to the counter of the same name in `into`, saturating.
pub fn add_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (name, count) in from {
        let total = into.entry(name.clone()).or_default();
        *total = total.saturating_add(*count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::{new_latency_histogram, record_saturating};

    #[test]
    fn add_histogram_widens_for_wider_records() {
        let mut wide = Histogram::<u64>::new_with_bounds(1, 10 * 3_600_000_000, 3).unwrap();
        wide.record(7_200_000_000).unwrap();
        let mut ours = new_latency_histogram();
        record_saturating(&mut ours, 10);
        add_histogram(&mut ours, &wide).unwrap();
        assert_eq!(ours.len(), 2);
        assert!(ours.equivalent(ours.max(), 7_200_000_000));
        assert!(
            ours.record(u64::MAX / 2).is_err(),
            "auto-resize is off again"
        );
    }

    #[test]
    fn add_counts_sums_by_name() {
        let mut ours = BTreeMap::from([("2xx".to_owned(), 3), ("5xx".to_owned(), u64::MAX)]);
        let theirs = BTreeMap::from([("2xx".to_owned(), 4), ("5xx".to_owned(), 1)]);
        add_counts(&mut ours, &theirs);
        assert_eq!(ours["2xx"], 7);
        assert_eq!(ours["5xx"], u64::MAX);
        add_counts(&mut ours, &BTreeMap::from([("error".to_owned(), 2)]));
        assert_eq!(ours["error"], 2);
    }
}
