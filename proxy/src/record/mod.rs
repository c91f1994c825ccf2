//! Recording of live traffic (`record:`), for `twinpeak load --replay` and `twinpeak scenario
//! from-recording`: a consistent share of requests, writes included, with arrival time,
//! headers, body and the primary's answer, each capped, written as `twinpeak.recording/v1`
//! segments (`twinpeak_core::recording`).
//!
//! A record's way: [`Recorder::admit`] decides on the request path (on, route, method,
//! sample) and gives it a [`RecordingHandle`] (`handle`), which keeps capped copies of the
//! request body and the answer as they pass, their bytes taken from the queue's byte budget.
//! When the exchange ends the record is offered to a bounded queue without waiting: a full
//! queue or a spent budget drops it, counted. The writer thread (`writer`) redacts each
//! record as examples are redacted, batches them into one gzip member per flush, and appends
//! it to the current segment (`segments`), which rotates by size and keeps the directory
//! within its bound, oldest segments deleted first.

pub mod config;
mod handle;
mod line;
mod segments;
mod writer;

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use http::HeaderMap;
use serde::Serialize;
use twinpeak_core::recording::RecordingManifest;
use twinpeak_core::timestamp::rfc3339;

use crate::budget::{ByteBudget, Reservation};
use crate::capture::CapturedBody;
use crate::config::Config;
use crate::error::{SetupError, SetupProblem};
use crate::metrics::{Metrics, RecordMetrics, RecordResult};
use crate::routes::{RouteId, RouteTable};
use crate::sampling::Sampler;
use crate::units::{Percent, SampleKey};
use crate::upgrade::Start;

pub use config::RecordConfig;
pub use handle::RecordingHandle;

/// Longest the proxy waits at exit for the writer to write what is queued.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// The recording settings that can change while the proxy runs (`PUT /api/v1/record`).
#[derive(Debug, Clone, Serialize)]
pub struct RecordSettings {
    /// Whether requests are being recorded.
    pub enabled: bool,
    /// Share of requests recorded.
    pub percent: Percent,
    #[serde(skip)]
    sampler: Sampler,
}

impl RecordSettings {
    /// Settings with a sampler keyed by `key`.
    pub fn new(enabled: bool, percent: Percent, key: SampleKey) -> Self {
        RecordSettings {
            enabled,
            percent,
            sampler: Sampler::new(percent, key),
        }
    }
}

/// A record on its way to the writer: what the request path copied, not yet redacted.
struct PendingRecord {
    at_us: u64,
    route: RouteId,
    method: http::Method,
    uri: String,
    headers: HeaderMap,
    body: CapturedBody,
    /// Whole length of the request body as it passed.
    body_len: u64,
    answer: Option<PendingAnswer>,
    /// The queue's bytes the headers and target hold (the bodies hold their own).
    _reservation: Reservation,
}

/// The primary's answer to a recorded request, as captured.
struct PendingAnswer {
    status: u16,
    headers: HeaderMap,
    body: CapturedBody,
    body_len: u64,
    latency: Duration,
}

/// What the writer thread is sent.
enum Message {
    Record(Box<PendingRecord>),
    /// Write everything before this, sync, and stop.
    Stop,
}

/// Wall-clock microseconds that advance with the monotonic clock, so the gaps between
/// recorded arrivals are exact even when the system clock is stepped.
#[derive(Debug, Clone, Copy)]
struct Clock {
    origin_us: u64,
    origin: Instant,
}

impl Clock {
    fn new() -> Self {
        let origin_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Clock {
            origin_us,
            origin: Instant::now(),
        }
    }

    fn at_us(&self, instant: Instant) -> u64 {
        self.origin_us + instant.saturating_duration_since(self.origin).as_micros() as u64
    }
}

/// What is recorded, and how much of each exchange: replaced whole when a reload changes it.
pub(crate) struct Scope {
    /// The sampling key.
    key: SampleKey,
    /// Whether each route is recorded, by id.
    routes: Vec<bool>,
    /// The methods recorded; all when `None`.
    methods: Option<Vec<http::Method>>,
    /// Most bytes of a request body kept.
    max_body_bytes: usize,
    /// Whether the primary's answers are kept.
    answers: bool,
    /// Most bytes of an answer's body kept.
    max_response_bytes: usize,
}

impl Scope {
    fn new(record: &RecordConfig, routes: &RouteTable) -> Self {
        let listed = record.routes.as_ref();
        Scope {
            key: record.key.clone(),
            routes: routes
                .names()
                .iter()
                .map(|name| listed.is_none_or(|l| l.contains(name)))
                .collect(),
            methods: record
                .methods
                .as_ref()
                .map(|m| m.iter().map(|m| m.0.clone()).collect()),
            max_body_bytes: record.max_body_bytes.0 as usize,
            answers: record.answers,
            max_response_bytes: record.max_response_bytes.0 as usize,
        }
    }
}

/// The recorder shared by every request.
pub struct Recorder {
    /// Read by every request, replaced by `PUT /api/v1/record`: a load takes no lock.
    settings: ArcSwap<RecordSettings>,
    /// Read by every request, replaced by a reload.
    scope: ArcSwap<Scope>,
    /// The recording directory.
    dir: std::path::PathBuf,
    queue: SyncSender<Message>,
    budget: Arc<ByteBudget>,
    metrics: RecordMetrics,
    clock: Clock,
    /// The manifest in force, and the one the writer is to write next when it changed.
    manifest: Mutex<RecordingManifest>,
    next_manifest: Arc<Mutex<Option<RecordingManifest>>>,
    /// The writer thread, joined at exit.
    writer: Mutex<Option<crate::writer_thread::WriterThread>>,
}

/// What `GET /api/v1/record` shows.
#[derive(Debug, Serialize)]
pub struct RecordView {
    /// Whether requests are being recorded.
    pub enabled: bool,
    /// Share of requests recorded.
    pub percent: f64,
    /// The recording directory.
    pub dir: String,
    /// Records waiting for the writer.
    pub queue: i64,
    /// Bytes the waiting records hold.
    pub queued_bytes: usize,
    /// Records by what became of them (`written`, `dropped_queue`, `dropped_bytes`,
    /// `failed`).
    pub counts: std::collections::BTreeMap<&'static str, u64>,
    /// Compressed bytes written.
    pub bytes_written: u64,
    /// Segments deleted to keep the directory bound, and the bytes they held.
    pub segments_deleted: u64,
    /// Bytes of the deleted segments.
    pub deleted_bytes: u64,
}

impl Recorder {
    /// The recorder of `config.record`, its writer started: the directory is made (0700) and
    /// the manifest written (upgrading, only once the sockets are taken over: see
    /// [`Recorder::taken_over`]); the first write begins a new segment (one left by an earlier run
    /// is never appended to). `None` without a `record:` section; fails, naming `record.dir`,
    /// when the directory cannot be made or written.
    pub fn start(
        config: &Config,
        routes: &RouteTable,
        metrics: &Metrics,
        start: Start,
    ) -> Result<Option<Arc<Recorder>>, SetupError> {
        let Some(record) = &config.record else {
            return Ok(None);
        };
        let primary = config.primary.url.to_string();
        let (recorder, intake) = Recorder::new(record, &primary, routes, metrics);
        let thread = writer::start(writer::WriterSetup {
            record: record.clone(),
            redactor: crate::comparison::redact::Redactor::new(&config.diff),
            route_names: routes.names().to_vec(),
            intake,
            metrics: recorder.metrics.clone(),
            manifest: (start == Start::Fresh).then(|| recorder.manifest().clone()),
            next_manifest: recorder.next_manifest.clone(),
        })
        .map_err(|error| {
            let dir = record.dir.clone();
            SetupError::new("record.dir", SetupProblem::Recording { dir, error })
        })?;
        *lock(&recorder.writer) = Some(thread);
        Ok(Some(Arc::new(recorder)))
    }

    /// A recorder of `record` in front of `primary`, and the intake of its queue, for a
    /// writer to take.
    fn new(
        record: &RecordConfig,
        primary: &str,
        routes: &RouteTable,
        metrics: &Metrics,
    ) -> (Recorder, Receiver<Message>) {
        let metrics = RecordMetrics::register(metrics);
        let settings = RecordSettings::new(true, record.percent, record.key.clone());
        let manifest = writer::manifest(primary, &settings, record);
        let (queue, intake) = sync_channel(record.queue);
        let recorder = Recorder {
            dir: record.dir.clone(),
            scope: ArcSwap::from_pointee(Scope::new(record, routes)),
            queue,
            budget: ByteBudget::new(record.max_queued_bytes.0 as usize),
            clock: Clock::new(),
            manifest: Mutex::new(manifest),
            next_manifest: Arc::new(Mutex::new(None)),
            writer: Mutex::new(None),
            settings: ArcSwap::from_pointee(settings),
            metrics,
        };
        recorder.show_settings();
        (recorder, intake)
    }

    /// The settings in force.
    pub fn settings(&self) -> Arc<RecordSettings> {
        self.settings.load_full()
    }

    /// Switches recording on or off and sets the share; requests that arrive afterwards see
    /// the new settings, and the manifest is rewritten.
    pub fn set(&self, enabled: bool, percent: Percent) -> Arc<RecordSettings> {
        let key = self.scope.load().key.clone();
        let settings = Arc::new(RecordSettings::new(enabled, percent, key));
        let before = self.settings.swap(settings.clone());
        self.show_settings();
        let mut manifest = self.manifest();
        if enabled && !before.enabled {
            manifest.started_at = rfc3339(SystemTime::now());
        }
        manifest.percent = if enabled { percent.value() } else { 0.0 };
        *lock(&self.next_manifest) = Some(manifest.clone());
        settings
    }

    /// A reload: puts `record`'s share, sampling key, routes, methods, body limits and whether
    /// answers are kept in force for the requests that arrive afterwards (on or off stays as
    /// it is), and rewrites the manifest. The directory, the files' bounds and the queue stay
    /// as the proxy started.
    pub fn reconfigure(&self, record: &RecordConfig, routes: &RouteTable) {
        let answers = record.answers;
        self.scope.store(Arc::new(Scope::new(record, routes)));
        self.set(self.settings.load().enabled, record.percent);
        let mut manifest = self.manifest();
        if manifest.answers != answers {
            manifest.answers = answers;
            *lock(&self.next_manifest) = Some(manifest.clone());
        }
    }

    /// Upgrading, once the listening sockets are taken over: the manifest of this process's
    /// settings is written (not before, so that an upgrade that does not happen leaves the
    /// running proxy's manifest as it was).
    pub fn taken_over(&self) {
        *lock(&self.next_manifest) = Some(self.manifest().clone());
    }

    /// At a binary upgrade's hand-over: admits no more requests (the new process records
    /// from now on into the same directory and has written the manifest its own settings
    /// give, which this one leaves alone), while the records already admitted are written as
    /// their exchanges end, until the exit's flush.
    pub fn stop_admitting(&self) {
        let key = self.scope.load().key.clone();
        let stopped = RecordSettings::new(false, self.settings.load().percent, key);
        self.settings.store(Arc::new(stopped));
        self.show_settings();
    }

    /// The manifest in force.
    fn manifest(&self) -> std::sync::MutexGuard<'_, RecordingManifest> {
        lock(&self.manifest)
    }

    fn show_settings(&self) {
        let settings = self.settings.load();
        self.metrics.enabled.set(i64::from(settings.enabled));
        self.metrics.percent.set(settings.percent.value());
    }

    /// Decides whether a request that arrived at `arrival` is recorded; when it is, its
    /// handle keeps what the exchange shows of it. Copies the target and headers; never waits.
    pub fn admit(
        &self,
        arrival: Instant,
        route: RouteId,
        method: &http::Method,
        uri: &http::Uri,
        headers: &HeaderMap,
    ) -> Option<RecordingHandle> {
        let settings = self.settings.load();
        let scope = self.scope.load();
        if !settings.enabled || settings.sampler.samples_nothing() || !scope.routes[route] {
            return None;
        }
        if scope.methods.as_ref().is_some_and(|m| !m.contains(method)) {
            return None;
        }
        if !settings.sampler.includes(headers) {
            return None;
        }
        let uri = uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string());
        let mut reservation = self.budget.reservation();
        if !reservation.grow(uri.len() + header_bytes(headers)) {
            self.metrics.count(RecordResult::DroppedBytes, 1);
            return None;
        }
        Some(RecordingHandle::new(
            handle::Started {
                at_us: self.clock.at_us(arrival),
                arrival,
                route,
                method: method.clone(),
                uri,
                headers: headers.clone(),
                reservation,
            },
            &scope,
            &self.budget,
        ))
    }

    /// Offers a finished record to the writer; `over_budget` when part of it did not fit in
    /// the byte bound. A full queue or a spent bound drops it, counted.
    fn submit(&self, record: PendingRecord, over_budget: bool) {
        if over_budget
            || record.body.over_budget
            || record.answer.as_ref().is_some_and(|a| a.body.over_budget)
        {
            self.metrics.count(RecordResult::DroppedBytes, 1);
            return;
        }
        match self.queue.try_send(Message::Record(Box::new(record))) {
            Ok(()) => self.metrics.queue.inc(),
            Err(TrySendError::Full(_)) => self.metrics.count(RecordResult::DroppedQueue, 1),
            // The writer has stopped (the proxy is exiting, or it failed and said so).
            Err(TrySendError::Disconnected(_)) => self.metrics.count(RecordResult::Failed, 1),
        }
    }

    /// What `GET /api/v1/record` shows.
    pub fn view(&self) -> RecordView {
        let settings = self.settings.load();
        RecordView {
            enabled: settings.enabled,
            percent: settings.percent.value(),
            dir: self.dir.display().to_string(),
            queue: self.metrics.queue.get(),
            queued_bytes: self.budget.used(),
            counts: RecordResult::ALL
                .iter()
                .map(|r| (r.as_str(), self.metrics.total(*r)))
                .collect(),
            bytes_written: self.metrics.bytes.get(),
            segments_deleted: self.metrics.segments_deleted.get(),
            deleted_bytes: self.metrics.deleted_bytes.get(),
        }
    }

    /// At exit: writes every queued record, syncs the segment and stops the writer, waiting
    /// at most a few seconds.
    pub fn flush_at_exit(&self) {
        let Some(thread) = lock(&self.writer).take() else {
            return;
        };
        thread.stop(&self.queue, Message::Stop, EXIT_WAIT);
    }
}

/// Bytes a header map holds, roughly, counted against the queue's byte bound.
fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 8)
        .sum()
}

/// A lock's guard, even when a holder panicked (what it guards stays whole: plain values).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
