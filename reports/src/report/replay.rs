//! Replayed traffic against the recorded answers: the findings a run record's systems carry
//! from `twinpeak load --replay --compare`, shown as the proxy's snapshot findings are.

use super::findings::{diff_view, RouteFindings};
use super::model::ReplayDiffView;
use super::runs::Runs;

/// One view per system whose replayed answers were compared, in the record's order.
pub(super) fn views(runs: &Runs) -> Vec<ReplayDiffView> {
    runs.record
        .targets
        .iter()
        .filter_map(|target| {
            let routes = target
                .comparison
                .iter()
                .map(|(route, summary)| RouteFindings {
                    route,
                    compared: summary.compared,
                    different: summary.different,
                    summary: Some(summary),
                });
            let sources = runs.target_files.get(&target.name).unwrap_or(&runs.files);
            let derivation = format!(
                "targets[\"{}\"].comparison: different over compared, added over routes",
                target.name
            );
            let diff = diff_view(routes, sources, &derivation)?;
            Some(ReplayDiffView {
                target: target.name.clone(),
                diff,
            })
        })
        .collect()
}
