//! The load generator's health, and whether each system took the load: per phase and system,
//! who fell behind. Arrivals that fell due while every load user was busy waiting for the system
//! are the system's doing (queued, or dropped past the late limit: the system was saturated);
//! arrivals the generator was late for while a user was free are the generator's, and so is its
//! own scheduling lag. A generator that falls behind measures less load than intended.

use super::figures::{latency_figure, Provenance};
use super::format;
use super::model::{Figure, HealthRow};
use super::runs::{phase_totals, Runs};
use super::ReportError;
use crate::run::PhaseRecord;

/// Below this share of the intended rate, a phase is flagged (unless the system's drops explain
/// it).
const LOW_RATE: f64 = 0.95;

/// A corrected p99 above this multiple of the raw p99 is flagged when no user was ever busy.
const CORRECTION_GAP: f64 = 1.5;

/// ... provided the gap is at least this many milliseconds.
const CORRECTION_GAP_MS: f64 = 10.0;

/// A scheduling lag p99 above this many milliseconds is flagged.
const LAG_MS: f64 = 10.0;

/// One row per phase and system, in the order they ran.
pub(super) fn rows(runs: &Runs) -> Result<Vec<HealthRow>, ReportError> {
    let mut rows = Vec::new();
    for phase in &runs.record.phases {
        let files = runs.files_of(&phase.target);
        let at = |what: &str| {
            Provenance::new(
                files.clone(),
                format!("phase `{}` of `{}`: {what}", phase.name, phase.target),
            )
        };
        let totals = phase_totals(phase, &files)?;
        let quantile = |h: &hdrhistogram::Histogram<u64>, q: f64, what: &str| {
            (!h.is_empty()).then(|| latency_figure(h.value_at_quantile(q), &at(what)))
        };
        let corrected_p99 = quantile(
            &totals.corrected_us,
            0.99,
            "corrected_us of every request, added, at 0.99",
        );
        let raw_p99 = quantile(
            &totals.raw_us,
            0.99,
            "raw_us of every request, added, at 0.99",
        );
        let lag_p50 = quantile(&phase.lag_us, 0.5, "lag_us at 0.5");
        let lag_p99 = quantile(&phase.lag_us, 0.99, "lag_us at 0.99");
        let rps = |value: f64, what: &str| {
            at(what).figure(value, "req/s", format!("{} req/s", format::rate(value)))
        };
        let arrivals =
            |n: u64, what: &str| at(what).figure(n as f64, "arrivals", format::thousands(n));
        let share = (phase.intended_rps > 0.0).then(|| phase.achieved_rps / phase.intended_rps);
        let (gap, ratio) = match (&corrected_p99, &raw_p99) {
            (Some(c), Some(r)) if r.value > 0.0 => {
                let ratio = c.value / r.value;
                let flagged = ratio > CORRECTION_GAP && c.value - r.value >= CORRECTION_GAP_MS;
                (
                    format!("{}×", format::decimal(ratio, 2)),
                    flagged.then_some(ratio),
                )
            }
            _ => ("—".to_owned(), None),
        };
        rows.push(HealthRow {
            phase: phase.name.clone(),
            target: phase.target.clone(),
            intended: rps(phase.intended_rps, "intended_rps"),
            achieved: rps(phase.achieved_rps, "achieved_rps"),
            achieved_share: share.map_or_else(|| "—".to_owned(), format::coverage),
            dropped: arrivals(phase.dropped, "dropped"),
            dropped_by_target: arrivals(
                phase.dropped_by_target(),
                "dropped − dropped_by_generator",
            ),
            dropped_by_generator: arrivals(phase.dropped_by_generator, "dropped_by_generator"),
            queued: arrivals(phase.queued, "queued"),
            saturated: saturation(phase),
            warnings: generator_warnings(phase, share, ratio, lag_p99.as_ref()),
            lag_p50,
            lag_p99,
            corrected_p99,
            raw_p99,
            gap,
        });
    }
    Ok(rows)
}

/// How the system was saturated in `phase`, if it was.
fn saturation(phase: &PhaseRecord) -> Option<String> {
    let not_taken = phase.dropped_by_target();
    (not_taken > 0).then(|| {
        let intended = (phase.intended_rps * phase.duration_s).round().max(1.0);
        format!(
            "saturated: {} of {} arrivals ({}) could not be sent, every load user being busy \
             waiting for {}; they count as failed and slower than every answer",
            format::thousands(not_taken),
            format::thousands(intended as u64),
            format::coverage(not_taken as f64 / intended),
            phase.target
        )
    })
}

/// What the generator did wrong in `phase`: drops and a rate shortfall of its own, a long
/// scheduling lag, or requests that waited to be sent while no user was ever busy.
fn generator_warnings(
    phase: &PhaseRecord,
    share: Option<f64>,
    correction_gap: Option<f64>,
    lag_p99: Option<&Figure>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let system_short = phase.dropped_by_target() > 0;
    if let Some(share) = share.filter(|s| *s < LOW_RATE && !system_short) {
        warnings.push(format!(
            "sent {} of the intended rate",
            format::coverage(share)
        ));
    }
    if phase.dropped_by_generator > 0 {
        warnings.push(format!(
            "{} arrivals dropped while a load user was free: the generator was late",
            format::thousands(phase.dropped_by_generator)
        ));
    }
    if let Some(lag) = lag_p99.filter(|lag| lag.value > LAG_MS) {
        warnings.push(format!("its scheduling lag reached {} at p99", lag.text));
    }
    let users_busy = system_short || phase.queued > 0;
    if let Some(ratio) = correction_gap.filter(|_| !users_busy) {
        warnings.push(format!(
            "corrected p99 is {}× the raw p99 with no user ever busy: requests waited on the \
             generator",
            format::decimal(ratio, 1)
        ));
    }
    warnings
}
