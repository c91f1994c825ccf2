//! The recording's arrival rate over time: counted in bins whose width doubles whenever there
//! would be too many (so a day's recording is held in bounded memory), then cut into phases:
//! one per minute for a recording of ten minutes or more (at most [`MAX_SHAPE_PHASES`], wider
//! minutes past that), one per tenth of it otherwise, each at its measured rate as a multiple
//! of the recording's mean rate.

use std::collections::BTreeMap;
use std::time::Duration;

/// Most bins held; past it, bins are merged two by two.
const MAX_BINS: usize = 100_000;
/// Most phases the recorded shape is cut into.
pub(super) const MAX_SHAPE_PHASES: u64 = 96;
/// Width of the first bins.
const FIRST_BIN_US: u64 = 10_000;

/// Arrivals counted in bins of `width_us`, by bin index (`at_us / width_us`).
#[derive(Debug)]
pub(super) struct Arrivals {
    width_us: u64,
    bins: BTreeMap<u64, u64>,
    first_us: u64,
    last_us: u64,
    count: u64,
}

/// One stretch of the recording at its measured rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Stretch {
    /// How long it lasts.
    pub duration: Duration,
    /// Its rate as a multiple of the recording's mean rate.
    pub multiple: f64,
}

/// The recording's rate: its mean, and its shape over time.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RateShape {
    /// Requests per second over the whole recording.
    pub mean_rps: f64,
    /// How long the recording lasts (its span, plus one mean gap).
    pub duration: Duration,
    /// The stretches, in order; their durations add up to `duration`.
    pub stretches: Vec<Stretch>,
}

impl Default for Arrivals {
    fn default() -> Self {
        Arrivals {
            width_us: FIRST_BIN_US,
            bins: BTreeMap::new(),
            first_us: u64::MAX,
            last_us: 0,
            count: 0,
        }
    }
}

impl Arrivals {
    /// Counts an arrival at `at_us` (Unix microseconds).
    pub(super) fn add(&mut self, at_us: u64) {
        self.count += 1;
        self.first_us = self.first_us.min(at_us);
        self.last_us = self.last_us.max(at_us);
        *self.bins.entry(at_us / self.width_us).or_default() += 1;
        while self.bins.len() > MAX_BINS {
            self.width_us *= 2;
            let mut merged = BTreeMap::new();
            for (index, count) in std::mem::take(&mut self.bins) {
                *merged.entry(index / 2).or_default() += count;
            }
            self.bins = merged;
        }
    }

    /// Arrivals counted.
    pub(super) fn count(&self) -> u64 {
        self.count
    }

    /// The rate and its shape; `None` without arrivals.
    pub(super) fn shape(&self) -> Option<RateShape> {
        if self.count == 0 {
            return None;
        }
        let span_us = self.last_us - self.first_us;
        // N arrivals evenly spread over a span hold N − 1 gaps: one gap more gives the rate.
        let duration_us = if self.count > 1 && span_us > 0 {
            span_us as f64 * self.count as f64 / (self.count - 1) as f64
        } else {
            1e6
        };
        let duration_us = duration_us.round().max(1.0) as u64;
        let mean_rps = self.count as f64 / (duration_us as f64 / 1e6);
        let stretch_us = stretch_width_us(duration_us);
        let stretches_n = duration_us.div_ceil(stretch_us);
        let mut counts = vec![0u64; stretches_n as usize];
        for (index, count) in &self.bins {
            let at = (index * self.width_us).max(self.first_us) - self.first_us;
            let slot = ((at / stretch_us) as usize).min(counts.len() - 1);
            counts[slot] += count;
        }
        let stretches = counts
            .iter()
            .enumerate()
            .map(|(i, count)| {
                let start = i as u64 * stretch_us;
                let length_us = stretch_us.min(duration_us - start).max(1);
                let rps = *count as f64 / (length_us as f64 / 1e6);
                Stretch {
                    duration: Duration::from_micros(length_us),
                    multiple: rps / mean_rps,
                }
            })
            .collect();
        Some(RateShape {
            mean_rps,
            duration: Duration::from_micros(duration_us),
            stretches,
        })
    }
}

/// A stretch's width: whole minutes for ten minutes or more (widened to keep at most
/// [`MAX_SHAPE_PHASES`]), a tenth of the recording otherwise.
fn stretch_width_us(duration_us: u64) -> u64 {
    const MINUTE_US: u64 = 60_000_000;
    if duration_us >= 10 * MINUTE_US {
        MINUTE_US * duration_us.div_ceil(MINUTE_US * MAX_SHAPE_PHASES)
    } else {
        duration_us.div_ceil(10).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_recording_is_cut_in_tenths_at_their_rates() {
        let mut arrivals = Arrivals::default();
        // 100/s for 5 s, then 300/s for 5 s.
        for i in 0..500u64 {
            arrivals.add(1_000_000_000 + i * 10_000);
        }
        for i in 0..1500u64 {
            arrivals.add(1_005_000_000 + i * 3_333);
        }
        let shape = arrivals.shape().unwrap();
        assert!((shape.mean_rps - 200.0).abs() < 1.0, "{}", shape.mean_rps);
        assert_eq!(shape.stretches.len(), 10);
        let total: Duration = shape.stretches.iter().map(|s| s.duration).sum();
        assert_eq!(total, shape.duration);
        assert!((shape.stretches[0].multiple - 0.5).abs() < 0.02);
        assert!((shape.stretches[9].multiple - 1.5).abs() < 0.05);
    }

    #[test]
    fn a_day_is_held_in_bounded_bins_and_cut_in_wide_minutes() {
        let mut arrivals = Arrivals::default();
        let day_us = 86_400_000_000u64;
        for i in 0..400_000u64 {
            arrivals.add(i * (day_us / 400_000));
        }
        assert!(arrivals.bins.len() <= MAX_BINS);
        let shape = arrivals.shape().unwrap();
        assert!(shape.stretches.len() as u64 <= MAX_SHAPE_PHASES);
        assert_eq!(shape.stretches[0].duration, Duration::from_secs(15 * 60));
        for stretch in &shape.stretches {
            assert!((stretch.multiple - 1.0).abs() < 0.01, "{stretch:?}");
        }
    }

    #[test]
    fn one_arrival_lasts_a_second() {
        let mut arrivals = Arrivals::default();
        assert!(arrivals.shape().is_none());
        arrivals.add(42);
        let shape = arrivals.shape().unwrap();
        assert_eq!(
            (shape.mean_rps, shape.duration),
            (1.0, Duration::from_secs(1))
        );
    }
}
