//! The shadow client: one copy of a request sent to an upstream through a shared Pingora
//! connector, its body read from the tee, its answer captured. Hop-by-hop headers are gone
//! from the copy already; interim (1xx) answers are passed over; HTTP/2 trailers are kept.

use std::time::{Duration, Instant};

use http::{HeaderMap, StatusCode};
use pingora_core::connectors::http::Connector;
use pingora_core::connectors::ConnectorOptions;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::ErrorType;
use pingora_http::RequestHeader;

use super::tee::{Abandoned, TeeReceiver};
use crate::capture::{kept_trailers, BodyCapture, CapturedResponse, Outcome};
use crate::config::ShadowConfig;
use crate::error::SetupError;
use crate::metrics::UpstreamErrorKind;

/// Pingora's own default number of idle upstream connections kept.
const DEFAULT_POOL_SIZE: usize = 128;

/// Most interim (1xx) answers read before the final one; more is a misbehaving upstream.
const MAX_INTERIM_ANSWERS: usize = 16;

/// Why a shadow exchange did not produce an answer.
pub enum ShadowFailure {
    /// The request path stopped feeding the body.
    Abandoned,
    /// The shadow failed.
    Upstream(UpstreamErrorKind, String),
    /// No whole answer within the target's timeout.
    TimedOut,
}

impl From<Abandoned> for ShadowFailure {
    fn from(_: Abandoned) -> Self {
        ShadowFailure::Abandoned
    }
}

/// An upstream copies go to (the shadow, or the reference noise is learned from), and its
/// connector.
pub struct ShadowTarget {
    connector: Connector,
    peer: HttpPeer,
    /// Limit on a whole exchange.
    pub timeout: Duration,
    /// Most copies outstanding at once.
    pub max_in_flight: usize,
}

impl ShadowTarget {
    /// The target at `config.url`; `key` names it in the error when it does not resolve.
    pub fn new(config: &ShadowConfig, key: &'static str) -> Result<Self, SetupError> {
        let transport = crate::upstream::Transport {
            http2: config.http2,
            tls: config.tls.as_ref(),
        };
        let mut peer = crate::upstream::peer(&config.url, transport, key)?;
        peer.options.connection_timeout = Some(config.timeout.0);
        peer.options.read_timeout = Some(config.timeout.0);
        peer.options.write_timeout = Some(config.timeout.0);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        // Idle connections kept for reuse: at least one per copy that may be outstanding, so a
        // slow shadow's answers go back to the pool instead of being closed, and the next copies
        // do not each open a new connection.
        let pool = ConnectorOptions::new(config.max_in_flight.max(DEFAULT_POOL_SIZE));
        Ok(ShadowTarget {
            connector: Connector::new(Some(pool)),
            peer,
            timeout: config.timeout.0,
            max_in_flight: config.max_in_flight,
        })
    }

    /// Sends one copy and captures the answer in `capture`, all within the timeout; times are
    /// taken from `start`.
    pub async fn send(
        &self,
        header: RequestHeader,
        body: Option<&mut TeeReceiver>,
        capture: BodyCapture,
        start: Instant,
    ) -> Result<CapturedResponse, ShadowFailure> {
        let exchange = self.exchange(header, body, capture, start);
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(ShadowFailure::TimedOut))
    }

    async fn exchange(
        &self,
        mut header: RequestHeader,
        body: Option<&mut TeeReceiver>,
        mut capture: BodyCapture,
        start: Instant,
    ) -> Result<CapturedResponse, ShadowFailure> {
        let upstream = |kind: UpstreamErrorKind| {
            move |e: Box<pingora_error::Error>| ShadowFailure::Upstream(kind, e.to_string())
        };
        let (mut session, _reused) =
            self.connector
                .get_http_session(&self.peer)
                .await
                .map_err(|e| {
                    let kind = match e.etype() {
                        ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert => {
                            UpstreamErrorKind::Tls
                        }
                        _ => UpstreamErrorKind::Connect,
                    };
                    ShadowFailure::Upstream(kind, e.to_string())
                })?;
        if session.as_http2().is_some() {
            // HTTP/2 frames the body itself: a chunked coding must not go on its wire.
            header.remove_header(&http::header::TRANSFER_ENCODING);
        }
        session
            .write_request_header(Box::new(header))
            .await
            .map_err(upstream(UpstreamErrorKind::Other))?;
        if let Some(body) = body {
            while let Some(chunk) = body.next().await? {
                session
                    .write_request_body(chunk, false)
                    .await
                    .map_err(upstream(UpstreamErrorKind::Other))?;
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
        let trailers = match &mut session {
            HttpSession::H2(h2) => h2
                .read_trailers()
                .await
                .map_err(upstream(UpstreamErrorKind::Read))?
                .map(|t| kept_trailers(&t))
                .unwrap_or_default(),
            _ => HeaderMap::new(),
        };
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
            trailers,
            ttfb: Some(ttfb),
            total,
        })
    }
}

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
