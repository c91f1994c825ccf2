//! A capped copy of an answer (status, headers, body, timings), kept for pairing and diffing.
//! Past the cap the copy stops growing and is marked truncated; the answer itself is untouched.
//! The kept bytes are taken from the mirror's [`ByteBudget`]; when it is spent, the copy is let
//! go and marked so, and its pair is dropped.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};

use crate::budget::{ByteBudget, Reservation};

/// A body copy that never holds more than its cap, nor more than its budget can spare.
#[derive(Debug)]
pub struct BodyCapture {
    buf: BytesMut,
    cap: usize,
    total: u64,
    reservation: Reservation,
    over_budget: bool,
}

impl BodyCapture {
    /// An empty capture that keeps at most `cap` bytes, taken from `budget`.
    pub fn new(cap: usize, budget: &Arc<ByteBudget>) -> Self {
        BodyCapture {
            reservation: budget.reservation(),
            ..BodyCapture::unbudgeted(cap)
        }
    }

    /// An empty capture that keeps at most `cap` bytes, outside any budget.
    pub fn unbudgeted(cap: usize) -> Self {
        BodyCapture {
            buf: BytesMut::new(),
            cap,
            total: 0,
            reservation: Reservation::default(),
            over_budget: false,
        }
    }

    /// Adds a chunk; bytes past the cap are counted but not kept.
    pub fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        let room = self.cap.saturating_sub(self.buf.len());
        if room > 0 {
            let kept = &chunk[..chunk.len().min(room)];
            if self.reservation.grow(kept.len()) {
                self.buf.extend_from_slice(kept);
            } else {
                self.over_budget = true;
                self.stop();
            }
        }
    }

    /// Lets go of what was kept and keeps nothing more (the copy is no longer wanted).
    pub fn stop(&mut self) {
        self.cap = 0;
        self.buf = BytesMut::new();
        self.reservation = Reservation::default();
    }

    /// Whether bytes were left out.
    pub fn truncated(&self) -> bool {
        self.total > self.buf.len() as u64
    }

    /// Finishes the capture.
    pub fn finish(self) -> CapturedBody {
        CapturedBody {
            truncated: self.truncated(),
            over_budget: self.over_budget,
            bytes: self.buf.freeze(),
            _reservation: (self.reservation.bytes() > 0).then(|| Arc::new(self.reservation)),
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
    /// Whether the capture was let go because the mirror's byte budget was spent.
    pub over_budget: bool,
    /// The budget the kept bytes hold, given back when the last copy of this body goes (held
    /// for its `Drop`).
    _reservation: Option<Arc<Reservation>>,
}

impl CapturedBody {
    /// A body kept whole, outside any budget.
    #[cfg(test)]
    pub fn whole(bytes: Bytes) -> Self {
        CapturedBody {
            bytes,
            ..CapturedBody::default()
        }
    }
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
    /// Trailers, when the answer had any, as kept by [`kept_trailers`].
    pub trailers: HeaderMap,
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
            trailers: HeaderMap::new(),
            ttfb: None,
            total,
        }
    }
}

/// Most trailer fields kept from one answer.
pub const MAX_TRAILERS: usize = 32;

/// Most trailer bytes (names and values) kept from one answer.
pub const MAX_TRAILER_BYTES: usize = 8 * 1024;

/// The trailers kept from an answer: the first fields, up to [`MAX_TRAILERS`] of them and
/// [`MAX_TRAILER_BYTES`] in all; the rest are left out of the copy (the answer keeps them).
pub fn kept_trailers(trailers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    let mut bytes = 0;
    for (name, value) in trailers.iter().take(MAX_TRAILERS) {
        bytes += name.as_str().len() + value.len();
        if bytes > MAX_TRAILER_BYTES {
            break;
        }
        kept.append(name.clone(), value.clone());
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_are_kept_up_to_their_bounds() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        assert_eq!(kept_trailers(&trailers), trailers);
        for n in 0..(MAX_TRAILERS * 2) {
            let name = http::HeaderName::try_from(format!("x-{n}")).unwrap();
            trailers.insert(name, http::HeaderValue::from_static("v"));
        }
        assert_eq!(kept_trailers(&trailers).len(), MAX_TRAILERS);
        let mut large = HeaderMap::new();
        let value = http::HeaderValue::try_from("v".repeat(MAX_TRAILER_BYTES / 2)).unwrap();
        for name in ["a", "b", "c"] {
            large.insert(name, value.clone());
        }
        assert_eq!(kept_trailers(&large).len(), 1);
    }

    #[test]
    fn capture_stops_at_the_cap_and_counts_the_rest() {
        let mut c = BodyCapture::unbudgeted(5);
        c.push(b"abc");
        assert!(!c.truncated());
        c.push(b"defgh");
        c.push(b"ij");
        assert_eq!(c.total, 10);
        let body = c.finish();
        assert_eq!(&body.bytes[..], b"abcde");
        assert!(body.truncated);
    }

    #[test]
    fn zero_cap_keeps_nothing() {
        let mut c = BodyCapture::unbudgeted(0);
        c.push(b"x");
        let body = c.finish();
        assert!(body.bytes.is_empty());
        assert!(body.truncated);
    }

    #[test]
    fn captures_hold_their_bytes_in_the_budget_until_dropped() {
        let budget = ByteBudget::new(10);
        let mut a = BodyCapture::new(8, &budget);
        a.push(b"abcdef");
        let mut b = BodyCapture::new(8, &budget);
        b.push(b"ghij");
        assert_eq!(budget.used(), 10);
        // One byte more than the budget holds: the capture lets go of everything it kept.
        b.push(b"k");
        assert_eq!(budget.used(), 6);
        let b = b.finish();
        assert!(b.over_budget && b.bytes.is_empty());
        let a = a.finish();
        assert!(!a.over_budget);
        let copy = a.clone();
        drop(a);
        assert_eq!(budget.used(), 6);
        drop(copy);
        assert_eq!(budget.used(), 0);
        let mut stopped = BodyCapture::new(8, &budget);
        stopped.push(b"abc");
        stopped.stop();
        stopped.push(b"def");
        assert_eq!(budget.used(), 0);
        assert!(stopped.finish().bytes.is_empty());
    }
}
