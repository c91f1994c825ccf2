//! A schedule of recorded arrival instants (`twinpeak load --replay` of a recording): arrival k
//! is due at the k-th recorded offset, and a looped replay starts the recording over every
//! period until the run ends.

use std::sync::Arc;
use std::time::Duration;

use super::{PhasePlan, Schedule, ScheduleError, Share, MAX_ARRIVALS};

/// Recorded offsets, in nanoseconds from the first, and how they repeat.
#[derive(Debug, Clone)]
pub(super) struct RecordedOffsets {
    /// Offset of each recorded arrival from the first, never decreasing.
    offsets: Arc<[u64]>,
    /// Time between two starts of the recording, when it loops.
    period_ns: Option<u64>,
    /// Arrivals of the whole run.
    total: u64,
}

impl RecordedOffsets {
    /// The whole run's `k`-th arrival offset, in nanoseconds.
    pub(super) fn offset_ns(&self, k: u64) -> Option<u64> {
        if k >= self.total {
            return None;
        }
        let n = self.offsets.len() as u64;
        let within = self.offsets[(k % n) as usize];
        Some(match self.period_ns {
            Some(period) => (k / n) * period + within,
            None => within,
        })
    }

    /// Arrivals of the whole run due strictly before `offset`.
    pub(super) fn before(&self, offset: Duration) -> u64 {
        let t = u64::try_from(offset.as_nanos()).unwrap_or(u64::MAX);
        let below = |t: u64| self.offsets.partition_point(|&o| o < t) as u64;
        let count = match self.period_ns {
            Some(period) => {
                let cycles = t / period;
                cycles
                    .saturating_mul(self.offsets.len() as u64)
                    .saturating_add(below(t - cycles * period))
            }
            None => below(t),
        };
        count.min(self.total)
    }
}

/// The mean time between two recorded arrivals: the span over the gaps (0 for one arrival).
fn mean_gap(offsets: &[Duration]) -> Duration {
    match offsets {
        [first, .., last] => {
            (*last - *first) / u32::try_from(offsets.len() - 1).unwrap_or(u32::MAX)
        }
        _ => Duration::ZERO,
    }
}

/// Shortest time an unlooped replay lasts after its last arrival.
const MIN_TAIL: Duration = Duration::from_millis(1);

impl Schedule {
    /// A one-phase schedule named `name` whose arrivals are due at `offsets` from the start
    /// (sorted here; the first is taken as the start). With `repeat_until`, the offsets start
    /// over every period (the recording's span plus one mean gap) and the run lasts that long;
    /// without, it lasts until one mean gap after the last arrival.
    pub fn recorded(
        name: &str,
        mut offsets: Vec<Duration>,
        repeat_until: Option<Duration>,
    ) -> Result<Self, ScheduleError> {
        offsets.sort_unstable();
        let first = offsets.first().copied().unwrap_or_default();
        let nanos: Vec<u64> = offsets
            .iter()
            .map(|o| u64::try_from((*o - first).as_nanos()).map_err(|_| ScheduleError::TooLong))
            .collect::<Result<_, _>>()?;
        let last = Duration::from_nanos(nanos.last().copied().unwrap_or_default());
        let gap = mean_gap(&offsets);
        let (duration, period_ns) = match repeat_until {
            Some(until) => {
                let period = last + gap;
                if offsets.len() < 2 || period.is_zero() {
                    return Err(ScheduleError::NoPeriod);
                }
                let period =
                    u64::try_from(period.as_nanos()).map_err(|_| ScheduleError::TooLong)?;
                (until, Some(period))
            }
            None => (last + gap.max(MIN_TAIL), None),
        };
        let mut recorded = RecordedOffsets {
            offsets: nanos.into(),
            period_ns,
            total: u64::MAX,
        };
        let total = if recorded.offsets.is_empty() {
            0
        } else {
            recorded.before(duration)
        };
        if total > MAX_ARRIVALS {
            return Err(ScheduleError::TooManyArrivals {
                expected: total as f64,
            });
        }
        recorded.total = total;
        let rate = total as f64 / duration.as_secs_f64().max(1e-9);
        Ok(Self {
            phases: vec![PhasePlan {
                name: name.to_owned(),
                duration,
                start_rps: rate,
                end_rps: rate,
            }],
            starts: vec![Duration::ZERO, duration],
            expected_before: vec![0.0, total as f64],
            first: vec![0, total],
            share: Share::WHOLE,
            recorded: Some(recorded),
        })
    }
}
