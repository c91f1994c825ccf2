//! The load workers of a run spread over several machines: per worker, phase and system, what
//! its generator offered (intended and achieved rate, drops, scheduling lag) and how it started,
//! beside the merged figures the rest of the report shows.

use super::figures::{latency_figure, Provenance};
use super::format;
use super::model::WorkerRow;
use super::runs::Runs;

/// One row per worker, phase and system, in worker order; none for a run of one machine.
pub(super) fn rows(runs: &Runs) -> Vec<WorkerRow> {
    let mut rows = Vec::new();
    for worker in &runs.record.workers {
        let mark = &worker.mark;
        let files = vec![worker.file.clone()];
        let mut start = if mark.late_ms > 0.0 {
            format!("{} ms late", format::decimal(mark.late_ms, 1))
        } else {
            "on time".to_owned()
        };
        if let Some(offset) = mark.clock_offset_ms {
            start.push_str(&format!(
                "; clock {:+.1} s from the target's (read to about ½ s)",
                offset / 1_000.0
            ));
        }
        for phase in &worker.phases {
            let at = |what: &str| {
                Provenance::new(
                    files.clone(),
                    format!("phase `{}` of `{}`: {what}", phase.name, phase.target),
                )
            };
            let rps = |value: f64, what: &str| {
                at(what).figure(value, "req/s", format!("{} req/s", format::rate(value)))
            };
            let arrivals =
                |n: u64, what: &str| at(what).figure(n as f64, "arrivals", format::thousands(n));
            let share = (phase.intended_rps > 0.0).then(|| phase.achieved_rps / phase.intended_rps);
            rows.push(WorkerRow {
                worker: format!("{}/{}", mark.index, mark.count),
                file: worker.file.clone(),
                phase: phase.name.clone(),
                target: phase.target.clone(),
                intended: rps(phase.intended_rps, "intended_rps"),
                achieved: rps(phase.achieved_rps, "achieved_rps"),
                achieved_share: share.map_or_else(|| "—".to_owned(), format::coverage),
                sent: at("requests' sent, added").figure(
                    phase.sent as f64,
                    "requests",
                    format::thousands(phase.sent),
                ),
                not_taken: arrivals(
                    phase.dropped.saturating_sub(phase.dropped_by_generator),
                    "dropped − dropped_by_generator",
                ),
                dropped_by_generator: arrivals(phase.dropped_by_generator, "dropped_by_generator"),
                queued: arrivals(phase.queued, "queued"),
                lag_p50: latency_figure(phase.lag_p50_us, &at("lag_us at 0.5")),
                lag_p99: latency_figure(phase.lag_p99_us, &at("lag_us at 0.99")),
                start: start.clone(),
                warnings: mark.warnings.clone(),
            });
        }
    }
    rows
}
