//! The canary's history as the report reads it: where it stands, the entries that changed its
//! share of traffic, the judge's verdicts counted, the checks that failed, and the points of
//! the weight chart.

use std::time::SystemTime;

use super::charts::CanaryData;
use super::figures::Provenance;
use super::format;
use super::model::{CanaryChange, CanaryReasonRow, CanaryRollback, CanaryView, Figure};
use super::snapshots::Snapshots;
use crate::snapshot::{CanaryDecision, CanaryHistory, CanaryReason};
use crate::timestamp::parse_rfc3339;

/// Most failing verdicts whose checks are listed.
const MAX_FAILURES: usize = 5;

/// The judge's verdicts; every other entry changed something.
const VERDICTS: [&str; 3] = ["pass", "fail", "inconclusive"];

/// The canary of the snapshots; `None` when none of them routes a canary share.
pub(super) fn view(snapshots: &Snapshots) -> Option<CanaryView> {
    let history = snapshots.snapshot.canary.as_ref()?;
    let from = |derivation: String| Provenance::new(snapshots.canary_files.clone(), derivation);
    let decisions = &history.decisions;
    let count = |kind: &str, unit: &str| {
        let n = decisions.iter().filter(|d| d.decision == kind).count() as u64;
        from(format!(
            "canary.decisions with decision \"{kind}\", counted"
        ))
        .figure(n as f64, unit, format::thousands(n))
    };
    let last_rollback = decisions
        .iter()
        .rposition(|d| d.decision == "rollback")
        .map(|i| rollback(decisions, i, &from));
    let fails: Vec<&CanaryDecision> = decisions.iter().filter(|d| d.decision == "fail").collect();
    let failures = fails[fails.len().saturating_sub(MAX_FAILURES)..]
        .iter()
        .flat_map(|d| failing(d, &from))
        .collect();
    Some(CanaryView {
        state: history.state.clone(),
        weight: weight_figure(history.weight, &from("canary.weight".to_owned())),
        peak: weight_figure(
            peak(history),
            &from("canary.weight and canary.decisions[*].weight, highest".to_owned()),
        ),
        // A rollback leaves the step where it was; it is no longer in force.
        step: history
            .step
            .filter(|_| !history.ramp.is_empty() && history.state != "rolled_back")
            .map(|s| format!("{} of {}", s + 1, history.ramp.len())),
        ramp: history
            .ramp
            .iter()
            .map(|s| weight_text(s.weight))
            .collect::<Vec<_>>()
            .join(" → "),
        passes: count("pass", "verdicts"),
        fails: count("fail", "verdicts"),
        inconclusive: count("inconclusive", "verdicts"),
        advances: count("advance", "advances"),
        rollbacks: count("rollback", "rollbacks"),
        last_rollback,
        changes: decisions
            .iter()
            .filter(|d| !VERDICTS.contains(&d.decision.as_str()))
            .map(|d| CanaryChange {
                at: d.at.clone(),
                decision: d.decision.clone(),
                by: d.by.clone(),
                weight: weight_text(d.weight),
                summary: d.summary.clone(),
            })
            .collect(),
        failures,
        sources: snapshots.canary_files.clone(),
    })
}

/// The rollback at `decisions[i]`, with the failing checks of the verdict that led to it when
/// the judge rolled back.
fn rollback(
    decisions: &[CanaryDecision],
    i: usize,
    from: &impl Fn(String) -> Provenance,
) -> CanaryRollback {
    let d = &decisions[i];
    let before = i.checked_sub(1).map(|b| &decisions[b]);
    let cause = if d.by == "judge" {
        decisions[..i]
            .iter()
            .rev()
            .find(|v| v.decision == "fail")
            .map(|v| failing(v, from))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    CanaryRollback {
        at: d.at.clone(),
        by: d.by.clone(),
        from: before.map(|b| {
            weight_figure(
                b.weight,
                &from(format!(
                    "canary.decisions ({} at {}).weight",
                    b.decision, b.at
                )),
            )
        }),
        cause,
    }
}

/// The checks verdict `d` failed.
fn failing(d: &CanaryDecision, from: &impl Fn(String) -> Provenance) -> Vec<CanaryReasonRow> {
    d.reasons
        .iter()
        .filter(|r| !r.ok)
        .map(|r| reason_row(d, r, from))
        .collect()
}

fn reason_row(
    d: &CanaryDecision,
    r: &CanaryReason,
    from: &impl Fn(String) -> Provenance,
) -> CanaryReasonRow {
    let at = |field: &str| {
        from(format!(
            "canary.decisions ({} at {}).reasons[\"{}\"].{field}",
            d.decision, d.at, r.metric
        ))
    };
    CanaryReasonRow {
        at: d.at.clone(),
        weight: weight_text(d.weight),
        metric: r.metric.clone(),
        candidate: reason_figure(&r.metric, r.candidate, &at("candidate")),
        primary: r
            .primary
            .map(|p| reason_figure(&r.metric, p, &at("primary"))),
        threshold: reason_figure(&r.metric, r.threshold, &at("threshold")),
        detail: r.detail.clone(),
    }
}

/// A figure of a judge's check in the unit its metric is recorded in: rates are fractions,
/// latencies µs, `latency_shift` a probability, `requests` a count.
fn reason_figure(metric: &str, value: f64, from: &Provenance) -> Figure {
    match metric {
        "error_rate" | "error_delta" | "diff_rate" => {
            from.figure(value * 100.0, "%", format::share(value))
        }
        "latency_p99" => {
            let ms = value / 1_000.0;
            from.figure(ms, "ms", format!("{} ms", format::ms(ms)))
        }
        "latency_shift" => from.figure(value, "probability", format::decimal(value, 3)),
        "requests" => from.figure(
            value,
            "requests",
            format::thousands(value.max(0.0).round() as u64),
        ),
        _ => from.figure(value, "", format::rate(value)),
    }
}

/// A share of traffic in percent, as a figure.
fn weight_figure(weight: f64, from: &Provenance) -> Figure {
    from.figure(weight, "%", weight_text(weight))
}

/// A share of traffic in percent: `25%`, `12.5%`.
fn weight_text(weight: f64) -> String {
    format::share(weight / 100.0)
}

/// The highest share of traffic the candidate served.
fn peak(history: &CanaryHistory) -> f64 {
    history
        .decisions
        .iter()
        .map(|d| d.weight)
        .fold(history.weight, f64::max)
}

/// The points of the weight chart; `None` without a dated entry.
pub(super) fn chart_data(snapshots: &Snapshots) -> Option<CanaryData> {
    let history = snapshots.snapshot.canary.as_ref()?;
    let dated: Vec<(SystemTime, &CanaryDecision)> = history
        .decisions
        .iter()
        .filter_map(|d| Some((parse_rfc3339(&d.at)?, d)))
        .collect();
    let first = dated.first()?.0;
    let last = dated.last()?.0;
    let start = parse_rfc3339(&snapshots.snapshot.started_at).map_or(first, |s| s.min(first));
    let end = parse_rfc3339(&snapshots.snapshot.taken_at).map_or(last, |t| t.max(last));
    let since = |t: SystemTime| {
        t.duration_since(start)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    };
    let span = since(end).max(1.0);
    let mut data = CanaryData {
        start,
        span,
        weights: Vec::new(),
        advances: Vec::new(),
        admin: Vec::new(),
        rollbacks: Vec::new(),
        ramp: history.ramp.iter().map(|s| s.weight).collect(),
    };
    for (t, d) in &dated {
        let x = since(*t);
        if let Some(&(_, previous)) = data.weights.last() {
            data.weights.push((x, previous));
        }
        data.weights.push((x, d.weight));
        match d.decision.as_str() {
            "advance" => data.advances.push((x, d.weight)),
            "rollback" => data.rollbacks.push(x),
            _ if d.by.starts_with("admin") => data.admin.push((x, d.weight)),
            _ => {}
        }
    }
    if let Some(&(_, last_weight)) = data.weights.last() {
        data.weights.push((span, last_weight));
    }
    Some(data)
}
