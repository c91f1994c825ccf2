//! Values split into per-thread shards so worker threads recording at once do not contend on
//! one lock; readers merge the shards. Each thread keeps to one shard, so a lock is almost
//! never contended and never sleeps on the request path.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use twinpeak_core::sync::lock;

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard number (modulo the shard count).
    static THREAD_SHARD: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}

/// A mutex on its own cache lines, so neighbouring shards do not share one.
#[repr(align(128))]
struct Padded<T>(Mutex<T>);

/// `T` in a few shards, one per worker thread.
pub struct Sharded<T> {
    shards: Box<[Padded<T>]>,
}

impl<T> Sharded<T> {
    /// `count` shards (at least one), each made by `make`.
    pub fn new(count: usize, make: impl Fn() -> T) -> Self {
        Sharded {
            shards: (0..count.max(1))
                .map(|_| Padded(Mutex::new(make())))
                .collect(),
        }
    }

    /// Runs `f` on this thread's shard, or on the first free one when another thread holds it
    /// (threads may share a shard number); it waits only when every shard is busy.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let count = self.shards.len();
        let home = THREAD_SHARD.with(|i| *i) % count;
        for offset in 0..count {
            match self.shards[(home + offset) % count].0.try_lock() {
                Ok(mut shard) => return f(&mut shard),
                Err(std::sync::TryLockError::Poisoned(e)) => return f(&mut e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => continue,
            }
        }
        f(&mut lock(&self.shards[home].0))
    }

    /// Runs `f` on every shard in turn, each under its lock (to take and reset them).
    pub fn for_each_mut(&self, mut f: impl FnMut(&mut T)) {
        for shard in self.shards.iter() {
            f(&mut lock(&shard.0));
        }
    }

    /// Folds every shard into `init` with `add`.
    pub fn fold<A>(&self, init: A, mut add: impl FnMut(&mut A, &T)) -> A {
        let mut acc = init;
        for shard in self.shards.iter() {
            add(&mut acc, &lock(&shard.0));
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn threads_record_into_shards_and_fold_sees_all() {
        let sharded = Arc::new(Sharded::new(3, || 0u64));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let s = sharded.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| s.with(|n| *n += 1)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(sharded.fold(0, |acc, n| *acc += n), 6000);
    }
}
