//! Telling people when it matters: canary changes (advance, rollback, promote, pause, resume,
//! a weight set by hand, a run of failing verdicts starting) and new real differences (a
//! field differing for real on a route for the first time, a route's diff rate crossing a
//! threshold) are posted to the configured webhooks, as a generic JSON event or a
//! Slack-compatible message ([`event`]).
//!
//! Nothing here is on the request path. The canary hands its changes through a [`Hook`] and
//! a watcher looks at the comparison results once a second ([`watch`]); either gives the
//! [`Notifier`] an event, which it offers to each webhook's bounded queue without waiting
//! (a full queue drops it, counted). One courier per webhook, on the notifier's background
//! service, posts the events in turn, retrying with exponential backoff and jitter up to
//! `max_attempts` ([`delivery`]). `twinpeak_notify_total{webhook, outcome}` counts each event
//! once as `sent`, `failed` (refused, or out of attempts) or `dropped` (no room in the queue,
//! or still queued at shutdown).

mod config;
mod delivery;
mod event;
mod hook;
mod watch;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use prometheus::{IntCounterVec, Opts};
use tokio::task::JoinSet;
use twinpeak_core::sync::lock;

pub use config::{EventKind, NotifyConfig};
pub use event::{About, Event};
pub use hook::Hook;

use crate::admin::Readiness;
use crate::comparison::store::DiffStore;
use crate::metrics::Metrics;
use crate::routes::RouteTable;
use crate::stats::Stats;
use delivery::{Mailbag, Outbox, Outcomes, RetryPolicy};
use watch::{DiffWatch, WATCH_INTERVAL};

/// `twinpeak_notify_total`.
pub const NOTIFY_TOTAL: &str = "twinpeak_notify_total";

/// Hands events to every webhook that wants them. Cheap to clone; never waits. The default
/// one has no webhooks and drops everything unseen.
#[derive(Clone, Default)]
pub struct Notifier {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    replica: String,
    outboxes: Vec<Outbox>,
}

impl Notifier {
    /// Whether any webhook is sent events of `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|inner| inner.outboxes.iter().any(|o| o.wants(kind)))
    }

    /// Offers an event of `kind`, happening now, to every webhook that wants it.
    pub fn publish(&self, kind: EventKind, summary: String, about: About) {
        let Some(inner) = &self.inner else {
            return;
        };
        if !self.wants(kind) {
            return;
        }
        let event = Arc::new(Event {
            kind,
            at: SystemTime::now(),
            replica: inner.replica.clone(),
            summary,
            about,
        });
        log::debug!("notify: {}: {}", kind.as_str(), event.summary);
        for outbox in &inner.outboxes {
            outbox.offer(&event);
        }
    }
}

/// What the comparison watcher reads.
pub struct DiffSources {
    /// The comparison results.
    pub store: Arc<DiffStore>,
    /// The counters of compared pairs.
    pub stats: Arc<Stats>,
    /// The routes.
    pub routes: Arc<RouteTable>,
}

/// The notifier for `config`'s webhooks (already read: [`NotifyConfig::resolve`]), naming
/// `replica` in every event, its counters registered in `metrics`; and the background service
/// that delivers its events and watches `diffs` once `readiness` holds. No service when there
/// is no webhook.
pub fn notifier(
    config: &NotifyConfig,
    replica: String,
    metrics: &Metrics,
    diffs: DiffSources,
    readiness: Readiness,
) -> (Notifier, Option<NotifyService>) {
    let webhooks = config.ready_webhooks();
    if webhooks.is_empty() {
        return (Notifier::default(), None);
    }
    let family = IntCounterVec::new(
        Opts::new(
            NOTIFY_TOTAL,
            "Events for webhooks, by webhook and outcome (sent, failed, dropped).",
        ),
        &["webhook", "outcome"],
    )
    .expect("valid metric");
    metrics.register_local(Box::new(family.clone()));
    let retry = RetryPolicy::of(config);
    let (outboxes, mailbags): (Vec<Outbox>, Vec<Mailbag>) = webhooks
        .iter()
        .map(|webhook| {
            let outcomes = Outcomes::new(&family, &webhook.name);
            delivery::queue(webhook.clone(), config.queue, retry, outcomes)
        })
        .unzip();
    let notifier = Notifier {
        inner: Some(Arc::new(Inner { replica, outboxes })),
    };
    let watched = EventKind::ALL
        .iter()
        .any(|kind| kind.is_about_differences() && notifier.wants(*kind));
    let watch = watched.then(|| {
        DiffWatch::new(
            diffs.store,
            diffs.stats,
            diffs.routes,
            notifier.clone(),
            config.diff_rate.as_ref(),
            SystemTime::now(),
        )
    });
    let service = NotifyService {
        work: Mutex::new(Some(Work {
            mailbags,
            timeout: config.timeout.0,
            watch,
            readiness,
        })),
    };
    (notifier, Some(service))
}

/// The notifier's background work: a courier per webhook, and the comparison watcher.
pub struct NotifyService {
    work: Mutex<Option<Work>>,
}

struct Work {
    mailbags: Vec<Mailbag>,
    timeout: Duration,
    watch: Option<DiffWatch>,
    readiness: Readiness,
}

/// The HTTP client every courier shares: rustls with the crypto provider Pingora uses, no
/// redirects followed (a webhook that moved is a failure to look at), `timeout` per attempt.
fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    pingora_core::tls::install_default_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("twinpeak/", env!("CARGO_PKG_VERSION")))
        .build()
}

#[async_trait]
impl BackgroundService for NotifyService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(work) = lock(&self.work).take() else {
            return;
        };
        let client = match client(work.timeout) {
            Ok(client) => client,
            Err(error) => {
                log::error!("notify: no HTTP client ({error}): every event is dropped");
                work.mailbags.into_iter().for_each(Mailbag::discard);
                return;
            }
        };
        let mut couriers = JoinSet::new();
        for mailbag in work.mailbags {
            let (courier, queue) = mailbag.courier(client.clone());
            couriers.spawn(courier.run(queue, shutdown.clone()));
        }
        if let Some(mut watch) = work.watch {
            let mut ticks = tokio::time::interval(WATCH_INTERVAL / 10);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut next_poll = Instant::now();
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = shutdown.changed() => break,
                }
                // Not before the proxy serves: what the state store restores is known then.
                if work.readiness.is_ready() && Instant::now() >= next_poll {
                    watch.poll(Instant::now());
                    next_poll = Instant::now() + WATCH_INTERVAL;
                }
            }
        } else {
            let _ = shutdown.changed().await;
        }
        while couriers.join_next().await.is_some() {}
    }
}
