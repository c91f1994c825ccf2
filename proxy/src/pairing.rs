//! Pairs of answers to one mirrored request, and the bounded worker that takes them off the
//! request path: it records the paired latency delta and compares the two answers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use tokio::sync::{mpsc, Mutex};

use http::HeaderMap;

use crate::capture::{CapturedBody, CapturedResponse, Outcome};
use crate::comparison::Comparator;
use crate::labels::PairResult;
use crate::routes::RouteId;
use crate::stats::Stats;

/// Both answers to one mirrored request.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The route the request matched.
    pub route: RouteId,
    /// The id both sides saw in `x-request-id`.
    pub request_id: String,
    /// The request's method.
    pub method: http::Method,
    /// The request's path and query.
    pub uri: String,
    /// The request's headers as the shadow got them.
    pub request_headers: HeaderMap,
    /// The request's body, capped.
    pub request_body: CapturedBody,
    /// What the primary answered (the client got this).
    pub primary: CapturedResponse,
    /// What the shadow answered.
    pub shadow: CapturedResponse,
    /// A second legacy answer to the same request (secondary, or the primary asked again),
    /// when one was taken to learn noise.
    pub reference: Option<CapturedResponse>,
}

/// The sending end of the pair queue: never waits; when the queue is full the pair is dropped
/// and counted.
#[derive(Clone)]
pub struct PairQueue {
    tx: mpsc::Sender<Pair>,
    stats: Arc<Stats>,
}

impl PairQueue {
    /// Hands a pair to the worker, or counts it as dropped when the worker is behind.
    pub fn submit(&self, pair: Pair) {
        let route = pair.route;
        if self.tx.try_send(pair).is_err() {
            self.stats.pair_result(route, PairResult::Dropped);
        }
    }

    /// Counts a pair that could not be formed (the primary never finished).
    pub fn dropped(&self, route: RouteId) {
        self.stats.pair_result(route, PairResult::Dropped);
    }
}

/// The worker that consumes pairs; it runs as a Pingora background service.
pub struct PairWorker {
    rx: Mutex<Option<mpsc::Receiver<Pair>>>,
    stats: Arc<Stats>,
    comparator: Arc<Comparator>,
}

/// A queue of at most `capacity` pairs and the worker that drains it into `comparator`.
pub fn pair_queue(
    capacity: usize,
    stats: Arc<Stats>,
    comparator: Arc<Comparator>,
) -> (PairQueue, PairWorker) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        PairQueue {
            tx,
            stats: stats.clone(),
        },
        PairWorker {
            rx: Mutex::new(Some(rx)),
            stats,
            comparator,
        },
    )
}

impl PairWorker {
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
        let Some(mut rx) = self.rx.lock().await.take() else {
            return;
        };
        loop {
            tokio::select! {
                pair = rx.recv() => match pair {
                    Some(pair) => self.handle(&pair),
                    None => return,
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// How long a finished shadow answer waits for its primary answer before it is given up.
pub const PAIRING_WINDOW: Duration = Duration::from_secs(120);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comparison::config::DiffConfig;
    use crate::labels::PairResult;
    use http::StatusCode;

    fn answer(status: u16, body: &'static [u8]) -> CapturedResponse {
        CapturedResponse {
            outcome: Outcome::Answered,
            status: Some(StatusCode::from_u16(status).unwrap()),
            headers: HeaderMap::new(),
            body: CapturedBody::whole(bytes::Bytes::from_static(body)),
            ttfb: Some(Duration::from_millis(1)),
            total: Duration::from_millis(2),
        }
    }

    fn pair(p: CapturedResponse, s: CapturedResponse) -> Pair {
        Pair {
            route: 0,
            request_id: "r".into(),
            method: http::Method::GET,
            uri: "/".into(),
            request_headers: HeaderMap::new(),
            request_body: CapturedBody::default(),
            primary: p,
            shadow: s,
            reference: None,
        }
    }

    fn worker(capacity: usize) -> (Arc<Stats>, PairQueue, PairWorker) {
        let routes = Arc::new(crate::routes::RouteTable::new(&[]));
        let stats = Arc::new(Stats::new(&routes, 1, false));
        let budget = crate::budget::ByteBudget::new(1 << 20);
        let comparator = Arc::new(
            Comparator::new(&DiffConfig::default(), routes, stats.clone(), budget).unwrap(),
        );
        let (queue, worker) = pair_queue(capacity, stats.clone(), comparator);
        (stats, queue, worker)
    }

    #[test]
    fn pairs_are_compared_and_the_delta_recorded() {
        let (stats, _queue, worker) = worker(4);
        worker.handle(&pair(answer(200, b"a"), answer(200, b"a")));
        worker.handle(&pair(answer(200, b"a"), answer(404, b"a")));
        let totals = stats.pair_totals();
        assert_eq!(totals[PairResult::Identical.index()], 1);
        assert_eq!(totals[PairResult::Different.index()], 1);
        assert_eq!(stats.delta(0).count(), 2);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let (stats, queue, _worker) = worker(1);
        queue.submit(pair(answer(200, b"a"), answer(200, b"a")));
        queue.submit(pair(answer(200, b"a"), answer(200, b"a")));
        assert_eq!(stats.pair_totals()[PairResult::Dropped.index()], 1);
    }
}
