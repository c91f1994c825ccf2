//! Building figures and changes: a number, its text, and where it came from.

use super::format;
use super::model::{Change, Figure, Outcome};
use crate::run::Latency;

/// Where a figure came from: the input files and what in them.
#[derive(Debug, Clone)]
pub(super) struct Provenance {
    files: Vec<String>,
    derivation: String,
}

impl Provenance {
    /// Figures computed from `derivation` in `files`.
    pub fn new(files: Vec<String>, derivation: impl Into<String>) -> Self {
        Self {
            files,
            derivation: derivation.into(),
        }
    }

    /// A figure of `value` in `unit`, shown as `text`, from here.
    pub fn figure(&self, value: f64, unit: &str, text: String) -> Figure {
        Figure {
            value,
            unit: unit.to_owned(),
            text,
            sources: self.files.clone(),
            derivation: self.derivation.clone(),
            lower_bound: false,
        }
    }
}

/// A latency read from a histogram in µs, as a figure in ms.
pub(super) fn latency_figure(us: u64, from: &Provenance) -> Figure {
    let ms = us as f64 / 1_000.0;
    from.figure(ms, "ms", format!("{} ms", format::ms(ms)))
}

/// A latency over intended arrivals as a figure in ms: `> 160 ms` when only a lower bound.
pub(super) fn arrival_latency_figure(latency: Latency, from: &Provenance) -> Figure {
    match latency {
        Latency::Exact(us) => latency_figure(us, from),
        Latency::Above(us) => {
            let ms = us as f64 / 1_000.0;
            Figure {
                lower_bound: true,
                ..from.figure(ms, "ms", format!("> {} ms", format::ms(ms)))
            }
        }
    }
}

/// How an after latency compares with a before one: `−97% (3,840 → 117 ms)`.
pub(super) fn latency_change(before_ms: f64, after_ms: f64) -> Change {
    relative(
        before_ms,
        after_ms,
        Better::Lower,
        ("faster", "slower"),
        format::ms,
        " ms",
    )
}

/// How an after error rate (a fraction) compares with a before one:
/// `−63% (2.41% → 0.89%)`.
pub(super) fn error_change(before: f64, after: f64) -> Change {
    if before == 0.0 && after > 0.0 {
        let pp = (after - before) * 100.0;
        return Change {
            amount: pp,
            unit: "pp".to_owned(),
            short: format!("+{} pp", format::decimal(pp, 2)),
            text: format!(
                "+{} pp ({} → {})",
                format::decimal(pp, 2),
                format::share(before),
                format::share(after)
            ),
            words: "more failed requests (none before)".to_owned(),
            outcome: Outcome::Worse,
        };
    }
    relative(
        before,
        after,
        Better::Lower,
        ("fewer failed requests", "more failed requests"),
        format::share,
        "",
    )
}

/// How an after throughput compares with a before one: `+1.2% (1,980 → 2,004 req/s)`.
pub(super) fn throughput_change(before: f64, after: f64) -> Change {
    relative(
        before,
        after,
        Better::Higher,
        ("less throughput", "more throughput"),
        format::rate,
        " req/s",
    )
}

/// How an after share of SLO-compliant windows compares with a before one, in percentage
/// points: `+58 pp (41% → 99%)`.
pub(super) fn compliance_change(before: f64, after: f64) -> Change {
    let pp = (after - before) * 100.0;
    let shown = format::decimal(pp.abs(), if pp.abs() >= 10.0 { 0 } else { 1 });
    let shown = shown.trim_end_matches(".0");
    let same = shown == "0";
    let sign = match () {
        _ if same => "±",
        _ if pp < 0.0 => "−",
        _ => "+",
    };
    Change {
        amount: pp,
        unit: "pp".to_owned(),
        short: format!("{sign}{shown} pp"),
        text: format!(
            "{sign}{shown} pp ({} → {})",
            format::coverage(before),
            format::coverage(after)
        ),
        words: if same {
            "as often within SLO".to_owned()
        } else if pp > 0.0 {
            format!("{shown} points more often within SLO")
        } else {
            format!("{shown} points less often within SLO")
        },
        outcome: if same {
            Outcome::Same
        } else if pp > 0.0 {
            Outcome::Better
        } else {
            Outcome::Worse
        },
    }
}

/// Which way is better for a metric.
#[derive(Clone, Copy, PartialEq)]
enum Better {
    Lower,
    Higher,
}

/// A relative change (after / before − 1) with both figures: `−97% (3,840 → 117 ms)`.
///
/// `words` name a decrease and an increase; a change that rounds to under 1% is `Same`.
fn relative(
    before: f64,
    after: f64,
    better: Better,
    words: (&str, &str),
    shown: impl Fn(f64) -> String,
    unit: &str,
) -> Change {
    let both = format!("({} → {}{unit})", shown(before), shown(after));
    if before == 0.0 {
        let same = after == 0.0;
        return Change {
            amount: after - before,
            unit: unit.trim().to_owned(),
            short: if same { "±0%" } else { "from 0" }.to_owned(),
            text: if same { format!("±0% {both}") } else { both },
            words: if same {
                "no change".to_owned()
            } else {
                words.1.to_owned()
            },
            outcome: match (same, better) {
                (true, _) => Outcome::Same,
                (false, Better::Lower) => Outcome::Worse,
                (false, Better::Higher) => Outcome::Better,
            },
        };
    }
    let percent = (after / before - 1.0) * 100.0;
    let signed = format::signed_percent(percent);
    let same = percent.abs() < 1.0 || signed == "±0%";
    let outcome = match (same, percent < 0.0, better) {
        (true, _, _) => Outcome::Same,
        (false, true, Better::Lower) | (false, false, Better::Higher) => Outcome::Better,
        _ => Outcome::Worse,
    };
    let word = if percent < 0.0 { words.0 } else { words.1 };
    Change {
        amount: percent,
        unit: "%".to_owned(),
        text: format!("{signed} {both}"),
        short: signed,
        words: if same {
            "about the same".to_owned()
        } else {
            format!("{} {word}", format::percent(percent))
        },
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_changes_read_as_faster_or_slower() {
        let c = latency_change(3_840.0, 117.0);
        assert_eq!(c.text, "−97% (3,840 → 117 ms)");
        assert_eq!(c.words, "97% faster");
        assert_eq!(c.outcome, Outcome::Better);
        let c = latency_change(100.0, 124.0);
        assert_eq!(c.text, "+24% (100 → 124 ms)");
        assert_eq!(c.outcome, Outcome::Worse);
        assert_eq!(latency_change(100.0, 100.4).outcome, Outcome::Same);
    }

    #[test]
    fn error_and_throughput_changes() {
        let c = error_change(0.0241, 0.0089);
        assert_eq!(c.text, "−63% (2.41% → 0.89%)");
        assert_eq!(c.words, "63% fewer failed requests");
        let c = error_change(0.0, 0.005);
        assert_eq!(c.text, "+0.50 pp (0% → 0.5%)");
        assert_eq!(c.outcome, Outcome::Worse);
        assert_eq!(error_change(0.0, 0.0).outcome, Outcome::Same);
        let c = throughput_change(1_000.0, 1_500.0);
        assert_eq!(c.text, "+50% (1,000 → 1,500 req/s)");
        assert_eq!(c.outcome, Outcome::Better);
    }

    #[test]
    fn compliance_changes_in_points() {
        let c = compliance_change(0.41, 0.99);
        assert_eq!(c.text, "+58 pp (41% → 99%)");
        assert_eq!(c.outcome, Outcome::Better);
        assert_eq!(compliance_change(1.0, 1.0).text, "±0 pp (100% → 100%)");
    }
}
