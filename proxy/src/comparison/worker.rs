//! The worker that takes pairs off the request path: it drains the bounded pair queue, records
//! each pair's latency delta and compares its two answers. It runs as a Pingora background
//! service.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use tokio::sync::Mutex;

use super::Comparator;
use crate::capture::Outcome;
use crate::mirror::{Pair, PairIntake};
use crate::stats::Stats;

/// How long pairs gather in the queue between the worker's rounds: at most this many rounds
/// a second wake the worker, whatever the rate of pairs. The queue (`diff.queue`, 4096 by
/// default) holds this long's pairs at any rate up to hundreds of thousands a second.
const GATHER: Duration = Duration::from_millis(10);

/// The worker that consumes pairs.
pub struct PairWorker {
    intake: Mutex<Option<PairIntake>>,
    stats: Arc<Stats>,
    comparator: Arc<Comparator>,
}

impl PairWorker {
    /// A worker draining `intake` into `comparator`.
    pub fn new(intake: PairIntake, stats: Arc<Stats>, comparator: Arc<Comparator>) -> Self {
        PairWorker {
            intake: Mutex::new(Some(intake)),
            stats,
            comparator,
        }
    }

    fn handle(&self, pair: &Pair) {
        if pair.primary.outcome == Outcome::Answered && pair.shadow.outcome == Outcome::Answered {
            self.stats
                .record_delta(pair.route, pair.shadow.total, pair.primary.total);
        }
        self.comparator.handle(pair);
    }
}

#[async_trait]
impl BackgroundService for PairWorker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut intake) = self.intake.lock().await.take() else {
            return;
        };
        loop {
            tokio::select! {
                pair = intake.next() => match pair {
                    Some(pair) => self.handle(&pair),
                    None => return,
                },
                _ = shutdown.changed() => return,
            }
            // Take what else is queued, then let pairs gather for a moment: while the worker
            // is not waiting on the queue, queueing a pair wakes no thread. Woken for every
            // pair, this thread cost a wake-up and two context switches a mirrored request.
            while let Some(pair) = intake.queued() {
                self.handle(&pair);
            }
            tokio::select! {
                _ = tokio::time::sleep(GATHER) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::ByteBudget;
    use crate::comparison::config::DiffConfig;
    use crate::labels::PairResult;
    use crate::mirror::fixtures::{answer, pair};
    use crate::mirror::{pair_queue, PairQueue};
    use crate::routes::RouteTable;

    fn worker(capacity: usize) -> (PairQueue, PairWorker, Arc<Stats>) {
        let routes = Arc::new(RouteTable::new(&[]));
        let stats = Arc::new(Stats::new(&routes, 1, false));
        let budget = ByteBudget::new(1 << 20);
        let comparator = Arc::new(
            Comparator::new(&DiffConfig::default(), routes, stats.clone(), budget).unwrap(),
        );
        let (queue, intake) = pair_queue(capacity, stats.clone());
        let worker = PairWorker::new(intake, stats.clone(), comparator);
        (queue, worker, stats)
    }

    #[test]
    fn pairs_are_compared_and_the_delta_recorded() {
        let (_queue, worker, stats) = worker(4);
        worker.handle(&pair(answer(200, b"a"), answer(200, b"a")));
        worker.handle(&pair(answer(200, b"a"), answer(404, b"a")));
        let totals = stats.pair_totals();
        assert_eq!(totals[PairResult::Identical.index()], 1);
        assert_eq!(totals[PairResult::Different.index()], 1);
        assert_eq!(stats.delta(0).count(), 2);
    }

    #[tokio::test]
    async fn pairs_queued_while_the_worker_gathers_are_all_compared_and_shutdown_ends_it() {
        let (queue, worker, stats) = worker(64);
        let worker = Arc::new(worker);
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let running = tokio::spawn({
            let worker = worker.clone();
            async move { worker.start(shutdown).await }
        });
        let compared = || stats.pair_totals()[PairResult::Identical.index()];
        // In three bursts, each landing while the worker waits, handles a pair or gathers.
        for burst in 1..=3u64 {
            for _ in 0..20 {
                queue.submit(pair(answer(200, b"a"), answer(200, b"a")));
            }
            for _ in 0..200 {
                if compared() == burst * 20 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(compared(), burst * 20);
        }
        assert_eq!(stats.pair_totals()[PairResult::Dropped.index()], 0);
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), running)
            .await
            .expect("the worker stops on shutdown")
            .unwrap();
    }
}
