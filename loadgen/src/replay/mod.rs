//! Replaying recorded requests (`twinpeak load --replay`): recordings the proxy made, sent at
//! their recorded inter-arrival times scaled by `--speed` (or to a mean `--rps`), optionally
//! looped; or the proxy's diff corpus, which has no timing, sent in order at `--rps`. Filters
//! pick what is sent, rewrites aim it at another copy of the system, recorded credentials are
//! replaced by `--auth`, and writes or the recording's own primary need explicit flags.

mod auth;
mod corpus;
mod filter;
mod rails;
mod recording;
mod rewrite;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use twinpeak_core::recording::{is_segment_name, RecordedExchange};

use crate::compare::ReplayCompare;
use crate::data::Data;
use crate::runner::Target;
use crate::scenario::{LoadedScenario, Phase, RateSpec, RequestSpec, Scenario, Slo};
use crate::schedule::{Schedule, ScheduleError, Share};
use crate::template::Template;

pub use auth::{Auth, Credential};
pub use filter::Filter;
pub use rewrite::Rewrite;

/// One request to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayEntry {
    /// Method.
    pub method: http::Method,
    /// Path and query.
    pub path: String,
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// The route template it was recorded under (empty when unknown).
    pub route: String,
    /// The recorded exchange, when it holds the primary's answer to compare with.
    pub recorded: Option<Arc<RecordedExchange>>,
}

/// Headers that describe the recorded connection, not the request, and are not replayed.
const NOT_REPLAYED: [&str; 6] = [
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "x-twinpeak-shadow",
    "x-request-id",
];

/// Whether a recorded header is sent again: not one of the connection's, nor a redacted one.
fn kept_header(name: &str, value: &str) -> bool {
    !NOT_REPLAYED.contains(&name.to_ascii_lowercase().as_str()) && value != "[redacted]"
}

/// Why recorded requests cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A file could not be read.
    #[error("{}: cannot read", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system reported.
        #[source]
        source: std::io::Error,
    },
    /// A corpus line is not a request.
    #[error("{}:{line}: {message}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A segment holds a record that is not one.
    #[error("{0}")]
    Segment(String),
    /// Every request was skipped, or there was none.
    #[error("{}: holds no request", path.display())]
    Empty {
        /// The file or directory.
        path: PathBuf,
    },
    /// The flags ask for what the inputs cannot give.
    #[error("{0}")]
    Flags(String),
    /// A safety rail: what the replay would send needs an explicit flag.
    #[error("{0}")]
    Refused(String),
    /// The replay rate is not a positive number.
    #[error("--rps must be above 0, got {0}")]
    Rate(f64),
    /// The recorded instants do not make a schedule.
    #[error("{0}")]
    Schedule(#[from] ScheduleError),
}

/// What `twinpeak load --replay` was asked.
#[derive(Debug, Default)]
pub struct ReplayRequest<'a> {
    /// Recording directories, segment files, or corpus files.
    pub inputs: &'a [PathBuf],
    /// `--speed`: `10x`, `10`, `0.5x`.
    pub speed: Option<&'a str>,
    /// `--rps`: a recording's target mean rate, or a corpus's rate.
    pub rps: Option<f64>,
    /// `--loop` until `--duration`.
    pub repeat_until: Option<Duration>,
    /// What is kept.
    pub filter: Filter,
    /// What is changed.
    pub rewrite: Rewrite,
    /// `--auth`.
    pub auth: Option<Auth>,
    /// `--allow-writes`.
    pub allow_writes: bool,
    /// The confirmation that aiming at the recorded primary is meant.
    pub aim_at_primary: bool,
    /// Where the replay goes.
    pub targets: &'a [Target],
    /// `--scale` (only 1 for a recording: `--speed` sets its pace).
    pub scale: f64,
}

/// A replay ready to run: what each arrival sends, and when.
#[derive(Debug)]
pub struct ReplayPlan {
    /// The requests, in order; arrival k sends entry k modulo their number.
    pub entries: Vec<ReplayEntry>,
    /// The recorded offsets from the first request, scaled by the speed (`None` for a corpus:
    /// sent at a fixed rate).
    offsets: Option<Vec<Duration>>,
    /// Loop the recording until then.
    repeat_until: Option<Duration>,
    /// Credentials sent instead of the recorded ones.
    pub auth: Option<Auth>,
    /// Compares each answer with the recorded one (`--compare`).
    pub compare: Option<Arc<dyn ReplayCompare>>,
    /// What `--check` and the banner say of it.
    pub description: String,
}

impl ReplayPlan {
    /// The schedule of `share` of a recording's replay; `None` for a corpus, whose schedule
    /// is its scenario's.
    pub fn schedule(&self, share: Share) -> Option<Result<Schedule, ScheduleError>> {
        let offsets = self.offsets.as_ref()?;
        Some(
            Schedule::recorded("replay", offsets.clone(), self.repeat_until)
                .map(|s| s.share(share)),
        )
    }
}

/// `10x`, `10` or `0.5x` as a factor above 0.
pub fn parse_speed(text: &str) -> Result<f64, ReplayError> {
    let number = text.trim().trim_end_matches(['x', 'X']);
    match number.trim().parse::<f64>() {
        Ok(speed) if speed > 0.0 && speed.is_finite() => Ok(speed),
        _ => Err(ReplayError::Flags(format!(
            "--speed {text:?}: give a factor above 0 such as 10x, 2 or 0.5x"
        ))),
    }
}

/// Whether an input is a corpus (JSON Lines without timing) rather than a recording.
fn is_corpus(input: &Path) -> bool {
    !input.is_dir()
        && !input
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| is_segment_name(n) || n.ends_with(".gz"))
}

/// Reads and checks what `request` asks to replay: the scenario the run reports it under, and
/// the plan of what each arrival sends. Warnings (a torn tail, skipped requests) go to stderr.
pub fn prepare(request: &ReplayRequest<'_>) -> Result<(LoadedScenario, ReplayPlan), ReplayError> {
    let corpora = request.inputs.iter().filter(|i| is_corpus(i)).count();
    match corpora {
        0 => prepare_recording(request),
        n if n == request.inputs.len() => prepare_corpus(request),
        _ => Err(ReplayError::Flags(
            "--replay: a corpus (JSON Lines without timing) is replayed alone, not beside \
             recordings"
                .into(),
        )),
    }
}

/// The rate a corpus is replayed at unless `--rps` says otherwise.
const CORPUS_RPS: f64 = 50.0;

/// Users a corpus replay may keep busy at once, and the most a recording's may.
const REPLAY_USERS: usize = 256;

/// Fewest users a recording's replay has.
const MIN_REPLAY_USERS: usize = 16;

/// How long an answer may take, at the replay's busiest, before every user is busy: a
/// recording's replay has enough users for its peak rate times this.
const USER_LATENCY_ALLOWANCE: Duration = Duration::from_millis(200);

/// The window the busiest rate of a replay is measured over.
const PEAK_WINDOW: Duration = Duration::from_millis(100);

/// Users for a replay whose arrivals are due at `offsets` (sorted): enough for the busiest
/// [`PEAK_WINDOW`]'s rate answered in [`USER_LATENCY_ALLOWANCE`], within
/// [`MIN_REPLAY_USERS`]..=[`REPLAY_USERS`]. Fewer users start faster and cost less.
fn users_for(offsets: &[Duration]) -> usize {
    let mut busiest = 0;
    let mut first = 0;
    for (last, at) in offsets.iter().enumerate() {
        while *at - offsets[first] >= PEAK_WINDOW {
            first += 1;
        }
        busiest = busiest.max(last + 1 - first);
    }
    let peak_rps = busiest as f64 / PEAK_WINDOW.as_secs_f64();
    ((peak_rps * USER_LATENCY_ALLOWANCE.as_secs_f64()).ceil() as usize)
        .clamp(MIN_REPLAY_USERS, REPLAY_USERS)
}

fn prepare_corpus(
    request: &ReplayRequest<'_>,
) -> Result<(LoadedScenario, ReplayPlan), ReplayError> {
    let timing_flag = [
        (request.speed.is_some(), "--speed"),
        (request.repeat_until.is_some(), "--loop"),
        (request.filter.has_time_range(), "--from/--until"),
    ]
    .into_iter()
    .find_map(|(given, flag)| given.then_some(flag));
    if let Some(flag) = timing_flag {
        return Err(ReplayError::Flags(format!(
            "{flag} needs a recording's timing; a corpus has none (it is sent at --rps)"
        )));
    }
    let mut entries = Vec::new();
    for input in request.inputs {
        entries.extend(corpus::read(input)?);
    }
    let first = request.inputs.first().cloned().unwrap_or_default();
    entries.retain(|e| request.filter.keeps(&e.route, e.method.as_str()));
    let entries: Vec<ReplayEntry> = entries
        .into_iter()
        .map(|e| request.rewrite.apply(e))
        .collect::<Result<_, _>>()
        .map_err(|e| ReplayError::Flags(e.0))?;
    if entries.is_empty() {
        return Err(ReplayError::Empty { path: first });
    }
    let rps = request.rps.unwrap_or(CORPUS_RPS);
    if !(rps > 0.0 && rps.is_finite()) {
        return Err(ReplayError::Rate(rps));
    }
    let bytes = std::fs::read(&first).unwrap_or_default();
    let seconds = (entries.len() as f64 / rps).max(1.0);
    let loaded = scenario(
        &first,
        twinpeak_core::digest::hex_sha256(&bytes),
        (rps, REPLAY_USERS),
        Duration::from_secs_f64(seconds),
    );
    let description = format!(
        "{} corpus request(s) sent in order at {rps} requests/s",
        entries.len()
    );
    Ok((loaded, plan(entries, None, request, description)))
}

fn prepare_recording(
    request: &ReplayRequest<'_>,
) -> Result<(LoadedScenario, ReplayPlan), ReplayError> {
    if request.scale != 1.0 {
        return Err(ReplayError::Flags(
            "--scale does not apply to a recording: --speed (or --rps) sets its pace".into(),
        ));
    }
    if request.speed.is_some() && request.rps.is_some() {
        return Err(ReplayError::Flags("give --speed or --rps, not both".into()));
    }
    let first = request.inputs.first().cloned().unwrap_or_default();
    let read = recording::read(request.inputs)?;
    for warning in &read.warnings {
        eprintln!("warning: {warning}");
    }
    let recorded = read.records.len();
    let records = request.filter.apply(read.records);
    if records.is_empty() {
        return Err(ReplayError::Flags(format!(
            "{}: none of the {recorded} recorded request(s) passes the filters ({})",
            first.display(),
            request.filter.describe()
        )));
    }
    rails::check_writes(&records, request.allow_writes)?;
    rails::check_primary(&read.manifests, request.targets, request.aim_at_primary)?;
    let writes: usize = rails::writes(&records).values().sum();
    let (entries, at_us, skipped) = entries_of(records, &request.rewrite)?;
    if skipped > 0 {
        eprintln!(
            "warning: skipped {skipped} recorded request(s) whose body was withheld or cut at \
             the recording's cap"
        );
    }
    if entries.is_empty() {
        return Err(ReplayError::Empty { path: first });
    }
    let span_us = at_us.last().copied().unwrap_or_default() - at_us[0];
    let recorded_rps = if entries.len() > 1 && span_us > 0 {
        (entries.len() - 1) as f64 / (span_us as f64 / 1e6)
    } else {
        0.0
    };
    let speed = match (request.speed, request.rps) {
        (Some(text), _) => parse_speed(text)?,
        (None, Some(rps)) if rps > 0.0 && rps.is_finite() && recorded_rps > 0.0 => {
            rps / recorded_rps
        }
        (None, Some(rps)) if !(rps > 0.0 && rps.is_finite()) => return Err(ReplayError::Rate(rps)),
        (None, Some(_)) => {
            return Err(ReplayError::Flags(
                "--rps needs a recording of two requests or more at different instants; use \
                 --speed"
                    .into(),
            ))
        }
        (None, None) => 1.0,
    };
    let offsets: Vec<Duration> = at_us
        .iter()
        .map(|at| Duration::from_secs_f64((at - at_us[0]) as f64 / 1e6 / speed))
        .collect();
    let schedule = Schedule::recorded("replay", offsets.clone(), request.repeat_until)?;
    let span = Duration::from_micros(span_us);
    let description = format!(
        "{} of {recorded} recorded request(s) from {} segment(s) kept (filters: {}), {writes} \
         write(s); recorded over {:.1} s at {recorded_rps:.1} requests/s, replayed at {speed}x: \
         {} arrivals over {:.1} s ({:.1} requests/s){}; rewrites: {}; credentials: {}",
        entries.len(),
        read.segments,
        request.filter.describe(),
        span.as_secs_f64(),
        schedule.total_arrivals(),
        schedule.total_duration().as_secs_f64(),
        schedule.phases()[0].start_rps,
        if request.repeat_until.is_some() {
            ", looped"
        } else {
            ""
        },
        request.rewrite.describe(),
        request.auth.as_ref().map_or(
            "recorded ones dropped, none sent".to_owned(),
            Auth::describe
        ),
    );
    let loaded = scenario(
        &first,
        read.sha256,
        (schedule.phases()[0].start_rps, users_for(&offsets)),
        schedule.total_duration(),
    );
    Ok((loaded, plan(entries, Some(offsets), request, description)))
}

/// The entries of `records` as rewritten, their arrival instants, and how many were skipped
/// for a body that was not recorded whole.
fn entries_of(
    records: Vec<RecordedExchange>,
    rewrite: &Rewrite,
) -> Result<(Vec<ReplayEntry>, Vec<u64>, usize), ReplayError> {
    let mut entries = Vec::with_capacity(records.len());
    let mut at_us = Vec::with_capacity(records.len());
    let mut skipped = 0;
    for record in records {
        let Some(body) = record.body.bytes() else {
            skipped += 1;
            continue;
        };
        let method = http::Method::from_bytes(record.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| {
                ReplayError::Segment(format!("recorded method {:?} is not one", record.method))
            })?;
        let entry = ReplayEntry {
            method,
            path: record.path.clone(),
            headers: record
                .headers
                .iter()
                .filter(|(k, v)| kept_header(k, v))
                .cloned()
                .collect(),
            body,
            route: record.route.clone(),
            recorded: None,
        };
        let mut entry = rewrite.apply(entry).map_err(|e| ReplayError::Flags(e.0))?;
        at_us.push(record.at_us);
        if record.response.is_some() {
            entry.recorded = Some(Arc::new(record));
        }
        entries.push(entry);
    }
    Ok((entries, at_us, skipped))
}

fn plan(
    entries: Vec<ReplayEntry>,
    offsets: Option<Vec<Duration>>,
    request: &ReplayRequest<'_>,
    description: String,
) -> ReplayPlan {
    ReplayPlan {
        entries,
        offsets,
        repeat_until: request.repeat_until,
        auth: request.auth.clone(),
        compare: None,
        description,
    }
}

/// The one-phase scenario a replay of `input` is run and reported as: `rps` on average for
/// `duration`, by `users`.
fn scenario(
    input: &Path,
    sha256: String,
    (rps, users): (f64, usize),
    duration: Duration,
) -> LoadedScenario {
    let scenario = Scenario {
        name: format!(
            "replay of {}",
            input.file_name().unwrap_or_default().to_string_lossy()
        ),
        baseline_rps: rps,
        max_users: users,
        timeout: Duration::from_secs(30),
        phases: vec![Phase {
            name: "replay".into(),
            duration,
            rps: RateSpec::constant(1.0),
            slo: None,
        }],
        requests: vec![RequestSpec {
            name: "replay".into(),
            weight: 1,
            method: http::Method::GET,
            path: Template::parse("/").expect("`/` is a template without placeholders"),
            headers: BTreeMap::new(),
            json: None,
            body: None,
            extract: BTreeMap::new(),
            after: None,
            expect_status: None,
        }],
        data: BTreeMap::new(),
        slo: Slo::default(),
    };
    LoadedScenario {
        scenario,
        data: Data::default(),
        path: input.to_path_buf(),
        sha256,
    }
}

#[cfg(test)]
mod tests;
