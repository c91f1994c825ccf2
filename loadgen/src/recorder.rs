//! What one run against one system measured: per phase × request name, latency measured from the
//! intended send time (coordinated omission corrected) and from the actual send (raw), for the
//! requests that succeeded and, apart, for those that failed; statuses and error kinds; per phase,
//! the generator's own scheduling lag; and a per-second timeline for charts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use twinpeak_core::histogram::micros;
use twinpeak_core::sync::lock;
use twinpeak_core::timestamp::rfc3339;
use twinpeak_core::{
    new_latency_histogram, record_saturating, EncodedHistogram, PhaseRecord, RequestRecord,
    TimelinePoint,
};

use crate::pacer::Pacer;

/// Most timeline points a run keeps; longer runs widen each point beyond one second.
const MAX_TIMELINE_POINTS: u64 = 720;

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No answer within the scenario's timeout.
    Timeout,
    /// The connection could not be made or broke.
    Connect,
    /// An answer with a status the request does not accept.
    Status,
    /// The answer did not hold what the request extracts from it.
    Check,
}

impl ErrorKind {
    /// The name records use.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Status => "status",
            ErrorKind::Check => "check",
        }
    }
}

/// One finished request.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    /// Phase of its arrival.
    pub phase: usize,
    /// Index of the request kind in the scenario.
    pub request: usize,
    /// When the schedule meant it to be sent.
    pub intended: Instant,
    /// When it was sent.
    pub sent: Instant,
    /// When its answer was complete (or it failed).
    pub done: Instant,
    /// The answer's status, when one came.
    pub status: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<ErrorKind>,
    /// Whether a free user took its arrival when due: its lateness (`sent − intended`) is then
    /// the generator's scheduling lag. False for every later request of a chain.
    pub on_time: bool,
}

#[derive(Debug)]
struct RequestStats {
    sent: u64,
    corrected: Histogram<u64>,
    raw: Histogram<u64>,
    failed_corrected: Histogram<u64>,
    failed_raw: Histogram<u64>,
    status: BTreeMap<u16, u64>,
    errors: BTreeMap<&'static str, u64>,
}

impl RequestStats {
    fn new() -> Self {
        RequestStats {
            sent: 0,
            corrected: new_latency_histogram(),
            raw: new_latency_histogram(),
            failed_corrected: new_latency_histogram(),
            failed_raw: new_latency_histogram(),
            status: BTreeMap::new(),
            errors: BTreeMap::new(),
        }
    }

    fn record(&mut self, o: &Observation, corrected: u64, raw: u64) {
        self.sent += 1;
        let (corrected_into, raw_into) = match o.error {
            None => (&mut self.corrected, &mut self.raw),
            Some(_) => (&mut self.failed_corrected, &mut self.failed_raw),
        };
        record_saturating(corrected_into, corrected);
        record_saturating(raw_into, raw);
        if let Some(status) = o.status {
            *self.status.entry(status).or_insert(0) += 1;
        }
        if let Some(error) = o.error {
            *self.errors.entry(error.as_str()).or_insert(0) += 1;
        }
    }

    fn to_record(&self) -> RequestRecord {
        RequestRecord {
            sent: self.sent,
            corrected_us: EncodedHistogram(self.corrected.clone()),
            raw_us: EncodedHistogram(self.raw.clone()),
            failed_us: EncodedHistogram(self.failed_corrected.clone()),
            failed_raw_us: EncodedHistogram(self.failed_raw.clone()),
            status: self
                .status
                .iter()
                .map(|(s, n)| (s.to_string(), *n))
                .collect(),
            errors: self
                .errors
                .iter()
                .map(|(e, n)| (e.to_string(), *n))
                .collect(),
        }
    }
}

#[derive(Debug)]
struct PhaseStats {
    requests: Vec<RequestStats>,
    /// Scheduling lag of the arrivals a free user took, µs.
    lag: Histogram<u64>,
}

#[derive(Debug)]
struct Bucket {
    requests: u64,
    errors: u64,
    latency: Histogram<u64>,
}

/// Collects observations from every user of one run against one system.
#[derive(Debug)]
pub struct Recorder {
    phases: Vec<Mutex<PhaseStats>>,
    timeline: Vec<Mutex<Bucket>>,
    bucket: Duration,
    start: Instant,
    wall_start: SystemTime,
    request_names: Vec<String>,
    sent_total: AtomicU64,
    errors_total: AtomicU64,
}

/// A moment's view of a run in progress, for the progress line.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Requests completed.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// Corrected p99 so far of the requests that succeeded, µs.
    pub p99_us: u64,
    /// The generator's scheduling lag so far, p99, µs.
    pub lag_p99_us: u64,
    /// Completed requests per second over the last full timeline point.
    pub recent_rps: f64,
}

/// The width and number of the timeline's points for a run lasting `duration`: a second each,
/// widened to keep at most [`MAX_TIMELINE_POINTS`], and one more for what ends after the schedule.
pub fn timeline_shape(duration: Duration) -> (Duration, usize) {
    let seconds = duration.as_secs().max(1);
    let width = seconds.div_ceil(MAX_TIMELINE_POINTS).max(1);
    let points = seconds.div_ceil(width) + 1;
    (Duration::from_secs(width), points as usize)
}

/// The wall-clock time of `instant`, as this machine's clocks read them now.
fn wall_time_of(instant: Instant) -> SystemTime {
    let now = (Instant::now(), SystemTime::now());
    if instant >= now.0 {
        now.1 + (instant - now.0)
    } else {
        now.1 - (now.0 - instant)
    }
}

impl Recorder {
    /// A recorder for `phases` phases of a run lasting `duration` from `start`.
    pub fn new(
        phases: usize,
        request_names: Vec<String>,
        start: Instant,
        duration: Duration,
    ) -> Self {
        let (width, points) = timeline_shape(duration);
        Recorder {
            phases: (0..phases)
                .map(|_| {
                    Mutex::new(PhaseStats {
                        requests: request_names.iter().map(|_| RequestStats::new()).collect(),
                        lag: new_latency_histogram(),
                    })
                })
                .collect(),
            timeline: (0..points)
                .map(|_| {
                    Mutex::new(Bucket {
                        requests: 0,
                        errors: 0,
                        latency: Histogram::new_with_bounds(1, 3_600_000_000, 2)
                            .expect("static histogram bounds are valid"),
                    })
                })
                .collect(),
            bucket: width,
            start,
            wall_start: wall_time_of(start),
            request_names,
            sent_total: AtomicU64::new(0),
            errors_total: AtomicU64::new(0),
        }
    }

    /// Records one finished request.
    pub fn record(&self, o: &Observation) {
        let corrected = micros(o.done.saturating_duration_since(o.intended));
        let raw = micros(o.done.saturating_duration_since(o.sent));
        {
            let mut phase = lock(&self.phases[o.phase]);
            phase.requests[o.request].record(o, corrected, raw);
            if o.on_time {
                let lag = micros(o.sent.saturating_duration_since(o.intended));
                record_saturating(&mut phase.lag, lag);
            }
        }
        let index = (o.done.saturating_duration_since(self.start).as_secs() / self.bucket.as_secs())
            as usize;
        if let Some(bucket) = self.timeline.get(index.min(self.timeline.len() - 1)) {
            let mut bucket = lock(bucket);
            bucket.requests += 1;
            bucket.errors += u64::from(o.error.is_some());
            if o.error.is_none() {
                let _ = bucket.latency.record(corrected.clamp(1, 3_600_000_000));
            }
        }
        self.sent_total.fetch_add(1, Ordering::Relaxed);
        if o.error.is_some() {
            self.errors_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Where the run stands, for the progress line.
    pub fn progress(&self, phase: usize) -> Progress {
        let (p99_us, lag_p99_us) = self
            .phases
            .get(phase)
            .map(|p| {
                let p = lock(p);
                let mut all = new_latency_histogram();
                for r in &p.requests {
                    let _ = all.add(&r.corrected);
                }
                (all.value_at_quantile(0.99), p.lag.value_at_quantile(0.99))
            })
            .unwrap_or((0, 0));
        let now = Instant::now().saturating_duration_since(self.start);
        let current = (now.as_secs() / self.bucket.as_secs()) as usize;
        let recent_rps = current
            .checked_sub(1)
            .and_then(|i| self.timeline.get(i))
            .map(|b| lock(b).requests as f64 / self.bucket.as_secs_f64())
            .unwrap_or(0.0);
        Progress {
            requests: self.sent_total.load(Ordering::Relaxed),
            errors: self.errors_total.load(Ordering::Relaxed),
            p99_us,
            lag_p99_us,
            recent_rps,
        }
    }

    /// The records of the phases of this run against `target` that have started by now, with
    /// what the pacer counted of their arrivals; `users` sent them. With `point_latency` (a
    /// load worker's record) each timeline point keeps its latency histogram, so the merge of
    /// the workers' records reads each second's p99 exactly.
    pub fn phase_records(
        &self,
        target: &str,
        pacer: &Pacer,
        users: u64,
        point_latency: bool,
    ) -> Vec<PhaseRecord> {
        let schedule = pacer.schedule();
        let elapsed = Instant::now().saturating_duration_since(self.start);
        let mut records = Vec::with_capacity(self.phases.len());
        for (i, stats) in self.phases.iter().enumerate() {
            let phase_start = schedule.phase_start(i).unwrap_or_default();
            if phase_start > elapsed {
                break;
            }
            let stats = lock(stats);
            let plan = &schedule.phases()[i];
            let started = self.wall_start + phase_start;
            let duration = plan.duration;
            let requests: BTreeMap<String, RequestRecord> = stats
                .requests
                .iter()
                .zip(&self.request_names)
                .filter(|(r, _)| r.sent > 0)
                .map(|(r, name)| (name.clone(), r.to_record()))
                .collect();
            let sent: u64 = stats.requests.iter().map(|r| r.sent).sum();
            let counts = pacer.counts(i);
            records.push(PhaseRecord {
                name: plan.name.clone(),
                target: target.to_string(),
                started_at: rfc3339(started),
                ended_at: rfc3339(started + duration),
                duration_s: duration.as_secs_f64(),
                intended_rps: schedule.expected_count(i) / duration.as_secs_f64().max(1e-9),
                achieved_rps: sent as f64 / duration.as_secs_f64().max(1e-9),
                users,
                late_limit_ms: pacer.late_limit().as_secs_f64() * 1_000.0,
                dropped: counts.dropped(),
                dropped_by_generator: counts.dropped_late,
                queued: counts.queued,
                lag_us: EncodedHistogram(stats.lag.clone()),
                requests,
                timeline: self.timeline_points(
                    target,
                    pacer,
                    phase_start..phase_start + duration,
                    point_latency,
                ),
            });
        }
        records
    }

    fn timeline_points(
        &self,
        target: &str,
        pacer: &Pacer,
        span: std::ops::Range<Duration>,
        point_latency: bool,
    ) -> Vec<TimelinePoint> {
        let (from, to) = (span.start, span.end);
        let width = self.bucket.as_secs_f64();
        let schedule = pacer.schedule();
        self.timeline
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let t = *i as f64 * width;
                t >= from.as_secs_f64() && t < to.as_secs_f64()
            })
            .map(|(i, bucket)| {
                let bucket = lock(bucket);
                let t0 = Duration::from_secs_f64(i as f64 * width);
                let t1 = Duration::from_secs_f64((i + 1) as f64 * width);
                let intended = schedule.arrivals_before(t1) - schedule.arrivals_before(t0);
                TimelinePoint {
                    t_s: i as f64 * width,
                    target: target.to_string(),
                    intended_rps: intended as f64 / width,
                    achieved_rps: bucket.requests as f64 / width,
                    p99_us: if !bucket.latency.is_empty() {
                        bucket.latency.value_at_quantile(0.99)
                    } else {
                        0
                    },
                    errors: bucket.errors,
                    requests: bucket.requests,
                    dropped: pacer.not_taken_in_point(i),
                    latency_us: point_latency.then(|| EncodedHistogram(bucket.latency.clone())),
                }
            })
            .collect()
    }
}
