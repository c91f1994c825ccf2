//! The shadow client: one copy of a request sent to an upstream through a shared Pingora
//! connector, its body read from the tee, its answer captured. Hop-by-hop headers are gone
//! from the copy already; interim (1xx) answers are passed over; HTTP/2 trailers are kept.
//!
//! Idle HTTP/1.1 connections are kept in the target's own pool ([`IdlePool`]) rather than
//! Pingora's, which watches each idle connection from a task of its own: for a copy, that
//! task's spawn, its wake-up at reuse and the address check Pingora makes then cost about an
//! eighth of the copy's instructions. HTTP/2 connections stay with the connector, which multiplexes them.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use http::{HeaderMap, StatusCode};
use pingora_core::connectors::http::Connector;
use pingora_core::connectors::ConnectorOptions;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::protocols::http::v1::client::HttpSession as Http1Session;
use pingora_core::protocols::Stream;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::ErrorType;
use pingora_http::RequestHeader;
use tokio::io::AsyncReadExt;

use super::tee::{Abandoned, TeeReceiver};
use crate::capture::{kept_trailers, BodyCapture, CapturedResponse, Outcome};
use crate::config::ShadowConfig;
use crate::error::SetupError;
use crate::metrics::UpstreamErrorKind;

/// Pingora's own default number of idle upstream connections kept.
const DEFAULT_POOL_SIZE: usize = 128;

/// How long an idle connection is kept for reuse.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// Idle HTTP/1.1 connections to the peer.
    idle: IdlePool,
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
        peer.options.idle_timeout = Some(IDLE_TIMEOUT);
        // Idle connections kept for reuse: at least one per copy that may be outstanding, so a
        // slow shadow's answers go back to the pool instead of being closed, and the next copies
        // do not each open a new connection.
        let pool_size = config.max_in_flight.max(DEFAULT_POOL_SIZE);
        Ok(ShadowTarget {
            connector: Connector::new(Some(ConnectorOptions::new(pool_size))),
            idle: IdlePool::new(pool_size, IDLE_TIMEOUT),
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
        let mut session = match self.idle.take() {
            Some(stream) => HttpSession::H1(Http1Session::new_with_options(stream, &self.peer)),
            None => self.connect().await?,
        };
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
            self.release(session).await;
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

    /// A session on a new connection (or, for HTTP/2, on one the connector multiplexes).
    async fn connect(&self) -> Result<HttpSession, ShadowFailure> {
        let (session, _reused) =
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
        Ok(session)
    }

    /// Keeps a session whose answer was read whole for the next copy, when its connection
    /// may be reused.
    async fn release(&self, session: HttpSession) {
        match session {
            HttpSession::H1(mut h1) => {
                h1.respect_keepalive();
                if let Some(stream) = h1.reuse().await {
                    self.idle.put(stream);
                }
            }
            other => {
                self.connector
                    .release_http_session(other, &self.peer, self.peer.options.idle_timeout)
                    .await
            }
        }
    }
}

/// Idle HTTP/1.1 connections to one peer, at most `capacity`: the most recently used is taken
/// first, and one idle for `idle_timeout` is closed (checked whenever one is kept or taken).
/// A connection is checked before reuse: one the peer has closed, or that has unexpected data
/// waiting, is closed instead.
struct IdlePool {
    idle: Mutex<VecDeque<(Instant, Stream)>>,
    capacity: usize,
    idle_timeout: Duration,
}

impl IdlePool {
    fn new(capacity: usize, idle_timeout: Duration) -> Self {
        IdlePool {
            idle: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            idle_timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<(Instant, Stream)>> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An idle connection that is still open, if there is one.
    fn take(&self) -> Option<Stream> {
        loop {
            let (since, mut stream) = self.lock().pop_back()?;
            if since.elapsed() < self.idle_timeout && still_open(&mut stream) {
                return Some(stream);
            }
        }
    }

    /// Keeps a connection; the ones idle too long, and the oldest when the pool is full, are
    /// closed (after the lock is let go).
    fn put(&self, stream: Stream) {
        let mut closed = Vec::new();
        {
            let mut idle = self.lock();
            while idle
                .front()
                .is_some_and(|(since, _)| since.elapsed() >= self.idle_timeout)
                || idle.len() >= self.capacity
            {
                closed.extend(idle.pop_front());
            }
            idle.push_back((Instant::now(), stream));
        }
        drop(closed);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Whether an idle connection can carry another request: nothing is waiting to be read on it
/// (a peer never speaks first on an idle connection), and it is not closed or broken.
fn still_open(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    // Unconstrained: a task that has spent its budget would otherwise be told "pending" about a
    // connection with data or an end waiting.
    let read = pin!(tokio::task::unconstrained(stream.read(&mut byte)));
    read.poll(&mut Context::from_waker(Waker::noop()))
        .is_pending()
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A connection to a loopback listener, and the listener's end of it.
    async fn connection(listener: &TcpListener) -> (Stream, TcpStream) {
        let address = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        let client = pingora_core::protocols::l4::stream::Stream::from(client.unwrap());
        (Box::new(client), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn an_open_connection_is_taken_back_the_latest_first() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = IdlePool::new(4, Duration::from_secs(60));
        let (first, _first_peer) = connection(&listener).await;
        let (second, _second_peer) = connection(&listener).await;
        let (first_id, second_id) = (first.id(), second.id());
        pool.put(first);
        pool.put(second);
        assert_eq!(pool.take().map(|s| s.id()), Some(second_id));
        assert_eq!(pool.take().map(|s| s.id()), Some(first_id));
        assert!(pool.take().is_none());
    }

    #[tokio::test]
    async fn a_connection_the_peer_closed_or_spoke_on_is_not_reused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = IdlePool::new(4, Duration::from_secs(60));
        let (closed, closed_peer) = connection(&listener).await;
        let (spoken, mut spoken_peer) = connection(&listener).await;
        pool.put(closed);
        pool.put(spoken);
        drop(closed_peer);
        spoken_peer
            .write_all(b"HTTP/1.1 408 \r\n\r\n")
            .await
            .unwrap();
        // Until the kernel has the FIN and the bytes in hand.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.take().is_none());
        assert_eq!(pool.len(), 0);
    }

    #[tokio::test]
    async fn the_pool_keeps_at_most_its_capacity_and_nothing_idle_too_long() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = IdlePool::new(2, Duration::from_secs(60));
        let mut peers = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let (stream, peer) = connection(&listener).await;
            ids.push(stream.id());
            peers.push(peer);
            pool.put(stream);
        }
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.take().map(|s| s.id()), Some(ids[2]));
        assert_eq!(pool.take().map(|s| s.id()), Some(ids[1]));

        let expiring = IdlePool::new(2, Duration::from_millis(20));
        let (stream, _peer) = connection(&listener).await;
        expiring.put(stream);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(expiring.take().is_none());
    }
}
