//! The open-model arrival schedule every load user shares, like wrk2's or k6's constant arrival
//! rate: requests are due at fixed instants whatever the systems under test answer, so a slow
//! system meets the same load as a fast one and its queueing shows in the latencies.
//!
//! A [`Schedule`] says when the k-th arrival is due, and how many are due before any instant;
//! the [`Pacer`](crate::pacer::Pacer) hands them out to the load users. A load worker's
//! schedule is its [`Share`] of the run's: worker K of N takes the run's arrivals K, K + N,
//! K + 2N, …, so each offers 1/N of the rate at every moment and together they send the run's
//! schedule exactly.

use std::ops::Range;
use std::time::Duration;

mod recorded;

/// Most arrivals a schedule holds: beyond 2⁵³ an `f64` no longer counts every one exactly.
pub const MAX_ARRIVALS: u64 = 1 << 53;

/// One phase of a run: the arrival rate ramps linearly from `start_rps` to `end_rps` over
/// `duration`; equal rates make it flat.
#[derive(Debug, Clone, PartialEq)]
pub struct PhasePlan {
    /// Name the phase is reported under (`warm-up`, `peak`, ...).
    pub name: String,
    /// How long the phase lasts.
    pub duration: Duration,
    /// Requests per second due at the start of the phase.
    pub start_rps: f64,
    /// Requests per second due at the end of the phase.
    pub end_rps: f64,
}

/// Why phases do not make a schedule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// A rate is negative, NaN or infinite.
    #[error("phase `{phase}`: {which} rate {rate} is not a finite, non-negative number of requests per second")]
    InvalidRate {
        /// Name of the phase.
        phase: String,
        /// `start` or `end`.
        which: &'static str,
        /// The rate given.
        rate: f64,
    },
    /// The phases together last longer than a [`Duration`] holds.
    #[error("the phases last longer than a duration can hold")]
    TooLong,
    /// The phases expect more arrivals than [`MAX_ARRIVALS`].
    #[error("the phases expect {expected:.0} arrivals, more than the {MAX_ARRIVALS} a schedule counts exactly")]
    TooManyArrivals {
        /// Arrivals the phases expect.
        expected: f64,
    },
    /// A looped recording has no period: fewer than two arrivals, or all at one instant.
    #[error("a looped replay needs at least two recorded requests at different instants")]
    NoPeriod,
}

/// Which of a run's arrivals a schedule holds: those whose index in the run is `index` modulo
/// `count`. The whole run is share 0 of 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// This share, from 0.
    pub index: u64,
    /// Shares the run is split into.
    pub count: u64,
}

impl Share {
    /// The whole run.
    pub const WHOLE: Share = Share { index: 0, count: 1 };

    /// How many of the run's first `n` arrivals are in this share.
    fn of_first(self, n: u64) -> u64 {
        if n <= self.index {
            0
        } else {
            (n - self.index - 1) / self.count + 1
        }
    }

    /// Index in the run of this share's `k`-th arrival.
    fn run_index(self, k: u64) -> Option<u64> {
        k.checked_mul(self.count)?.checked_add(self.index)
    }
}

/// When one request is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Position in this schedule (its share of the run), from 0.
    pub index: u64,
    /// Position in the whole run, the same on every load worker: what picks the arrival's
    /// requests. Equal to `index` for the whole run.
    pub run_index: u64,
    /// Index of the phase it belongs to.
    pub phase: usize,
    /// When it is due, from the start of the run.
    pub offset: Duration,
}

/// The deterministic arrival instants of a run made of phases, or of a recording
/// ([`Schedule::recorded`]).
///
/// With r(t) the rate at time t, N(t) = ∫₀ᵗ r is the number of requests expected by t; arrival k
/// (from 0) is due at the instant N(t) = k, so the first is due at the start of the run. N is
/// cumulative over the whole run: a phase that ends between two arrivals hands the fraction on to
/// the next, and each phase holds its expected count rounded up or down, never further off.
/// There is no jitter: the same schedule sends the same load to every system it is run against.
#[derive(Debug, Clone)]
pub struct Schedule {
    phases: Vec<PhasePlan>,
    /// Offset of the start of each phase; one more entry for the end of the run.
    starts: Vec<Duration>,
    /// Expected arrivals before each phase; one more entry for the whole run.
    expected_before: Vec<f64>,
    /// Index in the run of the first arrival of each phase; one more entry for the number of
    /// the run's arrivals.
    first: Vec<u64>,
    /// Which of the run's arrivals this schedule holds.
    share: Share,
    /// The arrivals' recorded instants, for a schedule made by [`Schedule::recorded`].
    recorded: Option<recorded::RecordedOffsets>,
}

impl Schedule {
    /// Builds the schedule of `phases`, run one after the other.
    pub fn new(phases: Vec<PhasePlan>) -> Result<Self, ScheduleError> {
        let mut starts = vec![Duration::ZERO];
        let mut expected_before = vec![0.0];
        let mut end = Duration::ZERO;
        let mut expected = 0.0;
        for phase in &phases {
            for (which, rate) in [("start", phase.start_rps), ("end", phase.end_rps)] {
                if !rate.is_finite() || rate < 0.0 {
                    return Err(ScheduleError::InvalidRate {
                        phase: phase.name.clone(),
                        which,
                        rate,
                    });
                }
            }
            end = end
                .checked_add(phase.duration)
                .ok_or(ScheduleError::TooLong)?;
            expected += (phase.start_rps + phase.end_rps) / 2.0 * phase.duration.as_secs_f64();
            if expected > MAX_ARRIVALS as f64 {
                return Err(ScheduleError::TooManyArrivals { expected });
            }
            starts.push(end);
            expected_before.push(expected);
        }
        // Checked above: every count is a whole number in 0..=MAX_ARRIVALS.
        let first = expected_before
            .iter()
            .map(|&n| ceil_count(n) as u64)
            .collect();
        Ok(Self {
            phases,
            starts,
            expected_before,
            first,
            share: Share::WHOLE,
            recorded: None,
        })
    }

    /// This schedule's `share` of the run: the same phases, instants and rates, with the
    /// arrivals of the other shares left out. A share `count` of 0, or an `index` not below it,
    /// is taken as the whole run.
    pub fn share(mut self, share: Share) -> Self {
        self.share = if share.index < share.count {
            share
        } else {
            Share::WHOLE
        };
        self
    }

    /// Which of the run's arrivals the schedule holds.
    pub fn share_of_run(&self) -> Share {
        self.share
    }

    /// The phases, in order.
    pub fn phases(&self) -> &[PhasePlan] {
        &self.phases
    }

    /// How long the whole run lasts.
    pub fn total_duration(&self) -> Duration {
        self.starts.last().copied().unwrap_or_default()
    }

    /// Number of arrivals in the schedule (its share of the run).
    pub fn total_arrivals(&self) -> u64 {
        self.share.of_first(self.run_arrivals())
    }

    /// Number of arrivals in the whole run, of every share.
    fn run_arrivals(&self) -> u64 {
        self.first.last().copied().unwrap_or_default()
    }

    /// Offset of the start of `phase` from the start of the run; `None` past the last phase.
    pub fn phase_start(&self, phase: usize) -> Option<Duration> {
        self.phases.get(phase).map(|_| self.starts[phase])
    }

    /// Requests `phase` is expected to hold in this schedule: its mean rate × its duration, over
    /// the number of shares (0 past the last phase).
    pub fn expected_count(&self, phase: usize) -> f64 {
        self.phases.get(phase).map_or(0.0, |_| {
            (self.expected_before[phase + 1] - self.expected_before[phase])
                / self.share.count as f64
        })
    }

    /// Indices of the arrivals of `phase` (empty past the last phase).
    pub fn arrival_range(&self, phase: usize) -> Range<u64> {
        match self.phases.get(phase) {
            Some(_) => {
                self.share.of_first(self.first[phase])..self.share.of_first(self.first[phase + 1])
            }
            None => 0..0,
        }
    }

    /// The `k`-th arrival of the schedule (from 0); `None` past the last one.
    ///
    /// Offsets never decrease with `k`, and each lies within its phase: at or after its start,
    /// before its end.
    pub fn arrival(&self, k: u64) -> Option<Arrival> {
        let run_index = self.share.run_index(k)?;
        let arrival = self.run_arrival(run_index)?;
        Some(Arrival {
            index: k,
            ..arrival
        })
    }

    /// The `k`-th arrival of the whole run; `None` past the last one.
    fn run_arrival(&self, k: u64) -> Option<Arrival> {
        if k >= self.run_arrivals() {
            return None;
        }
        if let Some(recorded) = &self.recorded {
            return Some(Arrival {
                index: k,
                run_index: k,
                phase: 0,
                offset: Duration::from_nanos(recorded.offset_ns(k)?),
            });
        }
        // The phase whose arrival range holds k: phases without arrivals are passed over.
        let phase = self.first[1..].partition_point(|&first| first <= k);
        let plan = &self.phases[phase];
        let duration = plan.duration.as_secs_f64();
        let count = (k as f64 - self.expected_before[phase]).max(0.0);
        let t = time_for_count(plan.start_rps, plan.end_rps, duration, count);
        let within = Duration::try_from_secs_f64(t)
            .unwrap_or(plan.duration)
            .min(plan.duration.saturating_sub(Duration::from_nanos(1)));
        Some(Arrival {
            index: k,
            run_index: k,
            phase,
            offset: self.starts[phase] + within,
        })
    }

    /// Number of the schedule's arrivals due strictly before `offset` from the start of the
    /// run, which is also the index of its first arrival due at or after it.
    pub fn arrivals_before(&self, offset: Duration) -> u64 {
        self.share.of_first(self.run_arrivals_before(offset))
    }

    /// Number of the whole run's arrivals due strictly before `offset`.
    ///
    /// Constant time: the expected count by `offset` is computed from the rates, then set right
    /// against the arrivals' own offsets, which it is within one of (a binary search is the
    /// fallback should floating error ever put it further off).
    fn run_arrivals_before(&self, offset: Duration) -> u64 {
        const STEPS: u32 = 8;
        if let Some(recorded) = &self.recorded {
            return recorded.before(offset);
        }
        let total = self.run_arrivals();
        let is_before = |k: u64| self.run_arrival(k).is_some_and(|a| a.offset < offset);
        let mut k = self.expected_by(offset).min(total);
        for _ in 0..STEPS {
            match () {
                _ if k > 0 && !is_before(k - 1) => k -= 1,
                _ if k < total && is_before(k) => k += 1,
                _ => return k,
            }
        }
        let (mut low, mut high) = (0, total);
        while low < high {
            let mid = low + (high - low) / 2;
            if is_before(mid) {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }

    /// The arrivals expected by `offset`, N(offset), rounded up.
    fn expected_by(&self, offset: Duration) -> u64 {
        let phase = self.starts[1..].partition_point(|&end| end <= offset);
        let Some(plan) = self.phases.get(phase) else {
            return self.run_arrivals();
        };
        let t = offset.saturating_sub(self.starts[phase]).as_secs_f64();
        let duration = plan.duration.as_secs_f64();
        let slope = if duration > 0.0 {
            (plan.end_rps - plan.start_rps) / duration
        } else {
            0.0
        };
        let expected = self.expected_before[phase] + plan.start_rps * t + slope * t * t / 2.0;
        // Within 0..=MAX_ARRIVALS, checked when the schedule was made.
        expected.ceil().max(0.0) as u64
    }
}

/// `n` rounded up to a whole count, taking a value within floating error of a whole number as
/// that number (three phases of ⅓ s at 3 rps expect 3 arrivals, not 4).
fn ceil_count(n: f64) -> f64 {
    let nearest = n.round();
    if (n - nearest).abs() <= 1e-9 * nearest.abs().max(1.0) {
        nearest
    } else {
        n.ceil()
    }
}

/// Seconds into a phase at which `count` arrivals are expected, by inverting
/// N(t) = r₀·t + a·t²/2 with a = (r₁ − r₀)/d, clamped to the phase.
///
/// The root is written 2n / (r₀ + √(r₀² + 2an)), which stays accurate when r₀ is 0, when the
/// ramp is flat (a = 0 gives n/r₀) and when a is small, where the textbook form cancels.
fn time_for_count(start_rps: f64, end_rps: f64, duration: f64, count: f64) -> f64 {
    if count <= 0.0 || duration <= 0.0 {
        return 0.0;
    }
    let slope = (end_rps - start_rps) / duration;
    let discriminant = (start_rps * start_rps + 2.0 * slope * count).max(0.0);
    let denominator = start_rps + discriminant.sqrt();
    if denominator > 0.0 {
        (2.0 * count / denominator).min(duration)
    } else {
        duration
    }
}

#[cfg(test)]
mod tests;
