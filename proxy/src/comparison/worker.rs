//! The worker that takes pairs off the request path: it drains the bounded pair queue, records
//! each pair's latency delta and compares its two answers. It runs as a Pingora background
//! service.

use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use tokio::sync::Mutex;

use super::Comparator;
use crate::capture::Outcome;
use crate::mirror::{Pair, PairIntake};
use crate::stats::Stats;

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
    use crate::mirror::pair_queue;
    use crate::routes::RouteTable;

    #[test]
    fn pairs_are_compared_and_the_delta_recorded() {
        let routes = Arc::new(RouteTable::new(&[]));
        let stats = Arc::new(Stats::new(&routes, 1, false));
        let budget = ByteBudget::new(1 << 20);
        let comparator = Arc::new(
            Comparator::new(&DiffConfig::default(), routes, stats.clone(), budget).unwrap(),
        );
        let (_queue, intake) = pair_queue(4, stats.clone());
        let worker = PairWorker::new(intake, stats.clone(), comparator);
        worker.handle(&pair(answer(200, b"a"), answer(200, b"a")));
        worker.handle(&pair(answer(200, b"a"), answer(404, b"a")));
        let totals = stats.pair_totals();
        assert_eq!(totals[PairResult::Identical.index()], 1);
        assert_eq!(totals[PairResult::Different.index()], 1);
        assert_eq!(stats.delta(0).count(), 2);
    }
}
