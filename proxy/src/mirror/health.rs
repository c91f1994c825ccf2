//! Whether the shadow is worth a copy now. A shadow that refuses connections, cannot be
//! reached or lets every copy time out costs the proxy a failed exchange per copy, on the cores
//! that serve clients. After [`TRIP_AFTER`] such failures in a row the shadow is taken as down:
//! copies are not sent (`twinpeak_mirror_total{outcome="shadow_down"}`) for a backoff that
//! starts at [`FIRST_BACKOFF`] and doubles with every failure that follows, up to
//! [`MAX_BACKOFF`]. Once it has passed, copies go out again; the first answer resets it all.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Failures in a row (connect failures or timeouts) that take the shadow as down.
pub const TRIP_AFTER: u32 = 3;

/// How long copies are held back after the failure that trips it.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// Longest copies are held back.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The shadow's recent failures and the instant copies may go out again.
#[derive(Debug)]
pub struct ShadowHealth {
    epoch: Instant,
    failures_in_a_row: AtomicU32,
    /// Nanoseconds from `epoch` before which no copy is sent (0: none held back).
    down_until: AtomicU64,
}

impl Default for ShadowHealth {
    fn default() -> Self {
        ShadowHealth {
            epoch: Instant::now(),
            failures_in_a_row: AtomicU32::new(0),
            down_until: AtomicU64::new(0),
        }
    }
}

impl ShadowHealth {
    /// Whether copies are being held back at `now`.
    pub fn is_down(&self, now: Instant) -> bool {
        self.since_epoch(now) < self.down_until.load(Ordering::Relaxed)
    }

    /// The shadow answered a copy.
    pub fn answered(&self) {
        if self.failures_in_a_row.swap(0, Ordering::Relaxed) != 0 {
            self.down_until.store(0, Ordering::Relaxed);
        }
    }

    /// A copy could not connect or timed out at `now`; returns how long copies are now held
    /// back, when this failure holds them back.
    pub fn failed(&self, now: Instant) -> Option<Duration> {
        let failures = self.failures_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < TRIP_AFTER {
            return None;
        }
        let doublings = (failures - TRIP_AFTER).min(16);
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << doublings)
            .min(MAX_BACKOFF);
        let until = self
            .since_epoch(now)
            .saturating_add(backoff.as_nanos() as u64);
        self.down_until.fetch_max(until, Ordering::Relaxed);
        Some(backoff)
    }

    fn since_epoch(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_a_row_hold_copies_back_for_a_doubling_time_and_an_answer_resets_it() {
        let health = ShadowHealth::default();
        let t0 = Instant::now();
        assert!(!health.is_down(t0));
        assert_eq!(health.failed(t0), None);
        assert_eq!(health.failed(t0), None);
        assert!(!health.is_down(t0), "two failures are not enough");
        assert_eq!(health.failed(t0), Some(FIRST_BACKOFF));
        assert!(health.is_down(t0 + Duration::from_millis(200)));
        assert!(!health.is_down(t0 + Duration::from_millis(300)));
        let t1 = t0 + Duration::from_millis(300);
        assert_eq!(health.failed(t1), Some(FIRST_BACKOFF * 2));
        for _ in 0..20 {
            health.failed(t1);
        }
        assert_eq!(health.failed(t1), Some(MAX_BACKOFF), "capped");
        assert!(health.is_down(t1 + Duration::from_secs(4)));
        health.answered();
        assert!(!health.is_down(t1), "an answer ends it at once");
        assert_eq!(health.failed(t1), None, "and starts the count again");
    }
}
