//! The scenario file as written, and the serde adapters of its values: rates (`2x`, `1x..10x`,
//! `500/s`), durations and percentages as every twinpeak file reads them
//! ([`HumanDuration`], [`Percent`](twinpeak_core::units::Percent)), statuses, methods and paths.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use twinpeak_core::units::HumanDuration;

use super::{Phase, RateSpec, RequestSpec, Scenario, Slo};
use crate::data::DataSource;
use crate::template::Template;

/// The scenario as written; turned into a [`Scenario`] once `baseline_rps` is known, so absolute
/// rates (`500/s`) can be stored as multiples.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScenarioFile {
    name: String,
    #[serde(deserialize_with = "positive_number")]
    baseline_rps: f64,
    #[serde(deserialize_with = "at_least_one")]
    max_users: usize,
    #[serde(default = "default_timeout", with = "duration")]
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
    #[serde(with = "duration")]
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
    /// The model of the file: rates as multiples of `baseline_rps`.
    pub(super) fn resolve(self) -> Scenario {
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

/// A request's weight when none is written.
pub(super) fn default_weight() -> u32 {
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

/// A request path: a URL template that starts with `/`.
pub(super) fn url_template<'de, D: Deserializer<'de>>(d: D) -> Result<Template, D::Error> {
    let text = String::deserialize(d)?;
    if !text.starts_with('/') {
        return Err(de::Error::custom(format!(
            "{text:?} must start with /: targets are given on the command line"
        )));
    }
    Template::parse_url(&text).map_err(de::Error::custom)
}

/// `201` or `[200, 404]`.
pub(super) fn one_or_many_statuses<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<u16>>, D::Error> {
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

/// Durations written the human way (`250ms`, `2s`, `5m`, `1h 30m`), longer than zero: read and
/// written as [`HumanDuration`], held as [`Duration`].
pub(super) mod duration {
    use super::*;

    /// Writes `d` the human way.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        HumanDuration(*d).serialize(s)
    }

    /// Reads a human duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        HumanDuration::deserialize(d).map(|h| h.0)
    }
}

/// An optional [`duration`].
pub(super) mod optional_duration {
    use super::*;

    /// Writes `d` the human way, or nothing.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        d.map(HumanDuration).serialize(s)
    }

    /// Reads a human duration, or nothing.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<HumanDuration>::deserialize(d).map(|h| h.map(|h| h.0))
    }
}

/// HTTP method names, upper-cased; only the methods the load harness sends.
pub(super) mod method {
    use super::*;

    const SENT: [http::Method; 6] = [
        http::Method::GET,
        http::Method::HEAD,
        http::Method::POST,
        http::Method::PUT,
        http::Method::PATCH,
        http::Method::DELETE,
    ];

    /// Writes the method's name.
    pub fn serialize<S: Serializer>(value: &http::Method, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(value.as_str())
    }

    /// Reads a method name in any case.
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
