//! What became of the arrivals meant for one system, and the figures it is judged by.
//!
//! An open-model run offers a system a fixed schedule of arrivals. Some it answers well, some it
//! fails, and some it cannot take at all: they fall due while every load user is still waiting
//! for it, and are dropped once later than the late limit. Those count against the system. Its
//! latency percentiles are read over the arrivals it answered well and the ones it could not
//! take, the latter as slower than anything measured; its error rate counts them as failures.
//! Failed requests count in the error rate only, so fast failures cannot flatter a percentile.
//! Arrivals the load generator itself was too late for are not the system's doing and count
//! nowhere here.

use hdrhistogram::{AdditionError, Histogram};

use super::PhaseRecord;
use crate::histogram::new_latency_histogram;
use crate::merge::add_histogram;

/// A latency percentile read over intended arrivals, in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    /// The value measured at the percentile.
    Exact(u64),
    /// The percentile falls among arrivals the system could not take: it is above this value,
    /// the highest latency measured or the late limit, whichever is higher.
    Above(u64),
}

impl Latency {
    /// The value, or the bound it is above, in µs.
    pub fn us(self) -> u64 {
        match self {
            Latency::Exact(us) | Latency::Above(us) => us,
        }
    }

    /// Whether this is only a lower bound.
    pub fn is_lower_bound(self) -> bool {
        matches!(self, Latency::Above(_))
    }
}

/// One system's arrivals over one phase or several: what it answered, failed and could not take.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrivals {
    /// Coordinated-omission-corrected latency of the requests that succeeded, in µs.
    pub succeeded: Histogram<u64>,
    /// Requests sent, failed or not.
    pub sent: u64,
    /// Of those, requests that failed.
    pub failed: u64,
    /// Arrivals dropped because every load user was busy waiting for the system.
    pub not_taken: u64,
    /// The late limit in µs: an arrival not taken waited at least this long.
    pub late_limit_us: u64,
}

impl Default for Arrivals {
    fn default() -> Self {
        Self {
            succeeded: new_latency_histogram(),
            sent: 0,
            failed: 0,
            not_taken: 0,
            late_limit_us: 0,
        }
    }
}

impl Arrivals {
    /// The arrivals of one phase against one system.
    pub fn of_phase(phase: &PhaseRecord) -> Result<Self, AdditionError> {
        let mut arrivals = Self::default();
        arrivals.add_phase(phase)?;
        Ok(arrivals)
    }

    /// Adds the arrivals of `phase`, another phase of the same system.
    pub fn add_phase(&mut self, phase: &PhaseRecord) -> Result<(), AdditionError> {
        let totals = phase.totals()?;
        add_histogram(&mut self.succeeded, &totals.corrected_us)?;
        self.sent = self.sent.saturating_add(totals.sent);
        self.failed = self.failed.saturating_add(totals.error_total());
        self.not_taken = self.not_taken.saturating_add(phase.dropped_by_target());
        let late_limit_us = (phase.late_limit_ms * 1_000.0) as u64;
        self.late_limit_us = self.late_limit_us.max(late_limit_us);
        Ok(())
    }

    /// Adds `other`, more arrivals of the same system.
    pub fn add(&mut self, other: &Arrivals) -> Result<(), AdditionError> {
        add_histogram(&mut self.succeeded, &other.succeeded)?;
        self.sent = self.sent.saturating_add(other.sent);
        self.failed = self.failed.saturating_add(other.failed);
        self.not_taken = self.not_taken.saturating_add(other.not_taken);
        self.late_limit_us = self.late_limit_us.max(other.late_limit_us);
        Ok(())
    }

    /// The arrivals latency is read over: requests that succeeded and arrivals not taken.
    pub fn judged(&self) -> u64 {
        self.succeeded.len().saturating_add(self.not_taken)
    }

    /// The latency at `quantile` (0.99 for p99; `None` for the maximum) over the requests that
    /// succeeded and the arrivals not taken, those ranked above every measured latency; `None`
    /// when there are neither.
    pub fn latency(&self, quantile: Option<f64>) -> Option<Latency> {
        let measured = self.succeeded.len();
        if self.judged() == 0 {
            return None;
        }
        let bound = || {
            let highest = if measured > 0 {
                self.succeeded.max()
            } else {
                0
            };
            Latency::Above(highest.max(self.late_limit_us))
        };
        let Some(quantile) = quantile else {
            return Some(if self.not_taken > 0 {
                bound()
            } else {
                Latency::Exact(self.succeeded.max())
            });
        };
        if self.not_taken == 0 {
            return Some(Latency::Exact(self.succeeded.value_at_quantile(quantile)));
        }
        // The rank HdrHistogram reads a quantile at, over every judged arrival.
        let rank = ((quantile.clamp(0.0, 1.0) * self.judged() as f64).ceil() as u64).max(1);
        Some(if rank <= measured {
            // Half a rank below keeps floating error from reaching the next value.
            let within = (rank as f64 - 0.5) / measured as f64;
            Latency::Exact(self.succeeded.value_at_quantile(within))
        } else {
            bound()
        })
    }

    /// Failed requests and arrivals not taken, over requests sent and arrivals not taken, as a
    /// fraction; `None` when nothing was sent or due.
    pub fn error_rate(&self) -> Option<f64> {
        let due = self.sent.saturating_add(self.not_taken);
        (due > 0).then(|| self.failed.saturating_add(self.not_taken) as f64 / due as f64)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::histogram::record_saturating;
    use crate::run::RequestRecord;

    /// A phase with 90 requests that succeeded at 1..=90 ms, 10 failed at 1 ms, and `dropped`
    /// arrivals of which `by_generator` were the generator's.
    fn phase(dropped: u64, by_generator: u64) -> PhaseRecord {
        let mut request = RequestRecord {
            sent: 100,
            errors: BTreeMap::from([("status".to_owned(), 10)]),
            ..RequestRecord::default()
        };
        for ms in 1..=90 {
            record_saturating(&mut request.corrected_us, ms * 1_000);
        }
        for _ in 0..10 {
            record_saturating(&mut request.failed_us, 1_000);
        }
        PhaseRecord {
            dropped,
            dropped_by_generator: by_generator,
            late_limit_ms: 100.0,
            requests: BTreeMap::from([("get".to_owned(), request)]),
            ..PhaseRecord::default()
        }
    }

    fn ms(latency: Latency) -> (f64, bool) {
        (
            (latency.us() as f64 / 1_000.0).round(),
            latency.is_lower_bound(),
        )
    }

    #[test]
    fn without_drops_percentiles_are_those_of_the_successes() {
        let a = Arrivals::of_phase(&phase(0, 0)).unwrap();
        assert_eq!(a.judged(), 90);
        assert_eq!(ms(a.latency(Some(0.5)).unwrap()), (45.0, false));
        assert_eq!(
            a.latency(Some(0.99)),
            Some(Latency::Exact(a.succeeded.value_at_quantile(0.99)))
        );
        assert_eq!(ms(a.latency(None).unwrap()), (90.0, false));
        assert_eq!(
            a.error_rate(),
            Some(0.1),
            "fast failures count as errors only"
        );
    }

    #[test]
    fn arrivals_not_taken_rank_above_every_measured_latency() {
        // 90 successes and 10 arrivals not taken: p50 is the 50th success, p95 lies among the
        // arrivals not taken and is above the late limit (100 ms > the 90 ms measured).
        let a = Arrivals::of_phase(&phase(10, 0)).unwrap();
        assert_eq!(a.judged(), 100);
        assert_eq!(ms(a.latency(Some(0.5)).unwrap()), (50.0, false));
        assert_eq!(ms(a.latency(Some(0.9)).unwrap()), (90.0, false));
        assert_eq!(a.latency(Some(0.95)), Some(Latency::Above(100_000)));
        assert_eq!(a.latency(None), Some(Latency::Above(100_000)));
        assert_eq!(a.error_rate(), Some(20.0 / 110.0));
    }

    #[test]
    fn the_generators_drops_do_not_count_against_the_system() {
        let a = Arrivals::of_phase(&phase(10, 10)).unwrap();
        assert_eq!(a, Arrivals::of_phase(&phase(0, 0)).unwrap());
        let partly = Arrivals::of_phase(&phase(10, 4)).unwrap();
        assert_eq!(partly.not_taken, 6);
    }

    #[test]
    fn the_bound_is_the_highest_measured_latency_when_above_the_late_limit() {
        let mut p = phase(50, 0);
        p.late_limit_ms = 10.0;
        let a = Arrivals::of_phase(&p).unwrap();
        let Some(Latency::Above(us)) = a.latency(Some(0.99)) else {
            panic!("{:?}", a.latency(Some(0.99)));
        };
        assert!(a.succeeded.equivalent(us, 90_000), "{us}");
    }

    #[test]
    fn nothing_taken_or_nothing_due() {
        assert_eq!(Arrivals::default().latency(Some(0.5)), None);
        assert_eq!(Arrivals::default().error_rate(), None);
        let none_taken = Arrivals {
            not_taken: 5,
            late_limit_us: 100_000,
            ..Arrivals::default()
        };
        assert_eq!(
            none_taken.latency(Some(0.01)),
            Some(Latency::Above(100_000))
        );
        assert_eq!(none_taken.error_rate(), Some(1.0));
    }

    #[test]
    fn adding_equals_reading_the_phases_together() {
        let mut added = Arrivals::of_phase(&phase(10, 2)).unwrap();
        added
            .add(&Arrivals::of_phase(&phase(0, 0)).unwrap())
            .unwrap();
        let mut together = Arrivals::default();
        together.add_phase(&phase(10, 2)).unwrap();
        together.add_phase(&phase(0, 0)).unwrap();
        assert_eq!(added, together);
        assert_eq!((added.sent, added.failed, added.not_taken), (200, 20, 8));
    }
}
