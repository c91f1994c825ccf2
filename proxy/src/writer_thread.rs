//! A thread that writes what a bounded queue brings it, off the request path (the recording's
//! segments, the access log's lines): started under a name, and at exit sent a stop through
//! its queue and waited for, at most until a deadline, so that what was queued is written.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// How often a full queue is offered the stop again at exit.
const STOP_RETRY: Duration = Duration::from_millis(5);

/// A running writer thread.
pub(crate) struct WriterThread {
    /// What it writes, for the log (`record`, `access log`).
    name: &'static str,
    thread: std::thread::JoinHandle<()>,
    done: Receiver<()>,
}

impl WriterThread {
    /// Runs `work` on a thread named `twinpeak NAME`.
    pub(crate) fn spawn(
        name: &'static str,
        work: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<WriterThread> {
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(format!("twinpeak {name}"))
            .spawn(move || {
                work();
                let _ = done_tx.send(());
            })?;
        Ok(WriterThread { name, thread, done })
    }

    /// Sends `stop` through `queue` (offered again while the queue is full) and waits for the
    /// thread to write what is queued and finish, all within `wait`; says so when it is late.
    pub(crate) fn stop<M>(self, queue: &SyncSender<M>, stop: M, wait: Duration) {
        let deadline = Instant::now() + wait;
        let mut stop = stop;
        loop {
            match queue.try_send(stop) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    stop = back;
                    std::thread::sleep(STOP_RETRY);
                }
                // Disconnected: the thread has ended already.
                Err(TrySendError::Disconnected(_)) => break,
                Err(TrySendError::Full(_)) => {
                    log::warn!(
                        "{}: the writer did not take the queue in time at exit",
                        self.name
                    );
                    return;
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match self.done.recv_timeout(left) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let _ = self.thread.join();
            }
            Err(RecvTimeoutError::Timeout) => {
                log::warn!(
                    "{}: the writer did not finish writing in time at exit",
                    self.name
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_stop_behind_a_full_queue_is_sent_once_there_is_room_and_all_is_written() {
        let (queue, intake) = std::sync::mpsc::sync_channel::<Option<u32>>(2);
        let written = Arc::new(AtomicUsize::new(0));
        let counted = written.clone();
        let thread = WriterThread::spawn("test writer", move || {
            std::thread::sleep(Duration::from_millis(50));
            while let Ok(Some(_)) = intake.recv() {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        })
        .unwrap();
        queue.send(Some(1)).unwrap();
        queue.send(Some(2)).unwrap();
        thread.stop(&queue, None, Duration::from_secs(5));
        assert_eq!(written.load(Ordering::Relaxed), 2);
    }
}
