//! The load generator's health: whether it sent what the scenario asked for, per phase and
//! system. A generator that falls behind measures less load than intended, and a corrected p99
//! far above the raw one means requests waited to be sent: the generator itself was saturated
//! or the system stalled.

use super::figures::{latency_figure, Provenance};
use super::format;
use super::model::HealthRow;
use super::runs::{phase_totals, Runs};
use super::ReportError;

/// Below this share of the intended rate, a phase is flagged.
const LOW_RATE: f64 = 0.95;

/// A corrected p99 above this multiple of the raw p99 is flagged.
const CORRECTION_GAP: f64 = 1.5;

/// ... provided the gap is at least this many milliseconds.
const CORRECTION_GAP_MS: f64 = 10.0;

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
        let p99 = |h: &hdrhistogram::Histogram<u64>, what: &str| {
            (!h.is_empty()).then(|| latency_figure(h.value_at_quantile(0.99), &at(what)))
        };
        let corrected_p99 = p99(
            &totals.corrected_us,
            "corrected_us of every request, added, at 0.99",
        );
        let raw_p99 = p99(&totals.raw_us, "raw_us of every request, added, at 0.99");
        let rps = |value: f64, what: &str| {
            at(what).figure(value, "req/s", format!("{} req/s", format::rate(value)))
        };
        let mut warnings = Vec::new();
        let share = (phase.intended_rps > 0.0).then(|| phase.achieved_rps / phase.intended_rps);
        if let Some(share) = share.filter(|s| *s < LOW_RATE) {
            warnings.push(format!(
                "sent {} of the intended rate",
                format::coverage(share)
            ));
        }
        if phase.dropped > 0 {
            warnings.push(format!(
                "{} arrivals dropped: no load user was free",
                format::thousands(phase.dropped)
            ));
        }
        let gap = match (&corrected_p99, &raw_p99) {
            (Some(c), Some(r)) if r.value > 0.0 => {
                let ratio = c.value / r.value;
                if ratio > CORRECTION_GAP && c.value - r.value >= CORRECTION_GAP_MS {
                    warnings.push(format!(
                        "corrected p99 is {}× the raw p99: the generator was saturated or the \
                         system stalled",
                        format::decimal(ratio, 1)
                    ));
                }
                format!("{}×", format::decimal(ratio, 2))
            }
            _ => "—".to_owned(),
        };
        rows.push(HealthRow {
            phase: phase.name.clone(),
            target: phase.target.clone(),
            intended: rps(phase.intended_rps, "intended_rps"),
            achieved: rps(phase.achieved_rps, "achieved_rps"),
            achieved_share: share.map_or_else(|| "—".to_owned(), format::coverage),
            dropped: at("dropped").figure(
                phase.dropped as f64,
                "arrivals",
                format::thousands(phase.dropped),
            ),
            corrected_p99,
            raw_p99,
            gap,
            warnings,
        });
    }
    Ok(rows)
}
