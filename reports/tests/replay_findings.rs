//! A run record whose systems carry the comparison of replayed answers with the recorded ones
//! (`twinpeak load --replay --compare`) gets the per-route, per-field findings section the
//! proxy's snapshots get, once per system.

mod common;

use std::fs;
use std::path::PathBuf;

use common::{holiday_run, proxy_snapshot};
use twinpeak_reports::report::{Input, Report};

#[test]
fn replayed_findings_are_shown_as_the_snapshot_s_are() {
    let snapshot = proxy_snapshot();
    let mut run = holiday_run();
    let comparison: std::collections::BTreeMap<_, _> = snapshot
        .routes
        .iter()
        .map(|(route, r)| (route.clone(), r.diff.clone().unwrap()))
        .collect();
    for target in &mut run.targets {
        target.comparison = comparison.clone();
    }
    let from_snapshot = Report::build(vec![(
        PathBuf::from("proxy.json"),
        Input::Snapshot(snapshot),
    )])
    .unwrap();
    let report = Report::build(vec![(PathBuf::from("runs/replay.json"), Input::Run(run))]).unwrap();

    let summary = report.summary();
    let targets: Vec<&str> = summary
        .replay_diff
        .iter()
        .map(|r| r.target.as_str())
        .collect();
    assert_eq!(targets, ["legacy", "rebuilt"]);
    let replay = &summary.replay_diff[1];
    let expected = from_snapshot.summary().diff.as_ref().unwrap();
    assert_eq!(replay.diff.routes, expected.routes);
    assert_eq!(replay.diff.fields, expected.fields);
    assert_eq!(replay.diff.noise, expected.noise);
    assert_eq!(replay.diff.rate.text, expected.rate.text);
    assert_eq!(replay.diff.sources, vec!["runs/replay.json".to_string()]);
    assert!(summary.diff.is_none(), "no proxy snapshot was given");

    let dir = tempfile::tempdir().unwrap();
    let written = report.write(dir.path()).unwrap();
    let markdown = fs::read_to_string(&written.markdown).unwrap();
    for target in ["legacy", "rebuilt"] {
        let heading = format!("\n\n## Replayed traffic against the recorded answers: {target}\n\n");
        assert!(markdown.contains(&heading), "{markdown}");
    }
    let section = markdown
        .split("## Replayed traffic against the recorded answers: rebuilt")
        .nth(1)
        .expect("the replay section");
    assert!(section.contains("| `/partners` | 1,500 |"), "{section}");
    assert!(section.contains("`$.price.amount`"), "{section}");
    assert!(!markdown.contains("## Differences in answers"));
    let html = fs::read_to_string(&written.html).unwrap();
    assert!(html.contains("Replayed traffic against the recorded answers: rebuilt"));
    assert!(html.contains("<code>$.price.amount</code>"));
    let json = fs::read_to_string(&written.summary).unwrap();
    assert!(json.contains("\"replay_diff\""));
}

#[test]
fn a_run_without_comparisons_has_no_replay_section() {
    let report =
        Report::build(vec![(PathBuf::from("run.json"), Input::Run(holiday_run()))]).unwrap();
    assert!(report.summary().replay_diff.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let written = report.write(dir.path()).unwrap();
    let markdown = fs::read_to_string(&written.markdown).unwrap();
    assert!(!markdown.contains("Replayed traffic"));
    let json = fs::read_to_string(&written.summary).unwrap();
    assert!(!json.contains("replay_diff"));
}
