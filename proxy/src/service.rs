//! The Pingora proxy: every client is served from the primary, or from the candidate for the
//! canary share; sampled primary requests are copied to the shadow beside it. Nothing on this
//! path waits for the shadow or the judge.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, StatusCode};
use pingora_core::modules::http::HttpModules;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};

use crate::access_log::{AccessLog, MirrorDecision, RequestFacts};
use crate::canary::config::SIDE_HEADER;
use crate::canary::Canary;
use crate::capture::Outcome;
use crate::config::PrimaryConfig;
use crate::error::SetupError;
use crate::headers::{self, REQUEST_ID};
use crate::labels::{MirrorOutcome, Side, StatusClass};
use crate::metrics::UpstreamErrorKind;
use crate::mirror::{Mirror, MirrorHandle};
use crate::record::{Recorder, RecordingHandle};
use crate::routes::{RouteId, RouteTable};
use crate::stats::{Exchange, Stats};
use crate::units::UpstreamUrl;
use crate::upgrade::HandedOver;
use crate::upstream::Transport;

/// The proxy service shared by all requests (cloned for each listener service: what it holds
/// is shared).
#[derive(Clone)]
pub struct TwinpeakProxy {
    routes: Arc<RouteTable>,
    stats: Arc<Stats>,
    mirror: Arc<Mirror>,
    primary: HttpPeer,
    canary: Option<CanaryRoute>,
    /// Records a share of requests for replay, when `record:` is configured.
    recorder: Option<Arc<Recorder>>,
    /// Writes a line for every request, when `access_log:` is configured.
    access_log: Option<Arc<AccessLog>>,
    /// Headers that steer twinpeak under names of the operator's choosing (the force headers);
    /// like every `x-twinpeak-*` header a client sends, they are never passed upstream.
    controls: Vec<HeaderName>,
    /// Set once the listening sockets went to a new process: connections are not kept alive.
    handed_over: HandedOver,
}

/// The canary's side of the proxy: the routing decision and the candidate upstream.
#[derive(Clone)]
struct CanaryRoute {
    canary: Arc<Canary>,
    candidate: HttpPeer,
    side_header: bool,
}

impl TwinpeakProxy {
    /// A proxy in front of `primary`, with a share of traffic routed to the candidate when a
    /// `canary` is given. Fails when an upstream's host name does not resolve, naming its key.
    pub fn new(
        primary: &PrimaryConfig,
        routes: Arc<RouteTable>,
        stats: Arc<Stats>,
        mirror: Arc<Mirror>,
        canary: Option<Arc<Canary>>,
    ) -> Result<Self, SetupError> {
        let read_timeout = primary.read_timeout.map(|t| t.0);
        let canary = match canary {
            Some(canary) => Some(CanaryRoute {
                candidate: upstream_peer(
                    canary.upstream(),
                    Transport {
                        http2: canary.config().http2,
                        tls: canary.config().tls.as_ref(),
                    },
                    "canary.upstream",
                    canary.config().connect_timeout.0,
                    read_timeout,
                )?,
                side_header: canary.config().side_header,
                canary,
            }),
            None => None,
        };
        // Pooled connections stay until the primary closes them (the pool notices), as in
        // Pingora: an idle timer per pooled connection costs more than it saves here.
        let primary = upstream_peer(
            &primary.url,
            Transport {
                http2: primary.http2,
                tls: primary.tls.as_ref(),
            },
            "primary.url",
            primary.connect_timeout.0,
            read_timeout,
        )?;
        let controls = canary
            .iter()
            .flat_map(|c| c.canary.force_headers())
            .cloned()
            .collect();
        Ok(TwinpeakProxy {
            routes,
            stats,
            mirror,
            primary,
            canary,
            recorder: None,
            access_log: None,
            controls,
            handed_over: HandedOver::default(),
        })
    }

    /// The proxy, recording requests with `recorder`.
    pub fn with_recorder(mut self, recorder: Option<Arc<Recorder>>) -> Self {
        self.recorder = recorder;
        self
    }

    /// The proxy, writing a line for every request to `access_log`.
    pub fn with_access_log(mut self, access_log: Option<Arc<AccessLog>>) -> Self {
        self.access_log = access_log;
        self
    }

    /// The proxy, closing each connection after its answer once `handed_over` is set.
    pub fn with_hand_over(mut self, handed_over: HandedOver) -> Self {
        self.handed_over = handed_over;
        self
    }
}

/// What one request carries from phase to phase.
pub struct RequestContext {
    /// When the request's header had been read (the context is made then).
    arrival: Instant,
    route: RouteId,
    /// Which backend serves the request: the primary, or the candidate for the canary share.
    /// A candidate request that cannot connect is switched to the primary.
    side: Side,
    /// The attempt just made could not connect to the candidate and is retried on the primary;
    /// the canary logs that itself, at most once every few seconds.
    candidate_retry: bool,
    upstream_start: Option<Instant>,
    /// Time to the serving side's answer header.
    ttfb: Option<Duration>,
    /// Time to the end of the serving side's answer.
    total: Option<Duration>,
    /// Why the serving side failed, when it did.
    upstream_error: Option<UpstreamErrorKind>,
    /// Boxed: most requests are not mirrored, and the context moves with every request.
    mirrored: Option<Box<MirrorHandle>>,
    /// Boxed for the same reason: what is kept of a recorded request.
    recorded: Option<Box<RecordingHandle>>,
    /// What the mirror decided, for the access log.
    mirror: MirrorDecision,
    /// Counts the request in `twinpeak_requests_in_flight` for as long as it lives.
    _in_flight: InFlightRequest,
}

/// One client request in `twinpeak_requests_in_flight`, from its context's making to its drop
/// (whatever way the request ends).
struct InFlightRequest(prometheus::IntGauge);

impl InFlightRequest {
    fn new(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        InFlightRequest(gauge.clone())
    }
}

impl Drop for InFlightRequest {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The peer for an upstream the request path sends to; `key` names it in the error when its
/// host name does not resolve.
fn upstream_peer(
    url: &UpstreamUrl,
    transport: Transport<'_>,
    key: &'static str,
    connect_timeout: Duration,
    read_timeout: Option<Duration>,
) -> Result<HttpPeer, SetupError> {
    let mut peer = crate::upstream::peer(url, transport, key)?;
    peer.options.connection_timeout = Some(connect_timeout);
    peer.options.read_timeout = read_timeout;
    Ok(peer)
}

/// The client's IP address, when it came over TCP.
fn client_ip(session: &Session) -> Option<std::net::IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

fn error_kind(e: &Error) -> UpstreamErrorKind {
    match e.etype() {
        ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert | ErrorType::HandshakeError => {
            UpstreamErrorKind::Tls
        }
        ErrorType::ConnectTimedout
        | ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::SocketError
        | ErrorType::BindError => UpstreamErrorKind::Connect,
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => UpstreamErrorKind::Timeout,
        ErrorType::ReadError
        | ErrorType::WriteError
        | ErrorType::ConnectionClosed
        | ErrorType::InvalidHTTPHeader
        | ErrorType::H1Error
        | ErrorType::H2Error => UpstreamErrorKind::Read,
        _ => UpstreamErrorKind::Other,
    }
}

impl TwinpeakProxy {
    /// Decides whether to mirror and, if so, starts the shadow task and keeps its handle;
    /// returns the decision (the outcome counted when no copy is made).
    fn start_mirror(&self, session: &mut Session, ctx: &mut RequestContext) -> MirrorDecision {
        let mirroring = self.routes.mirroring();
        if !mirroring.mirrored(ctx.route) {
            self.stats
                .mirror_outcome(ctx.route, MirrorOutcome::NotSampled);
            return MirrorDecision::Skipped(MirrorOutcome::NotSampled);
        }
        let req = session.req_header();
        let content_length = req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let admitted = self.mirror.admit(
            &req.method,
            mirroring.extra_mirror_methods(ctx.route),
            &req.headers,
            content_length,
        );
        let permit = match admitted {
            Ok(permit) => permit,
            Err(outcome) => {
                self.stats.mirror_outcome(ctx.route, outcome);
                return MirrorDecision::Skipped(outcome);
            }
        };
        // Both sides get the same id: it goes on the request before either copy is made.
        let request_id = headers::request_id(&session.req_header().headers);
        let has_body = !session.is_body_empty();
        let with_id = session
            .req_header_mut()
            .insert_header(REQUEST_ID, request_id.as_str());
        let header = with_id.ok().and_then(|()| {
            let client = client_ip(session);
            headers::shadow_copy(session.req_header(), client, &self.controls, has_body)
        });
        let Some(header) = header else {
            self.mirror.abandoned(ctx.route, MirrorOutcome::ShadowError);
            return MirrorDecision::Skipped(MirrorOutcome::ShadowError);
        };
        let handle = self
            .mirror
            .start(permit, ctx.route, request_id, header, has_body);
        ctx.mirrored = Some(Box::new(handle));
        MirrorDecision::Mirrored
    }

    /// Decides whether to record the request that arrived at `arrival` and, if so, keeps its
    /// handle (the request id the mirror gave it is among the headers copied).
    fn start_recording(&self, arrival: Instant, session: &Session, ctx: &mut RequestContext) {
        let Some(recorder) = &self.recorder else {
            return;
        };
        let req = session.req_header();
        ctx.recorded = recorder
            .admit(arrival, ctx.route, &req.method, &req.uri, &req.headers)
            .map(Box::new);
    }
}

#[async_trait]
impl ProxyHttp for TwinpeakProxy {
    type CTX = RequestContext;

    fn init_downstream_modules(&self, _modules: &mut HttpModules) {
        // None: answers pass through as the backend encoded them. (Pingora's default adds its
        // compression module switched off, which still builds a context for every request.)
    }

    fn new_ctx(&self) -> Self::CTX {
        RequestContext {
            arrival: Instant::now(),
            // Until the path is known (a request refused before routing counts under `other`).
            route: self.routes.len() - 1,
            side: Side::Primary,
            candidate_retry: false,
            upstream_start: None,
            ttfb: None,
            total: None,
            upstream_error: None,
            mirrored: None,
            recorded: None,
            mirror: MirrorDecision::Undecided,
            _in_flight: InFlightRequest::new(&self.stats.metrics().requests_in_flight),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let arrival = Instant::now();
        if self.handed_over.is_set() {
            session.set_keepalive(None);
        }
        ctx.route = self.routes.route_for(session.req_header().uri.path());
        let candidate = self.canary.as_ref().is_some_and(|canary| {
            let req = session.req_header();
            canary
                .canary
                .choose(&req.method, &req.headers, client_ip(session))
                == Side::Candidate
        });
        if candidate {
            // The candidate serves it: there is no primary answer to compare with.
            ctx.side = Side::Candidate;
            self.stats
                .mirror_outcome(ctx.route, MirrorOutcome::NotSampled);
            ctx.mirror = MirrorDecision::Skipped(MirrorOutcome::NotSampled);
        } else {
            ctx.mirror = self.start_mirror(session, ctx);
        }
        self.start_recording(arrival, session, ctx);
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        ctx.upstream_start.get_or_insert_with(Instant::now);
        ctx.candidate_retry = false;
        match (&self.canary, ctx.side) {
            (Some(canary), Side::Candidate) => Ok(Box::new(canary.candidate.clone())),
            _ => Ok(Box::new(self.primary.clone())),
        }
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Self::CTX,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let Some(canary) = self.canary.as_ref().filter(|_| ctx.side == Side::Candidate) else {
            return e;
        };
        let method = &session.req_header().method;
        if !method.is_idempotent() {
            // Nothing may be sent twice: the client gets the 502 (counted in `logging`).
            e.set_retry(false);
            return e;
        }
        // The candidate could not be reached: the request goes to the primary instead, and the
        // failed attempt counts against the candidate.
        let kind = error_kind(&e);
        let route = ctx.route;
        self.stats
            .route_metrics(route)
            .upstream_error(Side::Candidate, kind);
        self.stats.record(
            route,
            Side::Candidate,
            Exchange {
                class: StatusClass::Error,
                ttfb: None,
                total: None,
            },
        );
        canary.canary.observe(Side::Candidate, true, None);
        canary.canary.unreachable(|| {
            format!(
                "canary: the candidate {} could not be reached ({}); {method} {} retried on the primary",
                canary.canary.upstream(),
                e.etype().as_str(),
                session.req_header().uri
            )
        });
        ctx.side = Side::Primary;
        ctx.candidate_retry = true;
        ctx.upstream_start = None;
        e.set_retry(true);
        e
    }

    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        ctx: &Self::CTX,
        _error: &Error,
        context: ProxyWarnLogContext,
    ) -> bool {
        // A down candidate would otherwise put one warning per request in the log.
        ctx.candidate_retry && matches!(context, ProxyWarnLogContext::UpstreamRetry)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        // Pingora has already removed hop-by-hop headers (and those `Connection` names) and
        // owns the framing of the upstream request. The client's request is left as it came
        // (but for the request id of a mirrored one), so this copy is the only one that grows.
        headers::set_forwarding(upstream_request, client_ip(session))?;
        headers::strip_controls(upstream_request, &self.controls);
        if let Some(m) = ctx.mirrored.as_mut() {
            m.new_attempt();
        }
        if let Some(r) = ctx.recorded.as_mut() {
            r.new_attempt();
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some(m) = ctx.mirrored.as_mut() {
            m.request_body(body.as_ref(), end_of_stream);
        }
        if let Some(r) = ctx.recorded.as_mut() {
            r.request_body(body.as_ref());
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if upstream_response.status.is_informational() {
            return Ok(());
        }
        if let Some(start) = ctx.upstream_start {
            ctx.ttfb = Some(start.elapsed());
        }
        if let Some(m) = ctx.mirrored.as_mut() {
            m.response_header(upstream_response.status, &upstream_response.headers);
        }
        if let Some(r) = ctx.recorded.as_mut() {
            r.response_header(upstream_response.status, &upstream_response.headers);
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<Option<Duration>> {
        if let (Some(m), Some(chunk)) = (ctx.mirrored.as_mut(), body.as_ref()) {
            m.response_body(chunk);
        }
        if let Some(r) = ctx.recorded.as_mut() {
            r.response_body(body.as_ref(), end_of_stream);
        }
        if end_of_stream {
            ctx.total = ctx.upstream_start.map(|s| s.elapsed());
        }
        Ok(None)
    }

    fn upstream_response_trailer_filter(
        &self,
        _session: &mut Session,
        upstream_trailers: &mut http::HeaderMap,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some(m) = ctx.mirrored.as_mut() {
            m.response_trailers(upstream_trailers);
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if self.canary.as_ref().is_some_and(|c| c.side_header) {
            upstream_response.insert_header(SIDE_HEADER, ctx.side.as_str())?;
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy {
        let code = match (e.esource(), e.etype()) {
            (_, ErrorType::HTTPStatus(code)) => *code,
            (ErrorSource::Upstream, ErrorType::ConnectTimedout | ErrorType::ReadTimedout) => 504,
            (ErrorSource::Upstream, _) => 502,
            (
                ErrorSource::Downstream,
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed,
            ) => 0,
            (ErrorSource::Downstream, _) => 400,
            _ => 500,
        };
        if *e.esource() == ErrorSource::Upstream {
            let kind = error_kind(e);
            ctx.upstream_error = Some(kind);
            self.stats
                .route_metrics(ctx.route)
                .upstream_error(ctx.side, kind);
        }
        if code > 0 {
            let backend = ctx.side.as_str();
            let text = match code {
                502 if ctx.upstream_error == Some(UpstreamErrorKind::Tls) => format!(
                    "twinpeak: the {backend} backend's TLS handshake failed: {}\n",
                    crate::tls::upstream::explain(e)
                ),
                502 => format!(
                    "twinpeak: the {backend} backend could not be reached or answered badly ({})\n",
                    e.etype().as_str()
                ),
                504 => format!("twinpeak: the {backend} backend did not answer in time\n"),
                _ => format!(
                    "twinpeak: {}\n",
                    StatusCode::from_u16(code)
                        .map(|s| s.to_string())
                        .unwrap_or_default()
                ),
            };
            let body = Bytes::from(text);
            if let Ok(mut resp) = ResponseHeader::build(code, Some(3)) {
                let _ = resp.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8");
                let _ = resp.insert_header(http::header::CONTENT_LENGTH, body.len());
                if let Some(id) = session.req_header().headers.get(REQUEST_ID) {
                    let _ = resp.insert_header(REQUEST_ID, id.clone());
                }
                if self.canary.as_ref().is_some_and(|c| c.side_header) {
                    let _ = resp.insert_header(SIDE_HEADER, ctx.side.as_str());
                }
                if let Err(write_error) = session.write_error_response(resp, body).await {
                    log::debug!("could not send the error answer to the client: {write_error}");
                }
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
        let class = session
            .response_written()
            .map(|r| StatusClass::of(r.status.as_u16()))
            .unwrap_or(StatusClass::Error);
        let answered = ctx.upstream_error.is_none() && ctx.ttfb.is_some();
        let total = ctx
            .total
            .or_else(|| ctx.upstream_start.map(|s| s.elapsed()));
        self.stats.record(
            ctx.route,
            ctx.side,
            Exchange {
                class,
                ttfb: ctx.ttfb,
                total: if answered { total } else { None },
            },
        );
        if let Some(canary) = &self.canary {
            // A 5xx or a failed exchange counts against the side; a client that went away
            // before any answer says nothing about either.
            let failed = class == StatusClass::ServerError || ctx.upstream_error.is_some();
            if failed || class != StatusClass::Error {
                let latency = if answered { total } else { None };
                canary.canary.observe(ctx.side, failed, latency);
            }
        }
        if let Some(access_log) = &self.access_log {
            let facts = RequestFacts {
                arrival: ctx.arrival,
                route: ctx.route,
                side: ctx.side,
                upstream: if answered { total } else { None },
                upstream_error: ctx.upstream_error,
                mirror: ctx.mirror,
            };
            access_log.offer(session, e, facts);
        }
        if let Some(m) = ctx.mirrored.take() {
            let outcome = match e {
                None => Outcome::Answered,
                Some(e) if e.etype() == &ErrorType::ReadTimedout => Outcome::Timeout,
                Some(e) => Outcome::Error(e.to_string()),
            };
            m.finish(outcome, ctx.ttfb, total.unwrap_or_default());
        }
        if let (Some(r), Some(recorder)) = (ctx.recorded.take(), &self.recorder) {
            r.finish(recorder, answered && ctx.side == Side::Primary);
        }
    }
}
