//! The scenario file of `twinpeak load`: phases of arrival rates written as multiples of a
//! normal day's rate, weighted requests built from templates, data variables and SLOs. A scenario
//! is validated whole before any traffic is sent, and every error names file, line, column and
//! dotted key (`requests[2].after`).
//!
//! This module holds the model, with every default filled in; `format` reads the YAML as written
//! (durations and percentages as [`twinpeak_core::units`] reads them everywhere) and `validate`
//! checks what holds across keys.

mod format;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use twinpeak_core::digest::hex_sha256;
use twinpeak_core::run::{RunThresholds, Thresholds};
use twinpeak_core::units::{InvalidValue, Percent};
use twinpeak_core::yaml_error;

use crate::data::{Data, DataSource};
use crate::template::{ExtractPath, JsonTemplate, Template};

/// The longest a scaled scenario may last: weeks of load are a mistyped `--scale`.
pub const MAX_RUN_DURATION: Duration = Duration::from_secs(30 * 86_400);

/// A load scenario with every default filled in; rates are multiples of `baseline_rps`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// Names the scenario in records and reports.
    pub name: String,
    /// A normal day's arrival rate, requests per second; phase rates are multiples of it.
    pub baseline_rps: f64,
    /// Most requests in flight at once: the concurrency ceiling.
    pub max_users: usize,
    /// Time allowed for each request (default 30s).
    #[serde(serialize_with = "format::duration::serialize")]
    pub timeout: Duration,
    /// The phases, run one after another.
    pub phases: Vec<Phase>,
    /// The requests an arrival picks from, by weight.
    pub requests: Vec<RequestSpec>,
    /// Data variables by name, as written; [`LoadedScenario::data`] holds their resolved values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, DataSource>,
    /// Thresholds the whole run is judged by.
    #[serde(skip_serializing_if = "Slo::is_empty")]
    pub slo: Slo,
}

/// A stretch of the run at a constant or linearly ramping arrival rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    /// Names the phase in records and reports.
    pub name: String,
    /// How long the phase lasts.
    #[serde(serialize_with = "format::duration::serialize")]
    pub duration: Duration,
    /// The rate, as multiples of the scenario's `baseline_rps`.
    pub rps: RateSpec,
    /// Thresholds for this phase; each one set here replaces the scenario's, the rest carry over
    /// (see [`Scenario::slo_for`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo: Option<Slo>,
}

/// An arrival rate as multiples of `baseline_rps`, ramping linearly from `start` to `end` over a
/// phase (equal for a flat phase).
///
/// Written `2x` (flat), `1x..10x` (ramp) or, as an absolute rate, `500/s`, which is stored as a
/// multiple of the baseline (`500/s` with `baseline_rps: 200` is `2.5x`); the ends of a ramp may
/// mix both forms. A bare number is refused, since `500` could mean either.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(into = "String")]
pub struct RateSpec {
    /// Multiple of the baseline at the start of the phase.
    pub start: f64,
    /// Multiple of the baseline at the end of the phase.
    pub end: f64,
}

/// One kind of request an arrival may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// Names the request in records and in other requests' `after`.
    pub name: String,
    /// Relative share of arrivals (default 1).
    #[serde(default = "format::default_weight")]
    pub weight: u32,
    /// HTTP method (default GET): GET, HEAD, POST, PUT, PATCH or DELETE.
    #[serde(default, with = "format::method")]
    pub method: http::Method,
    /// Path and query; values inserted into it are percent-encoded.
    #[serde(deserialize_with = "format::url_template")]
    pub path: Template,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Template>,
    /// A JSON body whose strings are templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<JsonTemplate>,
    /// A raw body template; at most one of `json` and `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Template>,
    /// Session variables taken from the JSON answer: `{booking_id: "$.id"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extract: BTreeMap<String, ExtractPath>,
    /// The request sent before this one in the same arrival: an arrival that picks this one
    /// sends that one first (and what it runs after in turn), and this one only once it has
    /// succeeded; this one may use the variables those extracted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Statuses that count as success (one code or a list); any 2xx or 3xx when absent.
    #[serde(
        default,
        deserialize_with = "format::one_or_many_statuses",
        skip_serializing_if = "Option::is_none"
    )]
    pub expect_status: Option<Vec<u16>>,
}

/// Latency and error thresholds; an unset threshold is not judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Highest acceptable median latency.
    #[serde(
        default,
        with = "format::optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub p50: Option<Duration>,
    /// Highest acceptable 95th percentile latency.
    #[serde(
        default,
        with = "format::optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub p95: Option<Duration>,
    /// Highest acceptable 99th percentile latency.
    #[serde(
        default,
        with = "format::optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub p99: Option<Duration>,
    /// Highest acceptable 99.9th percentile latency.
    #[serde(
        default,
        with = "format::optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub p999: Option<Duration>,
    /// Highest acceptable single latency.
    #[serde(
        default,
        with = "format::optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max: Option<Duration>,
    /// Highest acceptable share of failed requests, in percent: `1`, `1%`, `0.5` and `0.5%` are
    /// all percent, as every percentage twinpeak reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<Percent>,
}

/// A scenario together with its resolved data and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedScenario {
    /// The validated scenario.
    pub scenario: Scenario,
    /// Its data variables' values.
    pub data: Data,
    /// The file it was read from.
    pub path: PathBuf,
    /// SHA-256 of the scenario file's bytes, hex; run records name the scenario by it.
    pub sha256: String,
}

/// A scenario that could not be used, with where and why; shown as `file:line:col: key: message`.
pub type ScenarioError = twinpeak_core::YamlFileError;

impl Scenario {
    /// Reads, parses and validates a scenario file, then reads its data files (relative to the
    /// file's directory).
    pub fn load(path: &Path) -> Result<LoadedScenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::whole_file(path, format!("cannot read the file: {e}")))?;
        let scenario = Scenario::parse(&text, path)?;
        let base_dir = path.parent().unwrap_or(Path::new(""));
        let data = Data::resolve(&scenario.data, base_dir)
            .map_err(|e| ScenarioError::at_key(path, &text, Some(e.key), None, e.message))?;
        Ok(LoadedScenario {
            scenario,
            data,
            path: path.to_path_buf(),
            sha256: hex_sha256(text.as_bytes()),
        })
    }

    /// Parses and validates scenario text without reading data files; `file` is used in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Scenario, ScenarioError> {
        let raw: format::ScenarioFile = yaml_error::deserialize(file, text)?;
        let scenario = raw.resolve();
        scenario
            .validate()
            .map_err(|fault| ScenarioError::at_key(file, text, Some(fault.key), None, fault.why))?;
        Ok(scenario)
    }

    /// The scenario with every phase's duration multiplied by `factor` (`0.1` rehearses a
    /// 20-minute scenario in 2 minutes at the same rates), for a factor known to be good.
    ///
    /// # Panics
    /// Where [`Scenario::try_scaled`] fails.
    pub fn scaled(&self, factor: f64) -> Scenario {
        self.try_scaled(factor)
            .unwrap_or_else(|e| panic!("{}", e.0))
    }

    /// The scenario with every phase's duration multiplied by `factor`; fails unless `factor` is
    /// a positive finite number and every scaled duration is above zero and one [`Duration`]
    /// holds.
    pub fn try_scaled(&self, factor: f64) -> Result<Scenario, InvalidValue> {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(InvalidValue(format!(
                "--scale must be above 0, got {factor}"
            )));
        }
        let total_s = self.total_duration().as_secs_f64() * factor;
        if total_s > MAX_RUN_DURATION.as_secs_f64() {
            return Err(InvalidValue(format!(
                "--scale {factor}: the phases would last {total_s:.0} s together, longer than a \
                 load run's {} days",
                MAX_RUN_DURATION.as_secs() / 86_400
            )));
        }
        let mut scaled = self.clone();
        for phase in &mut scaled.phases {
            let seconds = phase.duration.as_secs_f64() * factor;
            phase.duration = Duration::try_from_secs_f64(seconds)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    InvalidValue(format!(
                        "--scale {factor}: phase `{}` would last {seconds} s, \
                         too short to send anything",
                        phase.name
                    ))
                })?;
        }
        Ok(scaled)
    }

    /// The length of all phases together.
    pub fn total_duration(&self) -> Duration {
        self.phases.iter().map(|p| p.duration).sum()
    }

    /// The highest rate any phase reaches, requests per second.
    pub fn peak_rps(&self) -> f64 {
        self.phases
            .iter()
            .map(|p| p.rps.start.max(p.rps.end) * self.baseline_rps)
            .fold(0.0, f64::max)
    }

    /// The thresholds a phase is judged by: its own where set, the scenario's otherwise.
    pub fn slo_for(&self, phase: &Phase) -> Slo {
        phase.slo.map_or(self.slo, |own| own.or(&self.slo))
    }

    /// Every threshold the scenario sets, as a run record carries them: the whole run's, and
    /// each phase's that sets its own (see [`Scenario::slo_for`]).
    pub fn thresholds(&self) -> RunThresholds {
        RunThresholds {
            run: self.slo.thresholds(),
            phases: self
                .phases
                .iter()
                .filter(|p| p.slo.is_some())
                .map(|p| (p.name.clone(), self.slo_for(p).thresholds()))
                .collect(),
        }
    }

    /// The scenario with every default filled in, as YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a scenario always serializes")
    }

    /// The requests an arrival that picks request `index` sends, in order: the requests its
    /// `after` leads back to, the first one first, then itself.
    pub fn chain(&self, index: usize) -> Vec<usize> {
        let Some(request) = self.requests.get(index) else {
            return Vec::new();
        };
        let mut chain: Vec<usize> = self
            .ancestors(request)
            .iter()
            .filter_map(|name| self.requests.iter().position(|r| r.name == *name))
            .filter(|&i| i != index)
            .collect();
        chain.reverse();
        chain.push(index);
        chain
    }

    /// The requests that must have run before `request` in a session, following `after`; a loop
    /// ends the walk (and includes `request` itself).
    fn ancestors<'a>(&'a self, request: &'a RequestSpec) -> Vec<&'a str> {
        let mut chain = Vec::new();
        let mut next = request.after.as_deref();
        while let Some(name) = next {
            if chain.contains(&name) {
                break;
            }
            chain.push(name);
            next = self
                .requests
                .iter()
                .find(|r| r.name == name)
                .and_then(|r| r.after.as_deref());
        }
        chain
    }
}

impl Phase {
    /// The arrival rate `elapsed` into the phase, requests per second: linear from start to end,
    /// and the end rate once the phase is over.
    pub fn rate_at(&self, elapsed: Duration, baseline: f64) -> f64 {
        let progress = if self.duration.is_zero() {
            1.0
        } else {
            (elapsed.as_secs_f64() / self.duration.as_secs_f64()).min(1.0)
        };
        baseline * (self.rps.start + (self.rps.end - self.rps.start) * progress)
    }
}

impl RateSpec {
    /// A flat rate.
    pub fn constant(multiple: f64) -> RateSpec {
        RateSpec {
            start: multiple,
            end: multiple,
        }
    }

    /// Whether the rate changes over the phase.
    pub fn is_ramp(&self) -> bool {
        self.start != self.end
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ramp() {
            write!(f, "{}x..{}x", self.start, self.end)
        } else {
            write!(f, "{}x", self.start)
        }
    }
}

impl From<RateSpec> for String {
    fn from(rate: RateSpec) -> String {
        rate.to_string()
    }
}

impl RequestSpec {
    /// Whether an answer with this status counts as success: one of `expect_status` when set,
    /// any 2xx or 3xx otherwise.
    pub fn is_success(&self, status: u16) -> bool {
        match &self.expect_status {
            Some(statuses) => statuses.contains(&status),
            None => (200..400).contains(&status),
        }
    }
}

impl Slo {
    /// Whether no threshold is set.
    pub fn is_empty(&self) -> bool {
        *self == Slo::default()
    }

    /// The thresholds as a run record carries them: latencies in milliseconds, the error rate
    /// in percent.
    pub fn thresholds(&self) -> Thresholds {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1_000.0);
        Thresholds {
            p50_ms: ms(self.p50),
            p95_ms: ms(self.p95),
            p99_ms: ms(self.p99),
            p999_ms: ms(self.p999),
            max_ms: ms(self.max),
            error_rate_pct: self.error_rate.map(|p| p.value()),
        }
    }

    /// Each threshold set here, else the one from `fallback`.
    pub fn or(&self, fallback: &Slo) -> Slo {
        Slo {
            p50: self.p50.or(fallback.p50),
            p95: self.p95.or(fallback.p95),
            p99: self.p99.or(fallback.p99),
            p999: self.p999.or(fallback.p999),
            max: self.max.or(fallback.max),
            error_rate: self.error_rate.or(fallback.error_rate),
        }
    }
}
