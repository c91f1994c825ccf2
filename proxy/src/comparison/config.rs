//! The `diff:` section of the configuration: what is compared, what is ignored, how noise is
//! told apart, and where diverging requests are kept.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use twinpeak_core::diff::NoiseRule;

use crate::diff::{BodyRules, PathPattern, Tolerance};
use crate::error::InvalidKey;
use crate::units::{Bytes, Percent, UpstreamUrl};

/// How answers are compared.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DiffConfig {
    /// Share of mirrored pairs that are deep-compared; the rest only feed latency.
    #[serde(default = "hundred_percent")]
    pub sample_percent: Percent,
    /// Response headers compared (lower case). Date, Server and hop-by-hop headers never are.
    #[serde(default = "default_headers")]
    pub headers: Vec<String>,
    /// Headers left out of the comparison even when listed in `headers`.
    #[serde(default)]
    pub ignore_headers: Vec<String>,
    /// Body paths whose differences are ignored (`$.meta.request_id`, `$..updated_at`).
    #[serde(default)]
    pub ignore: Vec<PathPattern>,
    /// Arrays compared without regard to order.
    #[serde(default)]
    pub unordered: Vec<PathPattern>,
    /// Numeric tolerances by path.
    #[serde(default)]
    pub tolerance: Vec<ToleranceRule>,
    /// Body paths whose values are replaced in examples and the corpus.
    #[serde(default)]
    pub redact: Vec<PathPattern>,
    /// Request and response headers replaced in examples and the corpus, besides
    /// Authorization, Proxy-Authorization, Cookie and Set-Cookie.
    #[serde(default)]
    pub redact_headers: Vec<String>,
    /// Query parameters, form fields and JSON keys whose values are replaced in examples, the
    /// corpus and log lines, besides the well-known secret names
    /// (`DEFAULT_SECRET_PARAMS` in `redact::params`); matched by the words a name is made of.
    #[serde(default)]
    pub redact_params: Vec<String>,
    /// Telling real differences from noise.
    #[serde(default)]
    pub noise: NoiseConfig,
    /// Examples kept per route and field.
    #[serde(default = "default_examples")]
    pub examples_per_field: usize,
    /// Distinct fields tracked per route; further ones are counted together.
    #[serde(default = "default_max_fields")]
    pub max_fields_per_route: usize,
    /// Distinct signatures (sets of fields a pair differed on) tracked per route; a pair with
    /// a further one is classified once, when compared, and counted as overflow.
    #[serde(default = "default_max_signatures")]
    pub max_signatures_per_route: usize,
    /// Pairs waiting to be compared; past it they are dropped and counted.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Directory where diverging requests are appended as JSON Lines, for replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpus: Option<PathBuf>,
    /// Requests kept in the corpus per (route, field, kind).
    #[serde(default = "default_corpus_per_key")]
    pub corpus_per_key: usize,
    /// Size at which the corpus file is rotated.
    #[serde(default = "default_corpus_max_bytes")]
    pub corpus_max_bytes: Bytes,
    /// Rotated corpus files kept (`diverging.1.jsonl` is the newest); older ones are deleted
    /// and counted.
    #[serde(default = "default_corpus_max_files")]
    pub corpus_max_files: usize,
}

/// A numeric tolerance for the values under a path.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ToleranceRule {
    /// Where it applies.
    pub path: PathPattern,
    /// Largest absolute difference taken as equal.
    #[serde(default)]
    pub absolute: f64,
    /// Largest difference relative to the larger value taken as equal (0.01 = 1%).
    #[serde(default)]
    pub relative: f64,
}

/// Where noise is learned from, and how clearly a field must beat it to count.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseConfig {
    /// A second instance of the legacy code; each mirrored safe request is also sent to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary: Option<UpstreamUrl>,
    /// Without a secondary: share of mirrored safe requests sent to the primary a second time.
    #[serde(default)]
    pub resample_percent: Percent,
    /// A field is a real difference only when its rate beats the noise rate by this much
    /// (percentage points)...
    #[serde(default = "default_absolute_threshold")]
    pub absolute_threshold: Percent,
    /// ...and by this share of the noise rate.
    #[serde(default = "default_relative_threshold")]
    pub relative_threshold: Percent,
    /// Reference comparisons needed before a field can be called noise.
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
}

impl NoiseConfig {
    /// The rule that tells noise from real differences, as summaries record it.
    pub fn rule(&self) -> NoiseRule {
        NoiseRule {
            min_samples: self.min_samples,
            absolute_threshold: self.absolute_threshold.fraction(),
            relative_threshold: self.relative_threshold.fraction(),
        }
    }
}

impl Default for NoiseConfig {
    fn default() -> Self {
        NoiseConfig {
            secondary: None,
            resample_percent: Percent::default(),
            absolute_threshold: default_absolute_threshold(),
            relative_threshold: default_relative_threshold(),
            min_samples: default_min_samples(),
        }
    }
}

impl Default for DiffConfig {
    fn default() -> Self {
        DiffConfig {
            sample_percent: hundred_percent(),
            headers: default_headers(),
            ignore_headers: Vec::new(),
            ignore: Vec::new(),
            unordered: Vec::new(),
            tolerance: Vec::new(),
            redact: Vec::new(),
            redact_headers: Vec::new(),
            redact_params: Vec::new(),
            noise: NoiseConfig::default(),
            examples_per_field: default_examples(),
            max_fields_per_route: default_max_fields(),
            max_signatures_per_route: default_max_signatures(),
            queue: default_queue(),
            corpus: None,
            corpus_per_key: default_corpus_per_key(),
            corpus_max_bytes: default_corpus_max_bytes(),
            corpus_max_files: default_corpus_max_files(),
        }
    }
}

/// Headers that differ between any two servers or connections and are never compared.
pub const NEVER_COMPARED: [&str; 12] = [
    "date",
    "server",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "x-request-id",
    "content-length",
];

impl DiffConfig {
    /// The body rules the engine takes.
    pub fn body_rules(&self) -> BodyRules {
        BodyRules {
            ignore: self.ignore.clone(),
            unordered: self.unordered.clone(),
            tolerances: self
                .tolerance
                .iter()
                .map(|t| {
                    (
                        t.path.clone(),
                        Tolerance {
                            absolute: t.absolute,
                            relative: t.relative,
                        },
                    )
                })
                .collect(),
            max_findings: 64,
        }
    }

    /// The headers actually compared: `headers` less `ignore_headers` and those never compared.
    pub fn compared_headers(&self) -> Vec<http::HeaderName> {
        self.headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .filter(|h| !NEVER_COMPARED.contains(&h.as_str()))
            .filter(|h| {
                !self
                    .ignore_headers
                    .iter()
                    .any(|i| i.eq_ignore_ascii_case(h))
            })
            .filter_map(|h| http::HeaderName::from_bytes(h.as_bytes()).ok())
            .collect()
    }

    /// Checks across keys; returns the key at fault and why.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        for h in self
            .headers
            .iter()
            .chain(&self.ignore_headers)
            .chain(&self.redact_headers)
        {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(InvalidKey::new(
                    "diff.headers",
                    format!("{h:?} is not a header name"),
                ));
            }
        }
        for t in &self.tolerance {
            if !(t.absolute >= 0.0 && t.relative >= 0.0) {
                return Err(InvalidKey::new(
                    "diff.tolerance",
                    format!("tolerances for {} must not be negative", t.path),
                ));
            }
        }
        if self.noise.secondary.is_some() && self.noise.resample_percent.value() > 0.0 {
            return Err(InvalidKey::new(
                "diff.noise.resample_percent",
                "is for use without a secondary; with diff.noise.secondary set, leave it out",
            ));
        }
        for (key, value) in [
            ("diff.queue", self.queue),
            ("diff.max_fields_per_route", self.max_fields_per_route),
            (
                "diff.max_signatures_per_route",
                self.max_signatures_per_route,
            ),
        ] {
            if value == 0 {
                return Err(InvalidKey::new(key, "must be at least 1"));
            }
        }
        if self.corpus_max_bytes.0 < MIN_CORPUS_BYTES {
            return Err(InvalidKey::new(
                "diff.corpus_max_bytes",
                format!("must be at least {MIN_CORPUS_BYTES} bytes, to hold a whole line"),
            ));
        }
        Ok(())
    }
}

fn hundred_percent() -> Percent {
    Percent::new(100.0).expect("100 is a percentage")
}
fn default_headers() -> Vec<String> {
    vec!["content-type".to_string()]
}
fn default_examples() -> usize {
    3
}
fn default_max_fields() -> usize {
    200
}
fn default_queue() -> usize {
    4096
}
fn default_corpus_per_key() -> usize {
    5
}
fn default_max_signatures() -> usize {
    512
}
/// Smallest `corpus_max_bytes`: a line holds a request of up to a few KiB.
const MIN_CORPUS_BYTES: u64 = 64 * 1024;
fn default_corpus_max_bytes() -> Bytes {
    Bytes(64 * 1024 * 1024)
}
fn default_corpus_max_files() -> usize {
    4
}
fn default_absolute_threshold() -> Percent {
    Percent::new(3.0).expect("3 is a percentage")
}
fn default_relative_threshold() -> Percent {
    Percent::new(20.0).expect("20 is a percentage")
}
fn default_min_samples() -> u64 {
    20
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_compared_headers_are_left_out() {
        let config = DiffConfig {
            headers: vec![
                "Content-Type".into(),
                "Date".into(),
                "x-version".into(),
                "etag".into(),
            ],
            ignore_headers: vec!["ETag".into()],
            ..DiffConfig::default()
        };
        let names: Vec<String> = config
            .compared_headers()
            .iter()
            .map(|h| h.to_string())
            .collect();
        assert_eq!(names, vec!["content-type", "x-version"]);
    }

    #[test]
    fn resample_and_secondary_exclude_each_other() {
        let mut config = DiffConfig::default();
        config.noise.secondary = Some("http://127.0.0.1:9003".parse().unwrap());
        config.noise.resample_percent = Percent::new(10.0).unwrap();
        assert!(config.validate().is_err());
    }
}
