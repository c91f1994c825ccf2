//! The table that closes every run: per system and phase, the offered and achieved rate, the
//! latency percentiles (corrected, and raw p99 beside them), errors and dropped arrivals; then
//! the SLO verdicts.

use std::fmt::Write;

use twinpeak_reports::{LatencySummary, RunRecord};

use crate::slo::SloVerdict;

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

/// The closing table of a run, as text.
pub fn render(record: &RunRecord, verdicts: &[SloVerdict]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:<10} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>7}",
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
        "requests",
        "errors"
    );
    for phase in &record.phases {
        let Ok(totals) = phase.totals() else { continue };
        let corrected = LatencySummary::from_histogram(&totals.corrected_us.0);
        let raw = LatencySummary::from_histogram(&totals.raw_us.0);
        let errors = totals.error_total();
        let error_pct = if totals.sent > 0 {
            100.0 * errors as f64 / totals.sent as f64
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "{:<10} {:<10} {:>9.1} {:>9.1} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6.2}%",
            truncate(&phase.target, 10),
            truncate(&phase.name, 10),
            phase.intended_rps,
            phase.achieved_rps,
            phase.dropped,
            ms(corrected.p50_us),
            ms(corrected.p95_us),
            ms(corrected.p99_us),
            ms(corrected.max_us),
            ms(raw.p99_us),
            totals.sent,
            error_pct
        );
    }
    if !verdicts.is_empty() {
        let _ = writeln!(out);
        for v in verdicts {
            let _ = writeln!(out, "{v}");
        }
    }
    out
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
    use twinpeak_reports::{new_latency_histogram, EncodedHistogram, PhaseRecord, RequestRecord};

    #[test]
    fn one_line_per_phase_with_corrected_and_raw_percentiles() {
        let mut corrected = new_latency_histogram();
        let mut raw = new_latency_histogram();
        for v in 1..=100u64 {
            corrected.record(v * 1000).unwrap();
            raw.record(v * 100).unwrap();
        }
        let mut record = RunRecord::new("smoke", "ab", 1, 1.0, SystemTime::now(), BTreeMap::new());
        record.phases.push(PhaseRecord {
            name: "peak".into(),
            target: "legacy".into(),
            intended_rps: 100.0,
            achieved_rps: 99.5,
            requests: BTreeMap::from([(
                "search".into(),
                RequestRecord {
                    sent: 100,
                    corrected_us: EncodedHistogram(corrected),
                    raw_us: EncodedHistogram(raw),
                    errors: BTreeMap::from([("timeout".into(), 2)]),
                    ..RequestRecord::default()
                },
            )]),
            ..PhaseRecord::default()
        });
        let text = render(&record, &[]);
        let line = text.lines().nth(1).unwrap();
        assert!(line.starts_with("legacy     peak"), "{line}");
        assert!(line.contains(" 99.0 "), "p99 corrected: {line}");
        assert!(line.contains(" 9.9 "), "p99 raw: {line}");
        assert!(line.ends_with("2.00%"), "{line}");
    }
}
