//! The SLO thresholds a run is judged by, carried in its record so that whoever merges the
//! records of several load workers can judge the whole run as the load harness judges one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Latency and error thresholds as a record carries them; an unset threshold is not judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Highest acceptable median latency, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// Highest acceptable 95th percentile latency, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    /// Highest acceptable 99th percentile latency, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Highest acceptable 99.9th percentile latency, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999_ms: Option<f64>,
    /// Highest acceptable single latency, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<f64>,
    /// Highest acceptable share of failed requests, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate_pct: Option<f64>,
}

impl Thresholds {
    /// Whether no threshold is set.
    pub fn is_empty(&self) -> bool {
        *self == Thresholds::default()
    }
}

/// Every threshold of a scenario: the whole run's, and those of each phase that sets its own
/// (the run's filling in what the phase leaves unset).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunThresholds {
    /// What the whole run is judged by, per system.
    #[serde(default, skip_serializing_if = "Thresholds::is_empty")]
    pub run: Thresholds,
    /// Per phase name, what that phase is judged by, for the phases that set their own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub phases: BTreeMap<String, Thresholds>,
}

impl RunThresholds {
    /// Whether nothing is judged.
    pub fn is_empty(&self) -> bool {
        self.run.is_empty() && self.phases.is_empty()
    }
}
