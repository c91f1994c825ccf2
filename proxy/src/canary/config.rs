//! The `canary:` section of the proxy configuration: where the candidate is, how much live
//! traffic it serves, how that share grows, and what the judge holds it to.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::InvalidKey;
use crate::secret::SecretSource;
use crate::units::{HumanDuration, Method, Percent, SampleKey, SourceNet, UpstreamUrl};

/// The header that forces a request to one side, unless configured otherwise.
pub const DEFAULT_FORCE_HEADER: &str = "x-twinpeak-canary";

/// The response header that names the side which served a request.
pub const SIDE_HEADER: &str = "x-twinpeak-side";

/// Canary routing: a weighted, optionally sticky share of live traffic served by the rebuilt
/// backend (the *candidate*), moved along a ramp and rolled back by the judge.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// The candidate; defaults to `shadow.url` (filled in when the file is read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamUrl>,
    /// Share of live traffic the candidate serves at start when there is no ramp. With a ramp
    /// the canary starts at the ramp's first step, so this must be left at 0.
    #[serde(default)]
    pub weight: Percent,
    /// Consistent routing key (`header:NAME`, `cookie:NAME`): the same value always lands on
    /// the same side. Absent (`random`): each request is drawn on its own.
    #[serde(default)]
    pub sticky: SampleKey,
    /// The header testers send to pick a side.
    #[serde(default)]
    pub force: ForceConfig,
    /// Whether every answer carries `x-twinpeak-side: primary|candidate`.
    #[serde(default = "crate::units::on")]
    pub side_header: bool,
    /// Time allowed to open a connection to the candidate; past it an idempotent request is
    /// retried on the primary.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Speak HTTP/2 to the candidate (ALPN over TLS, h2c over plaintext); the shadow's
    /// setting when the candidate is the shadow.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub http2: bool,
    /// TLS settings for an `https://` candidate; the shadow's when the candidate is the
    /// shadow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::tls::upstream::UpstreamTls>,
    /// The automatic schedule, in order; empty for a weight set by hand.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ramp: Vec<RampStep>,
    /// What the candidate is held to, interval by interval.
    #[serde(default)]
    pub judge: JudgeConfig,
}

/// The header that lets a tester pick a side: `always` (the candidate) or `never` (the
/// primary). It is honoured only where the operator allows it (`from`, `secret`) and ignored
/// otherwise; by default nobody may force.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ForceConfig {
    /// Its name.
    #[serde(default = "default_force_header", deserialize_with = "header_name")]
    pub header: String,
    /// Client networks whose requests may force (`10.0.0.0/8`, `127.0.0.1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<SourceNet>,
    /// A secret (`{file: PATH}` or `{env: NAME}`) that lets a request from anywhere force,
    /// sent in `secret_header`.
    #[serde(default, skip_serializing_if = "is_unset")]
    pub secret: SecretSource,
    /// The header that carries the secret.
    #[serde(
        default = "default_force_secret_header",
        deserialize_with = "header_name"
    )]
    pub secret_header: String,
    /// Methods that may be forced; by default the safe ones, so a forced write cannot reach a
    /// build that is not trusted yet.
    #[serde(default = "crate::units::read_methods")]
    pub methods: Vec<Method>,
    /// Whether `always` still reaches the candidate at weight 0 or after a rollback.
    #[serde(default)]
    pub while_off: bool,
}

impl Default for ForceConfig {
    fn default() -> Self {
        ForceConfig {
            header: default_force_header(),
            from: Vec::new(),
            secret: SecretSource::default(),
            secret_header: default_force_secret_header(),
            methods: crate::units::read_methods(),
            while_off: false,
        }
    }
}

fn is_unset(secret: &SecretSource) -> bool {
    !secret.is_set()
}

/// One step of the ramp.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RampStep {
    /// Share of live traffic the candidate serves during the step.
    pub weight: Percent,
    /// How long the step lasts at least; required on every step but the last, which lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<HumanDuration>,
}

/// The judge's thresholds. Each interval it compares the candidate with the primary over that
/// same interval.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeConfig {
    /// How often it judges, over the traffic since the last time.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// Candidate requests an interval needs for a verdict; with fewer it is inconclusive.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    /// Highest share of candidate requests that may fail (5xx, or no answer).
    #[serde(default = "default_max_error_rate")]
    pub max_error_rate: Percent,
    /// How many percentage points the candidate's error rate may exceed the primary's by.
    #[serde(default = "default_max_error_delta")]
    pub max_error_delta: Percent,
    /// Highest ratio of the candidate's p99 latency to the primary's.
    #[serde(default = "default_max_p99_ratio")]
    pub max_p99_ratio: f64,
    /// Highest share of compared pairs with a real difference (when mirroring to the same
    /// backend is on).
    #[serde(default = "default_max_diff_rate")]
    pub max_diff_rate: Percent,
    /// Significance level of the one-sided Mann–Whitney U test "the candidate is slower".
    #[serde(default = "default_latency_alpha")]
    pub latency_alpha: f64,
    /// Smallest effect that can fail a significant shift: the probability that a candidate
    /// request is slower than a primary one (0.5 means no difference).
    #[serde(default = "default_latency_effect")]
    pub latency_effect: f64,
    /// Failing intervals in a row that set the weight to 0.
    #[serde(default = "default_failures_to_rollback")]
    pub failures_to_rollback: u32,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            interval: default_interval(),
            min_requests: default_min_requests(),
            max_error_rate: default_max_error_rate(),
            max_error_delta: default_max_error_delta(),
            max_p99_ratio: default_max_p99_ratio(),
            max_diff_rate: default_max_diff_rate(),
            latency_alpha: default_latency_alpha(),
            latency_effect: default_latency_effect(),
            failures_to_rollback: default_failures_to_rollback(),
        }
    }
}

impl CanaryConfig {
    /// Fills in what defaults to other sections: `upstream` from `shadow.url`.
    pub fn resolve(&mut self, shadow: Option<&UpstreamUrl>) {
        if self.upstream.is_none() {
            self.upstream = shadow.cloned();
        }
    }

    /// The weight the canary starts at: the first ramp step's, or `weight`.
    pub fn initial_weight(&self) -> Percent {
        self.ramp.first().map_or(self.weight, |s| s.weight)
    }

    /// Checks that hold across keys; returns the key at fault (`canary.ramp[1].hold`) and why.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        let fail =
            |key: &str, message: String| Err(InvalidKey::new(format!("canary.{key}"), message));
        if self.upstream.is_none() {
            return fail(
                "upstream",
                "is required when no shadow is configured (the candidate defaults to shadow.url)"
                    .into(),
            );
        }
        if !self.ramp.is_empty() && self.weight.value() > 0.0 {
            return fail(
                "weight",
                format!(
                    "must be 0 with a ramp: the canary starts at the ramp's first step ({}%)",
                    self.ramp[0].weight.value()
                ),
            );
        }
        let last = self.ramp.len().saturating_sub(1);
        for (i, step) in self.ramp.iter().enumerate() {
            if i > 0 && step.weight.value() <= self.ramp[i - 1].weight.value() {
                return fail(
                    &format!("ramp[{i}].weight"),
                    format!(
                        "must be above the previous step's {}%, got {}%",
                        self.ramp[i - 1].weight.value(),
                        step.weight.value()
                    ),
                );
            }
            match (i == last, step.hold) {
                (false, None) => {
                    return fail(
                        &format!("ramp[{i}].hold"),
                        "is required on every step but the last".into(),
                    )
                }
                (true, Some(_)) => {
                    return fail(
                        &format!("ramp[{i}].hold"),
                        "is not allowed on the last step, which lasts until changed".into(),
                    )
                }
                _ => {}
            }
        }
        let judge = &self.judge;
        if judge.min_requests == 0 {
            return fail("judge.min_requests", "must be at least 1".into());
        }
        if judge.failures_to_rollback == 0 {
            return fail("judge.failures_to_rollback", "must be at least 1".into());
        }
        if !(judge.max_p99_ratio.is_finite() && judge.max_p99_ratio >= 1.0) {
            return fail(
                "judge.max_p99_ratio",
                format!(
                    "must be a number of at least 1, got {}",
                    judge.max_p99_ratio
                ),
            );
        }
        if !(judge.latency_alpha > 0.0 && judge.latency_alpha < 0.5) {
            return fail(
                "judge.latency_alpha",
                format!("must be above 0 and below 0.5, got {}", judge.latency_alpha),
            );
        }
        if !(judge.latency_effect >= 0.5 && judge.latency_effect < 1.0) {
            return fail(
                "judge.latency_effect",
                format!(
                    "must be from 0.5 up to (not including) 1, got {}",
                    judge.latency_effect
                ),
            );
        }
        Ok(())
    }
}

impl JudgeConfig {
    /// The interval as a duration.
    pub fn interval(&self) -> Duration {
        self.interval.0
    }
}

fn default_force_header() -> String {
    DEFAULT_FORCE_HEADER.to_string()
}
fn default_force_secret_header() -> String {
    format!("{DEFAULT_FORCE_HEADER}-secret")
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_min_requests() -> u64 {
    500
}
fn percent(value: f64) -> Percent {
    Percent::new(value).expect("default percentages are in range")
}
fn default_max_error_rate() -> Percent {
    percent(1.0)
}
fn default_max_error_delta() -> Percent {
    percent(0.5)
}
fn default_max_p99_ratio() -> f64 {
    1.2
}
fn default_max_diff_rate() -> Percent {
    percent(0.5)
}
fn default_latency_alpha() -> f64 {
    0.01
}
fn default_latency_effect() -> f64 {
    0.6
}
fn default_failures_to_rollback() -> u32 {
    3
}

fn header_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    http::HeaderName::from_bytes(text.trim().as_bytes())
        .map(|h| h.as_str().to_string())
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a valid header name")))
}

/// A configuration from YAML for tests: the candidate defaults to a shadow at
/// 127.0.0.1:9002, and it must validate.
#[cfg(test)]
pub(crate) fn config(text: &str) -> CanaryConfig {
    let mut c: CanaryConfig = serde_yaml::from_str(text).unwrap();
    c.resolve(Some(&"http://127.0.0.1:9002".parse().unwrap()));
    c.validate().unwrap();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> CanaryConfig {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = parse("{}");
        assert_eq!(c.weight.value(), 0.0);
        assert_eq!(c.sticky, SampleKey::Random);
        assert_eq!(c.force.header, "x-twinpeak-canary");
        assert!(c.side_header);
        assert_eq!(c.judge.interval(), Duration::from_secs(30));
        assert_eq!(c.judge.min_requests, 500);
        assert_eq!(c.judge.max_error_rate.value(), 1.0);
        assert_eq!(c.judge.max_error_delta.value(), 0.5);
        assert_eq!(c.judge.max_p99_ratio, 1.2);
        assert_eq!(c.judge.max_diff_rate.value(), 0.5);
        assert_eq!(c.judge.failures_to_rollback, 3);
    }

    #[test]
    fn the_upstream_defaults_to_the_shadow() {
        let shadow: UpstreamUrl = "http://127.0.0.1:9002".parse().unwrap();
        let mut c = parse("{weight: 5}");
        c.resolve(Some(&shadow));
        assert_eq!(c.upstream.as_ref(), Some(&shadow));
        assert!(c.validate().is_ok());
        let mut alone = parse("{weight: 5}");
        alone.resolve(None);
        let InvalidKey { key, message } = alone.validate().unwrap_err();
        assert_eq!(key, "canary.upstream");
        assert!(message.contains("no shadow"), "{message}");
    }

    #[test]
    fn ramps_must_rise_and_hold_on_every_step_but_the_last() {
        let check = |text: &str| {
            let mut c = parse(text);
            c.resolve(Some(&"http://127.0.0.1:9002".parse().unwrap()));
            c.validate()
        };
        assert!(
            check("{ramp: [{weight: 1, hold: 10m}, {weight: 5, hold: 30m}, {weight: 100}]}")
                .is_ok()
        );
        let key = check("{ramp: [{weight: 5, hold: 1m}, {weight: 5}]}")
            .unwrap_err()
            .key;
        assert_eq!(key, "canary.ramp[1].weight");
        let key = check("{ramp: [{weight: 1}, {weight: 5}]}").unwrap_err().key;
        assert_eq!(key, "canary.ramp[0].hold");
        let key = check("{ramp: [{weight: 1, hold: 1m}, {weight: 5, hold: 1m}]}")
            .unwrap_err()
            .key;
        assert_eq!(key, "canary.ramp[1].hold");
        let key = check("{weight: 3, ramp: [{weight: 5}]}").unwrap_err().key;
        assert_eq!(key, "canary.weight");
    }

    #[test]
    fn percentages_take_a_percent_sign() {
        let c = parse("judge: {max_error_rate: 1%, max_error_delta: '0.5%', max_diff_rate: 2}");
        assert_eq!(c.judge.max_error_rate.fraction(), 0.01);
        assert_eq!(c.judge.max_error_delta.fraction(), 0.005);
        assert_eq!(c.judge.max_diff_rate.fraction(), 0.02);
    }
}
