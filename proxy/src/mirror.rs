//! The mirror: copies of sampled requests go to the shadow from spawned tasks through one shared
//! connector. The request path only ever calls non-blocking functions here; a copy that cannot
//! be taken at once is dropped and counted, never queued.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use pingora_core::connectors::http::Connector;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::budget::ByteBudget;
use crate::capture::{BodyCapture, CapturedBody, CapturedResponse, Outcome};
use crate::comparison::redact::Redactor;
use crate::config::{Config, ShadowConfig};
use crate::headers::SHADOW_MARKER;
use crate::labels::{MirrorOutcome, ReferenceOutcome, Side, StatusClass};
use crate::metrics::UpstreamErrorKind;
use crate::pairing::{Pair, PairQueue, PAIRING_WINDOW};
use crate::ratelimit::RateLimitedLog;
use crate::routes::RouteId;
use crate::sampling::Sampler;
use crate::stats::{Exchange, Stats};
use crate::units::{is_safe, Method, Percent, SampleKey};

/// Body chunks buffered between the request path and a shadow task; when the shadow reads
/// slower than the client sends, the copy is abandoned rather than buffered further.
pub const BODY_CHANNEL_CHUNKS: usize = 64;

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

/// A piece of a request body on its way to the shadow.
#[derive(Debug)]
pub enum BodyMessage {
    /// More bytes.
    Data(Bytes),
    /// The body is complete.
    End,
}

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
pub struct ShadowRequest {
    /// The route the request matched.
    pub route: RouteId,
    /// The id both sides carry.
    pub request_id: String,
    /// The request header as the shadow gets it (hop-by-hop headers removed, marker added).
    pub header: RequestHeader,
    /// Body chunks, when the request has a body.
    pub body: Option<mpsc::Receiver<BodyMessage>>,
    /// Where the primary's captured answer arrives.
    pub primary: oneshot::Receiver<CapturedResponse>,
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
    awaiting_primary: Arc<tokio::sync::Semaphore>,
    /// Where a second legacy answer is asked for, to learn noise.
    reference: Option<Reference>,
}

/// The second legacy answer that noise is learned from.
struct Reference {
    target: ShadowTarget,
    /// Which mirrored safe requests also go there.
    share: Sampler,
}

/// The shadow upstream and its connector.
struct ShadowTarget {
    connector: Connector,
    peer: HttpPeer,
    timeout: Duration,
    max_in_flight: usize,
}

impl Mirror {
    /// The mirror for a configuration; without a shadow it mirrors nothing. Fails when an
    /// upstream's host name does not resolve, naming its key.
    pub fn new(
        config: &Config,
        stats: Arc<Stats>,
        pairs: PairQueue,
        budget: Arc<ByteBudget>,
    ) -> Result<Self, String> {
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
            awaiting_primary: Arc::new(tokio::sync::Semaphore::new(
                4 * config.shadow.as_ref().map_or(1, |s| s.max_in_flight),
            )),
            reference: Reference::from_config(config)?,
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> Arc<MirrorSettings> {
        self.settings.load_full()
    }

    /// Replaces the settings; requests that arrive afterwards see the new ones.
    pub fn set_settings(&self, settings: MirrorSettings) -> Result<(), String> {
        if self.shadow.is_none() && settings.percent.value() > 0.0 {
            return Err("no shadow is configured, so nothing can be mirrored".into());
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

    /// Largest request body that is mirrored.
    pub fn max_body_bytes(&self) -> u64 {
        self.max_body_bytes
    }

    /// A capture for one answer (or request body) kept for comparison: capped, and taken from
    /// the mirror's byte budget.
    pub fn capture(&self) -> BodyCapture {
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

    /// Starts the copy in its own task; returns at once.
    pub fn spawn(self: &Arc<Self>, permit: InFlightPermit, request: ShadowRequest) {
        let mirror = self.clone();
        tokio::spawn(async move { mirror.run(permit, request).await });
    }

    async fn run(self: Arc<Self>, permit: InFlightPermit, request: ShadowRequest) {
        let Some(shadow) = &self.shadow else {
            return;
        };
        let ShadowRequest {
            route,
            request_id,
            header,
            body,
            primary,
        } = request;
        // Whatever happens from here on, the copy ends in exactly one counted outcome.
        let mut outcome = OutcomeOnce::new(&self.stats, route);
        let method = header.method.clone();
        let uri = header.uri.to_string();
        let request_headers = header.headers.clone();
        let reference = self
            .reference
            .as_ref()
            .filter(|r| body.is_none() && is_safe(&method) && r.share.includes(&request_headers))
            .map(|r| (r, header.clone()));
        let mut request_body = self.capture();
        let start = Instant::now();
        let exchange = shadow.exchange(header, body, &mut request_body, self.capture(), start);
        let shadow_exchange = tokio::time::timeout(shadow.timeout, exchange);
        let reference_exchange = async {
            let (reference, header) = reference?;
            Some(reference.ask(header, self.capture(), shadow.timeout).await)
        };
        let (result, reference) = tokio::join!(shadow_exchange, reference_exchange);
        let reference = reference.and_then(|(answer, reference_outcome)| {
            self.stats.reference_outcome(route, reference_outcome);
            answer
        });
        let (answer, mirror_outcome) = match result {
            Ok(Ok(answer)) => (answer, MirrorOutcome::Sent),
            Ok(Err(ShadowFailure::Abandoned)) => {
                // The request path gave the copy up (body too large or too fast); the
                // reason was counted there.
                outcome.counted_elsewhere();
                return;
            }
            Ok(Err(ShadowFailure::Upstream(kind, text))) => {
                self.stats
                    .route_metrics(route)
                    .upstream_error(Side::Shadow, kind);
                self.errors_log.warn(|| {
                    let uri = self.redactor.uri(&uri);
                    format!("shadow request {request_id} ({method} {uri}) failed: {text}")
                });
                let failed = CapturedResponse::failed(Outcome::Error(text), start.elapsed());
                (failed, MirrorOutcome::ShadowError)
            }
            Err(_) => {
                self.stats
                    .route_metrics(route)
                    .upstream_error(Side::Shadow, UpstreamErrorKind::Timeout);
                self.errors_log.warn(|| {
                    let uri = self.redactor.uri(&uri);
                    format!(
                        "shadow request {request_id} ({method} {uri}) timed out after {:?}",
                        shadow.timeout
                    )
                });
                let failed = CapturedResponse::failed(Outcome::Timeout, start.elapsed());
                (failed, MirrorOutcome::ShadowTimeout)
            }
        };
        drop(permit);
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
        outcome.count(mirror_outcome);
        // Usually the primary has finished by now. If not, wait for it, but only while few
        // enough answers wait: each holds a captured body.
        let mut primary = primary;
        let primary = match primary.try_recv() {
            Ok(primary) => Ok(Ok(primary)),
            Err(oneshot::error::TryRecvError::Closed) => Ok(Err(())),
            Err(oneshot::error::TryRecvError::Empty) => {
                match self.awaiting_primary.clone().try_acquire_owned() {
                    Ok(_waiting) => tokio::time::timeout(PAIRING_WINDOW, primary)
                        .await
                        .map(|r| r.map_err(|_| ())),
                    Err(_) => Ok(Err(())),
                }
            }
        };
        let request_body = request_body.finish();
        match primary {
            Ok(Ok(primary)) if !over_budget(&[&primary, &answer], &request_body) => {
                self.pairs.submit(Pair {
                    route,
                    request_id,
                    method,
                    uri,
                    request_headers,
                    request_body,
                    primary,
                    shadow: answer,
                    reference,
                })
            }
            _ => self.pairs.dropped(route),
        }
    }

    /// Notes that a copy was given up by the request path, and why.
    pub fn abandoned(&self, route: RouteId, outcome: MirrorOutcome) {
        self.stats.mirror_outcome(route, outcome);
    }
}

impl Reference {
    /// The secondary when one is configured (every mirrored safe request goes there too),
    /// otherwise the primary for `resample_percent` of them.
    fn from_config(config: &Config) -> Result<Option<Reference>, String> {
        let Some(shadow) = config.shadow.as_ref() else {
            return Ok(None);
        };
        let noise = &config.diff.noise;
        let (url, share, key) = match (&noise.secondary, noise.resample_percent.value()) {
            (Some(url), _) => (
                url.clone(),
                Percent::new(100.0).expect("a percentage"),
                "diff.noise.secondary",
            ),
            (None, p) if p > 0.0 => (
                config.primary.url.clone(),
                noise.resample_percent,
                "primary.url",
            ),
            _ => return Ok(None),
        };
        let shadow = ShadowConfig {
            url,
            timeout: shadow.timeout,
            max_in_flight: shadow.max_in_flight,
        };
        Ok(Some(Reference {
            target: ShadowTarget::new(&shadow, key)?,
            share: Sampler::new(share, SampleKey::Random),
        }))
    }
}

impl Reference {
    /// Asks the reference for its answer to the same request, within `timeout`.
    async fn ask(
        &self,
        header: RequestHeader,
        capture: BodyCapture,
        timeout: Duration,
    ) -> (Option<CapturedResponse>, ReferenceOutcome) {
        let mut no_body = BodyCapture::unbudgeted(0);
        let exchange = self
            .target
            .exchange(header, None, &mut no_body, capture, Instant::now());
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(answer)) => (Some(answer), ReferenceOutcome::Answered),
            Ok(Err(_)) => (None, ReferenceOutcome::Error),
            Err(_) => (None, ReferenceOutcome::Timeout),
        }
    }
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

/// Whether a capture of the pair was let go because the byte budget was spent: the pair cannot
/// be compared.
fn over_budget(answers: &[&CapturedResponse], request_body: &CapturedBody) -> bool {
    request_body.over_budget || answers.iter().any(|a| a.body.over_budget)
}

/// Most interim (1xx) answers read before the final one; more is a misbehaving upstream.
const MAX_INTERIM_ANSWERS: usize = 16;

/// Reads answer headers until the final one, passing over interim answers (`100 Continue`,
/// `103 Early Hints`); returns its status and headers. A `101 Switching Protocols` is an
/// error: copies never ask to upgrade.
async fn read_final_header(
    session: &mut HttpSession,
) -> Result<(StatusCode, HeaderMap), ShadowFailure> {
    let failure = |text: String| ShadowFailure::Upstream(UpstreamErrorKind::Read, text);
    for _ in 0..=MAX_INTERIM_ANSWERS {
        session
            .read_response_header()
            .await
            .map_err(|e| failure(e.to_string()))?;
        let header = session
            .response_header()
            .ok_or_else(|| failure("no response header".into()))?;
        match header.status {
            StatusCode::SWITCHING_PROTOCOLS => {
                return Err(failure("switched protocols without being asked to".into()))
            }
            status if status.is_informational() => continue,
            status => return Ok((status, header.headers.clone())),
        }
    }
    Err(failure(format!(
        "more than {MAX_INTERIM_ANSWERS} interim answers before the final one"
    )))
}

/// Why a shadow exchange did not produce an answer.
enum ShadowFailure {
    /// The request path stopped feeding the body.
    Abandoned,
    /// The shadow failed.
    Upstream(UpstreamErrorKind, String),
}

impl ShadowTarget {
    /// The target at `config.url`; `key` names it in the error when it does not resolve.
    fn new(config: &ShadowConfig, key: &str) -> Result<Self, String> {
        let mut peer = crate::units::peer(&config.url, key)?;
        peer.options.connection_timeout = Some(config.timeout.0);
        peer.options.read_timeout = Some(config.timeout.0);
        peer.options.write_timeout = Some(config.timeout.0);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(ShadowTarget {
            connector: Connector::new(None),
            peer,
            timeout: config.timeout.0,
            max_in_flight: config.max_in_flight,
        })
    }

    /// Sends one copy and captures the answer.
    async fn exchange(
        &self,
        header: RequestHeader,
        body: Option<mpsc::Receiver<BodyMessage>>,
        request_body: &mut BodyCapture,
        mut capture: BodyCapture,
        start: Instant,
    ) -> Result<CapturedResponse, ShadowFailure> {
        let upstream = |kind: UpstreamErrorKind| {
            move |e: Box<pingora_error::Error>| ShadowFailure::Upstream(kind, e.to_string())
        };
        let (mut session, _reused) = self
            .connector
            .get_http_session(&self.peer)
            .await
            .map_err(upstream(UpstreamErrorKind::Connect))?;
        session
            .write_request_header(Box::new(header))
            .await
            .map_err(upstream(UpstreamErrorKind::Other))?;
        if let Some(mut body) = body {
            loop {
                match body.recv().await {
                    Some(BodyMessage::Data(chunk)) => {
                        request_body.push(&chunk);
                        session
                            .write_request_body(chunk, false)
                            .await
                            .map_err(upstream(UpstreamErrorKind::Other))?
                    }
                    Some(BodyMessage::End) => break,
                    None => return Err(ShadowFailure::Abandoned),
                }
            }
        }
        session
            .finish_request_body()
            .await
            .map_err(upstream(UpstreamErrorKind::Other))?;
        let (status, headers) = read_final_header(&mut session).await?;
        let ttfb = start.elapsed();
        while let Some(chunk) = session
            .read_response_body()
            .await
            .map_err(upstream(UpstreamErrorKind::Read))?
        {
            capture.push(&chunk);
        }
        let total = start.elapsed();
        if session.response_done() {
            self.connector
                .release_http_session(session, &self.peer, self.peer.options.idle_timeout)
                .await;
        }
        Ok(CapturedResponse {
            outcome: Outcome::Answered,
            status: Some(status),
            headers,
            body: capture.finish(),
            ttfb: Some(ttfb),
            total,
        })
    }
}
