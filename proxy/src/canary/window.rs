//! What the primary and the candidate did over the current judge interval: requests, failures
//! and a latency histogram per side. Worker threads record into their own shard; each interval
//! the judge takes every shard and leaves it empty, so an observation lands in exactly one
//! interval.

use std::time::Duration;

use hdrhistogram::Histogram;
use twinpeak_core::histogram::micros;
use twinpeak_core::{new_latency_histogram, record_saturating};

use crate::labels::Side;
use crate::shards::Sharded;

/// One side over one interval.
#[derive(Debug, Clone)]
pub struct SideWindow {
    /// Requests the side served (or failed to).
    pub requests: u64,
    /// Of those, the ones that failed: a 5xx answer, or no answer at all.
    pub errors: u64,
    /// Time to the end of each answer, in µs (answered requests only).
    pub latency: Histogram<u64>,
}

impl Default for SideWindow {
    fn default() -> Self {
        SideWindow {
            requests: 0,
            errors: 0,
            latency: new_latency_histogram(),
        }
    }
}

impl SideWindow {
    /// Counts one request; `latency` is `None` when no answer came.
    pub fn record(&mut self, error: bool, latency: Option<Duration>) {
        self.requests += 1;
        self.errors += u64::from(error);
        if let Some(latency) = latency {
            record_saturating(&mut self.latency, micros(latency));
        }
    }

    /// Adds another window of the same side.
    pub fn add(&mut self, other: &SideWindow) {
        self.requests += other.requests;
        self.errors += other.errors;
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    /// Empties the window, keeping its memory.
    pub fn clear(&mut self) {
        self.requests = 0;
        self.errors = 0;
        self.latency.reset();
    }

    /// Share of requests that failed; 0 without requests.
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// Both sides over one interval.
#[derive(Debug, Clone, Default)]
pub struct PairWindow {
    /// The legacy backend.
    pub primary: SideWindow,
    /// The rebuilt backend serving the canary share.
    pub candidate: SideWindow,
}

/// The interval in progress, sharded per worker thread.
pub struct Windows {
    shards: Sharded<PairWindow>,
}

impl Windows {
    /// Empty windows in `shards` shards (one per worker thread is best).
    pub fn new(shards: usize) -> Self {
        Windows {
            shards: Sharded::new(shards, PairWindow::default),
        }
    }

    /// Counts one request served (or failed) by `side`; the shadow is not judged.
    pub fn record(&self, side: Side, error: bool, latency: Option<Duration>) {
        self.shards.with(|w| match side {
            Side::Primary => w.primary.record(error, latency),
            Side::Candidate => w.candidate.record(error, latency),
            Side::Shadow => {}
        });
    }

    /// Everything recorded since the last call; the shards start over empty.
    pub fn take(&self) -> PairWindow {
        let mut merged = PairWindow::default();
        self.shards.for_each_mut(|shard| {
            merged.primary.add(&shard.primary);
            merged.candidate.add(&shard.candidate);
            shard.primary.clear();
            shard.candidate.clear();
        });
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn take_returns_each_observation_once() {
        let windows = Arc::new(Windows::new(3));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = windows.clone();
                std::thread::spawn(move || {
                    for i in 0..500u64 {
                        let side = if i % 5 == 0 {
                            Side::Candidate
                        } else {
                            Side::Primary
                        };
                        let failed = t == 0 && i % 50 == 0;
                        let latency = (!failed).then(|| Duration::from_micros(1_000 + i));
                        w.record(side, failed, latency);
                        w.record(Side::Shadow, true, None);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let first = windows.take();
        assert_eq!(first.primary.requests, 4 * 400);
        assert_eq!(first.candidate.requests, 4 * 100);
        assert_eq!(first.candidate.errors, 10);
        assert_eq!(first.candidate.latency.len(), 390);
        assert_eq!(first.candidate.error_rate(), 10.0 / 400.0);
        let second = windows.take();
        assert_eq!(second.primary.requests + second.candidate.requests, 0);
        assert!(second.candidate.latency.is_empty());
        assert_eq!(second.candidate.error_rate(), 0.0);
    }
}
