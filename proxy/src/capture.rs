//! A capped copy of an answer (status, headers, body, timings), kept for pairing and diffing.
//! Past the cap the copy stops growing and is marked truncated; the answer itself is untouched.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};

/// A body copy that never holds more than its cap.
#[derive(Debug)]
pub struct BodyCapture {
    buf: BytesMut,
    cap: usize,
    total: u64,
}

impl BodyCapture {
    /// An empty capture that keeps at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        BodyCapture {
            buf: BytesMut::new(),
            cap,
            total: 0,
        }
    }

    /// Adds a chunk; bytes past the cap are counted but not kept.
    pub fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        let room = self.cap.saturating_sub(self.buf.len());
        if room > 0 {
            self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
    }

    /// Whether bytes were left out.
    pub fn truncated(&self) -> bool {
        self.total > self.buf.len() as u64
    }

    /// Finishes the capture.
    pub fn finish(self) -> CapturedBody {
        CapturedBody {
            truncated: self.truncated(),
            total_bytes: self.total,
            bytes: self.buf.freeze(),
        }
    }
}

/// A captured body.
#[derive(Debug, Clone, Default)]
pub struct CapturedBody {
    /// The kept bytes (at most the cap).
    pub bytes: Bytes,
    /// Whether the body was longer than what was kept.
    pub truncated: bool,
    /// The body's full length as seen.
    pub total_bytes: u64,
}

/// How an exchange with an upstream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A whole answer was received.
    Answered,
    /// No answer within the time allowed.
    Timeout,
    /// Connecting, sending or reading failed; the text says how.
    Error(String),
}

/// One side's answer to a request, as captured.
#[derive(Debug, Clone)]
pub struct CapturedResponse {
    /// How the exchange ended.
    pub outcome: Outcome,
    /// Status, when an answer header arrived.
    pub status: Option<StatusCode>,
    /// Answer headers, when they arrived.
    pub headers: HeaderMap,
    /// The body, capped.
    pub body: CapturedBody,
    /// Time to the answer's header.
    pub ttfb: Option<Duration>,
    /// Time to the end of the answer (or to the failure).
    pub total: Duration,
}

impl CapturedResponse {
    /// A failed exchange.
    pub fn failed(outcome: Outcome, total: Duration) -> Self {
        CapturedResponse {
            outcome,
            status: None,
            headers: HeaderMap::new(),
            body: CapturedBody::default(),
            ttfb: None,
            total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_stops_at_the_cap_and_counts_the_rest() {
        let mut c = BodyCapture::new(5);
        c.push(b"abc");
        assert!(!c.truncated());
        c.push(b"defgh");
        c.push(b"ij");
        let body = c.finish();
        assert_eq!(&body.bytes[..], b"abcde");
        assert!(body.truncated);
        assert_eq!(body.total_bytes, 10);
    }

    #[test]
    fn zero_cap_keeps_nothing() {
        let mut c = BodyCapture::new(0);
        c.push(b"x");
        let body = c.finish();
        assert!(body.bytes.is_empty());
        assert!(body.truncated);
    }
}
