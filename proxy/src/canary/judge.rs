//! The judge: given what the primary and the candidate did over one interval, pass, fail or
//! no verdict, with every check and its figures. Pure: no clock, no I/O.
//!
//! Checks, in order:
//! - **requests**: fewer than `min_requests` candidate requests give no verdict (inconclusive);
//!   nothing else is judged then.
//! - **error_rate**: the candidate's share of failed requests (5xx, or no answer) is at most
//!   `max_error_rate`.
//! - **error_delta**: it exceeds the primary's by at most `max_error_delta` points.
//! - **latency_p99**: the candidate's p99 is at most `max_p99_ratio` × the primary's.
//! - **latency_shift**: a one-sided Mann–Whitney U test over the two whole latency histograms
//!   (normal approximation with tie correction). It fails when the candidate is slower with
//!   p < `latency_alpha` *and* the effect is large enough: the probability that a candidate
//!   request is slower than a primary one exceeds `latency_effect`. The effect guard keeps a
//!   tiny shift, significant only because the sample is huge, from failing a candidate.
//! - **diff_rate**: the share of the interval's compared mirrored pairs with a real difference
//!   is at most `max_diff_rate`. The pairs are classified when the interval is judged, with the
//!   noise known then, exactly as the admin API classifies every pair.
//!
//! The checks against the primary need `min_requests` primary requests in the interval (at
//! weight 100 there are none); the diff check needs `min_requests` compared pairs. A check that
//! could not be made is listed as passed, with the reason it was not judged.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::config::JudgeConfig;
use super::window::PairWindow;
use crate::comparison::store::DiffWindow;
use crate::labels::CanaryDecision;

/// The judge's verdict over one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every check held.
    Pass,
    /// At least one check failed.
    Fail,
    /// Too little candidate traffic to judge.
    Inconclusive,
}

impl Verdict {
    /// The metric label of this verdict.
    pub fn label(self) -> CanaryDecision {
        match self {
            Verdict::Pass => CanaryDecision::Pass,
            Verdict::Fail => CanaryDecision::Fail,
            Verdict::Inconclusive => CanaryDecision::Inconclusive,
        }
    }
}

/// What a check measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Candidate requests in the interval.
    Requests,
    /// The candidate's share of failed requests.
    ErrorRate,
    /// The candidate's error rate against the primary's.
    ErrorDelta,
    /// The candidate's p99 latency against the primary's.
    LatencyP99,
    /// Whether the candidate's whole latency distribution is shifted up (Mann–Whitney U).
    LatencyShift,
    /// Share of compared mirrored pairs that differ for real.
    DiffRate,
}

impl Metric {
    /// The name records and the admin API use.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Requests => "requests",
            Metric::ErrorRate => "error_rate",
            Metric::ErrorDelta => "error_delta",
            Metric::LatencyP99 => "latency_p99",
            Metric::LatencyShift => "latency_shift",
            Metric::DiffRate => "diff_rate",
        }
    }
}

/// One check with its figures. Rates are fractions (0.01 is 1%), latencies µs.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    /// What was checked.
    pub metric: Metric,
    /// The candidate's figure.
    pub candidate: f64,
    /// The primary's figure, for checks against it.
    pub primary: Option<f64>,
    /// The limit the candidate's figure was held to.
    pub threshold: f64,
    /// Whether the check held (or could not be made).
    pub ok: bool,
    /// The check in words.
    pub detail: String,
}

/// The verdict over one interval and every check behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Pass, fail or inconclusive.
    pub verdict: Verdict,
    /// The checks made, in order.
    pub reasons: Vec<Reason>,
}

impl Decision {
    /// One line saying why: the failed checks, the missing traffic, or that all held.
    pub fn summary(&self) -> String {
        let failed: Vec<&str> = self
            .reasons
            .iter()
            .filter(|r| !r.ok)
            .map(|r| r.detail.as_str())
            .collect();
        match self.verdict {
            Verdict::Pass => format!(
                "all checks passed ({})",
                self.reasons
                    .iter()
                    .filter(|r| r.metric != Metric::Requests)
                    .map(|r| r.detail.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Verdict::Fail | Verdict::Inconclusive => failed.join("; "),
        }
    }
}

/// Judges one interval. `diff` is `None` when no comparison applies to the candidate.
pub fn judge(window: &PairWindow, diff: Option<DiffWindow>, config: &JudgeConfig) -> Decision {
    let (candidate, primary) = (&window.candidate, &window.primary);
    let min = config.min_requests;
    let mut reasons = Vec::new();
    let enough = candidate.requests >= min;
    reasons.push(Reason {
        metric: Metric::Requests,
        candidate: candidate.requests as f64,
        primary: Some(primary.requests as f64),
        threshold: min as f64,
        ok: enough,
        detail: if enough {
            format!(
                "{} candidate and {} primary requests",
                candidate.requests, primary.requests
            )
        } else {
            format!(
                "too little traffic: {} candidate requests < min_requests {min}",
                candidate.requests
            )
        },
    });
    if !enough {
        return Decision {
            verdict: Verdict::Inconclusive,
            reasons,
        };
    }

    let rate = candidate.error_rate();
    let limit = config.max_error_rate.fraction();
    reasons.push(Reason {
        metric: Metric::ErrorRate,
        candidate: rate,
        primary: None,
        threshold: limit,
        ok: rate <= limit,
        detail: format!(
            "error_rate {} ({} of {}) {} {}",
            pct(rate),
            candidate.errors,
            candidate.requests,
            if rate <= limit { "<=" } else { ">" },
            pct(limit)
        ),
    });

    let compared_with_primary = primary.requests >= min;
    let not_judged = || {
        format!(
            "not judged: {} primary requests < min_requests {min}",
            primary.requests
        )
    };
    let primary_rate = primary.error_rate();
    let delta_limit = primary_rate + config.max_error_delta.fraction();
    let delta_ok = !compared_with_primary || rate <= delta_limit;
    reasons.push(Reason {
        metric: Metric::ErrorDelta,
        candidate: rate,
        primary: Some(primary_rate),
        threshold: delta_limit,
        ok: delta_ok,
        detail: if compared_with_primary {
            format!(
                "error_delta {} vs primary {}: {:+.2} points {} +{:.2}",
                pct(rate),
                pct(primary_rate),
                (rate - primary_rate) * 100.0,
                if delta_ok { "<=" } else { ">" },
                config.max_error_delta.value()
            )
        } else {
            format!("error_delta {}", not_judged())
        },
    });

    let latencies = !candidate.latency.is_empty() && !primary.latency.is_empty();
    let c99 = candidate.latency.value_at_quantile(0.99) as f64;
    let p99 = primary.latency.value_at_quantile(0.99) as f64;
    let p99_limit = p99 * config.max_p99_ratio;
    let judged = compared_with_primary && latencies;
    let p99_ok = !judged || c99 <= p99_limit;
    reasons.push(Reason {
        metric: Metric::LatencyP99,
        candidate: c99,
        primary: Some(p99),
        threshold: p99_limit,
        ok: p99_ok,
        detail: if judged {
            format!(
                "latency_p99 {} vs primary {}: ×{:.2} {} ×{}",
                ms(c99),
                ms(p99),
                c99 / p99.max(1.0),
                if p99_ok { "<=" } else { ">" },
                config.max_p99_ratio
            )
        } else if !compared_with_primary {
            format!("latency_p99 {}", not_judged())
        } else {
            "latency_p99 not judged: a side has no answered request".to_string()
        },
    });

    let shift = judged
        .then(|| mann_whitney(&candidate.latency, &primary.latency))
        .flatten();
    reasons.push(match shift {
        Some(test) => {
            let slower =
                test.p_slower < config.latency_alpha && test.effect > config.latency_effect;
            Reason {
                metric: Metric::LatencyShift,
                candidate: test.effect,
                primary: None,
                threshold: config.latency_effect,
                ok: !slower,
                detail: format!(
                    "latency_shift P(candidate slower) {:.3} {} {} with p {:.2e} {} α {}",
                    test.effect,
                    if test.effect > config.latency_effect {
                        ">"
                    } else {
                        "<="
                    },
                    config.latency_effect,
                    test.p_slower,
                    if test.p_slower < config.latency_alpha {
                        "<"
                    } else {
                        ">="
                    },
                    config.latency_alpha
                ),
            }
        }
        None => Reason {
            metric: Metric::LatencyShift,
            candidate: 0.5,
            primary: None,
            threshold: config.latency_effect,
            ok: true,
            detail: if compared_with_primary {
                "latency_shift not judged: a side has no answered request".to_string()
            } else {
                format!("latency_shift {}", not_judged())
            },
        },
    });

    if let Some(diff) = diff {
        let rate = if diff.compared == 0 {
            0.0
        } else {
            diff.different as f64 / diff.compared as f64
        };
        let limit = config.max_diff_rate.fraction();
        let judged = diff.compared >= min;
        let ok = !judged || rate <= limit;
        reasons.push(Reason {
            metric: Metric::DiffRate,
            candidate: rate,
            primary: None,
            threshold: limit,
            ok,
            detail: if judged {
                format!(
                    "diff_rate {} ({} of {} pairs) {} {}",
                    pct(rate),
                    diff.different,
                    diff.compared,
                    if ok { "<=" } else { ">" },
                    pct(limit)
                )
            } else {
                format!(
                    "diff_rate not judged: {} compared pairs < min_requests {min}",
                    diff.compared
                )
            },
        });
    }

    let verdict = if reasons.iter().all(|r| r.ok) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    Decision { verdict, reasons }
}

fn pct(fraction: f64) -> String {
    format!("{:.2}%", fraction * 100.0)
}

fn ms(micros: f64) -> String {
    format!("{:.2} ms", micros / 1000.0)
}

/// A one-sided Mann–Whitney U test of "the candidate is slower than the primary".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the candidate sample: pairs (candidate, primary) where the candidate is slower,
    /// ties counting one half.
    pub u: f64,
    /// `u / (n_candidate × n_primary)`: the probability that a candidate request is slower
    /// than a primary one (0.5: no difference).
    pub effect: f64,
    /// The standardised statistic, continuity-corrected.
    pub z: f64,
    /// One-sided p-value: the chance of a shift at least this large with equal distributions.
    pub p_slower: f64,
}

/// Runs the test on two histograms' recorded values (each bucket's value with its count).
/// `None` when either is empty.
pub fn mann_whitney(candidate: &Histogram<u64>, primary: &Histogram<u64>) -> Option<MannWhitney> {
    let (n_c, n_p) = (candidate.len() as f64, primary.len() as f64);
    if n_c == 0.0 || n_p == 0.0 {
        return None;
    }
    // Both histograms share one configuration, so equal values are the same bucket.
    let mut counts: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for v in candidate.iter_recorded() {
        counts.entry(v.value_iterated_to()).or_default().0 += v.count_at_value();
    }
    for v in primary.iter_recorded() {
        counts.entry(v.value_iterated_to()).or_default().1 += v.count_at_value();
    }
    let n = n_c + n_p;
    let mut below = 0.0;
    let mut rank_sum = 0.0;
    let mut ties = 0.0;
    for (c, p) in counts.values() {
        let (c, t) = (*c as f64, (*c + *p) as f64);
        // The tied values share the ranks below+1 ..= below+t.
        rank_sum += c * (below + (t + 1.0) / 2.0);
        ties += t * t * t - t;
        below += t;
    }
    let u = rank_sum - n_c * (n_c + 1.0) / 2.0;
    let mean = n_c * n_p / 2.0;
    let variance = n_c * n_p / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)).max(1.0));
    let (z, p_slower) = if variance > 0.0 {
        // Continuity correction: half a unit toward the mean.
        let distance = u - mean;
        let corrected = if distance > 0.5 {
            distance - 0.5
        } else if distance < -0.5 {
            distance + 0.5
        } else {
            0.0
        };
        let z = corrected / variance.sqrt();
        (z, normal_upper_tail(z))
    } else {
        (0.0, 0.5)
    };
    Some(MannWhitney {
        u,
        effect: u / (n_c * n_p),
        z,
        p_slower,
    })
}

/// P(Z > z) for a standard normal Z: erfc(z / √2) / 2, with erfc from its Chebyshev fit
/// (fractional error below 1.2e-7 everywhere).
pub fn normal_upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests;
