//! The table that closes every run: per system and phase, the offered and achieved rate, dropped
//! arrivals, the latency percentiles over the intended arrivals (a percentile among the arrivals
//! the system could not take shows as a lower bound, `>160.0`), raw p99, the generator's own
//! scheduling lag, requests and the error rate; then who fell behind, with counts, and the SLO
//! verdicts.

use std::fmt::Write;

use twinpeak_core::run::{Arrivals, Latency};
use twinpeak_core::{LatencySummary, PhaseRecord, RunRecord};

use crate::slo::SloVerdict;

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

/// A latency over intended arrivals, in ms; `>` before a lower bound; `-` for none.
fn latency(latency: Option<Latency>) -> String {
    match latency {
        Some(Latency::Exact(us)) => ms(us),
        Some(Latency::Above(us)) => format!(">{}", ms(us)),
        None => "-".to_owned(),
    }
}

/// The closing table of a run, as text.
pub fn render(record: &RunRecord, verdicts: &[SloVerdict]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:<10} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>7}",
        "target",
        "phase",
        "target/s",
        "achieved",
        "dropped",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "raw p99",
        "lag p99",
        "requests",
        "errors"
    );
    let mut notes = Vec::new();
    for phase in &record.phases {
        let (Ok(totals), Ok(arrivals)) = (phase.totals(), Arrivals::of_phase(phase)) else {
            continue;
        };
        let raw = LatencySummary::from_histogram(&totals.raw_us.0);
        let lag = LatencySummary::from_histogram(&phase.lag_us.0);
        let error_pct = 100.0 * arrivals.error_rate().unwrap_or(0.0);
        let _ = writeln!(
            out,
            "{:<10} {:<10} {:>9.1} {:>9.1} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8.2} {:>8} {:>6.2}%",
            truncate(&phase.target, 10),
            truncate(&phase.name, 10),
            phase.intended_rps,
            phase.achieved_rps,
            phase.dropped,
            latency(arrivals.latency(Some(0.5))),
            latency(arrivals.latency(Some(0.95))),
            latency(arrivals.latency(Some(0.99))),
            latency(arrivals.latency(None)),
            ms(raw.p99_us),
            lag.p99_us as f64 / 1000.0,
            totals.sent,
            error_pct
        );
        notes.extend(who_fell_behind(phase, &lag));
    }
    for note in notes {
        let _ = writeln!(out, "{note}");
    }
    if !verdicts.is_empty() {
        let _ = writeln!(out);
        for v in verdicts {
            let _ = writeln!(out, "{v}");
        }
    }
    out
}

/// What fell behind in `phase`, with counts: the target, when every user was busy waiting for
/// it; the generator, when it was too late while a user was free.
fn who_fell_behind(phase: &PhaseRecord, lag: &LatencySummary) -> Vec<String> {
    let name = format!("{}/{}", phase.target, phase.name);
    let intended = (phase.intended_rps * phase.duration_s).round() as u64;
    let users = match phase.users {
        0 => "every user was".to_owned(),
        n => format!("all {n} users were"),
    };
    let mut notes = Vec::new();
    let busy = phase.dropped_by_target();
    if busy > 0 {
        notes.push(format!(
            "{name}: SATURATED: {busy} of {intended} arrivals ({:.1}%) dropped, {users} busy \
             waiting for {}; they count as errors and above every measured latency",
            100.0 * busy as f64 / intended.max(1) as f64,
            phase.target
        ));
    } else if phase.queued > 0 {
        notes.push(format!(
            "{name}: {} arrivals waited for a busy user; the wait is in their corrected latency",
            phase.queued
        ));
    }
    if phase.dropped_by_generator > 0 {
        notes.push(format!(
            "{name}: the load generator fell behind: {} arrivals dropped while a user was free \
             (scheduling lag p50 {:.2} ms, p99 {:.2} ms)",
            phase.dropped_by_generator,
            lag.p50_us as f64 / 1000.0,
            lag.p99_us as f64 / 1000.0
        ));
    }
    notes
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let cut: String = text.chars().take(width - 1).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::SystemTime;
    use twinpeak_core::{new_latency_histogram, EncodedHistogram, RequestRecord};

    fn record(phase: PhaseRecord) -> RunRecord {
        let mut record = RunRecord::new("smoke", "ab", 1, 1.0, SystemTime::now(), BTreeMap::new());
        record.phases.push(phase);
        record
    }

    /// 100 requests that succeeded at 1..=100 ms (raw: a tenth of that), 2 timeouts.
    fn peak() -> PhaseRecord {
        let mut corrected = new_latency_histogram();
        let mut raw = new_latency_histogram();
        let mut lag = new_latency_histogram();
        for v in 1..=100u64 {
            corrected.record(v * 1000).unwrap();
            raw.record(v * 100).unwrap();
            lag.record(40 + v).unwrap();
        }
        PhaseRecord {
            name: "peak".into(),
            target: "legacy".into(),
            intended_rps: 100.0,
            achieved_rps: 99.5,
            duration_s: 1.0,
            users: 8,
            late_limit_ms: 100.0,
            lag_us: EncodedHistogram(lag),
            requests: BTreeMap::from([(
                "search".into(),
                RequestRecord {
                    sent: 102,
                    corrected_us: EncodedHistogram(corrected),
                    raw_us: EncodedHistogram(raw),
                    errors: BTreeMap::from([("timeout".into(), 2)]),
                    ..RequestRecord::default()
                },
            )]),
            ..PhaseRecord::default()
        }
    }

    fn column(line: &str, n: usize) -> &str {
        line.split_whitespace().nth(n).unwrap()
    }

    #[test]
    fn one_line_per_phase_with_corrected_raw_and_lag() {
        let text = render(&record(peak()), &[]);
        let line = text.lines().nth(1).unwrap();
        assert!(line.starts_with("legacy     peak"), "{line}");
        assert_eq!(column(line, 7), "99.0", "p99 corrected: {line}");
        assert_eq!(column(line, 9), "9.9", "p99 raw: {line}");
        assert_eq!(column(line, 10), "0.14", "lag p99: {line}");
        assert!(line.ends_with("1.96%"), "{line}");
        assert_eq!(text.lines().count(), 2, "nothing fell behind: {text}");
    }

    #[test]
    fn a_saturated_phase_shows_bounds_and_is_named() {
        let mut phase = peak();
        phase.dropped = 900;
        phase.dropped_by_generator = 3;
        phase.intended_rps = 1_000.0;
        let text = render(&record(phase), &[]);
        let line = text.lines().nth(1).unwrap();
        assert_eq!(column(line, 4), "900");
        assert!(
            column(line, 5).starts_with(">100."),
            "p50 lies among the drops: {line}"
        );
        assert_eq!(column(line, 7), column(line, 5));
        assert!(line.ends_with("89.99%"), "897 + 2 of 999: {line}");
        assert!(
            text.contains(
                "legacy/peak: SATURATED: 897 of 1000 arrivals (89.7%) dropped, all 8 users were \
                 busy waiting for legacy"
            ),
            "{text}"
        );
        assert!(
            text.contains("legacy/peak: the load generator fell behind: 3 arrivals dropped"),
            "{text}"
        );
    }
}
