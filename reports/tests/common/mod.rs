//! Synthetic records with known figures: a holiday-peak run in which the legacy system answers
//! at a p99 of about 3,840 ms and fails 2.5% of requests, and the rebuilt one answers at about
//! 117 ms and fails 0.9%; and a proxy snapshot of both behind the proxy, with or without a
//! canary history.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use twinpeak_core::run::Arrivals;
use twinpeak_core::timestamp::rfc3339;
use twinpeak_core::{
    record_saturating, CanaryDecision, CanaryHistory, CanaryReason, CanaryStep, DiffSummary,
    FieldSummary, PhaseRecord, RouteSnapshot, RunRecord, RunTarget, SloRecord, Snapshot,
    TimelinePoint,
};

/// Requests sent per second in every phase.
pub const RPS: u64 = 50;

/// The scenario's phases: name, seconds, and its own p99 limit in ms if any.
pub const PHASES: [(&str, u64, Option<f64>); 3] = [
    ("warmup", 60, None),
    ("peak", 120, None),
    ("spike", 30, Some(400.0)),
];

/// Run-wide SLO: p99 ≤ 200 ms and at most 1% errors.
pub const P99_LIMIT_MS: f64 = 200.0;
pub const ERROR_LIMIT_PCT: f64 = 1.0;

pub fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_320_400 + secs)
}

/// Interpolates between the points of a quantile function `(u, ms)` at `u`.
fn quantile_ms(points: &[(f64, f64)], u: f64) -> f64 {
    for pair in points.windows(2) {
        let ((u0, v0), (u1, v1)) = (pair[0], pair[1]);
        if u <= u1 {
            return v0 + (v1 - v0) * (u - u0) / (u1 - u0);
        }
    }
    points.last().unwrap().1
}

/// The legacy system's latency: p50 ≈ 600 ms, p99 ≈ 3,840 ms, max ≈ 9 s.
pub const LEGACY: [(f64, f64); 6] = [
    (0.0, 200.0),
    (0.5, 600.0),
    (0.95, 1_500.0),
    (0.99, 3_840.0),
    (0.999, 6_000.0),
    (1.0, 9_000.0),
];

/// The rebuilt system's latency: p50 ≈ 45 ms, p99 ≈ 117 ms, max ≈ 400 ms.
pub const REBUILT: [(f64, f64); 6] = [
    (0.0, 20.0),
    (0.5, 45.0),
    (0.95, 90.0),
    (0.99, 117.0),
    (0.999, 180.0),
    (1.0, 400.0),
];

/// Failed requests per thousand: 2.5% for legacy, 0.9% for rebuilt.
pub fn errors_per_mille(target: &str) -> u64 {
    if target == "legacy" {
        25
    } else {
        9
    }
}

/// A phase of `target`, with the requests whose index `i` satisfies `keep(i)`.
fn phase(
    target: &str,
    name: &str,
    offset_s: u64,
    seconds: u64,
    keep: &dyn Fn(u64) -> bool,
) -> PhaseRecord {
    let curve: &[(f64, f64)] = if target == "legacy" {
        &LEGACY
    } else {
        &REBUILT
    };
    let n = seconds * RPS;
    let mut phase = PhaseRecord {
        name: name.to_owned(),
        target: target.to_owned(),
        started_at: rfc3339(at(offset_s)),
        ended_at: rfc3339(at(offset_s + seconds)),
        duration_s: seconds as f64,
        intended_rps: RPS as f64,
        achieved_rps: RPS as f64,
        ..PhaseRecord::default()
    };
    let mut kept = 0;
    for i in 0..n {
        if !keep(i) {
            continue;
        }
        kept += 1;
        // Spread the quantile function evenly, in an order that mixes the requests.
        let u = ((i * 7_919) % n) as f64 / n as f64 + 0.5 / n as f64;
        let ms = quantile_ms(curve, u);
        let request = phase
            .requests
            .entry(if i % 3 == 0 { "book" } else { "search" }.to_owned())
            .or_default();
        request.sent += 1;
        let corrected_us = (ms * 1_000.0) as u64;
        record_saturating(&mut request.corrected_us, corrected_us);
        let raw_us = if target == "legacy" && name == "spike" {
            corrected_us / 2
        } else {
            corrected_us * 98 / 100
        };
        record_saturating(&mut request.raw_us, raw_us);
        let failed = (i * 7_919) % 1_000 < errors_per_mille(target);
        let status = if failed { "503" } else { "200" };
        *request.status.entry(status.to_owned()).or_default() += 1;
        if failed {
            *request.errors.entry("status".to_owned()).or_default() += 1;
        }
    }
    let share = kept as f64 / n as f64;
    phase.intended_rps *= share;
    phase.achieved_rps *= share;
    phase.users = 64;
    phase.late_limit_ms = 100.0;
    for i in 0..kept {
        // The generator's own lag: 20 µs to about a millisecond.
        record_saturating(&mut phase.lag_us, 20 + (i * 7_919) % 1_000);
    }
    if target == "legacy" && name == "spike" {
        // The generator fell behind: it dropped arrivals while users were free.
        phase.achieved_rps *= 0.9;
        phase.dropped = (120.0 * share).round() as u64;
        phase.dropped_by_generator = phase.dropped;
    }
    phase.timeline = (0..seconds)
        .map(|s| {
            let second = offset_s + s;
            // Legacy keeps its SLO only while warming up; rebuilt slips for 3 seconds of peak.
            let (p99_ms, errors) = match (target, name) {
                ("legacy", "warmup") => (150.0, 0),
                ("legacy", _) => (3_840.0, 2),
                (_, "peak") if s < 3 => (117.0, 4),
                _ => (117.0, 0),
            };
            TimelinePoint {
                t_s: second as f64,
                target: target.to_owned(),
                intended_rps: RPS as f64 * share,
                achieved_rps: RPS as f64 * share,
                p99_us: (p99_ms * 1_000.0) as u64,
                errors,
                requests: (RPS as f64 * share).round() as u64,
                dropped: 0,
                latency_us: None,
            }
        })
        .collect();
    phase
}

/// The verdicts the load harness would record for `record`'s `target`.
pub fn verdicts(record: &RunRecord, target: &str) -> Vec<SloRecord> {
    let mut out = Vec::new();
    let mut all = Arrivals::default();
    let mut judge = |scope: &str, p99_limit: f64, arrivals: &Arrivals| {
        let p99 = arrivals.latency(Some(0.99)).unwrap();
        let rate = arrivals.error_rate().unwrap() * 100.0;
        for (metric, limit, actual, unit, lower_bound) in [
            (
                "p99",
                p99_limit,
                p99.us() as f64 / 1_000.0,
                "ms",
                p99.is_lower_bound(),
            ),
            ("error_rate", ERROR_LIMIT_PCT, rate, "%", false),
        ] {
            out.push(SloRecord {
                scope: scope.to_owned(),
                target: target.to_owned(),
                metric: metric.to_owned(),
                limit,
                actual,
                unit: unit.to_owned(),
                pass: actual <= limit && !lower_bound,
                reason: None,
                lower_bound,
            });
        }
    };
    for (name, _, own) in PHASES {
        let arrivals = Arrivals::of_phase(record.phase(name, target).unwrap()).unwrap();
        all.add(&arrivals).unwrap();
        if let Some(limit) = own {
            judge(&format!("phase {name}"), limit, &arrivals);
        }
    }
    judge("run", P99_LIMIT_MS, &all);
    out
}

/// A run of the scenario against `targets`, one after the other, with the requests `keep`
/// selects (all for one load worker, a share for one of several), scaled by `scale`.
pub fn run_of(targets: &[&str], keep: &dyn Fn(u64) -> bool, scale: f64) -> RunRecord {
    let versions = BTreeMap::from([
        ("twinpeak".to_owned(), "0.1.0".to_owned()),
        ("legacy".to_owned(), "2019.4".to_owned()),
        ("rebuilt".to_owned(), "1.0.0-rc.2".to_owned()),
    ]);
    let mut record = RunRecord::new(
        "holiday-peak",
        "3f5a9c0d1e2b4a6f8c7d9e0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678a",
        42,
        scale,
        at(0),
        versions,
    );
    record.ended_at = rfc3339(at(420));
    for (i, target) in targets.iter().enumerate() {
        record.targets.push(RunTarget {
            name: (*target).to_owned(),
            url: format!("http://127.0.0.1:{}", 9001 + i),
            ..RunTarget::default()
        });
        let mut offset = 0;
        for (name, seconds, _) in PHASES {
            record
                .phases
                .push(phase(target, name, offset, seconds, keep));
            offset += seconds;
        }
    }
    for target in targets {
        let slo = verdicts(&record, target);
        record.slo.extend(slo);
    }
    record
}

/// The whole run against legacy and rebuilt.
pub fn holiday_run() -> RunRecord {
    run_of(&["legacy", "rebuilt"], &|_| true, 1.0)
}

/// A proxy snapshot: three routes, the shadow about 60% faster, some answers differing.
pub fn proxy_snapshot() -> Snapshot {
    let mut snapshot = Snapshot::new(
        "9b1d2c3e4f5061728394a5b6c7d8e9f00112233445566778899aabbccddeeff0",
        at(0),
        BTreeMap::from([("twinpeak".to_owned(), "0.1.0".to_owned())]),
    );
    snapshot.taken_at = rfc3339(at(600));
    for (route, requests, base_ms) in [
        ("/partners", 6_000u64, 220.0),
        ("/bookings/{id}", 3_000, 90.0),
        ("other", 400, 40.0),
    ] {
        let mut r = RouteSnapshot::default();
        for i in 0..requests {
            let u = ((i * 7_919) % requests) as f64 / requests as f64;
            let primary_us = (base_ms * (0.5 + 2.0 * u * u) * 1_000.0) as u64;
            let shadow_us = primary_us * (30 + (i * 37) % 30) / 100;
            r.primary.requests += 1;
            let class = if i % 97 == 0 { "5xx" } else { "2xx" };
            *r.primary
                .status_classes
                .entry(class.to_owned())
                .or_default() += 1;
            record_saturating(&mut r.primary.latency_us, primary_us);
            record_saturating(&mut r.primary.ttfb_us, primary_us / 2);
            if i % 4 == 0 {
                r.shadow.requests += 1;
                *r.shadow.status_classes.entry("2xx".to_owned()).or_default() += 1;
                record_saturating(&mut r.shadow.latency_us, shadow_us);
                record_saturating(&mut r.shadow.ttfb_us, shadow_us / 2);
                r.delta.record_pair(primary_us, shadow_us);
                *r.mirror.entry("sent".to_owned()).or_default() += 1;
            } else {
                *r.mirror.entry("not_sampled".to_owned()).or_default() += 1;
            }
        }
        let compared = requests / 4;
        let different = compared / 50;
        r.diff = Some(DiffSummary {
            compared,
            identical: compared - different - compared / 10,
            different,
            noise_only: compared / 10,
            reference_compared: compared / 2,
            fields: vec![field(
                "$.price.amount",
                "value_changed",
                different,
                compared,
            )],
            noise: vec![FieldSummary {
                suggested_ignore: Some("$.generated_at".to_owned()),
                reference_count: compared / 2,
                reference_rate: Some(1.0),
                ..field("$.generated_at", "value_changed", compared / 10, compared)
            }],
            ..DiffSummary::default()
        });
        snapshot.routes.insert(route.to_owned(), r);
    }
    snapshot
}

fn field(path: &str, kind: &str, count: u64, compared: u64) -> FieldSummary {
    FieldSummary {
        path: path.to_owned(),
        kind: kind.to_owned(),
        count,
        rate: count as f64 / compared as f64,
        reference_count: 0,
        reference_rate: None,
        first_seen: rfc3339(at(10)),
        last_seen: rfc3339(at(590)),
        suggested_ignore: None,
    }
}

/// The proxy snapshot with a canary history: started at 1%, advanced to 5% at 2:00 and to 25%
/// at 5:00 (an operator paused and resumed it in between), then rolled back at 7:00 (09:07 UTC)
/// when its error rate reached 5.1% against a 1% limit.
pub fn canary_snapshot() -> Snapshot {
    let mut snapshot = proxy_snapshot();
    let entry = |secs: u64, decision: &str, by: &str, weight: f64, summary: &str| CanaryDecision {
        at: rfc3339(at(secs)),
        decision: decision.to_owned(),
        by: by.to_owned(),
        weight,
        step: Some(0),
        summary: summary.to_owned(),
        reasons: Vec::new(),
    };
    let verdict = |secs: u64, decision: &str, weight: f64, rate: f64| {
        let ok = rate <= 0.01;
        CanaryDecision {
            reasons: vec![
                CanaryReason {
                    metric: "requests".to_owned(),
                    candidate: 400.0,
                    primary: Some(9_600.0),
                    threshold: 100.0,
                    ok: true,
                    detail: "400 candidate and 9600 primary requests".to_owned(),
                },
                CanaryReason {
                    metric: "error_rate".to_owned(),
                    candidate: rate,
                    primary: None,
                    threshold: 0.01,
                    ok,
                    detail: format!(
                        "error_rate {:.2}% {} 1.00%",
                        rate * 100.0,
                        if ok { "<=" } else { ">" }
                    ),
                },
                CanaryReason {
                    metric: "error_delta".to_owned(),
                    candidate: rate,
                    primary: Some(0.005),
                    threshold: 0.015,
                    ok: rate <= 0.015,
                    detail: "error_delta".to_owned(),
                },
            ],
            ..entry(secs, decision, "judge", weight, "judged")
        }
    };
    snapshot.canary = Some(CanaryHistory {
        state: "rolled_back".to_owned(),
        weight: 0.0,
        step: Some(2),
        ramp: [1.0, 5.0, 25.0, 100.0]
            .into_iter()
            .map(|weight| CanaryStep {
                weight,
                hold_seconds: (weight < 100.0).then_some(120.0),
            })
            .collect(),
        decisions: vec![
            entry(0, "start", "config", 1.0, "start: weight 1 (step 1 of 4)"),
            CanaryDecision {
                reasons: vec![CanaryReason {
                    metric: "requests".to_owned(),
                    candidate: 40.0,
                    primary: Some(3_960.0),
                    threshold: 100.0,
                    ok: false,
                    detail: "too little traffic: 40 candidate requests < min_requests 100"
                        .to_owned(),
                }],
                ..entry(60, "inconclusive", "judge", 1.0, "too little traffic")
            },
            verdict(120, "pass", 1.0, 0.002),
            entry(
                120,
                "advance",
                "judge",
                5.0,
                "advance: weight 1 → 5 (step 2 of 4) after a hold with passing verdicts",
            ),
            entry(
                180,
                "pause",
                "admin (127.0.0.1)",
                5.0,
                "admin (127.0.0.1): paused",
            ),
            entry(
                200,
                "resume",
                "admin (127.0.0.1)",
                5.0,
                "admin (127.0.0.1): resumed",
            ),
            verdict(300, "pass", 5.0, 0.004),
            entry(
                300,
                "advance",
                "judge",
                25.0,
                "advance: weight 5 → 25 (step 3 of 4) after a hold with passing verdicts",
            ),
            verdict(420, "fail", 25.0, 0.051),
            entry(
                420,
                "rollback",
                "judge",
                0.0,
                "rollback: weight 25 → 0 after a failing interval: error_rate 5.10% > 1.00%",
            ),
        ],
    });
    snapshot
}
