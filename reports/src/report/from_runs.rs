//! What the report takes from load runs: each system's headline measurements, and the
//! series of the timeline chart on the scenario's clock.

use super::charts::{PhaseBand, TimelineData, TimelineSeries};
use super::figures::Provenance;
use super::headline::{Side, SideStats};
use super::runs::Runs;
use super::slo::{compliance, Limits};
use super::ReportError;
use crate::run::PhaseRecord;

/// `target`'s headline measurements over every phase of the run, with the arrivals it could not
/// take.
pub(super) fn side_stats(runs: &Runs, limits: &Limits, target: &str) -> Result<Side, ReportError> {
    let totals = runs.totals(target)?;
    let from = |what: String| Provenance::new(totals.files.clone(), what);
    let within = compliance(runs, limits, target);
    let compliance_from = match within {
        Some(c) => format!(
            "timeline of every phase against `{target}`: {} of {} windows had p99_us and \
             errors / requests within the SLO records' p99 and error_rate limits",
            c.within, c.windows
        ),
        None => String::new(),
    };
    let stats = SideStats {
        latency_from: from(format!(
            "corrected_us of every request of every phase against `{target}`, added, with the \
             arrivals it could not take (dropped − dropped_by_generator) ranked above them"
        )),
        errors_from: from(format!(
            "errors and arrivals it could not take, over sent and those arrivals, of every \
             phase against `{target}`, summed"
        )),
        throughput_from: from(format!(
            "sent over duration_s, of every phase against `{target}`, summed"
        )),
        compliance_from: from(compliance_from),
        throughput: (totals.duration_s > 0.0).then(|| totals.sent as f64 / totals.duration_s),
        compliance: within,
        requests: totals.sent,
        errors: totals.errors,
        latency: totals.corrected,
    };
    Ok(Side::with_drops(
        stats,
        totals.arrivals.not_taken,
        totals.arrivals.late_limit_us,
    ))
}

/// A phase placed on the scenario's clock: where it starts, and the time its timeline
/// counts from.
struct Placed<'a> {
    phase: &'a PhaseRecord,
    start: f64,
    end: f64,
    first_t: f64,
}

/// `target`'s phases laid end to end, so systems run one after the other (or interleaved)
/// share one time axis: seconds since the scenario started.
fn placed<'a>(runs: &'a Runs, target: &'a str) -> Vec<Placed<'a>> {
    let mut start = 0.0;
    let mut out = Vec::new();
    for phase in runs.phases_of(target) {
        let first_t = phase
            .timeline
            .iter()
            .map(|p| p.t_s)
            .fold(f64::INFINITY, f64::min);
        let first_t = if first_t.is_finite() { first_t } else { 0.0 };
        let last_t = phase.timeline.iter().map(|p| p.t_s).fold(first_t, f64::max);
        let length = if phase.duration_s > 0.0 {
            phase.duration_s
        } else {
            last_t - first_t + 1.0
        };
        out.push(Placed {
            phase,
            start,
            end: start + length,
            first_t,
        });
        start += length;
    }
    out
}

/// The timeline chart's data for `targets` (name and colour); `None` if no phase has a
/// timeline.
pub(super) fn timeline_data(
    runs: &Runs,
    limits: &Limits,
    targets: &[(&str, plotters::style::RGBColor)],
) -> Option<TimelineData> {
    let (first, _) = *targets.first()?;
    let has_points = targets
        .iter()
        .any(|(t, _)| runs.phases_of(t).any(|p| !p.timeline.is_empty()));
    if !has_points {
        return None;
    }
    let mut series = Vec::new();
    for (target, color) in targets {
        let mut line = TimelineSeries {
            color: *color,
            p99_ms: Vec::new(),
            achieved_rps: Vec::new(),
        };
        for placed in placed(runs, target) {
            for point in &placed.phase.timeline {
                let x = placed.start + (point.t_s - placed.first_t);
                if point.requests > 0 {
                    line.p99_ms.push((x, point.p99_us as f64 / 1_000.0));
                }
                line.achieved_rps.push((x, point.achieved_rps));
            }
        }
        series.push(line);
    }
    let reference = placed(runs, first);
    let intended = reference
        .iter()
        .flat_map(|placed| {
            placed
                .phase
                .timeline
                .iter()
                .map(|p| (placed.start + (p.t_s - placed.first_t), p.intended_rps))
        })
        .collect();
    let phases = reference
        .iter()
        .map(|placed| PhaseBand {
            name: placed.phase.name.clone(),
            start: placed.start,
            end: placed.end,
            p99_limit_ms: limits.for_phase(&placed.phase.name, "p99"),
        })
        .collect();
    Some(TimelineData {
        series,
        intended,
        phases,
    })
}
