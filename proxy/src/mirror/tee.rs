//! The body tee: the request path hands each chunk of a mirrored request's body to its shadow
//! task as it passes to the primary, never waiting. The tee owns both halves: the
//! [`TeeSender`] the request path feeds, which gives the copy up (counted) when the body
//! outgrows the mirror's limit or the shadow reads slower than the client sends, and the
//! [`TeeReceiver`] the shadow task reads, which keeps a capped copy of the body for the pair.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::capture::{BodyCapture, CapturedBody};
use crate::labels::MirrorOutcome;
use crate::routes::RouteId;
use crate::stats::Stats;

/// Body chunks buffered between the request path and a shadow task; when the shadow reads
/// slower than the client sends, the copy is abandoned rather than buffered further.
const BODY_CHANNEL_CHUNKS: usize = 64;

/// A piece of a request body on its way to the shadow.
#[derive(Debug)]
enum BodyMessage {
    /// More bytes.
    Data(Bytes),
    /// The body is complete.
    End,
}

/// A tee for the body of a request on `route`: at most `limit` bytes go to the shadow, and
/// `copy` keeps what the pair reports of it.
pub fn body_tee(
    route: RouteId,
    limit: u64,
    stats: Arc<Stats>,
    copy: BodyCapture,
) -> (TeeSender, TeeReceiver) {
    let (tx, rx) = mpsc::channel(BODY_CHANNEL_CHUNKS);
    let sender = TeeSender {
        tx,
        forwarded: 0,
        limit,
        route,
        stats,
        finished: false,
    };
    (sender, TeeReceiver { rx, copy })
}

/// The request path's half: passes chunks on without waiting.
pub struct TeeSender {
    tx: mpsc::Sender<BodyMessage>,
    forwarded: u64,
    limit: u64,
    route: RouteId,
    stats: Arc<Stats>,
    finished: bool,
}

impl TeeSender {
    /// Passes on the part of `chunk` (at `offset` in the body) the shadow has not had yet.
    /// Returns false when the copy had to be given up.
    pub fn feed(&mut self, offset: u64, chunk: Option<&Bytes>, end: bool) -> bool {
        if let Some(chunk) = chunk {
            let chunk_end = offset + chunk.len() as u64;
            if chunk_end > self.forwarded {
                let skip = self.forwarded.saturating_sub(offset) as usize;
                let fresh = chunk.slice(skip..);
                if self.forwarded + fresh.len() as u64 > self.limit {
                    return self.give_up(MirrorOutcome::BodyTooLarge);
                }
                self.forwarded += fresh.len() as u64;
                if !self.send(BodyMessage::Data(fresh)) {
                    return false;
                }
            }
        }
        if end {
            if !self.send(BodyMessage::End) {
                return false;
            }
            self.finished = true;
        }
        true
    }

    /// Whether the whole body has been passed on (or the copy given up): nothing more goes.
    pub fn finished(&self) -> bool {
        self.finished
    }

    fn send(&mut self, message: BodyMessage) -> bool {
        match self.tx.try_send(message) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => self.give_up(MirrorOutcome::DroppedInFlight),
            // The shadow task has ended (timed out or failed) and counted why.
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.finished = true;
                false
            }
        }
    }

    fn give_up(&mut self, outcome: MirrorOutcome) -> bool {
        self.finished = true;
        self.stats.mirror_outcome(self.route, outcome);
        false
    }
}

impl Drop for TeeSender {
    fn drop(&mut self) {
        // The client went away before its body was complete: the copy is incomplete too.
        if !self.finished {
            self.stats
                .mirror_outcome(self.route, MirrorOutcome::DroppedInFlight);
        }
    }
}

/// The body ended without being complete: the request path gave the copy up, and counted why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abandoned;

/// The shadow task's half: the chunks in order, each kept in the body's capped copy.
pub struct TeeReceiver {
    rx: mpsc::Receiver<BodyMessage>,
    copy: BodyCapture,
}

impl TeeReceiver {
    /// The next chunk; `None` once the body is complete.
    pub async fn next(&mut self) -> Result<Option<Bytes>, Abandoned> {
        match self.rx.recv().await {
            Some(BodyMessage::Data(chunk)) => {
                self.copy.push(&chunk);
                Ok(Some(chunk))
            }
            Some(BodyMessage::End) => Ok(None),
            None => Err(Abandoned),
        }
    }

    /// The copy of what was read.
    pub fn finish(self) -> CapturedBody {
        self.copy.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::RouteTable;

    fn tee(limit: u64) -> (Arc<Stats>, TeeSender, TeeReceiver) {
        let routes = RouteTable::new(&[]);
        let stats = Arc::new(Stats::new(&routes, 1, false));
        let (sender, receiver) = body_tee(0, limit, stats.clone(), BodyCapture::unbudgeted(64));
        (stats, sender, receiver)
    }

    fn outcome(stats: &Stats, outcome: MirrorOutcome) -> u64 {
        stats.mirror_totals()[outcome.index()]
    }

    #[tokio::test]
    async fn a_replayed_body_reaches_the_shadow_once() {
        let (stats, mut sender, mut receiver) = tee(1 << 20);
        assert!(sender.feed(0, Some(&Bytes::from_static(b"abc")), false));
        // A retry replays the body from its start: only the bytes not sent yet go on.
        assert!(sender.feed(0, Some(&Bytes::from_static(b"abcdef")), true));
        assert!(sender.finished());
        assert_eq!(receiver.next().await, Ok(Some(Bytes::from_static(b"abc"))));
        assert_eq!(receiver.next().await, Ok(Some(Bytes::from_static(b"def"))));
        assert_eq!(receiver.next().await, Ok(None));
        drop(sender);
        assert_eq!(&receiver.finish().bytes[..], b"abcdef");
        assert_eq!(outcome(&stats, MirrorOutcome::DroppedInFlight), 0);
    }

    #[tokio::test]
    async fn a_body_past_the_limit_is_given_up_and_counted_once() {
        let (stats, mut sender, mut receiver) = tee(4);
        assert!(!sender.feed(0, Some(&Bytes::from_static(b"abcde")), false));
        assert!(sender.finished());
        drop(sender);
        assert_eq!(receiver.next().await, Err(Abandoned));
        assert_eq!(outcome(&stats, MirrorOutcome::BodyTooLarge), 1);
        assert_eq!(outcome(&stats, MirrorOutcome::DroppedInFlight), 0);
    }

    #[tokio::test]
    async fn a_client_gone_mid_body_counts_the_copy_dropped() {
        let (stats, mut sender, mut receiver) = tee(1 << 20);
        assert!(sender.feed(0, Some(&Bytes::from_static(b"ab")), false));
        drop(sender);
        assert_eq!(receiver.next().await, Ok(Some(Bytes::from_static(b"ab"))));
        assert_eq!(receiver.next().await, Err(Abandoned));
        assert_eq!(outcome(&stats, MirrorOutcome::DroppedInFlight), 1);
    }

    #[tokio::test]
    async fn a_shadow_that_reads_too_slowly_loses_the_copy() {
        let (stats, mut sender, _receiver) = tee(1 << 20);
        let chunk = Bytes::from_static(b"x");
        let fed = (0..=BODY_CHANNEL_CHUNKS as u64)
            .take_while(|&i| sender.feed(i, Some(&chunk), false))
            .count();
        assert_eq!(fed, BODY_CHANNEL_CHUNKS);
        assert_eq!(outcome(&stats, MirrorOutcome::DroppedInFlight), 1);
        drop(sender);
        assert_eq!(outcome(&stats, MirrorOutcome::DroppedInFlight), 1);
    }
}
