//! The access log (`access_log:`): one JSON object a line for each client request, written
//! when the request ends, to a file rotated by size or to standard output.
//!
//! A record's way: the `logging` hook hands [`AccessLog::offer`] what it knows of the request
//! ([`RequestFacts`]) and the session; the record copies those fields — no formatting, no JSON
//! — and is offered to a bounded queue without waiting: a full queue (`dropped_queue`) or a
//! spent byte bound (`dropped_bytes`) drops it, counted. The writer thread (`writer`) takes
//! what is queued every few milliseconds, redacts the target's query (the rules of examples),
//! writes each record as a line (`line`) into one buffer and appends the batch in one write to
//! the file (`sink`), which rotates by size and is reopened when logrotate moved it away.

pub mod config;
mod line;
mod sink;
mod writer;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http::HeaderValue;
use pingora_error::{Error, ErrorSource};
use pingora_proxy::Session;
use twinpeak_core::sync::lock;

use crate::budget::{ByteBudget, Reservation};
use crate::config::Config;
use crate::error::{SetupError, SetupProblem};
use crate::headers::REQUEST_ID;
use crate::labels::{MirrorOutcome, Side};
use crate::metrics::{AccessLogMetrics, Metrics, RecordResult, UpstreamErrorKind};
use crate::routes::{RouteId, RouteTable};

pub use config::AccessLogConfig;

/// Longest the proxy waits at exit for the writer to write what is queued.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// What the request path knows of a request as it ends, beside its session.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts {
    /// When the request's header had been read.
    pub arrival: Instant,
    /// Its route.
    pub route: RouteId,
    /// The side that served it.
    pub side: Side,
    /// From the request to the serving side to the end of its answer, when it answered.
    pub upstream: Option<Duration>,
    /// Why the serving side failed, when it did.
    pub upstream_error: Option<UpstreamErrorKind>,
    /// The mirror's decision.
    pub mirror: MirrorDecision,
}

/// What the mirror decided for a request, as the request ends (the shadow's answer comes
/// later, and is counted in `twinpeak_mirror_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorDecision {
    /// The request ended before the mirror was asked (refused before routing).
    Undecided,
    /// A copy was started to the shadow.
    Mirrored,
    /// No copy was made, for this reason (`not_sampled`, `method`, `shadow_down`, ...).
    Skipped(MirrorOutcome),
}

impl MirrorDecision {
    /// The value of the line's `mirror` field.
    fn as_str(self) -> Option<&'static str> {
        match self {
            MirrorDecision::Undecided => None,
            MirrorDecision::Mirrored => Some("mirrored"),
            MirrorDecision::Skipped(outcome) => Some(outcome.as_str()),
        }
    }
}

/// A request's record on its way to the writer: copies of what the session and the request
/// path held, formatted only by the writer.
#[derive(Debug)]
struct AccessRecord {
    end: SystemTime,
    duration: Duration,
    facts: RequestFacts,
    request_id: Option<HeaderValue>,
    method: http::Method,
    target: http::Uri,
    version: http::Version,
    /// The status sent to the client; 0 when none was.
    status: u16,
    bytes_sent: u64,
    bytes_received: u64,
    tls: Option<Cow<'static, str>>,
    client: Option<SocketAddr>,
    user_agent: Option<HeaderValue>,
    referer: Option<HeaderValue>,
    /// Where the error that ended the request came from, and Pingora's name for it.
    error: Option<(ErrorSource, &'static str)>,
    /// The queue's bytes the record holds.
    _reservation: Reservation,
}

/// What the writer thread is sent.
enum Message {
    Record(Box<AccessRecord>),
    /// Write everything before this, flush, and stop.
    Stop,
}

/// The access log shared by every request.
pub struct AccessLog {
    queue: SyncSender<Message>,
    budget: Arc<ByteBudget>,
    metrics: AccessLogMetrics,
    /// The writer thread, joined at exit.
    writer: Mutex<Option<crate::writer_thread::WriterThread>>,
}

impl AccessLog {
    /// The access log of `config.access_log`, its file opened and its writer started. `None`
    /// without an `access_log:` section; fails, naming `access_log.path`, when the file cannot
    /// be opened for appending.
    pub fn start(
        config: &Config,
        routes: &RouteTable,
        metrics: &Metrics,
    ) -> Result<Option<Arc<AccessLog>>, SetupError> {
        let Some(section) = &config.access_log else {
            return Ok(None);
        };
        let metrics = AccessLogMetrics::register(metrics);
        let (queue, intake) = sync_channel(section.queue);
        let thread = writer::start(writer::WriterSetup {
            config: section.clone(),
            redactor: crate::comparison::redact::Redactor::new(&config.diff),
            route_names: routes.names().to_vec(),
            intake,
            metrics: metrics.clone(),
        })
        .map_err(|error| {
            let path = section.path.clone();
            SetupError::new("access_log.path", SetupProblem::AccessLog { path, error })
        })?;
        Ok(Some(Arc::new(AccessLog {
            queue,
            budget: ByteBudget::new(section.max_queued_bytes.0 as usize),
            metrics,
            writer: Mutex::new(Some(thread)),
        })))
    }

    /// Copies what the line needs from the session and `facts` and offers it to the writer;
    /// never waits. `error` is what ended the request, when something did.
    pub fn offer(&self, session: &Session, error: Option<&Error>, facts: RequestFacts) {
        let req = session.req_header();
        let header = |name| req.headers.get(name).cloned();
        let (user_agent, referer) = (
            header(http::header::USER_AGENT),
            header(http::header::REFERER),
        );
        let request_id = header(REQUEST_ID);
        let held = std::mem::size_of::<AccessRecord>()
            + req.uri.path_and_query().map_or(0, |p| p.as_str().len())
            + [&user_agent, &referer, &request_id]
                .iter()
                .map(|v| v.as_ref().map_or(0, HeaderValue::len))
                .sum::<usize>();
        let mut reservation = self.budget.reservation();
        if !reservation.grow(held) {
            self.metrics.count(RecordResult::DroppedBytes, 1);
            return;
        }
        let record = AccessRecord {
            end: SystemTime::now(),
            duration: facts.arrival.elapsed(),
            facts,
            request_id,
            method: req.method.clone(),
            target: req.uri.clone(),
            version: req.version,
            status: session.response_written().map_or(0, |r| r.status.as_u16()),
            bytes_sent: session.as_downstream().body_bytes_sent() as u64,
            bytes_received: session.as_downstream().body_bytes_read() as u64,
            tls: session
                .digest()
                .and_then(|d| d.ssl_digest.as_ref())
                .map(|tls| tls.version.clone()),
            client: session.client_addr().and_then(|a| a.as_inet()).copied(),
            user_agent,
            referer,
            error: error.map(|e| (e.esource().clone(), e.etype().as_str())),
            _reservation: reservation,
        };
        match self.queue.try_send(Message::Record(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.metrics.count(RecordResult::DroppedQueue, 1),
            // The writer has stopped (the proxy is exiting).
            Err(TrySendError::Disconnected(_)) => self.metrics.count(RecordResult::Failed, 1),
        }
    }

    /// At exit: writes every queued record, flushes the file and stops the writer, waiting
    /// at most a few seconds.
    pub fn flush_at_exit(&self) {
        let Some(thread) = lock(&self.writer).take() else {
            return;
        };
        thread.stop(&self.queue, Message::Stop, EXIT_WAIT);
    }
}
