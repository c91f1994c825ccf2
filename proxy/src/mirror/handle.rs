//! The request path's half of a mirrored request: it feeds the body tee as the body passes to
//! the primary, keeps a capped copy of the primary's answer, and hands that copy to the shadow
//! task when the exchange ends. Nothing here waits.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::sync::oneshot;

use super::tee::TeeSender;
use crate::capture::{BodyCapture, CapturedResponse, Outcome};

/// What a mirrored request carries from phase to phase on the request path.
pub struct MirrorHandle {
    body: Option<TeeSender>,
    primary: oneshot::Sender<CapturedResponse>,
    status: Option<StatusCode>,
    headers: HeaderMap,
    trailers: HeaderMap,
    capture: BodyCapture,
    /// Body bytes seen in the current upstream attempt; a retry replays from zero.
    attempt_offset: u64,
}

impl MirrorHandle {
    /// The handle of a copy whose body (if any) goes through `body` and whose primary answer,
    /// kept in `capture`, goes to `primary`.
    pub(super) fn new(
        body: Option<TeeSender>,
        primary: oneshot::Sender<CapturedResponse>,
        capture: BodyCapture,
    ) -> Self {
        MirrorHandle {
            body,
            primary,
            status: None,
            headers: HeaderMap::new(),
            trailers: HeaderMap::new(),
            capture,
            attempt_offset: 0,
        }
    }

    /// A new attempt at the primary begins: Pingora sends the body again from its start.
    pub fn new_attempt(&mut self) {
        self.attempt_offset = 0;
    }

    /// A piece of the request body on its way to the primary; the shadow gets what it has not
    /// had yet. Once the copy is complete or given up, the tee is let go.
    pub fn request_body(&mut self, chunk: Option<&Bytes>, end: bool) {
        let offset = self.attempt_offset;
        self.attempt_offset += chunk.map_or(0, |b| b.len() as u64);
        if let Some(feed) = self.body.as_mut() {
            if !feed.feed(offset, chunk, end) || feed.finished() {
                self.body = None;
            }
        }
    }

    /// The primary's final answer header.
    pub fn response_header(&mut self, status: StatusCode, headers: &HeaderMap) {
        self.status = Some(status);
        self.headers = headers.clone();
    }

    /// The primary's answer trailers (gRPC's `grpc-status` travels in them).
    pub fn response_trailers(&mut self, trailers: &HeaderMap) {
        self.trailers = crate::capture::kept_trailers(trailers);
    }

    /// A piece of the primary's answer body.
    pub fn response_body(&mut self, chunk: &[u8]) {
        if self.primary.is_closed() {
            // The shadow side has given up: nothing will be paired, so keep nothing.
            self.capture.stop();
        } else {
            self.capture.push(chunk);
        }
    }

    /// The exchange with the primary has ended: what it answered goes to the shadow task.
    pub fn finish(self, outcome: Outcome, ttfb: Option<Duration>, total: Duration) {
        let MirrorHandle {
            body,
            primary,
            status,
            headers,
            trailers,
            capture,
            ..
        } = self;
        // A body not complete by now never will be: the copy is given up (and counted).
        drop(body);
        // The shadow task may have ended already; then there is nothing to pair.
        let _ = primary.send(CapturedResponse {
            outcome,
            status,
            headers,
            body: capture.finish(),
            trailers,
            ttfb,
            total,
        });
    }
}
