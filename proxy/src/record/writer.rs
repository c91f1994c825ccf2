//! The writer thread: takes what the queue holds every few milliseconds, redacts each record
//! (the rules of examples), batches them into one gzip member per flush — every second, or
//! sooner when a batch grows — appends it to the current segment in one write, syncs every few
//! seconds, and rewrites the manifest when the settings change. At exit it writes what is
//! queued and syncs.

use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use std::ops::Range;

use twinpeak_core::recording::{MemberEncoder, RecordingManifest, RECORDING_SCHEMA};
use twinpeak_core::timestamp::rfc3339;

use super::line::ExchangeLine;
use super::segments::Segments;
use super::{Message, PendingRecord, RecordConfig, RecordSettings};
use crate::comparison::redact::Redactor;
use crate::metrics::{RecordMetrics, RecordResult};
use crate::ratelimit::RateLimitedLog;
use crate::writer_thread::WriterThread;

/// Longest a record waits in a batch before it is written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Most records in one batch.
const FLUSH_RECORDS: usize = 1024;
/// Most bytes (before compression) of one batch, at most; a quarter of a segment when that
/// is less. Small enough that the buffers of a flush are reused rather than mapped afresh.
const FLUSH_BYTES: usize = 256 << 10;
/// How long the thread sleeps once the queue is empty: the queue holds what arrives meanwhile
/// (`record.queue`, 4096 by default, is 400,000 records a second).
const POLL: Duration = Duration::from_millis(10);
/// How often the current segment is synced to disk.
const SYNC_EVERY: Duration = Duration::from_secs(5);

/// The manifest for the settings in force.
pub fn manifest(
    primary: &str,
    settings: &RecordSettings,
    record: &RecordConfig,
) -> RecordingManifest {
    RecordingManifest {
        schema: RECORDING_SCHEMA.into(),
        primary: primary.into(),
        started_at: rfc3339(SystemTime::now()),
        percent: if settings.enabled {
            settings.percent.value()
        } else {
            0.0
        },
        answers: record.answers,
    }
}

/// What the writer thread starts from.
pub struct WriterSetup {
    pub record: RecordConfig,
    pub redactor: Redactor,
    pub route_names: Vec<String>,
    pub intake: Receiver<Message>,
    pub metrics: RecordMetrics,
    /// The manifest written at start; `None` upgrading, when it is written only once the
    /// sockets are taken over (the directory is checked for writing instead), so that an
    /// upgrade that does not happen leaves the running proxy's manifest alone.
    pub manifest: Option<RecordingManifest>,
    /// A manifest to write in place of the current one, set when the settings change.
    pub next_manifest: Arc<Mutex<Option<RecordingManifest>>>,
}

/// Opens the directory, writes the manifest (when given) and starts the thread; the first
/// segment is begun with the first flush.
pub fn start(setup: WriterSetup) -> std::io::Result<WriterThread> {
    let record = &setup.record;
    let segments = Segments::open(
        &record.dir,
        record.max_file_bytes.0,
        record.max_total_bytes.0,
    )?;
    match &setup.manifest {
        Some(manifest) => segments.write_manifest(manifest)?,
        None => segments.check_writable()?,
    }
    let flush_bytes = FLUSH_BYTES.min(record.max_file_bytes.0 as usize / 4);
    let writer = Writer {
        segments,
        redactor: setup.redactor,
        route_names: setup.route_names,
        metrics: setup.metrics,
        next_manifest: setup.next_manifest,
        max_file_bytes: record.max_file_bytes.0 as usize,
        flush_bytes,
        lines: Vec::with_capacity(flush_bytes + (64 << 10)),
        batch: Vec::with_capacity(FLUSH_RECORDS),
        encoder: MemberEncoder::new(),
        errors: RateLimitedLog::new(Duration::from_secs(5)),
    };
    let intake = setup.intake;
    WriterThread::spawn("record", move || writer.run(intake))
}

struct Writer {
    segments: Segments,
    redactor: Redactor,
    route_names: Vec<String>,
    metrics: RecordMetrics,
    next_manifest: Arc<Mutex<Option<RecordingManifest>>>,
    max_file_bytes: usize,
    flush_bytes: usize,
    /// The batch's records as JSON lines, one after another, reused from flush to flush.
    lines: Vec<u8>,
    /// Each record's arrival and where its line is in `lines`.
    batch: Vec<(u64, Range<usize>)>,
    /// The compressor, reused from member to member.
    encoder: MemberEncoder,
    errors: RateLimitedLog,
}

impl Writer {
    fn run(mut self, intake: Receiver<Message>) {
        let mut next_flush = Instant::now() + FLUSH_EVERY;
        let mut next_sync = Instant::now() + SYNC_EVERY;
        'run: loop {
            // Everything queued is taken at once; the thread never waits on the queue itself,
            // so that a request path that queues a record never has to wake it.
            loop {
                self.write_manifest_if_changed();
                match intake.try_recv() {
                    Ok(Message::Record(record)) => {
                        self.metrics.queue.dec();
                        self.add(*record);
                        if self.batch.len() >= FLUSH_RECORDS || self.lines.len() >= self.flush_bytes
                        {
                            self.flush();
                        }
                    }
                    Ok(Message::Stop) | Err(TryRecvError::Disconnected) => break 'run,
                    Err(TryRecvError::Empty) => break,
                }
            }
            let now = Instant::now();
            if now >= next_flush {
                self.flush();
                next_flush = now + FLUSH_EVERY;
            }
            if now >= next_sync {
                self.sync();
                next_sync = now + SYNC_EVERY;
            }
            std::thread::sleep(POLL);
        }
        // Records of exchanges that ended as the proxy stopped may wait behind the stop.
        while let Ok(Message::Record(record)) = intake.try_recv() {
            self.metrics.queue.dec();
            self.add(*record);
        }
        self.write_manifest_if_changed();
        self.flush();
        let (held, uncached) = self.redactor.cached_keys();
        if uncached > 0 {
            log::info!(
                "record: {uncached} JSON keys were decided afresh, past the {held} kept secret decisions"
            );
        }
        if let Err(e) = self.segments.close() {
            log::warn!("record: could not sync the last segment at exit: {e}");
        }
    }

    fn write_manifest_if_changed(&mut self) {
        let next = super::lock(&self.next_manifest).take();
        if let Some(manifest) = next {
            if let Err(e) = self.segments.write_manifest(&manifest) {
                self.errors
                    .warn(|| format!("record: could not rewrite the manifest: {e}"));
            }
        }
    }

    fn sync(&mut self) {
        if let Err(e) = self.segments.sync() {
            self.errors
                .warn(|| format!("record: could not sync the segment: {e}"));
        }
    }

    /// Redacts a record and writes it as a line at the end of the batch.
    fn add(&mut self, record: PendingRecord) {
        let start = self.lines.len();
        ExchangeLine::of(&self.redactor, &self.route_names, &record).write_to(&mut self.lines);
        self.lines.push(b'\n');
        self.batch.push((record.at_us, start..self.lines.len()));
    }

    /// Writes the batch as one member (or, when it would not fit a segment, as several).
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.batch);
        batch.sort_by_key(|(at_us, _)| *at_us);
        self.write(&batch);
        self.lines.clear();
        batch.clear();
        self.batch = batch;
    }

    fn write(&mut self, records: &[(u64, Range<usize>)]) {
        let lines = records.iter().map(|(_, line)| &self.lines[line.clone()]);
        let member = match self.encoder.encode(lines) {
            Ok(member) => member,
            Err(e) => return self.failed(records.len(), &format!("cannot encode: {e}")),
        };
        if member.len() > self.max_file_bytes {
            if records.len() > 1 {
                let (first, second) = records.split_at(records.len() / 2);
                self.write(first);
                return self.write(second);
            }
            return self.failed(
                1,
                &format!(
                    "a record of {} compressed bytes is larger than record.max_file_bytes",
                    member.len()
                ),
            );
        }
        let first_ms = records.first().map_or(0, |(at_us, _)| at_us / 1000);
        match self.segments.append(&member, first_ms) {
            Ok(appended) => {
                self.metrics
                    .count(RecordResult::Written, records.len() as u64);
                self.metrics.bytes.inc_by(member.len() as u64);
                self.metrics.segments_deleted.inc_by(appended.deleted);
                self.metrics.deleted_bytes.inc_by(appended.deleted_bytes);
            }
            Err(e) => self.failed(records.len(), &format!("cannot write: {e}")),
        }
    }

    fn failed(&self, records: usize, why: &str) {
        self.metrics.count(RecordResult::Failed, records as u64);
        self.errors
            .warn(|| format!("record: {records} records lost: {why}"));
    }
}
