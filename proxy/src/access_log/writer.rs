//! The writer thread: takes what the queue holds every few milliseconds, writes each record as
//! a line into one buffer reused from batch to batch, and appends the batch to the sink in one
//! write — when the queue is empty, or sooner when the batch grows. Once a second it checks
//! that the file is still at its path. At exit it writes what is queued and syncs.

use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use super::config::AccessLogConfig;
use super::line::AccessLine;
use super::sink::Sink;
use super::{AccessRecord, Message};
use crate::comparison::redact::Redactor;
use crate::metrics::{AccessLogMetrics, RecordResult};
use crate::ratelimit::RateLimitedLog;
use crate::writer_thread::WriterThread;

/// Most bytes of one batch; a quarter of a file when that is less.
const BATCH_BYTES: usize = 256 << 10;
/// How long the thread sleeps once the queue is empty: the queue holds what arrives meanwhile
/// (`access_log.queue`, 8192 by default, is 800,000 requests a second).
const POLL: Duration = Duration::from_millis(10);
/// How often the file is checked for having been moved or truncated (logrotate).
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// What the writer thread starts from.
pub struct WriterSetup {
    pub config: AccessLogConfig,
    pub redactor: Redactor,
    pub route_names: Vec<String>,
    pub intake: Receiver<Message>,
    pub metrics: AccessLogMetrics,
}

/// Opens the sink and starts the thread.
pub fn start(setup: WriterSetup) -> std::io::Result<WriterThread> {
    let sink = Sink::open(&setup.config)?;
    let batch_bytes = BATCH_BYTES.min(setup.config.max_file_bytes.0 as usize / 4);
    let writer = Writer {
        sink,
        redactor: setup.redactor,
        route_names: setup.route_names,
        metrics: setup.metrics,
        batch_bytes,
        lines: Vec::with_capacity(batch_bytes + (16 << 10)),
        records: 0,
        errors: RateLimitedLog::new(Duration::from_secs(5)),
    };
    let intake = setup.intake;
    WriterThread::spawn("access log", move || writer.run(intake))
}

struct Writer {
    sink: Sink,
    redactor: Redactor,
    route_names: Vec<String>,
    metrics: AccessLogMetrics,
    batch_bytes: usize,
    /// The batch's lines, one after another.
    lines: Vec<u8>,
    /// Records in `lines`.
    records: u64,
    errors: RateLimitedLog,
}

impl Writer {
    fn run(mut self, intake: Receiver<Message>) {
        let mut next_check = Instant::now() + CHECK_EVERY;
        'run: loop {
            // Everything queued is taken at once; the thread never waits on the queue itself,
            // so that a request that queues a record never has to wake it.
            loop {
                match intake.try_recv() {
                    Ok(Message::Record(record)) => {
                        self.add(&record);
                        if self.lines.len() >= self.batch_bytes {
                            self.flush();
                        }
                    }
                    Ok(Message::Stop) | Err(TryRecvError::Disconnected) => break 'run,
                    Err(TryRecvError::Empty) => break,
                }
            }
            self.flush();
            let now = Instant::now();
            if now >= next_check {
                if let Err(e) = self.sink.check() {
                    self.errors
                        .warn(|| format!("access log: cannot reopen the file: {e}"));
                }
                next_check = now + CHECK_EVERY;
            }
            std::thread::sleep(POLL);
        }
        // Lines of requests that ended as the proxy stopped may wait behind the stop.
        while let Ok(Message::Record(record)) = intake.try_recv() {
            self.add(&record);
        }
        self.flush();
        if let Err(e) = self.sink.close() {
            log::warn!("access log: could not sync the file at exit: {e}");
        }
    }

    fn add(&mut self, record: &AccessRecord) {
        AccessLine::of(&self.redactor, &self.route_names, record).write_to(&mut self.lines);
        self.records += 1;
    }

    /// Writes the batch in one write.
    fn flush(&mut self) {
        if self.records == 0 {
            return;
        }
        let records = std::mem::take(&mut self.records);
        match self.sink.write(&self.lines) {
            Ok(()) => self.metrics.count(RecordResult::Written, records),
            Err(e) => {
                self.metrics.count(RecordResult::Failed, records);
                self.errors
                    .warn(|| format!("access log: {records} lines lost: cannot write: {e}"));
            }
        }
        self.lines.clear();
    }
}
