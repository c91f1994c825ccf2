//! The before/after report built from synthetic records with known figures.

mod common;

use std::fs;
use std::path::PathBuf;

use common::{canary_snapshot, holiday_run, proxy_snapshot, run_of, PHASES, RPS};
use twinpeak_core::{RunRecord, Snapshot};
use twinpeak_reports::report::{read_input, Input, Outcome, Report, ReportError, Summary};

fn run_input(name: &str, run: RunRecord) -> (PathBuf, Input) {
    (PathBuf::from(name), Input::Run(run))
}

fn snapshot_input(name: &str, snapshot: Snapshot) -> (PathBuf, Input) {
    (PathBuf::from(name), Input::Snapshot(snapshot))
}

fn holiday_report() -> Report {
    Report::build(vec![run_input("runs/holiday.json", holiday_run())]).unwrap()
}

fn row<'a>(summary: &'a Summary, key: &str) -> &'a twinpeak_reports::report::HeadlineRow {
    summary
        .headline
        .rows
        .iter()
        .find(|r| r.key == key)
        .unwrap_or_else(|| panic!("no headline row {key}"))
}

/// Sent and failed requests of `target` in `run`, counted from the records.
fn counts(run: &RunRecord, target: &str) -> (u64, u64) {
    run.phases
        .iter()
        .filter(|p| p.target == target)
        .map(|p| p.totals().unwrap())
        .fold((0, 0), |(s, e), t| (s + t.sent, e + t.error_total()))
}

#[test]
fn headline_compares_legacy_with_rebuilt() {
    let report = holiday_report();
    let s = report.summary();
    let h = report.headline();
    assert_eq!(h.before.label, "before (legacy)");
    assert_eq!(h.after.as_ref().unwrap().label, "after (rebuilt)");
    assert_eq!(s.title, "holiday-peak: legacy vs rebuilt");

    let p99 = row(s, "p99");
    let (before, after) = (p99.before.as_ref().unwrap(), p99.after.as_ref().unwrap());
    assert!(
        (before.value - 3_840.0).abs() < 3_840.0 * 0.01,
        "{before:?}"
    );
    assert!((after.value - 117.0).abs() < 117.0 * 0.01, "{after:?}");
    assert_eq!(before.unit, "ms");
    assert!(
        before.text.starts_with("3,8") && before.text.ends_with(" ms"),
        "{}",
        before.text
    );
    assert_eq!(after.text, "117 ms");
    let change = p99.change.as_ref().unwrap();
    let expected = (after.value / before.value - 1.0) * 100.0;
    assert!((change.amount - expected).abs() < 1e-9);
    assert_eq!(change.outcome, Outcome::Better);
    assert_eq!(change.words, "97% faster");
    assert_eq!(
        change.text,
        format!("−97% ({} → 117 ms)", before.text.trim_end_matches(" ms"))
    );
    assert_eq!(before.sources, ["runs/holiday.json"]);
    assert!(
        before.derivation.contains("corrected_us"),
        "{}",
        before.derivation
    );

    for key in ["p50", "p95", "p99", "p999", "max"] {
        let r = row(s, key);
        let (b, a) = (r.before.as_ref().unwrap(), r.after.as_ref().unwrap());
        assert!(a.value < b.value / 5.0, "{key}: {} vs {}", a.text, b.text);
    }
    let max = row(s, "max");
    assert!(max.before.as_ref().unwrap().value > 6_000.0);

    let errors = row(s, "error_rate");
    let run = holiday_run();
    for (figure, target) in [(&errors.before, "legacy"), (&errors.after, "rebuilt")] {
        let (sent, failed) = counts(&run, target);
        let want = failed as f64 / sent as f64 * 100.0;
        assert!((figure.as_ref().unwrap().value - want).abs() < 1e-9);
    }
    let change = errors.change.as_ref().unwrap();
    assert_eq!(change.outcome, Outcome::Better);
    assert!(change.text.starts_with('−') && change.text.contains('→'));

    let throughput = row(s, "throughput");
    let legacy_rps = throughput.before.as_ref().unwrap().value;
    let (sent, _) = counts(&run, "legacy");
    let seconds: u64 = PHASES.iter().map(|(_, s, _)| s).sum();
    assert!((legacy_rps - sent as f64 / seconds as f64).abs() < 1e-9);
    assert_eq!(
        throughput.before.as_ref().unwrap().text,
        format!("{RPS} req/s")
    );
    assert_eq!(throughput.change.as_ref().unwrap().outcome, Outcome::Same);
}

#[test]
fn slo_compliance_is_the_share_of_windows_within_the_slo() {
    let report = holiday_report();
    let compliance = row(report.summary(), "slo_compliance");
    // Legacy met its SLO only during the 60 s warm-up; rebuilt missed it for 3 s of peak.
    let (before, after) = (
        compliance.before.as_ref().unwrap(),
        compliance.after.as_ref().unwrap(),
    );
    assert!((before.value - 60.0 / 210.0 * 100.0).abs() < 1e-9);
    assert!((after.value - 207.0 / 210.0 * 100.0).abs() < 1e-9);
    assert_eq!(before.text, "28.6%");
    assert_eq!(after.text, "98.6%");
    assert_eq!(
        compliance.change.as_ref().unwrap().text,
        "+70 pp (28.6% → 98.6%)"
    );
    assert!(
        after.derivation.contains("207 of 210 windows"),
        "{}",
        after.derivation
    );
}

#[test]
fn slo_verdicts_say_pass_or_fail_and_by_how_much() {
    let report = holiday_report();
    let slo = &report.summary().slo;
    let scopes: Vec<(&str, &str)> = slo
        .iter()
        .map(|r| (r.applies_to.as_str(), r.metric.as_str()))
        .collect();
    assert_eq!(
        scopes,
        [
            ("whole run", "p99"),
            ("whole run", "error_rate"),
            ("phase spike", "p99"),
            ("phase spike", "error_rate"),
        ]
    );
    let p99 = &slo[0];
    assert_eq!(p99.objective, "p99 ≤ 200 ms");
    let (before, after) = (p99.before.as_ref().unwrap(), p99.after.as_ref().unwrap());
    assert!(!before.pass && after.pass);
    assert_eq!(before.margin, "19× the limit");
    assert!(after.margin.ends_with("% under"), "{}", after.margin);
    assert_eq!(before.origin, "recorded");
    assert!(slo.iter().all(|r| r.after.as_ref().unwrap().pass));
    assert!(slo.iter().all(|r| !r.before.as_ref().unwrap().pass));
}

#[test]
fn summary_sentences_follow_the_numbers() {
    let report = holiday_report();
    let text = report.headline().summary.join(" ");
    let p99 = row(report.summary(), "p99");
    let before = &p99.before.as_ref().unwrap().text;
    assert!(
        text.starts_with(&format!(
            "The rebuilt system answered 97% faster (33× quicker) at the 99th percentile \
             ({before} → 117 ms) and failed "
        )),
        "{text}"
    );
    assert!(text.contains("fewer requests"), "{text}");
    assert!(
        text.contains("it met every SLO the legacy system missed (4 SLOs)."),
        "{text}"
    );
    assert!(
        text.contains("within the SLO 98.6% of the time, against 28.6%"),
        "{text}"
    );
    // The legacy spike dropped arrivals and its corrected p99 is twice the raw one.
    assert!(
        text.contains(
            "Caution: the load generator fell behind in 1 of 6 phase runs (spike on legacy)"
        ),
        "{text}"
    );

    // Swap the systems: the words turn around with the numbers.
    let mut swapped = holiday_run();
    for phase in &mut swapped.phases {
        phase.target = if phase.target == "legacy" {
            "rebuilt"
        } else {
            "legacy"
        }
        .to_owned();
    }
    for slo in &mut swapped.slo {
        slo.target = if slo.target == "legacy" {
            "rebuilt"
        } else {
            "legacy"
        }
        .to_owned();
    }
    let report = Report::build(vec![run_input("swapped.json", swapped)]).unwrap();
    let text = report.headline().summary.join(" ");
    assert!(
        text.contains("answered 3,") && text.contains("% slower"),
        "{text}"
    );
    assert!(text.contains("more requests"), "{text}");
    assert!(text.contains("it missed 4 of 4 SLOs"), "{text}");
}

#[test]
fn health_flags_the_phase_where_the_generator_fell_behind() {
    let report = holiday_report();
    let health = &report.summary().health;
    assert_eq!(health.len(), 6);
    let spike = health
        .iter()
        .find(|h| h.phase == "spike" && h.target == "legacy")
        .unwrap();
    assert_eq!(spike.dropped.value, 120.0);
    assert_eq!(spike.achieved_share, "90%");
    assert_eq!(spike.gap, "2.00×");
    assert_eq!(spike.warnings.len(), 3, "{:?}", spike.warnings);
    assert!(health
        .iter()
        .filter(|h| !(h.phase == "spike" && h.target == "legacy"))
        .all(|h| h.warnings.is_empty()));
}

#[test]
fn merging_two_workers_adds_their_counts() {
    let half = |parity: u64| run_of(&["legacy", "rebuilt"], &move |i| i % 2 == parity, 0.5);
    let merged = Report::build(vec![
        run_input("worker-0.json", half(0)),
        run_input("worker-1.json", half(1)),
    ])
    .unwrap();
    let whole = holiday_report();
    let (m, w) = (merged.summary(), whole.summary());
    for key in [
        "p50",
        "p99",
        "p999",
        "max",
        "error_rate",
        "throughput",
        "slo_compliance",
    ] {
        let (a, b) = (row(m, key), row(w, key));
        assert_eq!(
            a.before.as_ref().unwrap().value,
            b.before.as_ref().unwrap().value,
            "{key}"
        );
        assert_eq!(
            a.after.as_ref().unwrap().value,
            b.after.as_ref().unwrap().value,
            "{key}"
        );
    }
    assert_eq!(
        row(m, "p99").before.as_ref().unwrap().sources,
        ["worker-0.json", "worker-1.json"]
    );
    let spike = |s: &Summary| {
        s.health
            .iter()
            .find(|h| h.phase == "spike" && h.target == "legacy")
            .unwrap()
            .clone()
    };
    assert_eq!(spike(m).dropped.value, 120.0);
    assert_eq!(spike(m).intended.value, spike(w).intended.value);
    assert_eq!(m.reproducibility.scale.as_deref(), Some("1×"));
    // Merging clears the recorded verdicts; they are evaluated again on the merged figures.
    assert_eq!(m.slo.len(), w.slo.len());
    for (a, b) in m.slo.iter().zip(&w.slo) {
        let (a, b) = (a.before.as_ref().unwrap(), b.before.as_ref().unwrap());
        assert_eq!((a.pass, a.actual), (b.pass, b.actual));
        assert_eq!(a.origin, "re-evaluated");
    }
    assert!(m
        .notes
        .iter()
        .any(|n| n.starts_with("2 run records were merged")));
}

#[test]
fn separate_runs_of_each_system_are_compared() {
    let report = Report::build(vec![
        run_input("legacy.json", run_of(&["legacy"], &|_| true, 1.0)),
        run_input("rebuilt.json", run_of(&["rebuilt"], &|_| true, 1.0)),
    ])
    .unwrap();
    let p99 = row(report.summary(), "p99");
    assert_eq!(p99.before.as_ref().unwrap().sources, ["legacy.json"]);
    assert_eq!(p99.after.as_ref().unwrap().sources, ["rebuilt.json"]);
    assert_eq!(p99.change.as_ref().unwrap().words, "97% faster");
}

#[test]
fn a_single_system_shows_one_column() {
    let report = Report::build(vec![run_input(
        "legacy.json",
        run_of(&["legacy"], &|_| true, 1.0),
    )])
    .unwrap();
    let h = report.headline();
    assert_eq!(h.before.label, "legacy");
    assert!(h.after.is_none());
    assert!(h
        .rows
        .iter()
        .all(|r| r.after.is_none() && r.change.is_none()));
    let text = h.summary.join(" ");
    assert!(
        text.starts_with("Only the legacy system was measured, with a p99 latency of 3,"),
        "{text}"
    );
    assert!(text.contains("It missed 4 of 4 SLOs."), "{text}");
    let table = h.to_string();
    assert!(
        table.lines().next().unwrap().starts_with("metric"),
        "{table}"
    );
    assert!(!table.contains("change"), "{table}");
}

#[test]
fn snapshot_alone_compares_primary_with_shadow() {
    let report = Report::build(vec![snapshot_input("proxy.json", proxy_snapshot())]).unwrap();
    let s = report.summary();
    assert_eq!(s.headline.before.label, "before (primary)");
    assert_eq!(s.headline.after.as_ref().unwrap().label, "after (shadow)");
    let p99 = row(s, "p99");
    assert_eq!(p99.change.as_ref().unwrap().outcome, Outcome::Better);
    assert!(
        row(s, "throughput").change.is_none(),
        "mirrored share is not compared"
    );
    assert!(s.headline.rows.iter().all(|r| r.key != "slo_compliance"));
    let routes: Vec<&str> = s.routes.iter().map(|r| r.route.as_str()).collect();
    assert_eq!(routes, ["/partners", "/bookings/{id}", "other"]);
    assert_eq!(s.routes[0].requests.text, "6,000");
    assert_eq!(s.routes[0].mirrored.text, "1,500");
    assert_eq!(s.routes[0].diff_rate.as_ref().unwrap().text, "2%");
    let delta = s.delta.as_ref().unwrap();
    assert_eq!(delta.pairs.text, "2,350");
    assert!(
        delta.p50.value < 0.0,
        "the shadow is faster: {:?}",
        delta.p50
    );
    let diff = s.diff.as_ref().unwrap();
    assert_eq!(diff.compared, 2_350);
    assert_eq!(diff.fields[0].path, "$.price.amount");
    assert_eq!(
        diff.noise[0].suggested_ignore.as_deref(),
        Some("$.generated_at")
    );
    assert!(report.charts().delta.is_some() && report.charts().timeline.is_none());
    let text = s.headline.summary.join(" ");
    assert!(
        text.starts_with("On mirrored traffic, the shadow answered "),
        "{text}"
    );
    assert!(
        text.contains("47 of 2,350 compared answers (2%) differed from the primary's"),
        "{text}"
    );
}

#[test]
fn writes_a_self_contained_page_markdown_and_summary() {
    let report = Report::build(vec![
        run_input("runs/holiday.json", holiday_run()),
        snapshot_input("proxy.json", proxy_snapshot()),
    ])
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let written = report.write(&dir.path().join("out")).unwrap();

    let html = fs::read_to_string(&written.html).unwrap();
    if let Ok(keep) = std::env::var("TWINPEAK_KEEP_REPORT") {
        fs::write(&keep, &html).unwrap();
        fs::write(format!("{keep}.md"), fs::read(&written.markdown).unwrap()).unwrap();
    }
    for banned in [
        "<script", "<link", "url(", "http://", "https://", "@import", "src=",
    ] {
        assert!(!html.contains(banned), "report.html holds `{banned}`");
    }
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 3);
    assert!(html.contains("<title>Latency by percentile"));
    let labels = svg_texts(&html);
    for label in [
        "0%",
        "90%",
        "99%",
        "99.9%",
        "99.99%",
        "percentile",
        "peak",
        "spike",
    ] {
        assert!(
            labels.iter().any(|l| l == label),
            "no label {label} in {labels:?}"
        );
    }
    let p99 = row(report.summary(), "p99");
    assert!(html.contains(&p99.change.as_ref().unwrap().text));
    assert!(html.contains("class=\"verdict fail\">FAIL"));
    assert!(html.contains("class=\"verdict pass\">PASS"));
    // Autoescaping writes `/` as `&#x2f;`; browsers read both the same.
    assert!(html
        .replace("&#x2f;", "/")
        .contains("<code>/bookings/{id}</code>"));
    assert!(html.contains("3f5a9c0d1e2b4a6f8c7d9e0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678a"));
    assert!(html.contains("9b1d2c3e4f5061728394a5b6c7d8e9f00112233445566778899aabbccddeeff0"));

    let md = fs::read_to_string(&written.markdown).unwrap();
    assert!(
        md.starts_with("# holiday-peak: legacy vs rebuilt\n"),
        "{md}"
    );
    assert!(
        md.contains(
            "| Metric | before (legacy) | after (rebuilt) | Change |\n|---|---:|---:|---|\n"
        ),
        "{md}"
    );
    let p99_line = format!(
        "| p99 latency | {} | {} | {} — 97% faster |",
        p99.before.as_ref().unwrap().text,
        p99.after.as_ref().unwrap().text,
        p99.change.as_ref().unwrap().text
    );
    assert!(md.contains(&p99_line), "{md}");
    assert!(md.contains("| `/bookings/{id}` |"), "{md}");
    assert!(md.contains("❌ FAIL"), "{md}");

    let json = fs::read_to_string(&written.summary).unwrap();
    let back: Summary = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, report.summary());
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["schema"], "twinpeak.report/v1");
    assert_eq!(
        value["headline"]["rows"][2]["before"]["sources"][0],
        "runs/holiday.json"
    );
    assert_eq!(value["routes"][0]["requests"]["sources"][0], "proxy.json");
}

#[test]
fn canary_history_gets_its_section_chart_and_sentence() {
    let report = Report::build(vec![snapshot_input("proxy.json", canary_snapshot())]).unwrap();
    let s = report.summary();
    let canary = s.canary.as_ref().expect("a canary view");
    assert_eq!(canary.state, "rolled_back");
    assert_eq!(canary.weight.text, "0%");
    assert_eq!(canary.peak.text, "25%");
    assert_eq!(canary.peak.sources, ["proxy.json"]);
    assert_eq!(canary.ramp, "1% → 5% → 25% → 100%");
    assert_eq!(canary.step, None, "a rollback leaves no step in force");
    let counts = [
        &canary.passes,
        &canary.fails,
        &canary.inconclusive,
        &canary.advances,
        &canary.rollbacks,
    ]
    .map(|f| f.value);
    assert_eq!(counts, [2.0, 1.0, 1.0, 2.0, 1.0]);
    let changes: Vec<(&str, &str)> = canary
        .changes
        .iter()
        .map(|c| (c.decision.as_str(), c.weight.as_str()))
        .collect();
    assert_eq!(
        changes,
        [
            ("start", "1%"),
            ("advance", "5%"),
            ("pause", "5%"),
            ("resume", "5%"),
            ("advance", "25%"),
            ("rollback", "0%"),
        ]
    );
    let rollback = canary.last_rollback.as_ref().unwrap();
    assert_eq!(rollback.from.as_ref().unwrap().text, "25%");
    let cause: Vec<&str> = rollback.cause.iter().map(|r| r.metric.as_str()).collect();
    assert_eq!(cause, ["error_rate", "error_delta"]);
    let failure = &canary.failures[0];
    assert_eq!(
        (
            failure.metric.as_str(),
            failure.candidate.text.as_str(),
            failure.threshold.text.as_str()
        ),
        ("error_rate", "5.1%", "1%")
    );
    assert_eq!(failure.candidate.sources, ["proxy.json"]);
    assert!(
        failure
            .candidate
            .derivation
            .contains("reasons[\"error_rate\"]"),
        "{}",
        failure.candidate.derivation
    );
    assert_eq!(canary.failures.len(), 2, "{:?}", canary.failures);
    let chart = s.charts.iter().find(|c| c.id == "canary").unwrap();
    assert_eq!(chart.sources, ["proxy.json"]);

    let text = s.headline.summary.join(" ");
    assert!(
        text.contains(
            "The canary reached 25% of live traffic and was rolled back once, at 09:07 UTC, \
             when its error rate reached 5.1% against a 1% limit."
        ),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let written = report.write(dir.path()).unwrap();
    let html = fs::read_to_string(&written.html).unwrap();
    assert!(html.contains("<section class=\"card\" id=\"canary\">"));
    assert!(html.contains("<title>Canary share of live traffic over time"));
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 3);
    let labels = svg_texts(&html);
    for label in ["rollback 09:07", "09:06", "5%", "25%"] {
        assert!(
            labels.iter().any(|l| l == label),
            "no label {label} in {labels:?}"
        );
    }
    assert!(html.contains("<tr class=\"rollback\">"));
    assert!(html.contains("class=\"state rolled_back\">rolled back</span>"));
    assert!(html.contains(
        "<p>The canary reached 25% of live traffic and was rolled back once, at 09:07 UTC, when"
    ));

    let md = fs::read_to_string(&written.markdown).unwrap();
    assert!(md.contains("\n## Canary\n"), "{md}");
    assert!(md.contains("- State: rolled back\n"), "{md}");
    assert!(
        md.contains("| 2025-11-28 09:07:00 UTC | **rollback** | judge | 0% |"),
        "{md}"
    );
    assert!(
        md.contains("| 2025-11-28 09:07:00 UTC | 25% | `error_rate` | 5.1% | — | 1% |"),
        "{md}"
    );
    assert!(
        md.contains("- Canary share of live traffic over time"),
        "{md}"
    );

    let value: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&written.summary).unwrap()).unwrap();
    assert_eq!(value["canary"]["peak"]["value"], 25.0);
    assert_eq!(value["canary"]["rollbacks"]["sources"][0], "proxy.json");
    assert_eq!(
        value["canary"]["last_rollback"]["cause"][0]["candidate"]["value"],
        5.1
    );
}

#[test]
fn no_canary_history_no_canary_section() {
    let report = Report::build(vec![snapshot_input("proxy.json", proxy_snapshot())]).unwrap();
    let s = report.summary();
    assert!(s.canary.is_none());
    assert!(report.charts().canary.is_none());
    assert!(s.charts.iter().all(|c| c.id != "canary"));
    assert!(!s.headline.summary.join(" ").contains("canary"));
    let dir = tempfile::tempdir().unwrap();
    let written = report.write(dir.path()).unwrap();
    let html = fs::read_to_string(&written.html).unwrap();
    assert!(!html.contains("id=\"canary\""));
    assert!(!html.contains("Canary"));
    let md = fs::read_to_string(&written.markdown).unwrap();
    assert!(!md.contains("## Canary"), "{md}");
    let value: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&written.summary).unwrap()).unwrap();
    assert!(value["canary"].is_null());
}

/// The text of every `<text>` element, trimmed.
fn svg_texts(html: &str) -> Vec<String> {
    html.split("<text")
        .skip(1)
        .filter_map(|rest| {
            let body = &rest[rest.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_owned())
        })
        .collect()
}

#[test]
fn headline_prints_as_an_aligned_table() {
    let report = holiday_report();
    let text = report.headline().to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("metric"));
    assert!(lines[0].contains("before (legacy)") && lines[0].contains("after (rebuilt)"));
    let column = |line: &str, what: &str| {
        line.chars().count() - line[line.find(what).unwrap()..].chars().count()
    };
    let p99 = lines.iter().find(|l| l.starts_with("p99 latency")).unwrap();
    assert_eq!(
        column(lines[0], "before (legacy)"),
        column(p99, "3,"),
        "{text}"
    );
    assert!(p99.contains("−97% ("), "{text}");
    assert!(
        text.contains("The rebuilt system answered 97% faster"),
        "{text}"
    );
}

#[test]
fn read_input_detects_the_schema_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let run_path = dir.path().join("run.json");
    holiday_run().write(&run_path).unwrap();
    assert!(matches!(read_input(&run_path).unwrap(), Input::Run(r) if r == holiday_run()));

    let snapshot_path = dir.path().join("proxy.json");
    let snapshot = proxy_snapshot();
    fs::write(&snapshot_path, serde_json::to_string(&snapshot).unwrap()).unwrap();
    assert!(matches!(read_input(&snapshot_path).unwrap(), Input::Snapshot(s) if s == snapshot));

    let other = dir.path().join("other.json");
    fs::write(&other, r#"{"schema": "twinpeak.report/v1"}"#).unwrap();
    let err = read_input(&other).unwrap_err();
    assert!(matches!(err, ReportError::Schema { .. }));
    assert!(
        err.to_string()
            .contains("other.json is a `twinpeak.report/v1` record"),
        "{err}"
    );

    let untagged = dir.path().join("untagged.json");
    fs::write(&untagged, "{}").unwrap();
    let err = read_input(&untagged).unwrap_err();
    assert!(
        err.to_string()
            .contains("untagged.json is a record without a `schema` field"),
        "{err}"
    );

    let broken = dir.path().join("broken.json");
    fs::write(&broken, r#"{"schema": "twinpeak.run/v1", "scenario": 3}"#).unwrap();
    let err = read_input(&broken).unwrap_err();
    assert!(matches!(err, ReportError::Json { .. }));
    assert!(err.to_string().contains("broken.json"), "{err}");

    let missing = dir.path().join("missing.json");
    assert!(read_input(&missing)
        .unwrap_err()
        .to_string()
        .contains("missing.json"));
}

#[test]
fn build_refuses_what_it_cannot_report() {
    assert!(matches!(
        Report::build(Vec::new()),
        Err(ReportError::NoInputs)
    ));
    let mut other = holiday_run();
    other.scenario = "black-friday".to_owned();
    let err = Report::build(vec![
        run_input("holiday.json", holiday_run()),
        run_input("friday.json", other),
    ])
    .unwrap_err();
    assert!(matches!(err, ReportError::RunMerge { .. }));
    assert_eq!(
        err.to_string(),
        "cannot merge run record friday.json with holiday.json"
    );
    let empty = RunRecord::new("smoke", "", 0, 1.0, common::at(0), Default::default());
    let err = Report::build(vec![run_input("empty.json", empty)]).unwrap_err();
    assert!(matches!(err, ReportError::NothingMeasured { .. }), "{err}");
}
