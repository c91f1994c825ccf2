//! One budget, in bytes, for everything the mirror holds on to: answers captured for pairing
//! (both sides, and the request body), pairs waiting in the comparison queue, and examples kept
//! of differences. Captures take from it as they grow and give back when they are dropped; a
//! capture that finds the budget spent stops growing, and its pair is dropped and counted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes the mirror may hold at once.
#[derive(Debug)]
pub struct ByteBudget {
    used: AtomicUsize,
    limit: usize,
}

impl ByteBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(ByteBudget {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// An empty reservation, to grow as bytes come.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: Some(self.clone()),
            bytes: 0,
        }
    }

    fn take(&self, bytes: usize) -> bool {
        let before = self.used.fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) > self.limit {
            self.used.fetch_sub(bytes, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// Bytes taken from a budget, given back when dropped. Without a budget it holds nothing back.
#[derive(Debug, Default)]
pub struct Reservation {
    budget: Option<Arc<ByteBudget>>,
    bytes: usize,
}

impl Reservation {
    /// Takes `bytes` more; false (and nothing taken) when the budget cannot spare them.
    pub fn grow(&mut self, bytes: usize) -> bool {
        match &self.budget {
            Some(budget) if !budget.take(bytes) => false,
            _ => {
                self.bytes += bytes;
                true
            }
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_take_up_to_the_limit_and_give_back_when_dropped() {
        let budget = ByteBudget::new(100);
        let mut a = budget.reservation();
        let mut b = budget.reservation();
        assert!(a.grow(60));
        assert!(!b.grow(50));
        assert_eq!((budget.used(), b.bytes()), (60, 0));
        assert!(b.grow(40));
        assert!(!a.grow(1));
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        drop(b);
        assert_eq!(budget.used(), 0);
        let mut unbounded = Reservation::default();
        assert!(unbounded.grow(usize::MAX / 2));
    }

    #[test]
    fn racing_reservations_never_exceed_the_limit() {
        let budget = ByteBudget::new(1_000);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let budget = budget.clone();
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for _ in 0..1_000 {
                        let mut r = budget.reservation();
                        if r.grow(7) {
                            assert!(budget.used() <= 1_000);
                            held.push(r);
                        }
                        if held.len() > 20 {
                            held.clear();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(budget.used(), 0);
    }
}
