//! The scenario file of `twinpeak load`: phases of arrival rates written as multiples of a
//! normal day's rate, weighted requests built from templates, data variables and SLOs. A scenario
//! is validated whole before any traffic is sent, and every error names file, line, column and
//! dotted key (`requests[2].after`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use twinpeak_core::digest::hex_sha256;
use twinpeak_core::yaml_error;

use crate::data::{Data, DataSource};
use crate::template::{is_variable_name, ExtractPath, JsonTemplate, Template};

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
    #[serde(serialize_with = "duration_text::serialize")]
    pub timeout: Duration,
    /// The phases, run one after another.
    pub phases: Vec<Phase>,
    /// The requests an arrival picks from, by weight.
    pub requests: Vec<RequestSpec>,
    /// Data variables by name, as written; [`Data`] holds their resolved values.
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
    #[serde(serialize_with = "duration_text::serialize")]
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
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// HTTP method (default GET): GET, HEAD, POST, PUT, PATCH or DELETE.
    #[serde(default, with = "method_text")]
    pub method: http::Method,
    /// Path and query; values inserted into it are percent-encoded.
    #[serde(deserialize_with = "url_template")]
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
        deserialize_with = "one_or_many_statuses",
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
        with = "optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub p50: Option<Duration>,
    /// Highest acceptable 95th percentile latency.
    #[serde(
        default,
        with = "optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub p95: Option<Duration>,
    /// Highest acceptable 99th percentile latency.
    #[serde(
        default,
        with = "optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub p99: Option<Duration>,
    /// Highest acceptable 99.9th percentile latency.
    #[serde(
        default,
        with = "optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub p999: Option<Duration>,
    /// Highest acceptable single latency.
    #[serde(
        default,
        with = "optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max: Option<Duration>,
    /// Highest acceptable share of failed requests, as a fraction (written `1%`, stored 0.01).
    #[serde(
        default,
        with = "optional_percent",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_rate: Option<f64>,
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
        let raw: ScenarioFile = yaml_error::deserialize(file, text)?;
        let scenario = raw.resolve();
        scenario.validate().map_err(|(key, message)| {
            ScenarioError::at_key(file, text, Some(key), None, message)
        })?;
        Ok(scenario)
    }

    /// The scenario with every phase's duration multiplied by `factor` (`0.1` rehearses a
    /// 20-minute scenario in 2 minutes at the same rates).
    ///
    /// # Panics
    /// If `factor` is not a positive finite number (callers refuse such factors first), or if a
    /// scaled duration overflows [`Duration`].
    pub fn scaled(&self, factor: f64) -> Scenario {
        assert!(
            factor.is_finite() && factor > 0.0,
            "scale factor must be positive, got {factor}"
        );
        let mut scaled = self.clone();
        for phase in &mut scaled.phases {
            phase.duration = phase.duration.mul_f64(factor);
        }
        scaled
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

    /// The scenario with every default filled in, as YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a scenario always serializes")
    }

    /// Checks that hold across keys; returns the key at fault and why.
    fn validate(&self) -> Result<(), (String, String)> {
        if self.name.trim().is_empty() {
            return Err(("name".into(), "must not be empty".into()));
        }
        if self.phases.is_empty() {
            return Err(("phases".into(), "needs at least one phase".into()));
        }
        let mut phase_names = BTreeSet::new();
        for (i, phase) in self.phases.iter().enumerate() {
            if phase.name.trim().is_empty() || !phase_names.insert(phase.name.as_str()) {
                let why = format!("{:?} is empty or names an earlier phase", phase.name);
                return Err((format!("phases[{i}].name"), why));
            }
            if phase.slo.is_some() {
                self.slo_for(phase)
                    .check_order(&format!("phases[{i}].slo"))?;
            }
        }
        self.slo.check_order("slo")?;
        self.validate_requests()?;
        self.validate_variables()
    }

    fn validate_requests(&self) -> Result<(), (String, String)> {
        if self.requests.is_empty() {
            return Err(("requests".into(), "needs at least one request".into()));
        }
        if self.requests.iter().all(|r| r.weight == 0) {
            return Err((
                "requests".into(),
                "every weight is 0: at least one request needs a weight above 0".into(),
            ));
        }
        for (i, r) in self.requests.iter().enumerate() {
            let key = |field: &str| format!("requests[{i}].{field}");
            if self.requests[..i].iter().any(|other| other.name == r.name) {
                return Err((
                    key("name"),
                    format!("{:?} names an earlier request", r.name),
                ));
            }
            if r.json.is_some() && r.body.is_some() {
                return Err((key("body"), "set either json or body, not both".into()));
            }
            if let Some(name) = r
                .headers
                .keys()
                .find(|h| http::HeaderName::try_from(*h).is_err())
            {
                return Err((
                    key(&format!("headers.{name}")),
                    "is not a valid header name".into(),
                ));
            }
            if let Some(statuses) = &r.expect_status {
                if statuses.is_empty() || statuses.iter().any(|s| !(100..=599).contains(s)) {
                    let why = "expected HTTP statuses from 100 to 599, such as 201 or [200, 404]";
                    return Err((key("expect_status"), why.into()));
                }
            }
            if let Some(after) = &r.after {
                if after == &r.name {
                    return Err((key("after"), "a request cannot run after itself".into()));
                }
                if !self.requests.iter().any(|other| &other.name == after) {
                    return Err((key("after"), format!("{after:?} names no request")));
                }
                if self.ancestors(r).contains(&r.name.as_str()) {
                    let why = format!(
                        "following `after` from {after:?} leads back to {:?}, so none of \
                         them can ever run",
                        r.name
                    );
                    return Err((key("after"), why));
                }
            }
        }
        Ok(())
    }

    /// Every variable a template reads is a data variable or extracted by a request that runs
    /// before it in the same session.
    fn validate_variables(&self) -> Result<(), (String, String)> {
        for name in self.data.keys() {
            if !is_variable_name(name) {
                return Err((format!("data.{name}"), not_a_name(name)));
            }
        }
        let mut extracted_by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (i, r) in self.requests.iter().enumerate() {
            for name in r.extract.keys() {
                let key = format!("requests[{i}].extract.{name}");
                if !is_variable_name(name) {
                    return Err((key, not_a_name(name)));
                }
                if self.data.contains_key(name) {
                    return Err((key, format!("{name:?} is also a data variable")));
                }
                extracted_by.entry(name).or_default().push(&r.name);
            }
        }
        for (i, r) in self.requests.iter().enumerate() {
            let before = self.ancestors(r);
            for (field, variables) in r.templates() {
                for variable in variables {
                    if self.data.contains_key(variable) {
                        continue;
                    }
                    let why = match extracted_by.get(variable) {
                        None => format!(
                            "{{{{{variable}}}}} is neither a data variable nor extracted by any \
                             request"
                        ),
                        Some(by) if by.iter().any(|b| before.contains(b)) => continue,
                        Some(by) => format!(
                            "{{{{{variable}}}}} is extracted by {:?}, which this request does not \
                             run after, so it could never be set (add `after: {}`)",
                            by[0], by[0]
                        ),
                    };
                    return Err((format!("requests[{i}].{field}"), why));
                }
            }
        }
        Ok(())
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

    /// Each template field's key (`path`, `headers.NAME`, `json`, `body`) and the variables it
    /// reads.
    fn templates(&self) -> Vec<(String, Vec<&str>)> {
        let mut out = vec![("path".to_string(), self.path.variables().collect())];
        for (name, value) in &self.headers {
            out.push((format!("headers.{name}"), value.variables().collect()));
        }
        if let Some(json) = &self.json {
            out.push(("json".into(), json.variables()));
        }
        if let Some(body) = &self.body {
            out.push(("body".into(), body.variables().collect()));
        }
        out
    }
}

impl Slo {
    /// Whether no threshold is set.
    pub fn is_empty(&self) -> bool {
        *self == Slo::default()
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

    /// Latency thresholds must not fall as the percentile rises (p50 ≤ p95 ≤ p99 ≤ p999 ≤ max);
    /// a phase is checked with the scenario's thresholds it inherits filled in.
    fn check_order(&self, at: &str) -> Result<(), (String, String)> {
        let set = [
            ("p50", self.p50),
            ("p95", self.p95),
            ("p99", self.p99),
            ("p999", self.p999),
            ("max", self.max),
        ];
        let mut highest: Option<(&str, Duration)> = None;
        for (name, value) in set {
            let Some(value) = value else { continue };
            if let Some((lower, bound)) = highest.filter(|(_, bound)| value < *bound) {
                let why = format!(
                    "is below {lower} ({}); a higher percentile cannot have a lower threshold",
                    humantime::format_duration(bound)
                );
                return Err((format!("{at}.{name}"), why));
            }
            highest = Some((name, value));
        }
        Ok(())
    }
}

fn not_a_name(name: &str) -> String {
    format!(
        "{name:?} cannot be used as a variable: use letters, digits and _, and none of int, \
         uuid, date, choice"
    )
}

/// The scenario as written; turned into a [`Scenario`] once `baseline_rps` is known, so absolute
/// rates (`500/s`) can be stored as multiples.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: String,
    #[serde(deserialize_with = "positive_number")]
    baseline_rps: f64,
    #[serde(deserialize_with = "at_least_one")]
    max_users: usize,
    #[serde(default = "default_timeout", with = "duration_text")]
    timeout: Duration,
    phases: Vec<PhaseFile>,
    requests: Vec<RequestSpec>,
    #[serde(default)]
    data: BTreeMap<String, DataSource>,
    #[serde(default)]
    slo: Slo,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseFile {
    name: String,
    #[serde(with = "duration_text")]
    duration: Duration,
    rps: RateText,
    #[serde(default)]
    slo: Option<Slo>,
}

/// A rate as written: each end a multiple (`2x`) or an absolute rate (`500/s`).
struct RateText {
    start: Rate,
    end: Rate,
}

#[derive(Clone, Copy)]
enum Rate {
    Multiple(f64),
    PerSecond(f64),
}

impl ScenarioFile {
    fn resolve(self) -> Scenario {
        let baseline = self.baseline_rps;
        let multiple = |rate: Rate| match rate {
            Rate::Multiple(m) => m,
            Rate::PerSecond(r) => r / baseline,
        };
        Scenario {
            name: self.name,
            baseline_rps: baseline,
            max_users: self.max_users,
            timeout: self.timeout,
            phases: self
                .phases
                .into_iter()
                .map(|p| Phase {
                    name: p.name,
                    duration: p.duration,
                    rps: RateSpec {
                        start: multiple(p.rps.start),
                        end: multiple(p.rps.end),
                    },
                    slo: p.slo,
                })
                .collect(),
            requests: self.requests,
            data: self.data,
            slo: self.slo,
        }
    }
}

const RATE_USAGE: &str = "expected a multiple of baseline_rps such as 2x, a ramp such as \
                          1x..10x, or an absolute rate such as 500/s";

impl<'de> Deserialize<'de> for RateText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RateVisitor)
    }
}

/// Reads a rate from text; a bare number is refused with a hint, since `500` could mean either.
struct RateVisitor;

impl de::Visitor<'_> for RateVisitor {
    type Value = RateText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(RATE_USAGE)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<RateText, E> {
        let one = |t: &str| -> Option<Rate> {
            let t = t.trim();
            let (number, make): (&str, fn(f64) -> Rate) = match t.strip_suffix("/s") {
                Some(n) => (n, Rate::PerSecond),
                None => (t.strip_suffix(['x', '×'])?, Rate::Multiple),
            };
            let value: f64 = number.trim().parse().ok()?;
            (value.is_finite() && value >= 0.0).then(|| make(value))
        };
        let (first, second) = text.split_once("..").unwrap_or((text, text));
        match (one(first), one(second)) {
            (Some(start), Some(end)) => Ok(RateText { start, end }),
            _ => Err(E::custom(format!("{RATE_USAGE}, got {text:?}"))),
        }
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<RateText, E> {
        Err(E::custom(format!(
            "{RATE_USAGE}; got the bare number {n}: write {n}x or {n}/s"
        )))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<RateText, E> {
        self.visit_f64(n as f64)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<RateText, E> {
        self.visit_f64(n as f64)
    }
}

fn default_weight() -> u32 {
    1
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn positive_number<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(d)?;
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(de::Error::custom(format!("must be above 0, got {value}")))
    }
}

fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    match usize::deserialize(d)? {
        0 => Err(de::Error::custom("must be at least 1")),
        n => Ok(n),
    }
}

fn url_template<'de, D: Deserializer<'de>>(d: D) -> Result<Template, D::Error> {
    let text = String::deserialize(d)?;
    if !text.starts_with('/') {
        return Err(de::Error::custom(format!(
            "{text:?} must start with /: targets are given on the command line"
        )));
    }
    Template::parse_url(&text).map_err(de::Error::custom)
}

fn one_or_many_statuses<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u16>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(u16),
        Many(Vec<u16>),
    }
    match OneOrMany::deserialize(d) {
        Ok(OneOrMany::One(s)) => Ok(Some(vec![s])),
        Ok(OneOrMany::Many(v)) => Ok(Some(v)),
        Err(_) => Err(de::Error::custom(
            "expected an HTTP status such as 201, or a list such as [200, 404]",
        )),
    }
}

/// Durations written the human way (`250ms`, `2s`, `5m`, `1h 30m`), longer than zero.
mod duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        parse(&String::deserialize(d)?).map_err(de::Error::custom)
    }

    pub fn parse(text: &str) -> Result<Duration, String> {
        match humantime::parse_duration(text.trim()) {
            Ok(d) if d.is_zero() => Err("must be longer than zero".into()),
            Ok(d) => Ok(d),
            Err(e) => Err(format!(
                "expected a duration such as 250ms, 30s or 5m, got {text:?} ({e})"
            )),
        }
    }
}

/// An optional [`duration_text`].
mod optional_duration {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => duration_text::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| duration_text::parse(&t).map_err(de::Error::custom))
            .transpose()
    }
}

/// A share written as a percentage (`1%`, `0.5%`) and held as a fraction (0.01, 0.005).
mod optional_percent {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(f) => s.collect_str(&format_args!("{}%", (f * 100.0 * 1e9).round() / 1e9)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(f64),
        }
        let usage = "expected a percentage such as 1% or 0.1%";
        let text = match Option::<Raw>::deserialize(d).map_err(|_| de::Error::custom(usage))? {
            None => return Ok(None),
            Some(Raw::Text(text)) => text,
            Some(Raw::Number(n)) => {
                return Err(de::Error::custom(format!(
                    "{usage}; write {n}% for {n} percent"
                )))
            }
        };
        let percent = text
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<f64>().ok())
            .filter(|p| (0.0..=100.0).contains(p))
            .ok_or_else(|| de::Error::custom(format!("{usage} (0% to 100%), got {text:?}")))?;
        Ok(Some(percent / 100.0))
    }
}

/// HTTP method names, upper-cased; only the methods the load harness sends.
mod method_text {
    use super::*;

    const SENT: [http::Method; 6] = [
        http::Method::GET,
        http::Method::HEAD,
        http::Method::POST,
        http::Method::PUT,
        http::Method::PATCH,
        http::Method::DELETE,
    ];

    pub fn serialize<S: Serializer>(value: &http::Method, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(value.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<http::Method, D::Error> {
        let text = String::deserialize(d)?;
        let upper = text.trim().to_ascii_uppercase();
        SENT.into_iter()
            .find(|m| m.as_str() == upper)
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "expected GET, HEAD, POST, PUT, PATCH or DELETE, got {text:?}"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(text, Path::new("s.yaml"))
    }

    const EXAMPLE: &str = r#"
name: holiday-peak
baseline_rps: 200               # a normal day's rate; phase rates are multiples of it
max_users: 2000                 # concurrency ceiling
timeout: 10s                    # per request (default 30s)
phases:
  - {name: warmup,  duration: 2m,  rps: 1x}
  - {name: ramp,    duration: 5m,  rps: 1x..10x}   # linear ramp
  - {name: peak,    duration: 10m, rps: 10x}
  - {name: spike,   duration: 30s, rps: 15x, slo: {p99: 400ms}}
  - {name: recover, duration: 3m,  rps: 2x}
requests:
  - {name: search, weight: 6, method: GET, path: "/partners?city={{city}}&service={{service}}"}
  - {name: book,   weight: 2, method: POST, path: /bookings, json: {partner_id: "{{int 1 500}}", slot: "{{date +1d..+7d}}"}, extract: {booking_id: "$.id"}}
  - {name: status, weight: 3, method: GET, path: "/bookings/{{booking_id}}", after: book}
data: {city: [mumbai, delhi, bengaluru, pune], service: data/services.csv}
slo: {p99: 200ms, p95: 150ms, error_rate: 1%}
"#;

    /// A valid scenario whose lines are numbered for the error tests.
    const MIN: &str = "name: t\n\
                       baseline_rps: 10\n\
                       max_users: 5\n\
                       phases:\n  \
                         - {name: p, duration: 1s, rps: 1x}\n\
                       requests:\n  \
                         - {name: a, path: /a}\n";

    #[test]
    fn parses_the_example() {
        let s = parse(EXAMPLE).unwrap();
        assert_eq!(s.name, "holiday-peak");
        assert_eq!(s.baseline_rps, 200.0);
        assert_eq!(s.max_users, 2000);
        assert_eq!(s.timeout, Duration::from_secs(10));
        assert_eq!(s.phases.len(), 5);
        assert_eq!(
            s.phases[1].rps,
            RateSpec {
                start: 1.0,
                end: 10.0
            }
        );
        assert_eq!(s.phases[3].duration, Duration::from_secs(30));
        assert_eq!(s.total_duration(), Duration::from_secs(20 * 60 + 30));
        assert_eq!(s.peak_rps(), 3000.0);
        let book = &s.requests[1];
        assert_eq!(book.method, http::Method::POST);
        assert_eq!(book.extract["booking_id"].as_str(), "$.id");
        assert_eq!(s.requests[2].after.as_deref(), Some("book"));
        assert!(s.requests[0].is_success(302) && !s.requests[0].is_success(404));
        assert_eq!(
            s.data["service"],
            DataSource::Csv {
                file: "data/services.csv".into(),
                column: None
            }
        );
        assert_eq!(s.slo.error_rate, Some(0.01));
        assert_eq!(s.slo.p95, Some(Duration::from_millis(150)));
        let spike = s.slo_for(&s.phases[3]);
        assert_eq!(spike.p99, Some(Duration::from_millis(400)));
        assert_eq!(spike.p95, Some(Duration::from_millis(150)));
        assert_eq!(s.slo_for(&s.phases[0]), s.slo);
    }

    #[test]
    fn defaults_and_round_trip() {
        let s = parse(MIN).unwrap();
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert_eq!(s.requests[0].weight, 1);
        assert_eq!(s.requests[0].method, http::Method::GET);
        for text in [MIN, EXAMPLE] {
            let s = parse(text).unwrap();
            assert_eq!(parse(&s.to_yaml()).unwrap(), s, "{}", s.to_yaml());
        }
    }

    #[test]
    fn rates_ramp_linearly() {
        let s = parse(&MIN.replace("rps: 1x", "rps: 1x..10x").replace("1s", "10s")).unwrap();
        let phase = &s.phases[0];
        assert!(phase.rps.is_ramp());
        let at = |secs: f64| phase.rate_at(Duration::from_secs_f64(secs), 100.0);
        assert_eq!(at(0.0), 100.0);
        assert_eq!(at(5.0), 550.0);
        assert_eq!(at(10.0), 1000.0);
        assert_eq!(at(60.0), 1000.0);
        let flat = Phase {
            name: "f".into(),
            duration: Duration::from_secs(1),
            rps: RateSpec::constant(2.0),
            slo: None,
        };
        assert_eq!(flat.rate_at(Duration::from_millis(300), 50.0), 100.0);
        assert_eq!(flat.rps.to_string(), "2x");
    }

    #[test]
    fn absolute_rates_become_multiples() {
        let s = parse(&MIN.replace("rps: 1x", "rps: 5/s..2.5x")).unwrap();
        assert_eq!(
            s.phases[0].rps,
            RateSpec {
                start: 0.5,
                end: 2.5
            }
        );
        assert_eq!(s.phases[0].rps.to_string(), "0.5x..2.5x");
    }

    #[test]
    fn scaled_multiplies_phase_durations() {
        let s = parse(EXAMPLE).unwrap();
        let short = s.scaled(0.1);
        assert_eq!(short.phases[0].duration, Duration::from_secs(12));
        assert_eq!(short.phases[3].duration, Duration::from_secs(3));
        assert_eq!(short.total_duration(), Duration::from_secs(123));
        assert_eq!(short.timeout, s.timeout);
        assert_eq!(short.phases[1].rps, s.phases[1].rps);
    }

    /// Parsing `text` fails at `key` on `line` with a message containing `fragment`.
    #[track_caller]
    fn fails(text: &str, key: &str, line: usize, fragment: &str) {
        let e = parse(text).expect_err(text);
        assert_eq!(e.key.as_deref(), Some(key), "{e}\n{text}");
        assert_eq!(e.line, Some(line), "{e}\n{text}");
        assert!(e.message.contains(fragment), "{e}\n{text}");
        assert!(e.to_string().starts_with(&format!("s.yaml:{line}:")), "{e}");
        assert!(e.to_string().contains(&format!(": {key}: ")), "{e}");
    }

    /// MIN with its phase (line 5) replaced.
    fn with_phase(phase: &str) -> String {
        MIN.replace("  - {name: p, duration: 1s, rps: 1x}\n", phase)
    }

    /// MIN with its request (line 7) replaced.
    fn with_requests(requests: &str) -> String {
        MIN.replace("  - {name: a, path: /a}\n", requests)
    }

    #[test]
    fn scenario_errors_name_line_and_key() {
        fails(
            &format!("{MIN}colour: red\n"),
            "colour",
            8,
            "unknown field `colour`",
        );
        fails(
            &MIN.replace("max_users: 5", "max_users: 0"),
            "max_users",
            3,
            "at least 1",
        );
        fails(
            &MIN.replace("_rps: 10", "_rps: 0"),
            "baseline_rps",
            2,
            "above 0",
        );
        fails(
            &MIN.replace("_rps: 10", "_rps: -3"),
            "baseline_rps",
            2,
            "above 0",
        );
        let timeout = MIN.replace("max_users: 5\n", "max_users: 5\ntimeout: soon\n");
        fails(&timeout, "timeout", 4, "expected a duration");
    }

    #[test]
    fn phase_errors_name_line_and_key() {
        let phase = |p: &str| with_phase(&format!("  - {{name: p, {p}}}\n"));
        fails(
            &phase("duration: 1s, rsp: 1x"),
            "phases[0].rsp",
            5,
            "unknown field",
        );
        let d = "expected a duration";
        fails(
            &phase("duration: 1 fortnight, rps: 1x"),
            "phases[0].duration",
            5,
            d,
        );
        let d = "longer than zero";
        fails(&phase("duration: 0s, rps: 1x"), "phases[0].duration", 5, d);
        fails(
            &phase("duration: 1s, rps: 10"),
            "phases[0].rps",
            5,
            "write 10x or 10/s",
        );
        fails(
            &phase("duration: 1s, rps: 1x..ten"),
            "phases[0].rps",
            5,
            "such as 2x",
        );
        fails(
            &phase("duration: 1s, rps: -1x"),
            "phases[0].rps",
            5,
            "such as 2x",
        );
        fails(
            &phase("duration: 1s"),
            "phases[0]",
            5,
            "missing field `rps`",
        );
        fails(&with_phase("  []\n"), "phases", 4, "at least one phase");
        let twice = "  - {name: p, duration: 1s, rps: 1x}\n".repeat(2);
        fails(&with_phase(&twice), "phases[1].name", 6, "earlier phase");
    }

    #[test]
    fn request_errors_name_line_and_key() {
        let one = |r: &str| with_requests(&format!("  - {{name: a, path: /a, {r}}}\n"));
        fails(&one("weight: 0"), "requests", 6, "every weight is 0");
        let twice = "  - {name: a, path: /a}\n".repeat(2);
        fails(
            &with_requests(&twice),
            "requests[1].name",
            8,
            "earlier request",
        );
        fails(
            &one("after: nope"),
            "requests[0].after",
            7,
            "names no request",
        );
        fails(&one("after: a"), "requests[0].after", 7, "after itself");
        let looped = "  - {name: a, path: /a, after: b}\n  - {name: b, path: /b, after: a}\n";
        fails(
            &with_requests(looped),
            "requests[0].after",
            7,
            "none of them can ever run",
        );
        let bad = "`int` takes two";
        fails(
            &with_requests("  - {name: a, path: '/{{int 1}}'}\n"),
            "requests[0].path",
            7,
            bad,
        );
        fails(
            &with_requests("  - {name: a, path: a}\n"),
            "requests[0].path",
            7,
            "start with /",
        );
        fails(
            &one("method: G3T"),
            "requests[0].method",
            7,
            "expected GET, HEAD",
        );
        fails(&one("method: TRACE"), "requests[0].method", 7, "or DELETE");
        fails(&one("json: {}, body: x"), "requests[0].body", 7, "not both");
        let header = "requests[0].headers.bad header";
        fails(&one("headers: {'bad header': x}"), header, 7, "header name");
        let status = "from 100 to 599";
        fails(
            &one("expect_status: 700"),
            "requests[0].expect_status",
            7,
            status,
        );
        fails(
            &one("extract: {id: id}"),
            "requests[0].extract.id",
            7,
            "must start with $",
        );
        let reserved = "cannot be used as a variable";
        fails(
            &one("extract: {uuid: $.id}"),
            "requests[0].extract.uuid",
            7,
            reserved,
        );
    }

    #[test]
    fn variable_errors_name_line_and_key() {
        let unknown = "neither a data variable";
        let path = "  - {name: a, path: '/a/{{x}}'}\n";
        fails(&with_requests(path), "requests[0].path", 7, unknown);
        let not_after = "  - {name: a, path: /a, extract: {id: $.id}}\n  \
                         - {name: b, path: '/b/{{id}}'}\n";
        fails(
            &with_requests(not_after),
            "requests[1].path",
            8,
            "add `after: a`",
        );
        let wrong_after = "  - {name: a, path: /a, extract: {id: $.id}}\n  \
                           - {name: b, path: /b, body: '{{id}}', after: c}\n  \
                           - {name: c, path: /c}\n";
        fails(
            &with_requests(wrong_after),
            "requests[1].body",
            8,
            "extracted by \"a\"",
        );
        let both = "  - {name: a, path: /a, extract: {id: $.id}}\ndata: {id: [1]}\n";
        let key = "requests[0].extract.id";
        fails(&with_requests(both), key, 7, "also a data variable");
        let reserved = "cannot be used as a variable";
        fails(
            &format!("{MIN}data: {{int: [1]}}\n"),
            "data.int",
            8,
            reserved,
        );
        fails(
            &format!("{MIN}data: {{city: []}}\n"),
            "data.city",
            8,
            "has no values",
        );
        fails(
            &format!("{MIN}data: {{city: pune}}\n"),
            "data.city",
            8,
            "CSV file",
        );
    }

    #[test]
    fn slo_errors_name_line_and_key() {
        let slo = |s: &str| format!("{MIN}slo: {{{s}}}\n");
        let percent = "write 2% for 2 percent";
        fails(&slo("error_rate: 2"), "slo.error_rate", 8, percent);
        fails(&slo("error_rate: 120%"), "slo.error_rate", 8, "0% to 100%");
        fails(&slo("p90: 1s"), "slo.p90", 8, "unknown field `p90`");
        fails(
            &slo("p95: 1s, p99: 500ms"),
            "slo.p99",
            8,
            "is below p95 (1s)",
        );
        let phase = "  - {name: p, duration: 1s, rps: 1x, slo: {max: 1s, p50: 2s}}\n";
        fails(&with_phase(phase), "phases[0].slo.max", 5, "is below p50");
        let inherits = "  - name: p\n    duration: 1s\n    rps: 1x\n    slo: {p95: 300ms}\n";
        let text = format!("{}slo: {{p99: 200ms}}\n", with_phase(inherits));
        fails(&text, "phases[0].slo.p99", 8, "is below p95 (300ms)");
    }

    #[test]
    fn errors_in_block_style_point_at_the_key() {
        let text = "name: t\nbaseline_rps: 10\nmax_users: 5\nphases:\n  - name: p\n    duration: 1s\n    rps: 2x\nrequests:\n  - name: a\n    path: /a\n    after: b\n";
        let e = parse(text).unwrap_err();
        assert_eq!((e.line, e.column), (Some(11), Some(5)));
        assert_eq!(
            e.to_string(),
            "s.yaml:11:5: requests[0].after: \"b\" names no request"
        );
        let e = parse(&text.replace("rps: 2x", "rps: fast")).unwrap_err();
        assert_eq!((e.line, e.column), (Some(7), Some(5)));
        let e = parse("name: t\nphases: [\n").unwrap_err();
        assert!(e.line.is_some(), "{e}");
        let e = parse("name: t\n").unwrap_err();
        assert!(e.message.contains("missing field"), "{e}");
    }

    #[test]
    fn after_chains_let_later_requests_use_earlier_extractions() {
        let text = with_requests(
            "  - {name: a, path: /a, extract: {id: $.id}}\n  \
               - {name: b, path: '/b/{{id}}', after: a}\n  \
               - {name: c, path: '/c/{{id}}', after: b}\n",
        );
        let s = parse(&text).unwrap();
        assert_eq!(s.ancestors(&s.requests[2]), ["b", "a"]);
    }

    #[test]
    fn load_resolves_data_and_reports_missing_files_at_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yaml");
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(
            dir.path().join("data/services.csv"),
            "service,minutes\nhaircut,30\n",
        )
        .unwrap();
        std::fs::write(&path, EXAMPLE).unwrap();
        let loaded = Scenario::load(&path).unwrap();
        assert_eq!(loaded.data.values("service").unwrap(), ["haircut"]);
        assert_eq!(loaded.data.values("city").unwrap().len(), 4);
        assert_eq!(loaded.sha256.len(), 64);
        std::fs::write(&path, EXAMPLE.replace("services.csv", "servics.csv")).unwrap();
        let e = Scenario::load(&path).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("data.service"));
        assert_eq!(e.line, Some(16));
        assert!(e.message.starts_with("cannot read data/servics.csv"), "{e}");
        let e = Scenario::load(&dir.path().join("none.yaml")).unwrap_err();
        assert!(e.message.starts_with("cannot read the file"), "{e}");
    }

    #[test]
    fn shipped_scenarios_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut loaded = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                let stem = path.file_stem().unwrap().to_string_lossy().to_string();
                assert_eq!(s.scenario.name, stem);
                loaded.insert(stem, s);
            }
        }
        let names: Vec<&str> = loaded.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "black-friday",
                "holiday-peak",
                "lunch-hour",
                "smoke",
                "soak"
            ]
        );
        let minutes = |name: &str| loaded[name].scenario.total_duration().as_secs_f64() / 60.0;
        let peak =
            |name: &str| loaded[name].scenario.peak_rps() / loaded[name].scenario.baseline_rps;
        assert!((18.0..=22.0).contains(&minutes("holiday-peak")));
        let holiday = &loaded["holiday-peak"].scenario;
        assert_eq!(
            holiday
                .phases
                .iter()
                .find(|p| p.name == "peak")
                .unwrap()
                .rps,
            RateSpec::constant(10.0)
        );
        assert_eq!(peak("black-friday"), 8.0);
        assert_eq!(minutes("lunch-hour"), 75.0);
        assert!(minutes("soak") >= 8.0 * 60.0);
        let smoke = &loaded["smoke"].scenario;
        assert!((5.0..=7.0).contains(&smoke.total_duration().as_secs_f64()));
        assert_eq!(smoke.baseline_rps, 20.0);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
        for s in loaded.values() {
            let session = s
                .scenario
                .requests
                .iter()
                .flat_map(|r| r.extract.keys())
                .map(|k| (k.clone(), serde_json::Value::from("17")))
                .collect();
            let mut ctx = crate::template::RenderContext {
                rng: &mut rng,
                data: &s.data,
                session: &session,
                today: chrono::NaiveDate::from_ymd_opt(2024, 11, 29).unwrap(),
            };
            for r in &s.scenario.requests {
                assert!(r.path.render(&mut ctx).unwrap().starts_with('/'));
                if let Some(json) = &r.json {
                    assert!(json.render(&mut ctx).unwrap().is_object());
                }
            }
        }
    }
}
