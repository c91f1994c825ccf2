//! SLO gates: a run's latency percentiles and error rate, held against the scenario's targets.
//!
//! Figures are read over the arrivals meant for the system ([`Arrivals`]): percentiles from the
//! coordinated-omission-corrected latency of the requests that succeeded, with the arrivals the
//! system could not take ranked above them all, at the histogram's precision, exactly as reports
//! show them; the error rate counts those arrivals as failures. A percentile that falls among them
//! is only a lower bound, and fails. A target that nothing was measured against fails too: a gate
//! must never pass for want of data.

use std::fmt;

use twinpeak_core::run::{Arrivals, Latency, Thresholds};
use twinpeak_core::{RunRecord, SloRecord};

/// The outcome of one target for one system.
#[derive(Debug, Clone, PartialEq)]
pub struct SloVerdict {
    /// What was measured: `run` for the whole run, or a phase, e.g. `phase peak`.
    pub scope: String,
    /// Which system, e.g. `legacy`.
    pub target_name: String,
    /// Which figure: `p50`, `p95`, `p99`, `p999`, `max` or `error_rate`.
    pub metric: String,
    /// The target, in `unit`.
    pub limit: f64,
    /// What was measured, in `unit` (0 when nothing was, see `reason`).
    pub actual: f64,
    /// `ms` for latencies, `%` for the error rate.
    pub unit: &'static str,
    /// Whether `actual` is within `limit`.
    pub pass: bool,
    /// Why the target failed without a measurement (`no latency recorded`, `no requests sent`).
    pub reason: Option<&'static str>,
    /// Whether `actual` is only a lower bound: the percentile falls among arrivals the system
    /// could not take. Such a verdict fails.
    pub lower_bound: bool,
}

impl fmt::Display for SloVerdict {
    /// `FAIL run (legacy): p99 248.0 ms > 200.0 ms (+24%)`, `pass run (legacy): p99 45.1 ms ≤
    /// 200.0 ms`, `FAIL run (legacy): p99 no latency recorded (limit 200.0 ms)`, or for a lower
    /// bound `FAIL run (legacy): p99 > 160.0 ms, among arrivals legacy could not take (limit
    /// 200.0 ms)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = if self.pass { "pass" } else { "FAIL" };
        write!(
            f,
            "{outcome} {} ({}): {} ",
            self.scope, self.target_name, self.metric
        )?;
        let limit = Quantity(self.limit, self.unit);
        if let Some(reason) = self.reason {
            return write!(f, "{reason} (limit {limit})");
        }
        let actual = Quantity(self.actual, self.unit);
        if self.lower_bound {
            return write!(
                f,
                "> {actual}, among arrivals {} could not take (limit {limit})",
                self.target_name
            );
        }
        if self.pass {
            return write!(f, "{actual} ≤ {limit}");
        }
        write!(f, "{actual} > {limit}")?;
        if self.limit > 0.0 {
            write!(f, " ({:+.0}%)", (self.actual / self.limit - 1.0) * 100.0)?;
        }
        Ok(())
    }
}

/// A figure with its unit: milliseconds to 0.1, percentages to 0.01.
struct Quantity(f64, &'static str);

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            "%" => write!(f, "{:.2}%", self.0),
            unit => write!(f, "{:.1} {unit}", self.0),
        }
    }
}

impl From<&SloVerdict> for SloRecord {
    fn from(verdict: &SloVerdict) -> Self {
        SloRecord {
            scope: verdict.scope.clone(),
            target: verdict.target_name.clone(),
            metric: verdict.metric.clone(),
            limit: verdict.limit,
            actual: verdict.actual,
            unit: verdict.unit.to_owned(),
            pass: verdict.pass,
            reason: verdict.reason.map(str::to_owned),
            lower_bound: verdict.lower_bound,
        }
    }
}

/// Every SLO verdict of `record` against the thresholds it carries: per system (those the
/// record lists), per phase that sets its own thresholds, then for the whole run. The same
/// whether the record is one machine's or merged from a run's load workers.
pub fn judge(record: &RunRecord) -> Vec<SloVerdict> {
    let thresholds = &record.thresholds;
    let mut verdicts = Vec::new();
    for target in &record.targets {
        let mut all = Arrivals::default();
        for phase in record.phases.iter().filter(|p| p.target == target.name) {
            let Ok(arrivals) = Arrivals::of_phase(phase) else {
                continue;
            };
            let _ = all.add(&arrivals);
            if let Some(own) = thresholds.phases.get(&phase.name) {
                let scope = format!("phase {}", phase.name);
                verdicts.extend(evaluate(&scope, &target.name, own, &arrivals));
            }
        }
        verdicts.extend(evaluate("run", &target.name, &thresholds.run, &all));
    }
    verdicts
}

/// Holds one system's `arrivals` in `scope` against the thresholds of `targets`, one verdict per
/// threshold set.
///
/// Latency targets fail when nothing was sent and nothing dropped, or when every request failed;
/// and when the percentile is only a lower bound. The error-rate target fails when nothing was
/// sent or dropped.
pub fn evaluate(
    scope: &str,
    target: &str,
    targets: &Thresholds,
    arrivals: &Arrivals,
) -> Vec<SloVerdict> {
    let verdict = |metric: &str, limit: f64, actual: Result<(f64, bool), &'static str>, unit| {
        let (actual, lower_bound, reason) = match actual {
            Ok((actual, bound)) => (actual, bound, None),
            Err(reason) => (0.0, false, Some(reason)),
        };
        SloVerdict {
            scope: scope.to_owned(),
            target_name: target.to_owned(),
            metric: metric.to_owned(),
            limit,
            actual,
            unit,
            pass: reason.is_none() && !lower_bound && actual <= limit,
            reason,
            lower_bound,
        }
    };
    let nothing_due = arrivals.sent == 0 && arrivals.not_taken == 0;
    let latency_us = |quantile: Option<f64>| match arrivals.latency(quantile) {
        _ if nothing_due => Err("no requests sent"),
        None => Err("no latency recorded"),
        Some(latency) => Ok(latency),
    };

    let mut verdicts = Vec::new();
    for (metric, limit, quantile) in [
        ("p50", targets.p50_ms, Some(0.5)),
        ("p95", targets.p95_ms, Some(0.95)),
        ("p99", targets.p99_ms, Some(0.99)),
        ("p999", targets.p999_ms, Some(0.999)),
        ("max", targets.max_ms, None),
    ] {
        if let Some(limit) = limit {
            let actual = latency_us(quantile)
                .map(|latency: Latency| (latency.us() as f64 / 1_000.0, latency.is_lower_bound()));
            verdicts.push(verdict(metric, limit, actual, "ms"));
        }
    }
    if let Some(limit) = targets.error_rate_pct {
        let actual = arrivals
            .error_rate()
            .map(|rate| (rate * 100.0, false))
            .ok_or("no requests sent");
        verdicts.push(verdict("error_rate", limit, actual, "%"));
    }
    verdicts
}

#[cfg(test)]
mod tests {
    use hdrhistogram::Histogram;
    use std::time::Duration;
    use twinpeak_core::units::Percent;

    use twinpeak_core::{new_latency_histogram, record_saturating};

    use super::*;
    use crate::scenario::Slo;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    fn percent(p: f64) -> Option<Percent> {
        Some(Percent::new(p).unwrap())
    }

    /// 1 000 requests: 989 at 40 ms, 10 at 248 ms and one at 900 ms.
    fn latencies() -> Histogram<u64> {
        let mut h = new_latency_histogram();
        for i in 0..1_000 {
            let us = match i {
                0 => 900_000,
                1..=10 => 248_000,
                _ => 40_000,
            };
            record_saturating(&mut h, us);
        }
        h
    }

    /// `sent` requests, `failed` of them failed, the rest succeeded as [`latencies`] says.
    fn measured(sent: u64, failed: u64) -> Arrivals {
        Arrivals {
            succeeded: latencies(),
            sent,
            failed,
            not_taken: 0,
            late_limit_us: 100_000,
        }
    }

    fn find<'a>(verdicts: &'a [SloVerdict], metric: &str) -> &'a SloVerdict {
        verdicts.iter().find(|v| v.metric == metric).unwrap()
    }

    #[test]
    fn checks_only_the_targets_set() {
        let targets = Slo {
            p99: ms(200),
            ..Slo::default()
        };
        let verdicts = evaluate("run", "legacy", &targets.thresholds(), &measured(1_000, 0));
        assert_eq!(verdicts.len(), 1);
        assert!(Slo::default().is_empty() && !targets.is_empty());
        assert!(evaluate("run", "legacy", &Thresholds::default(), &measured(1_000, 0)).is_empty());
    }

    #[test]
    fn latency_percentiles_pass_and_fail() {
        let targets = Slo {
            p50: ms(50),
            p95: ms(50),
            p99: ms(200),
            p999: ms(300),
            max: ms(1_000),
            error_rate: None,
        };
        let verdicts = evaluate(
            "phase peak",
            "rebuilt",
            &targets.thresholds(),
            &measured(1_000, 0),
        );
        let outcomes: Vec<_> = verdicts
            .iter()
            .map(|v| (v.metric.as_str(), v.pass))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("p50", true),
                ("p95", true),
                ("p99", false),
                ("p999", true),
                ("max", true)
            ]
        );
        let p99 = find(&verdicts, "p99");
        assert!((p99.actual - 248.0).abs() < 0.25, "{}", p99.actual);
        assert_eq!((p99.limit, p99.unit, p99.reason), (200.0, "ms", None));
        assert_eq!(
            p99.to_string(),
            format!(
                "FAIL phase peak (rebuilt): p99 {:.1} ms > 200.0 ms (+24%)",
                p99.actual
            )
        );
        let p50 = find(&verdicts, "p50");
        assert_eq!(
            p50.to_string(),
            format!(
                "pass phase peak (rebuilt): p50 {:.1} ms ≤ 50.0 ms",
                p50.actual
            )
        );
    }

    #[test]
    fn error_rate_is_a_percentage() {
        let targets = Slo {
            error_rate: percent(1.0),
            ..Slo::default()
        };
        let failing = &evaluate("run", "legacy", &targets.thresholds(), &measured(1_000, 25))[0];
        assert_eq!(
            (failing.limit, failing.actual, failing.pass),
            (1.0, 2.5, false)
        );
        assert_eq!(
            failing.to_string(),
            "FAIL run (legacy): error_rate 2.50% > 1.00% (+150%)"
        );
        let passing = &evaluate("run", "legacy", &targets.thresholds(), &measured(1_000, 10))[0];
        assert!(passing.pass);
        assert_eq!(
            passing.to_string(),
            "pass run (legacy): error_rate 1.00% ≤ 1.00%"
        );
    }

    #[test]
    fn nothing_measured_is_a_failure() {
        let targets = Slo {
            p99: ms(200),
            error_rate: percent(1.0),
            ..Slo::default()
        };
        let verdicts = evaluate("run", "legacy", &targets.thresholds(), &Arrivals::default());
        assert!(verdicts
            .iter()
            .all(|v| !v.pass && v.reason == Some("no requests sent")));
        assert_eq!(
            verdicts[0].to_string(),
            "FAIL run (legacy): p99 no requests sent (limit 200.0 ms)"
        );

        // Every request failed before a response: counted, but no latency.
        let all_failed = Arrivals {
            sent: 5,
            failed: 5,
            ..Arrivals::default()
        };
        let verdicts = evaluate("run", "legacy", &targets.thresholds(), &all_failed);
        let p99 = find(&verdicts, "p99");
        assert_eq!((p99.pass, p99.reason), (false, Some("no latency recorded")));
        assert_eq!(find(&verdicts, "error_rate").actual, 100.0);
    }

    #[test]
    fn zero_limit_failure_has_no_ratio() {
        let targets = Slo {
            error_rate: percent(0.0),
            ..Slo::default()
        };
        let verdict = &evaluate("run", "legacy", &targets.thresholds(), &measured(1_000, 1))[0];
        assert_eq!(
            verdict.to_string(),
            "FAIL run (legacy): error_rate 0.10% > 0.00%"
        );
    }

    #[test]
    fn verdicts_become_records() {
        let targets = Slo {
            p99: ms(200),
            ..Slo::default()
        };
        let verdict = &evaluate("run", "legacy", &targets.thresholds(), &measured(1_000, 0))[0];
        let record = SloRecord::from(verdict);
        assert_eq!(
            (
                record.scope.as_str(),
                record.target.as_str(),
                record.metric.as_str()
            ),
            ("run", "legacy", "p99")
        );
        assert_eq!(
            (record.limit, record.actual),
            (verdict.limit, verdict.actual)
        );
        assert_eq!(
            (record.unit.as_str(), record.pass, record.reason),
            ("ms", false, None)
        );
    }

    #[test]
    fn a_saturated_system_fails_on_bounds_and_errors() {
        // 1 000 answered, 250 arrivals it could not take: p50 is measured and passes, p99 lies
        // among the arrivals not taken, and those count as errors.
        let targets = Slo {
            p50: ms(200),
            p99: ms(2_000),
            error_rate: percent(1.0),
            ..Slo::default()
        };
        let saturated = Arrivals {
            not_taken: 250,
            ..measured(1_000, 0)
        };
        let verdicts = evaluate("run", "legacy", &targets.thresholds(), &saturated);
        let p50 = find(&verdicts, "p50");
        assert!(p50.pass && !p50.lower_bound, "{p50}");
        let p99 = find(&verdicts, "p99");
        assert!(
            !p99.pass && p99.lower_bound,
            "a bound fails even under the limit"
        );
        assert!(
            (p99.actual - 900.0).abs() < 1.0,
            "the highest latency measured"
        );
        assert_eq!(
            p99.to_string(),
            format!(
                "FAIL run (legacy): p99 > {:.1} ms, among arrivals legacy could not take \
                 (limit 2000.0 ms)",
                p99.actual
            )
        );
        assert!(SloRecord::from(p99).lower_bound);
        let errors = find(&verdicts, "error_rate");
        assert_eq!((errors.actual, errors.pass), (20.0, false));
    }

    #[test]
    fn a_record_is_judged_against_the_thresholds_it_carries() {
        use std::collections::BTreeMap;
        use twinpeak_core::run::{RunThresholds, Thresholds};
        use twinpeak_core::{EncodedHistogram, PhaseRecord, RequestRecord, RunTarget};

        let phase = |name: &str| PhaseRecord {
            name: name.to_owned(),
            target: "legacy".to_owned(),
            requests: BTreeMap::from([(
                "get".to_owned(),
                RequestRecord {
                    sent: 1_000,
                    corrected_us: EncodedHistogram(latencies()),
                    ..RequestRecord::default()
                },
            )]),
            ..PhaseRecord::default()
        };
        let mut record = RunRecord::new(
            "s",
            "ab",
            7,
            1.0,
            std::time::SystemTime::now(),
            BTreeMap::new(),
        );
        record.targets.push(RunTarget {
            name: "legacy".to_owned(),
            url: String::new(),
            ..RunTarget::default()
        });
        record.phases = vec![phase("warm"), phase("spike")];
        let p99 = |ms| Thresholds {
            p99_ms: Some(ms),
            ..Thresholds::default()
        };
        record.thresholds = RunThresholds {
            run: p99(200.0),
            phases: BTreeMap::from([("spike".to_owned(), p99(300.0))]),
        };
        let verdicts: Vec<_> = judge(&record)
            .iter()
            .map(|v| (v.scope.clone(), v.limit, v.pass))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("phase spike".to_owned(), 300.0, true),
                ("run".to_owned(), 200.0, false)
            ],
            "p99 is 248 ms over both phases"
        );
    }
}
