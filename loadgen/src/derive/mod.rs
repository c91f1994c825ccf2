//! `twinpeak scenario from-recording`: a peak scenario derived from a recording of live
//! traffic. Requests are grouped by method and route template (the recorded route, or one
//! inferred for `other` by putting `{id}` for numeric, UUID and hex-id segments), weighted by
//! how often each was recorded; path and query values become data variables whose observed
//! values are written as CSV files beside the scenario; writes keep a small recorded body as
//! their template. `baseline_rps` is the recording's mean rate, the first phases replay its
//! shape (per minute, or per tenth of a short recording), and the last ones ramp to and hold
//! the chosen peak multiple.
//!
//! The recording is read segment by segment, holding only counts, a bounded sample of values
//! per request and a bounded rate histogram, so a day's recording derives in bounded memory.

mod command;
mod group;
mod path;
mod shape;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use twinpeak_core::recording::{list_segments, read_segment, RecordedExchange};

use crate::data::DataSource;
use crate::scenario::{
    Phase, RateSpec, RequestSpec, Scenario, ScenarioError, Slo, MAX_RUN_DURATION,
};
use crate::template::{JsonTemplate, Template};
pub use command::FromRecordingCommand;
use group::{BodyTemplate, Group};
use path::{column_name, Names, PathShape};
use shape::Arrivals;

/// Most requests (method and route template) a derived scenario holds; requests of further
/// ones are left out and counted.
pub const MAX_REQUESTS: usize = 256;

/// Methods the load harness sends.
const SENT_METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// How a scenario is derived.
#[derive(Debug, Clone)]
pub struct DeriveOptions {
    /// The peak, as a multiple of the recording's mean rate.
    pub peak: f64,
    /// How long the climb from the recorded shape to the peak lasts.
    pub ramp: Duration,
    /// How long the peak is held.
    pub hold: Duration,
    /// Where the CSV files go (default: `STEM-data/` beside the scenario).
    pub data_dir: Option<PathBuf>,
}

/// One request of a derived scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedRequest {
    /// Its name in the scenario.
    pub name: String,
    /// `GET /bookings/{id}`.
    pub route: String,
    /// Recorded requests it stands for.
    pub count: u64,
}

/// What was derived, and what was left out.
#[derive(Debug, Clone)]
pub struct Derived {
    /// The scenario as written (and read back).
    pub scenario: Scenario,
    /// The requests, most frequent first.
    pub requests: Vec<DerivedRequest>,
    /// Recorded requests read.
    pub recorded: u64,
    /// Recorded requests left out, by reason.
    pub left_out: BTreeMap<String, u64>,
    /// Segments cut short by a crash, read up to their last whole record.
    pub torn: Vec<String>,
    /// The CSV files written.
    pub data_files: Vec<PathBuf>,
}

/// Why no scenario could be derived.
#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    /// The recording could not be read.
    #[error("{0}")]
    Recording(String),
    /// The recording holds no request the harness can send.
    #[error("{}: holds no request to derive a scenario from", .0.display())]
    Empty(PathBuf),
    /// An option is out of range.
    #[error("{0}")]
    Option(String),
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The written scenario did not read back.
    #[error("the derived scenario does not load: {0}")]
    Load(#[from] Box<ScenarioError>),
}

/// What the recording held, request by request.
#[derive(Default)]
struct Reading {
    arrivals: Arrivals,
    groups: HashMap<(String, String), Group>,
    left_out: BTreeMap<String, u64>,
    torn: Vec<String>,
}

impl Reading {
    fn add(&mut self, exchange: &RecordedExchange) {
        let method = exchange.method.trim().to_ascii_uppercase();
        if !SENT_METHODS.contains(&method.as_str()) {
            *self.left_out.entry(format!("method {method}")).or_default() += 1;
            return;
        }
        let shape = PathShape::of(&exchange.route, &exchange.path);
        let key = (method, shape.route());
        if !self.groups.contains_key(&key) && self.groups.len() >= MAX_REQUESTS {
            let reason = format!("beyond {MAX_REQUESTS} distinct routes");
            *self.left_out.entry(reason).or_default() += 1;
            return;
        }
        self.arrivals.add(exchange.at_us);
        let write = !matches!(key.0.as_str(), "GET" | "HEAD");
        self.groups
            .entry(key)
            .or_insert_with(Group::new)
            .add(exchange, shape, write);
    }
}

/// Derives a scenario from `recording` (a recording directory or one segment file), writes it
/// to `out` with its data files, and reads it back to be sure it loads.
pub fn derive_scenario(
    recording: &Path,
    out: &Path,
    options: &DeriveOptions,
) -> Result<Derived, DeriveError> {
    if !(options.peak.is_finite() && options.peak > 0.0) {
        return Err(DeriveError::Option(format!(
            "--peak must be above 0, got {}",
            options.peak
        )));
    }
    if options.ramp.is_zero() || options.hold.is_zero() {
        return Err(DeriveError::Option(
            "--ramp and --hold must be longer than 0".into(),
        ));
    }
    let reading = read(recording)?;
    let shape = reading
        .arrivals
        .shape()
        .ok_or_else(|| DeriveError::Empty(recording.to_path_buf()))?;
    if shape.duration > MAX_RUN_DURATION {
        return Err(DeriveError::Recording(format!(
            "{}: its requests span {} days, longer than a load run's {}: are its times right?",
            recording.display(),
            shape.duration.as_secs() / 86_400,
            MAX_RUN_DURATION.as_secs() / 86_400
        )));
    }
    let stem = out
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("derived")
        .to_string();
    let scenario_dir = match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let data_dir = options
        .data_dir
        .clone()
        .unwrap_or_else(|| scenario_dir.join(format!("{stem}-data")));
    std::fs::create_dir_all(&data_dir).map_err(|source| DeriveError::Write {
        path: data_dir.clone(),
        source,
    })?;
    let mut groups: Vec<((String, String), Group)> = reading.groups.into_iter().collect();
    groups.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(&b.0)));
    let mut names = Names::default();
    let mut requests = Vec::new();
    let mut specs = Vec::new();
    let mut data = BTreeMap::new();
    let mut data_files = Vec::new();
    let mut mean_latency = (0.0, 0u64);
    for ((method, route), group) in &groups {
        let name = names.unique(&column_name(&format!("{method} {route}")));
        let (spec, variables) = request_spec(&name, method, group)?;
        if !variables.is_empty() {
            let file = data_dir.join(format!("{name}.csv"));
            write_csv(&file, &variables, group)?;
            let written = relative_to(&file, &scenario_dir);
            for column in &variables {
                data.insert(
                    format!("{name}_{column}"),
                    DataSource::Csv {
                        file: written.clone(),
                        column: Some(column.clone()),
                    },
                );
            }
            data_files.push(file);
        }
        if let Some(latency) = group.mean_latency_s() {
            mean_latency.0 += latency * group.count as f64;
            mean_latency.1 += group.count;
        }
        specs.push(spec);
        requests.push(DerivedRequest {
            name,
            route: format!("{method} {route}"),
            count: group.count,
        });
    }
    let mut phases: Vec<Phase> = shape
        .stretches
        .iter()
        .enumerate()
        .map(|(i, stretch)| {
            phase(
                &format!("recorded-{}", i + 1),
                stretch.duration,
                stretch.multiple,
                stretch.multiple,
            )
        })
        .collect();
    let last = shape.stretches.last().map_or(1.0, |s| s.multiple);
    phases.push(phase("ramp", options.ramp, last, options.peak));
    phases.push(phase("peak", options.hold, options.peak, options.peak));
    let latency_s = (mean_latency.1 > 0).then(|| mean_latency.0 / mean_latency.1 as f64);
    let peak_rps = phases
        .iter()
        .map(|p| p.rps.start.max(p.rps.end))
        .fold(0.0, f64::max)
        * shape.mean_rps;
    let scenario = Scenario {
        name: stem,
        baseline_rps: shape.mean_rps,
        max_users: max_users(peak_rps, latency_s),
        timeout: Duration::from_secs(30),
        phases,
        requests: specs,
        data,
        slo: Slo::default(),
    };
    let header = header(recording, reading.arrivals.count(), &shape, options.peak);
    let text = format!("{header}{}", scenario.to_yaml());
    std::fs::write(out, text).map_err(|source| DeriveError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let loaded = Scenario::load(out).map_err(Box::new)?;
    Ok(Derived {
        scenario: loaded.scenario,
        requests,
        recorded: reading.arrivals.count() + reading.left_out.values().sum::<u64>(),
        left_out: reading.left_out,
        torn: reading.torn,
        data_files,
    })
}

/// Reads every segment of a recording directory, or one segment file.
fn read(recording: &Path) -> Result<Reading, DeriveError> {
    let segments = if recording.is_dir() {
        list_segments(recording).map_err(|e| {
            DeriveError::Recording(format!("cannot list {}: {e}", recording.display()))
        })?
    } else {
        vec![recording.to_path_buf()]
    };
    let mut reading = Reading::default();
    for segment in &segments {
        let contents = read_segment(segment).map_err(|e| DeriveError::Recording(e.to_string()))?;
        for exchange in &contents.records {
            reading.add(exchange);
        }
        reading.torn.extend(contents.torn);
    }
    Ok(reading)
}

/// The scenario's request for a group, and the data columns its templates read.
fn request_spec(
    name: &str,
    method: &str,
    group: &Group,
) -> Result<(RequestSpec, Vec<String>), DeriveError> {
    let shape = group
        .shape()
        .ok_or_else(|| DeriveError::Recording(format!("{method} {name}: no path kept")))?;
    let invalid = |what: &str, e: twinpeak_core::units::InvalidValue| {
        DeriveError::Recording(format!("{method} {}: {what}: {}", shape.route(), e.0))
    };
    let path = Template::parse_url(&shape.template(name)).map_err(|e| invalid("path", e))?;
    let variables: Vec<String> = shape.values().into_iter().map(|(c, _)| c).collect();
    let mut headers = BTreeMap::new();
    let (mut json, mut body) = (None, None);
    match &group.body {
        Some(BodyTemplate::Json(value)) => {
            json = Some(JsonTemplate::from_value(value.clone()).map_err(|e| invalid("body", e))?);
        }
        Some(BodyTemplate::Text { text, content_type }) => {
            body = Some(Template::parse(text).map_err(|e| invalid("body", e))?);
            if let Some(content_type) = content_type
                .as_deref()
                .and_then(|c| Template::parse(c).ok())
            {
                headers.insert("content-type".to_string(), content_type);
            }
        }
        None => {}
    }
    let statuses: Vec<u16> = group.statuses.keys().copied().collect();
    let expect_status = statuses
        .iter()
        .any(|s| !(200..400).contains(s))
        .then_some(statuses)
        .filter(|s| s.iter().all(|s| (100..=599).contains(s)));
    let spec = RequestSpec {
        name: name.to_string(),
        weight: u32::try_from(group.count).unwrap_or(u32::MAX),
        method: method.parse().unwrap_or(http::Method::GET),
        path,
        headers,
        json,
        body,
        extract: BTreeMap::new(),
        after: None,
        expect_status,
    };
    Ok((spec, variables))
}

/// Writes a group's sampled values under `columns`.
fn write_csv(file: &Path, columns: &[String], group: &Group) -> Result<(), DeriveError> {
    let failed = |e: csv::Error| DeriveError::Write {
        path: file.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let mut writer = csv::Writer::from_path(file).map_err(failed)?;
    writer.write_record(columns).map_err(failed)?;
    for row in group.table(columns) {
        writer.write_record(&row).map_err(failed)?;
    }
    writer.flush().map_err(|source| DeriveError::Write {
        path: file.to_path_buf(),
        source,
    })
}

/// `file` as the scenario names it: relative to the scenario's directory when under it.
fn relative_to(file: &Path, scenario_dir: &Path) -> PathBuf {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let file = absolute(file);
    match file.strip_prefix(absolute(scenario_dir)) {
        Ok(relative) => relative.to_path_buf(),
        Err(_) => file,
    }
}

fn phase(name: &str, duration: Duration, start: f64, end: f64) -> Phase {
    Phase {
        name: name.to_string(),
        duration: Duration::from_millis(duration.as_millis().max(1) as u64),
        rps: RateSpec {
            start: round(start),
            end: round(end),
        },
        slo: None,
    }
}

/// Enough load users for the peak: its arrivals over the recorded mean latency four times over
/// (a quarter second at least), from 16 to 20,000.
fn max_users(peak_rps: f64, latency_s: Option<f64>) -> usize {
    let in_flight = latency_s.map_or(0.25, |l| (4.0 * l).max(0.25));
    ((peak_rps * in_flight).ceil() as usize).clamp(16, 20_000)
}

/// Three decimals are plenty for a rate.
fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The comment at the top of a derived scenario: where it came from.
fn header(recording: &Path, count: u64, shape: &shape::RateShape, peak: f64) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Derived from the recording {} by `twinpeak scenario from-recording`:",
        recording.display()
    );
    let _ = writeln!(
        text,
        "# {count} requests over {:.1} s (mean {:.2}/s). The recorded-N phases replay its rate \
         over time; ramp and peak climb to and hold {peak}x.",
        shape.duration.as_secs_f64(),
        shape.mean_rps
    );
    text
}
