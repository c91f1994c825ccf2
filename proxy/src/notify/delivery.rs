//! Getting events to one webhook: a bounded queue in front of it, one attempt at a time with
//! a timeout, retries with exponential backoff and jitter up to a bounded number of attempts,
//! and every event counted as `sent`, `failed` or `dropped`.

use std::sync::Arc;
use std::time::Duration;

use pingora_core::server::ShutdownWatch;
use prometheus::{IntCounter, IntCounterVec};
use tokio::sync::mpsc;

use super::config::{redacted, EventKind, NotifyConfig, Webhook};
use super::event::Event;
use crate::ratelimit::RateLimitedLog;

/// Most of an error answer's body kept for the log.
const MAX_ERROR_BODY: usize = 512;

/// What became of a webhook's events: `twinpeak_notify_total{webhook, outcome}`.
#[derive(Clone)]
pub struct Outcomes {
    sent: IntCounter,
    failed: IntCounter,
    dropped: IntCounter,
}

impl Outcomes {
    /// The counters of `webhook`, bound once.
    pub fn new(family: &IntCounterVec, webhook: &str) -> Self {
        let bind = |outcome: &str| family.with_label_values(&[webhook, outcome]);
        Outcomes {
            sent: bind("sent"),
            failed: bind("failed"),
            dropped: bind("dropped"),
        }
    }
}

/// The producers' end of a webhook's queue.
pub struct Outbox {
    events: Vec<EventKind>,
    queue: mpsc::Sender<Arc<Event>>,
    outcomes: Outcomes,
}

impl Outbox {
    /// Whether the webhook is sent events of `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.events.contains(&kind)
    }

    /// Queues `event` if the webhook wants it; never waits: a full queue drops it, counted.
    pub fn offer(&self, event: &Arc<Event>) {
        if self.wants(event.kind) && self.queue.try_send(event.clone()).is_err() {
            self.outcomes.dropped.inc();
        }
    }
}

/// When to try again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts at each event, the first one included.
    pub max_attempts: u32,
    /// Wait before the first retry.
    pub backoff: Duration,
    /// Longest wait.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The policy of a configuration.
    pub fn of(config: &NotifyConfig) -> Self {
        RetryPolicy {
            max_attempts: config.max_attempts,
            backoff: config.backoff.0,
            max_backoff: config.max_backoff.0,
        }
    }

    /// The wait before retry number `retry` (1 for the first): the backoff doubled each
    /// time and capped, then half of it fixed and half at random ("equal jitter"), so
    /// replicas that failed together do not retry together. A `Retry-After` the webhook
    /// asked for is honoured up to the cap.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let doubled = self
            .backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        let capped = doubled.min(self.max_backoff);
        let half = capped / 2;
        let jittered = half + half.mul_f64(rand::random::<f64>());
        retry_after
            .map_or(jittered, |asked| jittered.max(asked))
            .min(self.max_backoff)
    }
}

/// Why an attempt failed, and whether another may succeed.
#[derive(Debug)]
enum Failure {
    /// The webhook could not be reached, timed out, or asked to be tried later (408, 425,
    /// 429, 5xx).
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// It refused the event (another 4xx, or a redirect): trying again will not help.
    Permanent(String),
}

/// Delivers one webhook's events, one at a time.
pub struct Courier {
    webhook: Webhook,
    client: reqwest::Client,
    retry: RetryPolicy,
    outcomes: Outcomes,
    log: RateLimitedLog,
}

/// A webhook's queue: the producers' end, and the courier's, which runs once the service has
/// its HTTP client ([`Courier::run`]).
pub fn queue(
    webhook: Webhook,
    capacity: usize,
    retry: RetryPolicy,
    outcomes: Outcomes,
) -> (Outbox, Mailbag) {
    let (sender, receiver) = mpsc::channel(capacity);
    let outbox = Outbox {
        events: webhook.events.clone(),
        queue: sender,
        outcomes: outcomes.clone(),
    };
    let mailbag = Mailbag {
        webhook,
        retry,
        outcomes,
        queue: receiver,
    };
    (outbox, mailbag)
}

/// A webhook's queued events and what delivering them takes, until a courier takes them.
pub struct Mailbag {
    webhook: Webhook,
    retry: RetryPolicy,
    outcomes: Outcomes,
    queue: mpsc::Receiver<Arc<Event>>,
}

impl Mailbag {
    /// The courier that delivers these events with `client` (one shared by every webhook).
    pub fn courier(self, client: reqwest::Client) -> (Courier, mpsc::Receiver<Arc<Event>>) {
        let courier = Courier {
            webhook: self.webhook,
            client,
            retry: self.retry,
            outcomes: self.outcomes,
            log: RateLimitedLog::new(Duration::from_secs(10)),
        };
        (courier, self.queue)
    }

    /// Counts every queued event as dropped: there is no way to deliver them.
    pub fn discard(mut self) {
        self.queue.close();
        while self.queue.try_recv().is_ok() {
            self.outcomes.dropped.inc();
        }
    }
}

impl Courier {
    /// Delivers queued events until shutdown; what is still queued then is dropped, counted.
    pub async fn run(self, mut queue: mpsc::Receiver<Arc<Event>>, mut shutdown: ShutdownWatch) {
        loop {
            let event = tokio::select! {
                event = queue.recv() => match event {
                    Some(event) => event,
                    None => return,
                },
                _ = shutdown.changed() => break,
            };
            tokio::select! {
                _ = self.deliver(&event) => {}
                _ = shutdown.changed() => {
                    self.outcomes.dropped.inc();
                    break;
                }
            }
        }
        queue.close();
        while queue.try_recv().is_ok() {
            self.outcomes.dropped.inc();
        }
    }

    /// Tries `event` until it is taken, refused, or out of attempts.
    async fn deliver(&self, event: &Event) {
        let body = event.body(self.webhook.format);
        for attempt in 1..=self.retry.max_attempts {
            let failure = match self.attempt(&body).await {
                Ok(()) => {
                    self.outcomes.sent.inc();
                    return;
                }
                Err(failure) => failure,
            };
            let (reason, retry_after, last) = match failure {
                Failure::Permanent(reason) => (reason, None, true),
                Failure::Retryable {
                    reason,
                    retry_after,
                } => (reason, retry_after, attempt == self.retry.max_attempts),
            };
            if last {
                self.outcomes.failed.inc();
                self.log.warn(|| {
                    format!(
                        "{:?}: gave up on a {} event after {attempt} attempt(s): {reason}",
                        self.webhook,
                        event.kind.as_str()
                    )
                });
                return;
            }
            let wait = self.retry.delay(attempt, retry_after);
            log::debug!(
                "{:?}: attempt {attempt} failed ({reason}); next in {wait:?}",
                self.webhook
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One POST of `body`.
    async fn attempt(&self, body: &[u8]) -> Result<(), Failure> {
        let sent = self
            .client
            .post(self.webhook.url.clone())
            .headers(self.webhook.headers.clone())
            .body(body.to_vec())
            .send()
            .await;
        let mut answer = sent.map_err(|e| Failure::Retryable {
            reason: describe(&e, &self.webhook.url),
            retry_after: None,
        })?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = answer
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut text = Vec::new();
        while text.len() < MAX_ERROR_BODY {
            match answer.chunk().await {
                Ok(Some(chunk)) => text.extend_from_slice(&chunk),
                _ => break,
            }
        }
        text.truncate(MAX_ERROR_BODY);
        let reason = format!(
            "answered {status}: {}",
            String::from_utf8_lossy(&text).trim()
        );
        let retryable = status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429);
        if retryable {
            Err(Failure::Retryable {
                reason,
                retry_after,
            })
        } else {
            Err(Failure::Permanent(reason))
        }
    }
}

/// A client error in words, the URL shown without its path (it may be the credential).
fn describe(error: &reqwest::Error, url: &reqwest::Url) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    let target = redacted(url);
    if cause.is_empty() {
        format!("{what} ({target})")
    } else {
        format!("{what} ({target}): {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_with_jitter_within_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        for _ in 0..100 {
            let first = policy.delay(1, None);
            assert!((50..=100).contains(&first.as_millis()), "{first:?}");
            let third = policy.delay(3, None);
            assert!((200..=400).contains(&third.as_millis()), "{third:?}");
            let late = policy.delay(30, None);
            assert!((500..=1000).contains(&late.as_millis()), "{late:?}");
            // A Retry-After is honoured, up to the cap.
            assert!(
                policy.delay(1, Some(Duration::from_millis(700))) >= Duration::from_millis(700)
            );
            assert_eq!(
                policy.delay(1, Some(Duration::from_secs(3600))),
                Duration::from_secs(1)
            );
        }
        let draws: std::collections::HashSet<u128> =
            (0..20).map(|_| policy.delay(2, None).as_micros()).collect();
        assert!(draws.len() > 1, "no jitter: {draws:?}");
    }
}
