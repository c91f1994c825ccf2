//! SLO verdicts per system, and how much of the run each system spent within its SLO.
//!
//! A verdict is taken as recorded when the run is one record. Merging records clears their
//! verdicts (those of a part do not hold for the whole), so for a merged run each verdict is
//! evaluated again on the merged histograms, against the limits the records carried, the same
//! way the load harness evaluates them.

use std::collections::BTreeMap;

use super::format;
use super::model::{SloCell, SloRow};
use super::runs::Runs;
use super::ReportError;
use crate::run::{Arrivals, Latency, TimelinePoint};

/// Metrics in the order the report lists them.
const METRICS: [&str; 6] = ["p50", "p95", "p99", "p999", "max", "error_rate"];

/// An SLO's limit as the records state it.
#[derive(Debug, Clone)]
struct Limit {
    value: f64,
    unit: String,
}

/// The SLO limits of the run, by (scope, metric).
pub(super) struct Limits(BTreeMap<(String, String), Limit>);

impl Limits {
    /// The limits named by the run's recorded verdicts, whichever system they were for.
    pub fn of(runs: &Runs) -> Limits {
        let mut limits = BTreeMap::new();
        for (slo, _) in &runs.slo {
            limits
                .entry((slo.scope.clone(), slo.metric.clone()))
                .or_insert_with(|| Limit {
                    value: slo.limit,
                    unit: slo.unit.clone(),
                });
        }
        Limits(limits)
    }

    /// The limit on `metric` in phase `phase`: the phase's own, else the whole run's.
    pub fn for_phase(&self, phase: &str, metric: &str) -> Option<f64> {
        let key = |scope: String| (scope, metric.to_owned());
        self.0
            .get(&key(format!("phase {phase}")))
            .or_else(|| self.0.get(&key("run".to_owned())))
            .map(|l| l.value)
    }

    /// The (scope, metric) pairs, `run` first, then phases in the order they ran.
    fn ordered(&self, runs: &Runs) -> Vec<(&(String, String), &Limit)> {
        let mut scopes = vec!["run".to_owned()];
        for phase in &runs.record.phases {
            let scope = format!("phase {}", phase.name);
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        let rank = |scope: &str, metric: &str| {
            let s = scopes
                .iter()
                .position(|s| s == scope)
                .unwrap_or(scopes.len());
            let m = METRICS
                .iter()
                .position(|m| *m == metric)
                .unwrap_or(METRICS.len());
            (s, m)
        };
        let mut all: Vec<_> = self.0.iter().collect();
        all.sort_by(|(a, _), (b, _)| {
            rank(&a.0, &a.1)
                .cmp(&rank(&b.0, &b.1))
                .then_with(|| a.cmp(b))
        });
        all
    }
}

/// One row per SLO of the run, with the verdicts of `before` and `after`.
pub(super) fn rows(
    runs: &Runs,
    limits: &Limits,
    before: Option<&str>,
    after: Option<&str>,
) -> Result<Vec<SloRow>, ReportError> {
    let mut rows = Vec::new();
    for ((scope, metric), limit) in limits.ordered(runs) {
        let cell = |target: Option<&str>| match target {
            Some(target) => verdict(runs, scope, metric, limit, target),
            None => Ok(None),
        };
        rows.push(SloRow {
            scope: scope.clone(),
            metric: metric.clone(),
            objective: format!(
                "{} ≤ {}",
                metric_label(metric),
                quantity(limit.value, &limit.unit)
            ),
            applies_to: if scope == "run" {
                "whole run".to_owned()
            } else {
                scope.clone()
            },
            limit: limit.value,
            unit: limit.unit.clone(),
            before: cell(before)?,
            after: cell(after)?,
        });
    }
    Ok(rows)
}

/// `target`'s verdict on one SLO: recorded, or evaluated again for a merged run.
fn verdict(
    runs: &Runs,
    scope: &str,
    metric: &str,
    limit: &Limit,
    target: &str,
) -> Result<Option<SloCell>, ReportError> {
    if !runs.merged() {
        let recorded = runs
            .slo
            .iter()
            .find(|(s, _)| s.scope == scope && s.metric == metric && s.target == target);
        return Ok(recorded.map(|(slo, file)| {
            let measured = Measured {
                actual: slo.actual,
                lower_bound: slo.lower_bound,
            };
            let outcome = match &slo.reason {
                Some(reason) => Err(reason.clone()),
                None => Ok(measured),
            };
            cell(
                slo.pass,
                outcome,
                limit_of(slo.limit, &slo.unit),
                vec![file.clone()],
                "recorded",
            )
        }));
    }
    let files = runs.files_of(target);
    let arrivals = if scope == "run" {
        runs.totals(target)?.arrivals
    } else {
        let Some(phase) = scope
            .strip_prefix("phase ")
            .and_then(|name| runs.record.phase(name, target))
        else {
            return Ok(None);
        };
        Arrivals::of_phase(phase).map_err(|source| ReportError::Histogram {
            what: format!("phase `{}` of `{}`", phase.name, phase.target),
            files: files.clone(),
            source,
        })?
    };
    let Some(measured) = measure(metric, &arrivals) else {
        return Ok(None);
    };
    let pass = measured
        .as_ref()
        .is_ok_and(|m| !m.lower_bound && m.actual <= limit.value);
    let outcome = measured.map_err(str::to_owned);
    Ok(Some(cell(
        pass,
        outcome,
        limit.clone(),
        files,
        "re-evaluated",
    )))
}

/// A figure an SLO is judged on, in its unit (ms or %).
struct Measured {
    actual: f64,
    /// Only a lower bound: a percentile among arrivals the system could not take.
    lower_bound: bool,
}

fn limit_of(value: f64, unit: &str) -> Limit {
    Limit {
        value,
        unit: unit.to_owned(),
    }
}

/// What `metric` measures over `arrivals`, as the load harness judges it, or why nothing was
/// measured; `None` for a metric the report does not know.
fn measure(metric: &str, arrivals: &Arrivals) -> Option<Result<Measured, &'static str>> {
    let nothing_due = arrivals.sent == 0 && arrivals.not_taken == 0;
    if metric == "error_rate" {
        return Some(
            arrivals
                .error_rate()
                .map(|rate| Measured {
                    actual: rate * 100.0,
                    lower_bound: false,
                })
                .ok_or("no requests sent"),
        );
    }
    let quantile = match metric {
        "p50" => Some(0.5),
        "p95" => Some(0.95),
        "p99" => Some(0.99),
        "p999" => Some(0.999),
        "max" => None,
        _ => return None,
    };
    Some(match arrivals.latency(quantile) {
        _ if nothing_due => Err("no requests sent"),
        None => Err("no latency recorded"),
        Some(latency) => Ok(Measured {
            actual: latency.us() as f64 / 1_000.0,
            lower_bound: matches!(latency, Latency::Above(_)),
        }),
    })
}

/// A verdict cell, with its figure and margin in words.
fn cell(
    pass: bool,
    outcome: Result<Measured, String>,
    limit: Limit,
    sources: Vec<String>,
    origin: &str,
) -> SloCell {
    let unit = limit.unit.as_str();
    let (actual, text, margin) = match outcome {
        Err(reason) => (0.0, reason, String::new()),
        Ok(m) if m.lower_bound => (
            m.actual,
            format!("> {}", quantity(m.actual, unit)),
            "among arrivals it could not take".to_owned(),
        ),
        Ok(m) => (
            m.actual,
            quantity(m.actual, unit),
            margin(pass, m.actual, limit.value),
        ),
    };
    SloCell {
        pass,
        actual,
        text,
        margin,
        sources,
        origin: origin.to_owned(),
    }
}

/// By how much a figure is within or beyond its limit: `42% under`, `+24% over`, `19× the
/// limit`.
fn margin(pass: bool, actual: f64, limit: f64) -> String {
    if limit <= 0.0 {
        return if pass {
            "at the limit"
        } else {
            "over the limit"
        }
        .to_owned();
    }
    let ratio = actual / limit;
    if pass {
        let under = (1.0 - ratio) * 100.0;
        if format::percent(under) == "0%" {
            "at the limit".to_owned()
        } else {
            format!("{} under", format::percent(under))
        }
    } else if ratio >= 2.0 {
        let places = if ratio >= 10.0 { 0 } else { 1 };
        format!("{}× the limit", format::decimal(ratio, places))
    } else {
        format!("{} over", format::signed_percent((ratio - 1.0) * 100.0))
    }
}

/// A figure with its unit: `3,840 ms`, `2.41%`.
pub(super) fn quantity(value: f64, unit: &str) -> String {
    match unit {
        "%" => format::share(value / 100.0),
        "ms" => format!("{} ms", format::ms(value)),
        unit => format!("{} {unit}", format::decimal(value, 2)),
    }
}

/// How a metric reads: `p99`, `p99.9`, `error rate`.
pub(super) fn metric_label(metric: &str) -> String {
    match metric {
        "p999" => "p99.9".to_owned(),
        "error_rate" => "error rate".to_owned(),
        other => other.to_owned(),
    }
}

/// How much of a run one system spent within its SLO.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Compliance {
    /// Timeline windows judged.
    pub windows: u64,
    /// Of those, windows whose p99 and error rate were within the limits.
    pub within: u64,
}

impl Compliance {
    /// `within` over `windows`.
    pub fn share(&self) -> f64 {
        if self.windows == 0 {
            0.0
        } else {
            self.within as f64 / self.windows as f64
        }
    }
}

/// The share of `target`'s timeline windows whose p99 and error rate were within the SLO's
/// limits on them (a phase's own, else the run's); `None` when no phase has either limit.
///
/// A window in which load was due but no request was sent counts as outside the SLO: the
/// system (or the generator) stalled.
pub(super) fn compliance(runs: &Runs, limits: &Limits, target: &str) -> Option<Compliance> {
    let mut result = Compliance {
        windows: 0,
        within: 0,
    };
    let mut judged = false;
    for phase in runs.phases_of(target) {
        let p99_ms = limits.for_phase(&phase.name, "p99");
        let error_pct = limits.for_phase(&phase.name, "error_rate");
        if p99_ms.is_none() && error_pct.is_none() {
            continue;
        }
        judged = true;
        for point in &phase.timeline {
            if point.requests == 0 && point.intended_rps <= 0.0 {
                continue;
            }
            result.windows += 1;
            if window_within(point, p99_ms, error_pct) {
                result.within += 1;
            }
        }
    }
    judged.then_some(result)
}

/// Whether one window's p99 and error rate are within the limits given; arrivals the system
/// could not take count as errors.
fn window_within(point: &TimelinePoint, p99_ms: Option<f64>, error_pct: Option<f64>) -> bool {
    if point.requests == 0 {
        return false;
    }
    let p99_ok = p99_ms.is_none_or(|limit| point.p99_us as f64 / 1_000.0 <= limit);
    let failed = point.errors.saturating_add(point.dropped) as f64;
    let due = point.requests.saturating_add(point.dropped) as f64;
    let errors_ok = error_pct.is_none_or(|limit| failed / due * 100.0 <= limit);
    p99_ok && errors_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins_read_naturally() {
        assert_eq!(margin(true, 117.0, 200.0), "42% under");
        assert_eq!(margin(false, 248.0, 200.0), "+24% over");
        assert_eq!(margin(false, 3_840.0, 200.0), "19× the limit");
        assert_eq!(margin(false, 460.0, 200.0), "2.3× the limit");
        assert_eq!(margin(true, 200.0, 200.0), "at the limit");
    }

    #[test]
    fn windows_need_requests_within_both_limits() {
        let point = |p99_us, errors, requests| TimelinePoint {
            p99_us,
            errors,
            requests,
            intended_rps: 10.0,
            ..TimelinePoint::default()
        };
        assert!(window_within(
            &point(150_000, 0, 100),
            Some(200.0),
            Some(1.0)
        ));
        assert!(!window_within(
            &point(250_000, 0, 100),
            Some(200.0),
            Some(1.0)
        ));
        assert!(!window_within(
            &point(150_000, 2, 100),
            Some(200.0),
            Some(1.0)
        ));
        assert!(window_within(&point(250_000, 1, 100), None, Some(1.0)));
        let saturated = TimelinePoint {
            dropped: 5,
            ..point(150_000, 0, 100)
        };
        assert!(
            !window_within(&saturated, Some(200.0), Some(1.0)),
            "drops are errors"
        );
        assert!(window_within(&saturated, Some(200.0), None));
        assert!(!window_within(&point(0, 0, 0), Some(200.0), None));
    }
}
