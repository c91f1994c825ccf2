//! Paired latency deltas (shadow − primary): a signed distribution kept as two histograms.

use hdrhistogram::{AdditionError, Histogram};
use serde::{Deserialize, Serialize};

use super::encoding::base64_v2;
use super::{new_latency_histogram, record_saturating};
use crate::merge::add_histogram;

/// The distribution of signed latency deltas in microseconds, shadow − primary.
///
/// HdrHistogram holds only non-negative values, so a delta `d >= 0` (the shadow was slower or
/// as fast) is recorded as `d` in `slower` and a delta `d < 0` as `-d` in `faster`. Quantiles
/// are read over the combined signed distribution, most negative first. Serialized as
/// `{ "slower": "<base64>", "faster": "<base64>" }`, each an encoded histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedHistogram {
    /// Deltas `>= 0`, as recorded.
    #[serde(with = "base64_v2", default = "new_latency_histogram")]
    pub slower: Histogram<u64>,
    /// Deltas `< 0`, negated.
    #[serde(with = "base64_v2", default = "new_latency_histogram")]
    pub faster: Histogram<u64>,
}

/// The usual figures of a [`SignedHistogram`], in signed microseconds (shadow − primary).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedSummary {
    /// Number of recorded deltas.
    pub count: u64,
    /// Most negative delta: the shadow's best showing.
    pub min_us: i64,
    /// Median delta.
    pub p50_us: i64,
    /// 90th percentile delta.
    pub p90_us: i64,
    /// 99th percentile delta.
    pub p99_us: i64,
    /// Most positive delta: the shadow's worst showing.
    pub max_us: i64,
}

impl Default for SignedHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl SignedHistogram {
    /// Creates an empty distribution over two [`new_latency_histogram`]s.
    pub fn new() -> Self {
        Self {
            slower: new_latency_histogram(),
            faster: new_latency_histogram(),
        }
    }

    /// Records one delta; magnitudes beyond a histogram's range are saturated, never lost.
    pub fn record(&mut self, delta_us: i64) {
        if delta_us >= 0 {
            record_saturating(&mut self.slower, delta_us.unsigned_abs());
        } else {
            record_saturating(&mut self.faster, delta_us.unsigned_abs());
        }
    }

    /// Records the delta of one paired request, `shadow_us − primary_us`, without overflow.
    pub fn record_pair(&mut self, primary_us: u64, shadow_us: u64) {
        if shadow_us >= primary_us {
            record_saturating(&mut self.slower, shadow_us - primary_us);
        } else {
            record_saturating(&mut self.faster, primary_us - shadow_us);
        }
    }

    /// Number of recorded deltas.
    pub fn count(&self) -> u64 {
        self.slower.len().saturating_add(self.faster.len())
    }

    /// Whether no delta has been recorded.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// The delta at quantile `q` (0.0 ..= 1.0) of the combined signed distribution; 0 if empty.
    ///
    /// Follows HdrHistogram's rule: for `q > 0` the value returned is the highest value
    /// equivalent to the delta at rank `ceil(q × count)`, for `q == 0` the lowest value
    /// equivalent to the smallest delta.
    pub fn quantile(&self, q: f64) -> i64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let faster = self.faster.len();
        if q <= 0.0 {
            return if faster > 0 {
                -to_i64(self.faster.max())
            } else {
                to_i64(self.slower.min())
            };
        }
        let rank = ((q.min(1.0) * total as f64).ceil() as u64).clamp(1, total);
        if rank <= faster {
            // The k-th most negative delta is the (faster − k + 1)-th smallest magnitude.
            let magnitude = value_at_rank(&self.faster, faster - rank + 1);
            -to_i64(self.faster.lowest_equivalent(magnitude))
        } else {
            to_i64(value_at_rank(&self.slower, rank - faster))
        }
    }

    /// Adds every delta of `other` into `self`, widening a histogram whose range is too small.
    ///
    /// On error `self` may hold part of `other`.
    pub fn add(&mut self, other: &SignedHistogram) -> Result<(), AdditionError> {
        add_histogram(&mut self.slower, &other.slower)?;
        add_histogram(&mut self.faster, &other.faster)
    }

    /// Reads the summary; an empty distribution gives all zeros.
    pub fn summary(&self) -> SignedSummary {
        if self.is_empty() {
            return SignedSummary::default();
        }
        SignedSummary {
            count: self.count(),
            min_us: self.quantile(0.0),
            p50_us: self.quantile(0.5),
            p90_us: self.quantile(0.9),
            p99_us: self.quantile(0.99),
            max_us: self.quantile(1.0),
        }
    }
}

/// The highest value equivalent to the `rank`-th smallest recorded value (1-based).
fn value_at_rank(h: &Histogram<u64>, rank: u64) -> u64 {
    let mut seen = 0u64;
    for v in h.iter_recorded() {
        seen = seen.saturating_add(v.count_at_value());
        if seen >= rank {
            return v.value_iterated_to();
        }
    }
    h.max()
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic mix of negative, zero and positive deltas over six orders of magnitude.
    fn deltas(n: usize, mut seed: u64) -> Vec<i64> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let magnitude = (seed >> 8) % 10u64.pow(1 + (seed % 6) as u32);
                match seed % 5 {
                    0 | 1 => -(magnitude as i64),
                    2 => 0,
                    _ => magnitude as i64,
                }
            })
            .collect()
    }

    fn recorded(values: &[i64]) -> SignedHistogram {
        let mut h = SignedHistogram::new();
        values.iter().for_each(|&d| h.record(d));
        h
    }

    #[test]
    fn quantiles_match_a_sorted_vec() {
        let mut values = deltas(20_000, 0x9e37_79b9_7f4a_7c15);
        let h = recorded(&values);
        values.sort_unstable();
        assert_eq!(h.count(), values.len() as u64);
        let n = values.len() as f64;
        for q in [
            0.0, 0.001, 0.01, 0.1, 0.25, 0.4, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0,
        ] {
            let rank = ((q * n).ceil() as usize).clamp(1, values.len());
            let exact = values[rank - 1];
            let got = h.quantile(q);
            let tolerance = (exact.unsigned_abs() / 1000 + 1) as i64;
            assert!(
                (got - exact).abs() <= tolerance,
                "q={q}: got {got}, exact {exact}"
            );
        }
    }

    #[test]
    fn summary_orders_negative_first() {
        let h = recorded(&[-500, -20, 0, 30, 2_000]);
        let s = h.summary();
        assert_eq!(s.count, 5);
        assert_eq!(s.min_us, -500);
        assert_eq!(s.p50_us, 0);
        assert_eq!(s.max_us, 2_000);
        assert_eq!(recorded(&[-7, -3]).summary().max_us, -3);
    }

    #[test]
    fn empty_is_zero() {
        let h = SignedHistogram::new();
        assert_eq!(h.quantile(0.5), 0);
        assert_eq!(h.summary(), SignedSummary::default());
    }

    #[test]
    fn extremes_saturate() {
        let h = recorded(&[i64::MIN, i64::MAX]);
        assert_eq!(h.count(), 2);
        assert!(h.faster.equivalent(h.faster.max(), h.faster.high()));
        assert!(h.slower.equivalent(h.slower.max(), h.slower.high()));
    }

    #[test]
    fn record_pair_is_shadow_minus_primary() {
        let mut h = SignedHistogram::new();
        h.record_pair(100, 250);
        h.record_pair(250, 100);
        h.record_pair(0, u64::MAX);
        assert_eq!(h.summary().min_us, -150);
        assert_eq!(h.quantile(0.5), 150);
        assert_eq!(h.slower.len(), 2);
    }

    #[test]
    fn add_equals_recording_everything() {
        let a = deltas(3_000, 1);
        let b = deltas(5_000, 2);
        let mut merged = recorded(&a);
        merged.add(&recorded(&b)).unwrap();
        let all: Vec<i64> = a.iter().chain(&b).copied().collect();
        assert_eq!(merged, recorded(&all));
    }

    #[test]
    fn serializes_as_two_encoded_histograms() {
        let h = recorded(&[-3, 0, 9]);
        let json = serde_json::to_value(&h).unwrap();
        assert!(json["slower"].as_str().unwrap().starts_with("HISTF"));
        assert!(json["faster"].as_str().unwrap().starts_with("HISTF"));
        let back: SignedHistogram = serde_json::from_value(json).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.summary(), h.summary());
    }
}
