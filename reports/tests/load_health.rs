//! Who fell behind, in the report: a system that could not take its arrivals is named as
//! saturated and judged on them; a generator that was late is named as such, and its lateness is
//! not blamed on the system.

mod common;

use std::path::PathBuf;

use common::{holiday_run, run_of, verdicts};
use twinpeak_core::RunRecord;
use twinpeak_reports::report::{Input, Report, Summary};

fn report_of(files: Vec<(&str, RunRecord)>) -> Report {
    let inputs = files
        .into_iter()
        .map(|(name, run)| (PathBuf::from(name), Input::Run(run)))
        .collect();
    Report::build(inputs).unwrap()
}

/// The holiday run in which legacy could not take 1,000 arrivals of its spike (every user
/// busy) and queued 200 more, with the verdicts the harness would record for it.
fn saturated_run(keep: &dyn Fn(u64) -> bool, scale: f64) -> RunRecord {
    let mut run = run_of(&["legacy", "rebuilt"], keep, scale);
    let spike = run
        .phases
        .iter_mut()
        .find(|p| p.name == "spike" && p.target == "legacy")
        .unwrap();
    spike.dropped = (1_000.0 * scale) as u64;
    spike.dropped_by_generator = 0;
    spike.queued = (200.0 * scale) as u64;
    run.slo = ["legacy", "rebuilt"]
        .iter()
        .flat_map(|t| verdicts(&run, t))
        .collect();
    run
}

fn health_of<'a>(
    s: &'a Summary,
    phase: &str,
    target: &str,
) -> &'a twinpeak_reports::report::HealthRow {
    s.health
        .iter()
        .find(|h| h.phase == phase && h.target == target)
        .unwrap()
}

#[test]
fn a_saturated_system_is_named_and_judged_on_the_arrivals_it_could_not_take() {
    let report = report_of(vec![("run.json", saturated_run(&|_| true, 1.0))]);
    let s = report.summary();
    let spike = health_of(s, "spike", "legacy");
    let saturated = spike.saturated.as_deref().expect("named as saturated");
    assert!(
        saturated.starts_with("saturated: 1,000 of 1,500 arrivals (66.7%) could not be sent"),
        "{saturated}"
    );
    assert!(
        spike.warnings.is_empty(),
        "not the generator's: {:?}",
        spike.warnings
    );
    assert_eq!(
        (spike.dropped_by_target.value, spike.queued.value),
        (1_000.0, 200.0)
    );
    let text = s.headline.summary.join(" ");
    assert!(
        text.contains(
            "Saturated: every load user was busy waiting for legacy in spike (1,000 of its \
             arrivals could not be sent)"
        ),
        "{text}"
    );
    assert!(!text.contains("generator fell behind"), "{text}");

    // 1,000 of 11,500 arrivals not taken: legacy's p99 and p95 are lower bounds, its p50 is not.
    let row = |key: &str| s.headline.rows.iter().find(|r| r.key == key).unwrap();
    let p99 = row("p99");
    let before = p99.before.as_ref().unwrap();
    assert!(
        before.lower_bound && before.text.starts_with("> "),
        "{before:?}"
    );
    assert!(p99.change.is_none(), "a bound is not compared");
    assert!(row("p95").before.as_ref().unwrap().lower_bound);
    assert!(!row("p50").before.as_ref().unwrap().lower_bound);
    assert!(row("p50").change.is_some());
    let errors = row("error_rate").before.as_ref().unwrap();
    assert!(
        errors.value > 8.0,
        "arrivals not taken count as errors: {errors:?}"
    );

    // Its SLO verdicts on p99 fail on the bound, run-wide and in the spike.
    for scope in ["run", "phase spike"] {
        let slo = s
            .slo
            .iter()
            .find(|r| r.scope == scope && r.metric == "p99")
            .unwrap();
        let cell = slo.before.as_ref().unwrap();
        assert!(
            !cell.pass && cell.text.starts_with("> "),
            "{scope}: {cell:?}"
        );
        assert_eq!(cell.margin, "among arrivals it could not take");
    }
    let dir = tempfile::tempdir().unwrap();
    let written = report.write(dir.path()).unwrap();
    let markdown = std::fs::read_to_string(written.markdown).unwrap();
    assert!(markdown.contains("saturated: 1,000 of 1,500"), "{markdown}");
    let html = std::fs::read_to_string(written.html).unwrap();
    assert!(html.contains("system saturated"));
    assert!(html.contains("&gt; "), "a bound shows as one");
}

#[test]
fn merged_workers_are_judged_as_the_whole_on_their_drops() {
    let whole = report_of(vec![("run.json", saturated_run(&|_| true, 1.0))]);
    let merged = report_of(vec![
        ("worker-0.json", saturated_run(&|i| i % 2 == 0, 0.5)),
        ("worker-1.json", saturated_run(&|i| i % 2 == 1, 0.5)),
    ]);
    let (w, m) = (whole.summary(), merged.summary());
    assert_eq!(
        health_of(m, "spike", "legacy").dropped_by_target.value,
        1_000.0
    );
    for (a, b) in m.slo.iter().zip(&w.slo) {
        let (a, b) = (a.before.as_ref().unwrap(), b.before.as_ref().unwrap());
        assert_eq!(
            (a.pass, &a.text),
            (b.pass, &b.text),
            "re-evaluated as recorded"
        );
        assert_eq!(a.origin, "re-evaluated");
    }
    let p99 = |s: &Summary| {
        let row = s.headline.rows.iter().find(|r| r.key == "p99").unwrap();
        row.before.as_ref().unwrap().text.clone()
    };
    assert_eq!(p99(m), p99(w));
}

#[test]
fn a_late_generator_is_named_and_not_blamed_on_the_system() {
    let report = report_of(vec![("run.json", holiday_run())]);
    let s = report.summary();
    let spike = health_of(s, "spike", "legacy");
    assert_eq!(spike.dropped_by_generator.value, 120.0);
    assert_eq!(spike.dropped_by_target.value, 0.0);
    assert!(spike.saturated.is_none());
    assert!(
        spike
            .warnings
            .iter()
            .any(|w| w == "120 arrivals dropped while a load user was free: the generator was late"),
        "{:?}",
        spike.warnings
    );
    let lag = spike
        .lag_p99
        .as_ref()
        .expect("the generator's own lag is shown");
    assert!(lag.value > 0.9 && lag.value < 1.1, "{lag:?}");
    let p99 = s.headline.rows.iter().find(|r| r.key == "p99").unwrap();
    assert!(!p99.before.as_ref().unwrap().lower_bound);
    let text = s.headline.summary.join(" ");
    assert!(!text.contains("Saturated"), "{text}");
}
