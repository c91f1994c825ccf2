//! Booking notifications (the SMS or e-mail a customer gets), sent the way each build sends them.
//!
//! The gateway is stood in for by a 15-25 ms wait, the round trip of a real SMTP or SMS call.
//! Legacy makes that call inside the request, on the thread that still holds the database;
//! rebuilt hands the notification to a bounded queue that a background task drains, and when
//! the queue is full the notification is dropped and counted, never waited for.

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::booking::BookingId;

/// Round trip of one call to the notification gateway, in milliseconds.
pub const GATEWAY_MILLIS: RangeInclusive<u64> = 15..=25;

/// Notifications rebuilt's queue holds before it drops new ones.
pub const QUEUE_CAPACITY: usize = 1024;

/// Gateway calls rebuilt's background task makes at once.
const SENDERS: usize = 8;

/// How long stopping waits for rebuilt's queued notifications to go out.
const DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// Counts of notifications, for a report or a test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotificationStats {
    /// Handed to rebuilt's queue (always 0 on legacy, which does not queue).
    pub queued: u64,
    /// Delivered to the gateway.
    pub sent: u64,
    /// Dropped because rebuilt's queue was full or stopped.
    pub dropped: u64,
}

/// What happened to a booking that its customer is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Confirmed,
    Cancelled,
}

/// One message to a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notification {
    pub booking: BookingId,
    pub customer: String,
    pub event: Event,
}

impl Notification {
    fn log_sent(&self) {
        log::trace!(
            "told {} that {} is {:?}",
            self.customer,
            self.booking,
            self.event
        );
    }
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
}

/// Sends notifications the way one build does.
pub(crate) struct Notifier {
    queue: Option<mpsc::Sender<Notification>>,
    counters: Arc<Counters>,
}

impl Notifier {
    /// Legacy's: every notification is a blocking gateway call by the caller.
    pub fn inline() -> Notifier {
        Notifier {
            queue: None,
            counters: Arc::default(),
        }
    }

    /// Rebuilt's: a bounded queue, drained by the task returned; `stop` ends it, after sending
    /// what is queued (for at most a second).
    pub fn queued(stop: watch::Receiver<bool>) -> (Notifier, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let counters = Arc::<Counters>::default();
        let task = tokio::spawn(drain(rx, stop, Arc::clone(&counters)));
        let notifier = Notifier {
            queue: Some(tx),
            counters,
        };
        (notifier, task)
    }

    /// Sends `notification`. Legacy blocks the calling thread for the gateway round trip, so
    /// call it only from a blocking task; rebuilt returns at once.
    pub fn send(&self, notification: Notification) {
        match &self.queue {
            None => {
                std::thread::sleep(gateway_delay());
                notification.log_sent();
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Some(queue) => match queue.try_send(notification) {
                Ok(()) => {
                    self.counters.queued.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            },
        }
    }

    /// The counts so far.
    pub fn stats(&self) -> NotificationStats {
        NotificationStats {
            queued: self.counters.queued.load(Ordering::Relaxed),
            sent: self.counters.sent.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
        }
    }
}

fn gateway_delay() -> Duration {
    Duration::from_millis(rand::rng().random_range(GATEWAY_MILLIS))
}

/// Sends what arrives on `rx`, at most [`SENDERS`] at a time, until `stop`.
async fn drain(
    mut rx: mpsc::Receiver<Notification>,
    mut stop: watch::Receiver<bool>,
    counters: Arc<Counters>,
) {
    let senders = Arc::new(Semaphore::new(SENDERS));
    let mut in_flight = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&senders).acquire_owned() => permit,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let Ok(permit) = permit else { break };
        let next = tokio::select! {
            next = rx.recv() => next,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let Some(notification) = next else { break };
        in_flight.spawn(deliver(notification, permit, Arc::clone(&counters)));
        while in_flight.try_join_next().is_some() {}
    }
    // Stopping: refuse new notifications, send what is queued, within the limit.
    rx.close();
    let finish = async {
        while let Some(notification) = rx.recv().await {
            let Ok(permit) = Arc::clone(&senders).acquire_owned().await else {
                break;
            };
            in_flight.spawn(deliver(notification, permit, Arc::clone(&counters)));
        }
        while in_flight.join_next().await.is_some() {}
    };
    if tokio::time::timeout(DRAIN_LIMIT, finish).await.is_err() {
        log::debug!("stopped with notifications unsent");
    }
}

/// One gateway call; `permit` is one of the [`SENDERS`] slots.
async fn deliver(
    notification: Notification,
    permit: OwnedSemaphorePermit,
    counters: Arc<Counters>,
) {
    tokio::time::sleep(gateway_delay()).await;
    notification.log_sent();
    counters.sent.fetch_add(1, Ordering::Relaxed);
    drop(permit);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn notification(n: i64) -> Notification {
        Notification {
            booking: BookingId(n),
            customer: format!("c{n}"),
            event: Event::Confirmed,
        }
    }

    #[test]
    fn legacy_waits_for_the_gateway() {
        let notifier = Notifier::inline();
        let started = Instant::now();
        notifier.send(notification(1));
        assert!(started.elapsed() >= Duration::from_millis(*GATEWAY_MILLIS.start()));
        assert_eq!(
            notifier.stats(),
            NotificationStats {
                queued: 0,
                sent: 1,
                dropped: 0
            }
        );
    }

    #[tokio::test]
    async fn rebuilt_drops_and_counts_what_a_full_queue_cannot_take() {
        let (stop, stopped) = watch::channel(false);
        let (notifier, drainer) = Notifier::queued(stopped);
        let started = Instant::now();
        // On this single-threaded runtime the drainer cannot run until the loop yields.
        for n in 0..(QUEUE_CAPACITY + 100) as i64 {
            notifier.send(notification(n));
        }
        assert!(started.elapsed() < Duration::from_millis(*GATEWAY_MILLIS.start()));
        let stats = notifier.stats();
        assert_eq!(stats.queued, QUEUE_CAPACITY as u64);
        assert_eq!(stats.dropped, 100);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(notifier.stats().sent > 0);
        stop.send(true).unwrap();
        drainer.await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(3));
        notifier.send(notification(0));
        assert_eq!(
            notifier.stats().dropped,
            101,
            "a stopped queue takes nothing"
        );
    }
}
