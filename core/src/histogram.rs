//! Latency histograms: the one configuration every record uses, and summaries read from them.

mod encoding;
mod signed;

pub use encoding::EncodedHistogram;
pub use signed::{SignedHistogram, SignedSummary};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Lowest latency told apart from zero, in microseconds.
pub const LATENCY_LOWEST_US: u64 = 1;

/// Highest latency a histogram holds, in microseconds (one hour).
pub const LATENCY_HIGHEST_US: u64 = 3_600_000_000;

/// Significant decimal digits kept for every value: 0.1 % relative precision.
pub const LATENCY_SIGFIG: u8 = 3;

/// Creates an empty latency histogram in microseconds, 1 µs to 1 hour at 3 significant digits.
///
/// Auto-resize is off, so the memory a histogram takes is fixed; record into it with
/// [`record_saturating`], which clamps values above one hour instead of losing them.
pub fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LATENCY_LOWEST_US, LATENCY_HIGHEST_US, LATENCY_SIGFIG)
        .expect("latency histogram bounds are valid")
}

/// Records `value_us`, clamped to the histogram's highest trackable value.
///
/// A request that stalls beyond the range is still counted, as the slowest value the histogram
/// holds, so counts always match request totals.
pub fn record_saturating(h: &mut Histogram<u64>, value_us: u64) {
    h.saturating_record(value_us);
}

/// A duration in whole microseconds, the unit every latency histogram counts in (saturating:
/// nothing measured lasts 584,000 years).
pub fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The usual latency figures of one histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of recorded values.
    pub count: u64,
    /// Lowest recorded value.
    pub min_us: u64,
    /// Mean of the recorded values.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 95th percentile.
    pub p95_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Highest recorded value.
    pub max_us: u64,
}

impl LatencySummary {
    /// Reads the summary from `h`; an empty histogram gives all zeros.
    ///
    /// Each figure is the highest value equivalent to the exact one at the histogram's precision.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            min_us: h.min(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p95_us: h.value_at_quantile(0.95),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_histogram_has_fixed_bounds() {
        let mut h = new_latency_histogram();
        assert_eq!(h.low(), LATENCY_LOWEST_US);
        assert_eq!(h.high(), LATENCY_HIGHEST_US);
        assert_eq!(h.sigfig(), LATENCY_SIGFIG);
        assert!(
            h.record(LATENCY_HIGHEST_US * 2).is_err(),
            "auto-resize is off"
        );
    }

    #[test]
    fn record_saturating_clamps_to_the_high_bound() {
        let mut h = new_latency_histogram();
        record_saturating(&mut h, u64::MAX);
        record_saturating(&mut h, 0);
        assert_eq!(h.len(), 2);
        assert!(h.equivalent(h.max(), LATENCY_HIGHEST_US));
        assert_eq!(h.min(), 0);
    }

    #[test]
    fn summary_of_empty_histogram_is_zero() {
        let summary = LatencySummary::from_histogram(&new_latency_histogram());
        assert_eq!(summary, LatencySummary::default());
    }

    #[test]
    fn summary_reads_percentiles() {
        let mut h = new_latency_histogram();
        for v in 1..=10_000 {
            record_saturating(&mut h, v);
        }
        let s = LatencySummary::from_histogram(&h);
        assert_eq!(s.count, 10_000);
        assert_eq!(s.min_us, 1);
        assert!((s.mean_us - 5_000.5).abs() < 5.0, "{}", s.mean_us);
        for (got, want) in [
            (s.p50_us, 5_000),
            (s.p90_us, 9_000),
            (s.p95_us, 9_500),
            (s.p99_us, 9_900),
            (s.p999_us, 9_990),
            (s.max_us, 10_000),
        ] {
            assert!(h.equivalent(got, want), "{got} vs {want}");
        }
    }
}
