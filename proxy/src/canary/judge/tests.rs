//! Tests of the judge: each threshold on its own (traffic, errors absolute and relative to the
//! primary, latency by rank test, diff rate), and the Mann-Whitney test and normal tail it
//! rests on, checked against textbook values.

use super::*;
use crate::canary::window::SideWindow;
use std::time::Duration;

fn config(min_requests: u64) -> JudgeConfig {
    JudgeConfig {
        min_requests,
        ..JudgeConfig::default()
    }
}

/// `n` requests, `errors` of them failed, answered ones spread evenly over
/// `base_us ..= base_us × 2`.
fn side(n: u64, errors: u64, base_us: u64) -> SideWindow {
    let mut w = SideWindow::default();
    for i in 0..n {
        let failed = i < errors;
        let latency = base_us + base_us * (i * 7_919 % n) / n;
        w.record(failed, (!failed).then(|| Duration::from_micros(latency)));
    }
    w
}

fn window(primary: SideWindow, candidate: SideWindow) -> PairWindow {
    PairWindow { primary, candidate }
}

fn reason(d: &Decision, metric: Metric) -> &Reason {
    d.reasons.iter().find(|r| r.metric == metric).unwrap()
}

#[test]
fn a_healthy_candidate_passes() {
    let d = judge(
        &window(side(5_000, 10, 2_000), side(1_000, 2, 2_000)),
        Some(DiffWindow {
            compared: 800,
            different: 1,
        }),
        &config(500),
    );
    assert_eq!(d.verdict, Verdict::Pass, "{d:#?}");
    assert!(d.reasons.iter().all(|r| r.ok));
    assert_eq!(d.reasons.len(), 6);
    assert!(
        d.summary().starts_with("all checks passed"),
        "{}",
        d.summary()
    );
}

#[test]
fn too_little_traffic_is_inconclusive_whatever_the_errors() {
    let d = judge(
        &window(side(5_000, 0, 2_000), side(499, 499, 2_000)),
        None,
        &config(500),
    );
    assert_eq!(d.verdict, Verdict::Inconclusive);
    assert_eq!(d.reasons.len(), 1);
    assert_eq!(d.reasons[0].metric, Metric::Requests);
    assert_eq!(d.reasons[0].candidate, 499.0);
    assert!(
        d.summary().contains("< min_requests 500"),
        "{}",
        d.summary()
    );
}

#[test]
fn errors_above_the_absolute_limit_fail() {
    let d = judge(
        &window(side(5_000, 0, 2_000), side(1_000, 50, 2_000)),
        None,
        &config(500),
    );
    assert_eq!(d.verdict, Verdict::Fail);
    let r = reason(&d, Metric::ErrorRate);
    assert!(!r.ok);
    assert_eq!(r.candidate, 0.05);
    assert_eq!(r.threshold, 0.01);
    assert!(
        d.summary()
            .contains("error_rate 5.00% (50 of 1000) > 1.00%"),
        "{}",
        d.summary()
    );
}

#[test]
fn errors_are_judged_relative_to_the_primary_too() {
    let mut c = config(500);
    c.max_error_rate = crate::units::Percent::new(5.0).unwrap();
    // 0.8% vs 0.1%: under the absolute 5%, but 0.7 points worse than the primary.
    let d = judge(
        &window(side(5_000, 5, 2_000), side(1_000, 8, 2_000)),
        None,
        &c,
    );
    assert_eq!(d.verdict, Verdict::Fail);
    assert!(reason(&d, Metric::ErrorRate).ok);
    let delta = reason(&d, Metric::ErrorDelta);
    assert!(!delta.ok);
    assert_eq!(delta.primary, Some(0.001));
    // 3% vs 2.8%: a primary that fails as often excuses the candidate.
    let d = judge(
        &window(side(5_000, 140, 2_000), side(1_000, 30, 2_000)),
        None,
        &c,
    );
    assert_eq!(d.verdict, Verdict::Pass, "{d:#?}");
}

#[test]
fn a_latency_shift_fails_on_the_distribution_and_the_p99() {
    let d = judge(
        &window(side(5_000, 0, 2_000), side(1_000, 0, 3_000)),
        None,
        &config(500),
    );
    assert_eq!(d.verdict, Verdict::Fail);
    let shift = reason(&d, Metric::LatencyShift);
    assert!(!shift.ok);
    assert!(shift.candidate > 0.7, "{shift:?}");
    let p99 = reason(&d, Metric::LatencyP99);
    assert!(!p99.ok);
    assert!((p99.candidate / p99.primary.unwrap() - 1.5).abs() < 0.01);
}

#[test]
fn a_shift_in_the_body_alone_fails_the_rank_test() {
    // Same tail, but most candidate requests are slower: the p99 alone would pass.
    let primary = side(5_000, 0, 2_000);
    let mut candidate = SideWindow::default();
    for i in 0..1_000u64 {
        let us = if i % 100 == 0 { 4_000 } else { 3_000 + i % 900 };
        candidate.record(false, Some(Duration::from_micros(us)));
    }
    let d = judge(&window(primary, candidate), None, &config(500));
    assert!(reason(&d, Metric::LatencyP99).ok, "{d:#?}");
    assert!(!reason(&d, Metric::LatencyShift).ok, "{d:#?}");
    assert_eq!(d.verdict, Verdict::Fail);
}

#[test]
fn a_tiny_shift_at_huge_volume_does_not_fail() {
    // 1% slower: significant at this volume, but far below the effect guard.
    let d = judge(
        &window(side(200_000, 0, 2_000), side(200_000, 0, 2_020)),
        None,
        &config(500),
    );
    let shift = reason(&d, Metric::LatencyShift);
    assert!(shift.ok, "{shift:?}");
    let test = mann_whitney(
        &side(200_000, 0, 2_020).latency,
        &side(200_000, 0, 2_000).latency,
    )
    .unwrap();
    assert!(test.p_slower < 0.01 && test.effect < 0.55, "{test:?}");
    assert_eq!(d.verdict, Verdict::Pass, "{d:#?}");
}

#[test]
fn the_diff_rate_fails_when_enough_pairs_differ() {
    let w = window(side(5_000, 0, 2_000), side(1_000, 0, 2_000));
    let diff = |compared, different| {
        Some(DiffWindow {
            compared,
            different,
        })
    };
    let d = judge(&w, diff(1_000, 20), &config(500));
    assert_eq!(d.verdict, Verdict::Fail);
    assert!(!reason(&d, Metric::DiffRate).ok);
    let d = judge(&w, diff(100, 20), &config(500));
    assert_eq!(d.verdict, Verdict::Pass);
    assert!(reason(&d, Metric::DiffRate).detail.contains("not judged"));
}

#[test]
fn without_primary_traffic_only_absolute_checks_are_made() {
    let d = judge(
        &window(side(3, 3, 2_000), side(1_000, 2, 9_000)),
        None,
        &config(500),
    );
    assert_eq!(d.verdict, Verdict::Pass, "{d:#?}");
    assert!(reason(&d, Metric::ErrorDelta).detail.contains("not judged"));
    assert!(reason(&d, Metric::LatencyP99).detail.contains("not judged"));
}

fn histogram(values_us: &[u64]) -> Histogram<u64> {
    let mut h = twinpeak_core::new_latency_histogram();
    for v in values_us {
        h.record(*v).unwrap();
    }
    h
}

#[test]
fn mann_whitney_matches_the_textbook() {
    // Fully separated samples of 5: U = 25, z = (25 − 12.5 − 0.5) / √(25 × 11 / 12).
    let slow = histogram(&[6_000, 7_000, 8_000, 9_000, 10_000]);
    let fast = histogram(&[1_000, 2_000, 3_000, 4_000, 5_000]);
    let t = mann_whitney(&slow, &fast).unwrap();
    assert_eq!(t.u, 25.0);
    assert_eq!(t.effect, 1.0);
    assert!((t.z - 2.5067).abs() < 1e-3, "{t:?}");
    assert!((t.p_slower - 0.00609).abs() < 1e-4, "{t:?}");
    // The other way round: no evidence the (faster) candidate is slower.
    let t = mann_whitney(&fast, &slow).unwrap();
    assert_eq!(t.effect, 0.0);
    assert!(t.p_slower > 0.99);
    // Identical samples: no shift.
    let t = mann_whitney(&fast, &fast).unwrap();
    assert_eq!(t.effect, 0.5);
    assert!((t.p_slower - 0.5).abs() < 0.05, "{t:?}");
}

#[test]
fn mann_whitney_corrects_for_ties() {
    // Every value tied: the variance is zero and nothing is significant.
    let a = histogram(&[1_000; 50]);
    let t = mann_whitney(&a, &histogram(&[1_000; 80])).unwrap();
    assert_eq!(t.effect, 0.5);
    assert_eq!(t.p_slower, 0.5);
    // Two tied groups: candidate [1,1,2,2], primary [1,1,1,2] (ms). The five 1s share
    // rank 3, the three 2s rank 7.
    let c = histogram(&[1_000, 1_000, 2_000, 2_000]);
    let p = histogram(&[1_000, 1_000, 1_000, 2_000]);
    let t = mann_whitney(&c, &p).unwrap();
    // R_c = 3 + 3 + 7 + 7 = 20; U = 20 − 10 = 10; effect 10 / 16.
    assert_eq!(t.u, 10.0);
    assert_eq!(t.effect, 0.625);
    // Tie-corrected variance: 16/12 × (9 − (120 + 24) / 56).
    let variance: f64 = 16.0 / 12.0 * (9.0 - 144.0 / 56.0);
    assert!(
        (t.z - (10.0 - 8.0 - 0.5) / variance.sqrt()).abs() < 1e-9,
        "{t:?}"
    );
    assert!(mann_whitney(&c, &histogram(&[])).is_none());
}

#[test]
fn normal_tail_is_accurate() {
    assert!((normal_upper_tail(0.0) - 0.5).abs() < 1e-7);
    assert!((normal_upper_tail(1.959_964) - 0.025).abs() < 1e-6);
    assert!((normal_upper_tail(2.326_348) - 0.01).abs() < 1e-6);
    assert!((normal_upper_tail(-1.644_854) - 0.95).abs() < 1e-6);
    assert!(normal_upper_tail(40.0) < 1e-300);
}
