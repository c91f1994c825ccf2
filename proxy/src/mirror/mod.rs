//! The mirror: copies of sampled requests go to the shadow from spawned tasks through one shared
//! client (a connector and a pool of idle connections). The request path only ever calls
//! non-blocking functions here; a copy that cannot be taken at once is dropped and counted,
//! never queued.
//!
//! A copy's way: [`Mirror::admit`] decides (sampling, methods, size, in-flight slots);
//! [`Mirror::start`] spawns the shadow task and gives the request path its [`MirrorHandle`],
//! which feeds the body through the tee (`tee`) and captures the primary's answer. The shadow
//! task sends the copy (`client`), and the reference's when noise is learned (`reference`),
//! counts the copy's one outcome, waits for the primary's answer and queues the pair
//! (`pairing`) for the comparison worker.

mod client;
mod handle;
mod health;
mod pairing;
mod reference;
mod tee;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::HeaderMap;
use pingora_http::RequestHeader;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::budget::ByteBudget;
use crate::capture::{BodyCapture, CapturedResponse, Outcome};
use crate::comparison::redact::Redactor;
use crate::config::Config;
use crate::error::SetupError;
use crate::headers::SHADOW_MARKER;
use crate::labels::{MirrorOutcome, Side, StatusClass};
use crate::metrics::UpstreamErrorKind;
use crate::ratelimit::RateLimitedLog;
use crate::routes::RouteId;
use crate::sampling::Sampler;
use crate::stats::{Exchange, Stats};
use crate::units::{Method, Percent, SampleKey};

use client::{ShadowFailure, ShadowTarget};
pub use handle::MirrorHandle;
use health::ShadowHealth;
#[cfg(test)]
pub(crate) use pairing::fixtures;
use pairing::PrimaryWait;
pub use pairing::{pair_queue, Pair, PairIntake, PairQueue};
use reference::Reference;
use tee::TeeReceiver;

/// The mirror settings that can change while the proxy runs (`PUT /api/v1/mirror`).
#[derive(Debug, Clone, Serialize)]
pub struct MirrorSettings {
    /// Share of eligible requests mirrored.
    pub percent: Percent,
    /// Consistent sampling key.
    pub key: SampleKey,
    /// Methods mirrored on every route.
    pub methods: Vec<Method>,
    #[serde(skip)]
    sampler: Sampler,
}

impl MirrorSettings {
    /// Settings with a sampler built from them.
    pub fn new(percent: Percent, key: SampleKey, methods: Vec<Method>) -> Self {
        MirrorSettings {
            sampler: Sampler::new(percent, key.clone()),
            percent,
            key,
            methods,
        }
    }
}

/// Settings that would mirror a share of traffic to a proxy without a shadow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no shadow is configured, so nothing can be mirrored")]
pub struct NoShadow;

/// A slot among `shadow.max_in_flight`; freed when dropped.
pub struct InFlightPermit {
    mirror: Arc<Mirror>,
}

impl Drop for InFlightPermit {
    fn drop(&mut self) {
        let now = self.mirror.in_flight.fetch_sub(1, Ordering::AcqRel) - 1;
        self.mirror.stats.metrics().mirror_in_flight.set(now as i64);
    }
}

/// Everything a shadow task needs to send one copy.
struct ShadowRequest {
    /// The route the request matched.
    route: RouteId,
    /// The id both sides carry.
    request_id: String,
    /// The request header as the shadow gets it (hop-by-hop headers removed, marker added).
    header: RequestHeader,
    /// Body chunks, when the request has a body.
    body: Option<TeeReceiver>,
    /// Where the primary's captured answer arrives.
    primary: oneshot::Receiver<CapturedResponse>,
}

/// The mirror shared by every request.
pub struct Mirror {
    /// Read by every request, replaced by `PUT /api/v1/mirror`: a load takes no lock.
    settings: ArcSwap<MirrorSettings>,
    shadow: Option<ShadowTarget>,
    in_flight: AtomicUsize,
    stats: Arc<Stats>,
    pairs: PairQueue,
    capture_cap: usize,
    /// Bytes every capture and waiting pair takes from.
    budget: Arc<ByteBudget>,
    max_body_bytes: u64,
    errors_log: RateLimitedLog,
    /// Takes secret query values out of the request targets the log lines show.
    redactor: Redactor,
    /// Shadow answers waiting for their primary answer (bounded: each holds a body).
    primary_wait: PrimaryWait,
    /// Where a second legacy answer is asked for, to learn noise.
    reference: Option<Reference>,
    /// Whether copies are held back from a shadow that keeps failing.
    health: ShadowHealth,
    down_log: RateLimitedLog,
}

impl Mirror {
    /// The mirror for a configuration; without a shadow it mirrors nothing. Fails when an
    /// upstream's host name does not resolve, naming its key.
    pub fn new(
        config: &Config,
        stats: Arc<Stats>,
        pairs: PairQueue,
        budget: Arc<ByteBudget>,
    ) -> Result<Self, SetupError> {
        let settings = MirrorSettings::new(
            config.mirror.percent,
            config.mirror.key.clone(),
            config.mirror.methods.clone(),
        );
        stats.metrics().mirror_percent.set(settings.percent.value());
        Ok(Mirror {
            settings: ArcSwap::from_pointee(settings),
            shadow: config
                .shadow
                .as_ref()
                .map(|shadow| ShadowTarget::new(shadow, "shadow.url"))
                .transpose()?,
            in_flight: AtomicUsize::new(0),
            stats,
            pairs,
            capture_cap: config.capture.max_body_bytes.0 as usize,
            budget,
            max_body_bytes: config.mirror.max_body_bytes.0,
            errors_log: RateLimitedLog::new(Duration::from_secs(5)),
            redactor: Redactor::new(&config.diff),
            primary_wait: PrimaryWait::new(
                4 * config.shadow.as_ref().map_or(1, |s| s.max_in_flight),
            ),
            reference: Reference::from_config(config)?,
            health: ShadowHealth::default(),
            down_log: RateLimitedLog::new(Duration::from_secs(5)),
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> Arc<MirrorSettings> {
        self.settings.load_full()
    }

    /// Replaces the settings; requests that arrive afterwards see the new ones.
    pub fn set_settings(&self, settings: MirrorSettings) -> Result<(), NoShadow> {
        if self.shadow.is_none() && settings.percent.value() > 0.0 {
            return Err(NoShadow);
        }
        self.stats
            .metrics()
            .mirror_percent
            .set(settings.percent.value());
        self.settings.store(Arc::new(settings));
        Ok(())
    }

    /// The byte budget every capture takes from.
    pub fn budget(&self) -> &Arc<ByteBudget> {
        &self.budget
    }

    /// Copies outstanding now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// A capture for one answer (or request body) kept for comparison: capped, and taken from
    /// the mirror's byte budget.
    fn capture(&self) -> BodyCapture {
        BodyCapture::new(self.capture_cap, &self.budget)
    }

    /// Decides whether a request is copied. `Ok(permit)` means it is, and holds one of the
    /// in-flight slots; `Err(outcome)` says why not (the caller counts it).
    pub fn admit(
        self: &Arc<Self>,
        method: &http::Method,
        extra_methods: &[Method],
        headers: &HeaderMap,
        content_length: Option<u64>,
    ) -> Result<InFlightPermit, MirrorOutcome> {
        let Some(shadow) = &self.shadow else {
            return Err(MirrorOutcome::NotSampled);
        };
        let settings = self.settings.load();
        if settings.sampler.samples_nothing() || headers.contains_key(SHADOW_MARKER) {
            return Err(MirrorOutcome::NotSampled);
        }
        let allowed = |list: &[Method]| list.iter().any(|m| m.0 == *method);
        if !allowed(&settings.methods) && !allowed(extra_methods) {
            return Err(MirrorOutcome::Method);
        }
        if headers.contains_key(http::header::UPGRADE) {
            return Err(MirrorOutcome::Method);
        }
        if !settings.sampler.includes(headers) {
            return Err(MirrorOutcome::NotSampled);
        }
        if content_length.is_some_and(|n| n > self.max_body_bytes) {
            return Err(MirrorOutcome::BodyTooLarge);
        }
        if self.health.is_down(Instant::now()) {
            return Err(MirrorOutcome::ShadowDown);
        }
        let taken = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if taken >= shadow.max_in_flight {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(MirrorOutcome::DroppedInFlight);
        }
        self.stats.metrics().mirror_in_flight.set(taken as i64 + 1);
        Ok(InFlightPermit {
            mirror: self.clone(),
        })
    }

    /// Starts the copy of an admitted request in its own task and returns at once, with the
    /// request path's half of it. `header` is the copy's header, `request_id` the id both
    /// sides carry.
    pub fn start(
        self: &Arc<Self>,
        permit: InFlightPermit,
        route: RouteId,
        request_id: String,
        header: RequestHeader,
        has_body: bool,
    ) -> MirrorHandle {
        let (feed, body) = if has_body {
            let (feed, body) = tee::body_tee(
                route,
                self.max_body_bytes,
                self.stats.clone(),
                self.capture(),
            );
            (Some(feed), Some(body))
        } else {
            (None, None)
        };
        let (primary_tx, primary) = oneshot::channel();
        let request = ShadowRequest {
            route,
            request_id,
            header,
            body,
            primary,
        };
        let mirror = self.clone();
        tokio::spawn(async move { mirror.run(permit, request).await });
        MirrorHandle::new(feed, primary_tx, self.capture())
    }

    /// The shadow task: send the copy (and the reference's), count the copy's outcome, wait
    /// for the primary's answer, queue the pair.
    async fn run(self: Arc<Self>, permit: InFlightPermit, request: ShadowRequest) {
        let Some(shadow) = &self.shadow else {
            return;
        };
        let ShadowRequest {
            route,
            request_id,
            header,
            mut body,
            primary,
        } = request;
        // Whatever happens from here on, the copy ends in exactly one counted outcome.
        let mut outcome = OutcomeOnce::new(&self.stats, route);
        let (method, uri) = (header.method.clone(), header.uri.to_string());
        let request_headers = header.headers.clone();
        let reference = self.reference_for(&header, body.is_some());
        let start = Instant::now();
        // Both exchanges are boxed: their futures hold Pingora's connect and read states, tens
        // of KiB that would otherwise be copied into every spawned task, asked for or not.
        let send = Box::pin(shadow.send(header, body.as_mut(), self.capture(), start));
        let (sent, reference) = match reference {
            None => (send.await, None),
            Some(reference) => tokio::join!(send, Box::pin(self.ask_reference(route, reference))),
        };
        let copy = CopyLabel {
            route,
            request_id: &request_id,
            method: &method,
            uri: &uri,
        };
        let Some((answer, counted)) = self.answer_of(&copy, sent, shadow, start) else {
            // The request path gave the copy up (body too large or too fast) and counted why.
            outcome.counted_elsewhere();
            return;
        };
        drop(permit);
        self.record_shadow(route, &answer);
        outcome.count(counted);
        let Some(primary) = self.primary_wait.primary(primary).await else {
            self.pairs.dropped(route);
            return;
        };
        self.pairs.submit(Pair {
            route,
            request_id,
            method,
            uri,
            request_headers,
            request_body: body.map(TeeReceiver::finish).unwrap_or_default(),
            primary,
            shadow: answer,
            reference,
        });
    }

    /// The reference to ask beside the shadow, with its own copy of the header, when it wants
    /// this copy.
    fn reference_for(
        &self,
        header: &RequestHeader,
        has_body: bool,
    ) -> Option<(&Reference, RequestHeader)> {
        let reference = self.reference.as_ref()?;
        reference
            .wants(header, has_body)
            .then(|| (reference, header.clone()))
    }

    /// The reference's answer to the same request, when one is asked for; its outcome is
    /// counted.
    async fn ask_reference(
        &self,
        route: RouteId,
        (reference, header): (&Reference, RequestHeader),
    ) -> Option<CapturedResponse> {
        let (answer, outcome) = reference.ask(header, self.capture()).await;
        self.stats.reference_outcome(route, outcome);
        answer
    }

    /// What the shadow answered and the copy's outcome; a failure is logged (the request
    /// target's secrets redacted), counted as the shadow's error, and stands as a failed
    /// answer. `None` when the request path gave the copy up.
    fn answer_of(
        &self,
        copy: &CopyLabel<'_>,
        sent: Result<CapturedResponse, ShadowFailure>,
        shadow: &ShadowTarget,
        start: Instant,
    ) -> Option<(CapturedResponse, MirrorOutcome)> {
        let (kind, failed, outcome) = match sent {
            Ok(answer) => {
                self.health.answered();
                return Some((answer, MirrorOutcome::Sent));
            }
            Err(ShadowFailure::Abandoned) => return None,
            Err(ShadowFailure::Upstream(kind, text)) => {
                (kind, Outcome::Error(text), MirrorOutcome::ShadowError)
            }
            Err(ShadowFailure::TimedOut) => (
                UpstreamErrorKind::Timeout,
                Outcome::Timeout,
                MirrorOutcome::ShadowTimeout,
            ),
        };
        self.stats
            .route_metrics(copy.route)
            .upstream_error(Side::Shadow, kind);
        if matches!(
            kind,
            UpstreamErrorKind::Connect | UpstreamErrorKind::Timeout
        ) {
            if let Some(backoff) = self.health.failed(Instant::now()) {
                self.down_log.warn(|| {
                    format!(
                        "the shadow keeps failing ({kind:?}); copies are held back for {backoff:?}, \
                         then tried again (counted as mirror outcome shadow_down)"
                    )
                });
            }
        }
        self.errors_log.warn(|| {
            let uri = self.redactor.uri(copy.uri);
            let (id, method) = (copy.request_id, copy.method);
            match &failed {
                Outcome::Error(text) => {
                    format!("shadow request {id} ({method} {uri}) failed: {text}")
                }
                _ => format!(
                    "shadow request {id} ({method} {uri}) timed out after {:?}",
                    shadow.timeout
                ),
            }
        });
        Some((CapturedResponse::failed(failed, start.elapsed()), outcome))
    }

    /// Records the shadow's side of the exchange: status class and, for a whole answer, its
    /// times.
    fn record_shadow(&self, route: RouteId, answer: &CapturedResponse) {
        let class = answer
            .status
            .map(|s| StatusClass::of(s.as_u16()))
            .unwrap_or(StatusClass::Error);
        self.stats.record(
            route,
            Side::Shadow,
            Exchange {
                class,
                ttfb: answer.ttfb,
                total: (answer.outcome == Outcome::Answered).then_some(answer.total),
            },
        );
    }

    /// Notes that a copy was given up by the request path, and why.
    pub fn abandoned(&self, route: RouteId, outcome: MirrorOutcome) {
        self.stats.mirror_outcome(route, outcome);
    }
}

/// What the log lines about a copy name it by.
struct CopyLabel<'a> {
    route: RouteId,
    request_id: &'a str,
    method: &'a http::Method,
    uri: &'a str,
}

/// Counts a copy's mirror outcome exactly once: the outcome given to [`OutcomeOnce::count`],
/// or `shadow_error` if the task ends (or unwinds) before one was given.
struct OutcomeOnce<'a> {
    stats: &'a Stats,
    route: RouteId,
    pending: bool,
}

impl<'a> OutcomeOnce<'a> {
    fn new(stats: &'a Stats, route: RouteId) -> Self {
        OutcomeOnce {
            stats,
            route,
            pending: true,
        }
    }

    fn count(&mut self, outcome: MirrorOutcome) {
        if std::mem::take(&mut self.pending) {
            self.stats.mirror_outcome(self.route, outcome);
        }
    }

    /// The request path counted why the copy was given up.
    fn counted_elsewhere(&mut self) {
        self.pending = false;
    }
}

impl Drop for OutcomeOnce<'_> {
    fn drop(&mut self) {
        self.count(MirrorOutcome::ShadowError);
    }
}
