//! Checkpoints of a run in progress: the run record as measured so far, written atomically
//! every few seconds, so a run that is killed outright loses at most one interval.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use twinpeak_core::sync::lock;
use twinpeak_core::RunRecord;

/// Where and how often to checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The run record's file; each checkpoint replaces it whole.
    pub path: PathBuf,
    /// Time between checkpoints.
    pub every: Duration,
}

/// Writes checkpoints on a thread of its own until finished.
#[derive(Debug)]
pub struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Writes the record `current` makes to `checkpoint.path` every `checkpoint.every`. A write
    /// that fails is reported once on stderr; the run goes on.
    pub fn start(
        checkpoint: Checkpoint,
        current: impl Fn() -> RunRecord + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("twinpeak-checkpoint".to_owned())
            .spawn(move || {
                let (stop, wake) = &*stopped;
                let mut done = lock(stop);
                let mut next = Instant::now() + checkpoint.every;
                let mut warned = false;
                while !*done {
                    let now = Instant::now();
                    if now < next {
                        done = wake
                            .wait_timeout(done, next - now)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                        continue;
                    }
                    next = now + checkpoint.every;
                    if let Err(e) = current().write(&checkpoint.path) {
                        if !warned {
                            eprintln!("warning: cannot checkpoint the run: {e}");
                            warned = true;
                        }
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops checkpointing; once this returns no checkpoint is being or will be written, so the
    /// final record written next is the last word.
    pub fn finish(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        let (stop, wake) = &*self.stop;
        *lock(stop) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[test]
    fn checkpoints_until_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        let made = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&made);
        let checkpointer = Checkpointer::start(
            Checkpoint {
                path: path.clone(),
                every: Duration::from_millis(20),
            },
            move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let mut record = RunRecord::new(
                    "smoke",
                    "ab",
                    n,
                    1.0,
                    std::time::SystemTime::now(),
                    Default::default(),
                );
                record.partial = true;
                record
            },
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while made.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        checkpointer.finish();
        let after = made.load(Ordering::SeqCst);
        assert!(after >= 3, "{after} checkpoints");
        let record = RunRecord::read(&path).unwrap();
        assert!(record.partial);
        assert_eq!(record.seed, after - 1, "the file holds the last checkpoint");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(made.load(Ordering::SeqCst), after, "none after finish");
    }
}
