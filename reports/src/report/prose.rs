//! The plain-language summary at the top of the report, written from the figures alone, so it
//! can never say what the numbers do not.

use super::format;
use super::model::{
    CanaryReasonRow, CanaryView, Column, DiffView, HeadlineRow, HealthRow, Outcome, SloRow,
};
use crate::timestamp::parse_rfc3339;

/// What the summary is written from.
pub(super) struct Facts<'a> {
    /// The before system.
    pub before: &'a Column,
    /// The after system, if two were measured.
    pub after: Option<&'a Column>,
    /// Whether the latencies come from a proxy snapshot rather than a load run.
    pub mirrored: bool,
    /// The headline rows.
    pub rows: &'a [HeadlineRow],
    /// The SLO verdicts.
    pub slo: &'a [SloRow],
    /// The generator's health.
    pub health: &'a [HealthRow],
    /// The comparison of answers.
    pub diff: Option<&'a DiffView>,
    /// The canary's history.
    pub canary: Option<&'a CanaryView>,
}

impl Facts<'_> {
    fn row(&self, key: &str) -> Option<&HeadlineRow> {
        self.rows.iter().find(|r| r.key == key)
    }

    /// How the after system is named in a sentence's subject.
    fn subject(&self, after: &Column) -> String {
        if self.mirrored {
            "On mirrored traffic, the shadow".to_owned()
        } else {
            format!("The {} system", after.name)
        }
    }

    /// How the before system is named in a sentence.
    fn reference(&self) -> String {
        if self.mirrored {
            "the primary".to_owned()
        } else {
            format!("the {} system", self.before.name)
        }
    }
}

/// A few sentences that say what the figures show.
pub(super) fn summary(facts: &Facts<'_>) -> Vec<String> {
    let mut sentences = Vec::new();
    match facts.after {
        Some(after) => {
            let latency = latency_clause(facts);
            let errors = error_clause(facts);
            let mut body = String::new();
            if let Some((clause, _)) = &latency {
                body.push_str(clause);
            }
            if let Some((clause, e)) = &errors {
                if let Some((_, l)) = &latency {
                    body.push_str(if contrasts(*l, *e) { " but " } else { " and " });
                }
                body.push_str(clause);
            }
            let slo = slo_clause(facts);
            if !body.is_empty() {
                let mut first = format!("{} {body}", facts.subject(after));
                if let Some(slo) = slo {
                    first.push_str("; ");
                    first.push_str(&slo);
                }
                sentences.push(first);
            } else {
                sentences.extend(slo);
            }
            sentences.extend(throughput_sentence(facts));
            sentences.extend(compliance_sentence(facts));
        }
        None => sentences.extend(single_system(facts)),
    }
    sentences.extend(diff_sentence(facts));
    sentences.extend(canary_sentence(facts));
    sentences.extend(health_sentence(facts));
    sentences.into_iter().map(|s| finish(&s)).collect()
}

/// Whether two outcomes point in opposite directions.
fn contrasts(a: Outcome, b: Outcome) -> bool {
    matches!(
        (a, b),
        (Outcome::Better, Outcome::Worse) | (Outcome::Worse, Outcome::Better)
    )
}

/// `answered 97% faster at the 99th percentile (3,840 ms → 117 ms)`.
fn latency_clause(facts: &Facts<'_>) -> Option<(String, Outcome)> {
    let row = facts.row("p99")?;
    let (before, after, change) = (
        row.before.as_ref()?,
        row.after.as_ref()?,
        row.change.as_ref()?,
    );
    let how = match change.outcome {
        Outcome::Same => "about as fast".to_owned(),
        // From tenfold on, the factor says more than a percentage close to 100.
        Outcome::Better if before.value >= 10.0 * after.value && after.value > 0.0 => format!(
            "{} ({} quicker)",
            change.words,
            format::factor(before.value / after.value)
        ),
        Outcome::Better => change.words.clone(),
        Outcome::Worse => format!("{} slower", format::percent(change.amount)),
    };
    Some((
        format!(
            "answered {how} at the 99th percentile ({} → {})",
            before.text, after.text
        ),
        change.outcome,
    ))
}

/// `failed 63% fewer requests (2.41% → 0.89%)`, and the other cases.
fn error_clause(facts: &Facts<'_>) -> Option<(String, Outcome)> {
    let row = facts.row("error_rate")?;
    let (before, after, change) = (
        row.before.as_ref()?,
        row.after.as_ref()?,
        row.change.as_ref()?,
    );
    let reference = facts.reference();
    let clause = match (before.value == 0.0, after.value == 0.0) {
        (true, true) => format!("failed no requests, like {reference}"),
        (false, true) => format!(
            "failed no requests, where {reference} failed {}",
            before.text
        ),
        (true, false) => format!(
            "failed {} of its requests, where {reference} failed none",
            after.text
        ),
        (false, false) => match change.outcome {
            Outcome::Same => format!(
                "failed about as many requests ({} → {})",
                before.text, after.text
            ),
            outcome => format!(
                "failed {} {} requests ({} → {})",
                format::percent(change.amount),
                if outcome == Outcome::Better {
                    "fewer"
                } else {
                    "more"
                },
                before.text,
                after.text
            ),
        },
    };
    Some((clause, change.outcome))
}

/// `it met every SLO the legacy system missed`, and the other cases.
fn slo_clause(facts: &Facts<'_>) -> Option<String> {
    let judged: Vec<&SloRow> = facts.slo.iter().filter(|r| r.after.is_some()).collect();
    if judged.is_empty() {
        return None;
    }
    let n = judged.len();
    let failed = |cell: fn(&SloRow) -> Option<bool>| -> Vec<&SloRow> {
        judged
            .iter()
            .copied()
            .filter(|r| cell(r) == Some(false))
            .collect()
    };
    let after_missed = failed(|r| r.after.as_ref().map(|c| c.pass));
    let before_missed = failed(|r| r.before.as_ref().map(|c| c.pass));
    let reference = facts.reference();
    Some(match (after_missed.len(), before_missed.len()) {
        (0, 0) => format!("like {reference}, it met {}", every(n)),
        (0, k) if k == n => format!("it met every SLO {reference} missed ({})", slos(n)),
        (0, k) => format!("it met {}, including the {k} {reference} missed", every(n)),
        (missed, k) => {
            let list: Vec<String> = after_missed
                .iter()
                .map(|r| format!("{} over the {}", r.objective, r.applies_to))
                .collect();
            let others = match k {
                0 => format!("{reference} met them all"),
                k => format!("{reference} missed {k}"),
            };
            format!(
                "it missed {missed} of {} ({}); {others}",
                slos(n),
                list.join(", ")
            )
        }
    })
}

/// `all 4 SLOs`, `the one SLO`.
fn every(n: usize) -> String {
    if n == 1 {
        "the one SLO".to_owned()
    } else {
        format!("all {n} SLOs")
    }
}

/// `1 SLO`, `4 SLOs`.
fn slos(n: usize) -> String {
    if n == 1 {
        "1 SLO".to_owned()
    } else {
        format!("{n} SLOs")
    }
}

/// `It sustained 12% more throughput (1,980 → 2,218 req/s).`, when the difference matters.
fn throughput_sentence(facts: &Facts<'_>) -> Option<String> {
    let change = facts.row("throughput")?.change.as_ref()?;
    (change.unit == "%" && change.amount.abs() >= 5.0).then(|| {
        let (_, both) = change.text.split_once(' ').unwrap_or(("", &change.text));
        format!("It sustained {} {both}", change.words)
    })
}

/// `It stayed within the SLO 99% of the time, against 41% for the legacy system.`
fn compliance_sentence(facts: &Facts<'_>) -> Option<String> {
    let row = facts.row("slo_compliance")?;
    let (before, after) = (row.before.as_ref()?, row.after.as_ref()?);
    Some(format!(
        "It stayed within the SLO {} of the time, against {} for {}",
        after.text,
        before.text,
        facts.reference()
    ))
}

/// The figures of the one system measured.
fn single_system(facts: &Facts<'_>) -> Vec<String> {
    let mut parts = Vec::new();
    for (key, what) in [
        ("p99", "a p99 latency of"),
        ("error_rate", "an error rate of"),
        ("slo_compliance", "SLO compliance of"),
    ] {
        if let Some(figure) = facts.row(key).and_then(|r| r.before.as_ref()) {
            parts.push(format!("{what} {}", figure.text));
        }
    }
    let mut sentences = Vec::new();
    if !parts.is_empty() {
        sentences.push(format!(
            "Only the {} system was measured, with {}",
            facts.before.name,
            join(&parts)
        ));
    }
    let judged: Vec<&SloRow> = facts.slo.iter().filter(|r| r.before.is_some()).collect();
    if !judged.is_empty() {
        let missed = judged
            .iter()
            .filter(|r| r.before.as_ref().is_some_and(|c| !c.pass))
            .count();
        sentences.push(match missed {
            0 => format!("It met {}", every(judged.len())),
            m => format!("It missed {m} of {}", slos(judged.len())),
        });
    }
    sentences
}

/// `47 of 2,350 compared answers (2%) differed from the primary's, noise set aside`.
fn diff_sentence(facts: &Facts<'_>) -> Option<String> {
    let diff = facts.diff?;
    let compared = format::thousands(diff.compared);
    Some(if diff.different == 0 {
        format!("All {compared} compared answers matched the primary's, once noise was set aside")
    } else {
        format!(
            "{} of {compared} compared answers ({}) differed from the primary's, noise set aside",
            format::thousands(diff.different),
            diff.rate.text
        )
    })
}

/// `The canary reached 25% of live traffic and was rolled back once, at 14:02 UTC, when its
/// error rate reached 5.1% against a 1% limit`, and the other cases.
fn canary_sentence(facts: &Facts<'_>) -> Option<String> {
    let canary = facts.canary?;
    let state = canary.state.replace('_', " ");
    let now = format!("{state} at {}", canary.weight.text);
    let Some(rollback) = canary.last_rollback.as_ref() else {
        if canary.peak.value == 0.0 {
            return Some(format!(
                "The canary has not served live traffic; it is {now}"
            ));
        }
        let advances = match canary.advances.value as u64 {
            0 => String::new(),
            1 => " in 1 advance".to_owned(),
            n => format!(" in {n} advances"),
        };
        return Some(format!(
            "The canary reached {} of live traffic{advances} and is {now}",
            canary.peak.text
        ));
    };
    let times = match canary.rollbacks.value as u64 {
        0 | 1 => "once,".to_owned(),
        2 => "twice, last".to_owned(),
        n => format!("{n} times, last"),
    };
    let at = parse_rfc3339(&rollback.at)
        .map(|t| format!("{} UTC", format::time_of_day(t, false)))
        .unwrap_or_else(|| rollback.at.clone());
    let why = if !rollback.cause.is_empty() {
        let failed_rate = rollback.cause.iter().any(|r| r.metric == "error_rate");
        let clauses: Vec<String> = rollback
            .cause
            .iter()
            // The error delta restates a failed error rate against the primary's.
            .filter(|r| !(failed_rate && r.metric == "error_delta"))
            .map(reason_clause)
            .collect();
        format!("when {}", join(&clauses))
    } else if rollback.by == "judge" {
        "by the judge".to_owned()
    } else {
        format!("by {}", rollback.by)
    };
    let mut sentence = format!(
        "The canary reached {} of live traffic and was rolled back {times} at {at}, {why}",
        canary.peak.text
    );
    if canary.state != "rolled_back" {
        sentence.push_str(&format!("; it is now {now}"));
    }
    Some(sentence)
}

/// A failed check of the judge in words: `its error rate reached 5.1% against a 1% limit`.
fn reason_clause(r: &CanaryReasonRow) -> String {
    let (c, t) = (&r.candidate.text, &r.threshold.text);
    match (r.metric.as_str(), &r.primary) {
        ("error_rate", _) => format!("its error rate reached {c} against a {t} limit"),
        ("error_delta", Some(p)) => format!(
            "its error rate reached {c} against the primary's {}, above the {t} allowed",
            p.text
        ),
        ("latency_p99", Some(p)) => format!(
            "its p99 latency reached {c} against the primary's {}, above the {t} allowed",
            p.text
        ),
        ("latency_shift", _) => format!(
            "its answers were slower than the primary's (probability {c} against a {t} limit)"
        ),
        ("diff_rate", _) => {
            format!("{c} of its answers differed from the primary's, against a {t} limit")
        }
        ("requests", _) => format!("it served {c} requests against a minimum of {t}"),
        (metric, _) => format!("its {metric} reached {c} against a {t} limit"),
    }
}

/// Which systems were saturated, and a warning when the load generator fell behind anywhere:
/// told apart, since the first is a finding about the system and the second about the run.
fn health_sentence(facts: &Facts<'_>) -> Vec<String> {
    let mut sentences = Vec::new();
    let saturated: Vec<String> = facts
        .health
        .iter()
        .filter(|h| h.saturated.is_some())
        .map(|h| {
            format!(
                "{} in {} ({} of its arrivals could not be sent)",
                h.target, h.phase, h.dropped_by_target.text
            )
        })
        .collect();
    if !saturated.is_empty() {
        sentences.push(format!(
            "Saturated: every load user was busy waiting for {}; those arrivals count as failed \
             requests and as slower than every answer",
            join(&saturated)
        ));
    }
    let behind: Vec<String> = facts
        .health
        .iter()
        .filter(|h| !h.warnings.is_empty())
        .map(|h| format!("{} on {}", h.phase, h.target))
        .collect();
    if !behind.is_empty() {
        sentences.push(format!(
            "Caution: the load generator fell behind in {} of {} phase runs ({}); see the \
             generator's health in the report",
            behind.len(),
            facts.health.len(),
            behind.join(", ")
        ));
    }
    sentences
}

/// `a, b and c`.
fn join(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The sentence with its first letter in capitals and a full stop.
fn finish(sentence: &str) -> String {
    let mut chars = sentence.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}
