//! The request path's half of a recorded request: capped copies of the request body and of
//! the primary's answer as they pass, taken from the queue's byte budget, and the record
//! offered to the writer when the exchange ends. Nothing here waits.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::{PendingAnswer, PendingRecord, Recorder, Scope};
use crate::budget::{ByteBudget, Reservation};
use crate::capture::BodyCapture;
use crate::routes::RouteId;

/// What the request path copied when the request was admitted.
pub(super) struct Started {
    pub at_us: u64,
    pub arrival: Instant,
    pub route: RouteId,
    pub method: http::Method,
    pub uri: String,
    pub headers: HeaderMap,
    pub reservation: Reservation,
}

/// The answer as it comes.
struct AnswerCapture {
    status: StatusCode,
    headers: HeaderMap,
    body: BodyCapture,
    body_len: u64,
    /// When the answer's last byte passed.
    ended: Option<Instant>,
}

/// What a recorded request carries from phase to phase on the request path.
pub struct RecordingHandle {
    started: Started,
    body: BodyCapture,
    /// Request body bytes seen so far (a retry sends the body again from its start).
    body_len: u64,
    /// Body bytes seen in the current upstream attempt.
    attempt_offset: u64,
    /// Whether answers are kept, and how much of each body.
    answers: bool,
    max_response_bytes: usize,
    budget: Arc<ByteBudget>,
    answer: Option<AnswerCapture>,
    /// The answer's headers did not fit in the queue's byte bound.
    over_budget: bool,
}

impl RecordingHandle {
    pub(super) fn new(started: Started, scope: &Scope, budget: &Arc<ByteBudget>) -> Self {
        RecordingHandle {
            started,
            body: BodyCapture::new(scope.max_body_bytes, budget),
            body_len: 0,
            attempt_offset: 0,
            answers: scope.answers,
            max_response_bytes: scope.max_response_bytes,
            budget: budget.clone(),
            answer: None,
            over_budget: false,
        }
    }

    /// A new attempt at the upstream begins: Pingora sends the body again from its start.
    pub fn new_attempt(&mut self) {
        self.attempt_offset = 0;
    }

    /// A piece of the request body on its way upstream; only bytes not seen before are kept.
    pub fn request_body(&mut self, chunk: Option<&Bytes>) {
        let Some(chunk) = chunk else {
            return;
        };
        let offset = self.attempt_offset;
        self.attempt_offset += chunk.len() as u64;
        if self.attempt_offset > self.body_len {
            let skip = self.body_len.saturating_sub(offset) as usize;
            self.body.push(&chunk[skip..]);
            self.body_len = self.attempt_offset;
        }
    }

    /// The answer's final header (an earlier attempt's answer, if any, is replaced).
    pub fn response_header(&mut self, status: StatusCode, headers: &HeaderMap) {
        if !self.answers {
            return;
        }
        if !self.started.reservation.grow(super::header_bytes(headers)) {
            self.over_budget = true;
        }
        self.answer = Some(AnswerCapture {
            status,
            headers: headers.clone(),
            body: BodyCapture::new(self.max_response_bytes, &self.budget),
            body_len: 0,
            ended: None,
        });
    }

    /// A piece of the answer's body; `end` when it is the last.
    pub fn response_body(&mut self, chunk: Option<&Bytes>, end: bool) {
        let Some(answer) = self.answer.as_mut() else {
            return;
        };
        if let Some(chunk) = chunk {
            answer.body.push(chunk);
            answer.body_len += chunk.len() as u64;
        }
        if end {
            answer.ended = Some(Instant::now());
        }
    }

    /// The exchange has ended: the record goes to the writer's queue. `primary_answered` is
    /// false when the answer did not come from the primary (the canary's candidate served it,
    /// or the exchange failed), and then no answer is recorded.
    pub fn finish(self, recorder: &Recorder, primary_answered: bool) {
        let RecordingHandle {
            started,
            body,
            body_len,
            answer,
            over_budget,
            ..
        } = self;
        let answer = answer.filter(|_| primary_answered).map(|a| PendingAnswer {
            status: a.status.as_u16(),
            headers: a.headers,
            body_len: a.body_len,
            latency: a
                .ended
                .unwrap_or_else(Instant::now)
                .saturating_duration_since(started.arrival),
            body: a.body.finish(),
        });
        recorder.submit(
            PendingRecord {
                at_us: started.at_us,
                route: started.route,
                method: started.method,
                uri: started.uri,
                headers: started.headers,
                body: body.finish(),
                body_len,
                answer,
                _reservation: started.reservation,
            },
            over_budget,
        );
    }
}
