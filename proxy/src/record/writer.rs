//! The writer thread: takes what the queue holds every few milliseconds, redacts each record
//! (the rules of examples), batches them into one gzip member per flush — every second, or
//! sooner when a batch grows — appends it to the current segment in one write, syncs every few
//! seconds, and rewrites the manifest when the settings change. At exit it writes what is
//! queued and syncs.

use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use std::borrow::Cow;
use std::ops::Range;

use http::HeaderMap;
use serde::Serialize;
#[cfg(test)]
use twinpeak_core::recording::RecordedExchange;
use twinpeak_core::recording::{encode_lines, RecordingManifest, RECORDING_SCHEMA};
use twinpeak_core::timestamp::rfc3339;

use super::segments::Segments;
use super::{Message, PendingRecord, RecordConfig, RecordSettings};
use crate::capture::CapturedBody;
use crate::comparison::redact::Redactor;
use crate::headers::REQUEST_ID;
use crate::metrics::{RecordMetrics, RecordResult};
use crate::ratelimit::RateLimitedLog;

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
    pub manifest: RecordingManifest,
    /// A manifest to write in place of the current one, set when the settings change.
    pub next_manifest: Arc<Mutex<Option<RecordingManifest>>>,
}

/// The running writer.
pub struct WriterThread {
    thread: std::thread::JoinHandle<()>,
    done: Receiver<()>,
}

impl WriterThread {
    /// Opens the directory, writes the manifest and starts the thread; the first segment is
    /// begun with the first flush.
    pub fn start(setup: WriterSetup) -> std::io::Result<WriterThread> {
        let record = &setup.record;
        let segments = Segments::open(
            &record.dir,
            record.max_file_bytes.0,
            record.max_total_bytes.0,
        )?;
        segments.write_manifest(&setup.manifest)?;
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
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
            errors: RateLimitedLog::new(Duration::from_secs(5)),
        };
        let intake = setup.intake;
        let thread = std::thread::Builder::new()
            .name("twinpeak record".into())
            .spawn(move || {
                writer.run(intake);
                let _ = done_tx.send(());
            })?;
        Ok(WriterThread { thread, done })
    }

    /// Waits until `deadline` for the thread to finish (it has been sent [`Message::Stop`]).
    pub fn join(self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.done.recv_timeout(left) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let _ = self.thread.join();
            }
            Err(RecvTimeoutError::Timeout) => {
                log::warn!("record: the writer did not finish writing in time at exit");
            }
        }
    }
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
        let line = line(&self.redactor, &self.route_names, &record);
        match serde_json::to_writer(&mut self.lines, &line) {
            Ok(()) => {
                self.lines.push(b'\n');
                self.batch.push((record.at_us, start..self.lines.len()));
            }
            Err(e) => {
                self.lines.truncate(start);
                self.failed(1, &format!("cannot encode: {e}"));
            }
        }
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
        let member = match encode_lines(lines) {
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

/// A record as written, borrowing from it all it can.
fn line<'a>(
    redactor: &'a Redactor,
    route_names: &'a [String],
    record: &'a PendingRecord,
) -> ExchangeLine<'a> {
    ExchangeLine {
        at_us: record.at_us,
        request_id: record
            .headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
        route: route_names.get(record.route).map_or("", String::as_str),
        method: record.method.as_str(),
        path: redactor.uri(&record.uri),
        headers: HeaderPairs(redactor, &record.headers),
        body: body(redactor, &record.body, record.body_len, &record.headers),
        response: record.answer.as_ref().map(|answer| ResponseLine {
            status: answer.status,
            headers: HeaderPairs(redactor, &answer.headers),
            body: body(redactor, &answer.body, answer.body_len, &answer.headers),
            latency_us: answer.latency.as_micros() as u64,
        }),
    }
}

/// A body as recorded: redacted, or withheld when it cannot be.
fn body<'a>(
    redactor: &Redactor,
    body: &'a CapturedBody,
    whole: u64,
    headers: &HeaderMap,
) -> BodyLine<'a> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let (data, encoding) = redactor.body_text(&body.bytes, content_type);
    BodyLine {
        data,
        encoding,
        truncated_from: (whole > body.bytes.len() as u64).then_some(whole),
    }
}

/// A [`RecordedExchange`] as written, borrowed from the record: the same fields, names and
/// order, so that it reads back as one.
#[derive(Serialize)]
struct ExchangeLine<'a> {
    at_us: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    request_id: &'a str,
    route: &'a str,
    method: &'a str,
    path: Cow<'a, str>,
    headers: HeaderPairs<'a>,
    body: BodyLine<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<ResponseLine<'a>>,
}

/// A [`twinpeak_core::recording::RecordedResponse`] as written.
#[derive(Serialize)]
struct ResponseLine<'a> {
    status: u16,
    headers: HeaderPairs<'a>,
    body: BodyLine<'a>,
    latency_us: u64,
}

/// A [`twinpeak_core::recording::RecordedBody`] as written.
#[derive(Serialize)]
struct BodyLine<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    data: Cow<'a, str>,
    encoding: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    truncated_from: Option<u64>,
}

/// Headers written as `[name, value]` pairs, secrets redacted as they are written.
struct HeaderPairs<'a>(&'a Redactor, &'a HeaderMap);

impl Serialize for HeaderPairs<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.header_pairs(self.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::BodyCapture;
    use twinpeak_core::recording::{RecordedBody, RecordedResponse};

    #[test]
    fn a_line_reads_back_as_the_exchange_it_was_written_from() {
        let redactor = Redactor::default();
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, "r-1".parse().unwrap());
        headers.insert("authorization", "Bearer s3cret".parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        let mut body = BodyCapture::unbudgeted(8);
        body.push(br#"{"a":"\u00e9"}"#);
        let body = body.finish();
        let answer = {
            let mut capture = BodyCapture::unbudgeted(64);
            capture.push(&[0xff, 0x00]);
            capture.finish()
        };
        let answer_headers = HeaderMap::new();
        let line = ExchangeLine {
            at_us: 7,
            request_id: "r-1",
            route: "/bookings/{id}",
            method: "POST",
            path: redactor.uri("/bookings/1?token=t&page=2"),
            headers: HeaderPairs(&redactor, &headers),
            body: BodyLine {
                data: redactor.body_text(&body.bytes, Some("text/plain")).0,
                encoding: "text",
                truncated_from: Some(14),
            },
            response: Some(ResponseLine {
                status: 201,
                headers: HeaderPairs(&redactor, &answer_headers),
                body: BodyLine {
                    data: redactor.body_text(&answer.bytes, None).0,
                    encoding: "base64",
                    truncated_from: None,
                },
                latency_us: 1500,
            }),
        };
        let written = serde_json::to_string(&line).unwrap();
        let read: RecordedExchange = serde_json::from_str(&written).unwrap();
        let expected = RecordedExchange {
            at_us: 7,
            request_id: "r-1".into(),
            route: "/bookings/{id}".into(),
            method: "POST".into(),
            path: "/bookings/1?token=[redacted]&page=2".into(),
            headers: redactor.headers(&headers),
            body: RecordedBody {
                data: r#"{"a":"\u"#.into(),
                encoding: "text".into(),
                truncated_from: Some(14),
            },
            response: Some(RecordedResponse {
                status: 201,
                headers: Vec::new(),
                body: RecordedBody {
                    data: "/wA=".into(),
                    encoding: "base64".into(),
                    truncated_from: None,
                },
                latency_us: 1500,
            }),
        };
        assert_eq!(read, expected);
        assert!(!written.contains("s3cret"), "{written}");
        // Written the same, byte for byte, as the exchange itself.
        assert_eq!(written, serde_json::to_string(&expected).unwrap());
    }
}
