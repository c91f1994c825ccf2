//! Pairs of answers to one mirrored request: a finished shadow answer waits (bounded) for its
//! primary's, and the pair goes to the bounded queue the comparison worker drains. Nothing
//! here waits on the request path; what cannot be paired or queued is dropped and counted.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::capture::{CapturedBody, CapturedResponse};
use crate::labels::PairResult;
use crate::routes::RouteId;
use crate::stats::Stats;

/// How long a finished shadow answer waits for its primary answer before it is given up.
pub const PAIRING_WINDOW: Duration = Duration::from_secs(120);

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

impl Pair {
    /// Whether a capture of the pair was let go because the byte budget was spent: the pair
    /// cannot be compared.
    fn over_budget(&self) -> bool {
        self.request_body.over_budget
            || self.primary.body.over_budget
            || self.shadow.body.over_budget
    }
}

/// Where finished shadow answers wait for their primary's, a bounded number at a time: each
/// holds a captured body.
pub struct PrimaryWait {
    waiting: Semaphore,
}

impl PrimaryWait {
    /// Room for `slots` answers waiting at once.
    pub fn new(slots: usize) -> Self {
        PrimaryWait {
            waiting: Semaphore::new(slots),
        }
    }

    /// The primary's captured answer: at once when the primary has finished (usually it has),
    /// otherwise after waiting for it up to [`PAIRING_WINDOW`] when a slot is free. `None`
    /// when it never came or no slot was.
    pub async fn primary(
        &self,
        mut primary: oneshot::Receiver<CapturedResponse>,
    ) -> Option<CapturedResponse> {
        match primary.try_recv() {
            Ok(answer) => Some(answer),
            Err(oneshot::error::TryRecvError::Closed) => None,
            Err(oneshot::error::TryRecvError::Empty) => {
                let _waiting = self.waiting.try_acquire().ok()?;
                tokio::time::timeout(PAIRING_WINDOW, primary)
                    .await
                    .ok()?
                    .ok()
            }
        }
    }
}

/// The sending end of the pair queue: never waits; when the queue is full the pair is dropped
/// and counted.
#[derive(Clone)]
pub struct PairQueue {
    tx: mpsc::Sender<Pair>,
    stats: Arc<Stats>,
}

impl PairQueue {
    /// Hands a pair to the worker, or counts it as dropped when the worker is behind or the
    /// pair cannot be compared (its byte budget was spent).
    pub fn submit(&self, pair: Pair) {
        let route = pair.route;
        if pair.over_budget() || self.tx.try_send(pair).is_err() {
            self.stats.pair_result(route, PairResult::Dropped);
        }
    }

    /// Counts a pair that could not be formed (the primary never finished).
    pub fn dropped(&self, route: RouteId) {
        self.stats.pair_result(route, PairResult::Dropped);
    }
}

/// The receiving end of the pair queue, for the comparison worker.
pub struct PairIntake {
    rx: mpsc::Receiver<Pair>,
}

impl PairIntake {
    /// The next pair; `None` once every sender is gone.
    pub async fn next(&mut self) -> Option<Pair> {
        self.rx.recv().await
    }

    /// A pair already queued, without waiting.
    pub fn queued(&mut self) -> Option<Pair> {
        self.rx.try_recv().ok()
    }
}

/// A queue of at most `capacity` pairs; what it drops is counted in `stats`.
pub fn pair_queue(capacity: usize, stats: Arc<Stats>) -> (PairQueue, PairIntake) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (PairQueue { tx, stats }, PairIntake { rx })
}

/// Answers and pairs for tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::capture::Outcome;
    use http::StatusCode;

    /// A whole answer with this status and body.
    pub fn answer(status: u16, body: &'static [u8]) -> CapturedResponse {
        CapturedResponse {
            outcome: Outcome::Answered,
            status: Some(StatusCode::from_u16(status).unwrap()),
            headers: HeaderMap::new(),
            body: CapturedBody::whole(bytes::Bytes::from_static(body)),
            trailers: HeaderMap::new(),
            ttfb: Some(Duration::from_millis(1)),
            total: Duration::from_millis(2),
        }
    }

    /// A pair on route 0 of these two answers.
    pub fn pair(p: CapturedResponse, s: CapturedResponse) -> Pair {
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
}

#[cfg(test)]
mod tests {
    use super::fixtures::{answer, pair};
    use super::*;

    fn stats() -> Arc<Stats> {
        let routes = crate::routes::RouteTable::new(&[]);
        Arc::new(Stats::new(&routes, 1, false))
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let stats = stats();
        let (queue, _intake) = pair_queue(1, stats.clone());
        queue.submit(pair(answer(200, b"a"), answer(200, b"a")));
        queue.submit(pair(answer(200, b"a"), answer(200, b"a")));
        assert_eq!(stats.pair_totals()[PairResult::Dropped.index()], 1);
    }

    #[tokio::test]
    async fn a_finished_primary_is_paired_and_a_gone_one_is_not() {
        let wait = PrimaryWait::new(1);
        let (tx, rx) = oneshot::channel();
        tx.send(answer(200, b"a")).unwrap();
        assert!(wait.primary(rx).await.is_some());
        let (tx, rx) = oneshot::channel::<CapturedResponse>();
        drop(tx);
        assert!(wait.primary(rx).await.is_none());
        // No slot free: the answer is not kept waiting.
        let full = PrimaryWait::new(0);
        let (_tx, rx) = oneshot::channel::<CapturedResponse>();
        assert!(full.primary(rx).await.is_none());
    }
}
