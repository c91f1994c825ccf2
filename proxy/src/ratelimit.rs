//! A log line that is written at most once per interval, with a count of what it held back:
//! a shadow that fails on every request must not flood the proxy's log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Lets one message through per interval and counts the rest.
#[derive(Debug)]
pub struct RateLimitedLog {
    origin: Instant,
    interval: Duration,
    /// Milliseconds since `origin` of the next moment a line may be written.
    next_allowed_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimitedLog {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> Self {
        RateLimitedLog {
            origin: Instant::now(),
            interval,
            next_allowed_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Writes `message` as a warning if the interval has passed, noting how many were held
    /// back; otherwise counts it. Returns whether it was written.
    pub fn warn(&self, message: impl FnOnce() -> String) -> bool {
        let now = self.origin.elapsed().as_millis() as u64;
        let next = self.next_allowed_ms.load(Ordering::Relaxed);
        let interval_ms = self.interval.as_millis() as u64;
        if now < next
            || self
                .next_allowed_ms
                .compare_exchange(
                    next,
                    now + interval_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let held_back = self.suppressed.swap(0, Ordering::Relaxed);
        if held_back > 0 {
            log::warn!("{} ({held_back} similar messages held back)", message());
        } else {
            log::warn!("{}", message());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_line_per_interval() {
        let log = RateLimitedLog::new(Duration::from_secs(3600));
        assert!(log.warn(|| "first".into()));
        assert!(!log.warn(|| "second".into()));
        assert!(!log.warn(|| "third".into()));
        assert_eq!(log.suppressed.load(Ordering::Relaxed), 2);
    }
}
