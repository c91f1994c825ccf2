//! Building the report model from its inputs: merge, pick before and after, compute every
//! figure, draw the charts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::canary;
use super::charts::{self, AFTER, BEFORE};
use super::format;
use super::from_runs::{side_stats, timeline_data};
use super::headline::{self, Side};
use super::model::{
    ChartInfo, Column, Headline, InputInfo, Reproducibility, Summary, SUMMARY_SCHEMA,
};
use super::prose::{self, Facts};
use super::runs::{before_and_after, Runs};
use super::slo::{self, Limits};
use super::snapshots::Snapshots;
use super::{health, replay, workers, Charts, Input, ReportError};

/// The report of `inputs`: its model and its charts.
pub(super) fn build(inputs: Vec<(PathBuf, Input)>) -> Result<(Summary, Charts), ReportError> {
    if inputs.is_empty() {
        return Err(ReportError::NoInputs);
    }
    let all_files: Vec<String> = inputs
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    let infos: Vec<InputInfo> = inputs.iter().map(|(p, i)| describe(p, i)).collect();
    let (mut run_inputs, mut snapshot_inputs) = (Vec::new(), Vec::new());
    for (path, input) in inputs {
        match input {
            Input::Run(run) => run_inputs.push((path, run)),
            Input::Snapshot(snapshot) => snapshot_inputs.push((path, snapshot)),
        }
    }
    let runs = Runs::merge(run_inputs)?.filter(|r| !r.targets().is_empty());
    let snapshots = Snapshots::merge(snapshot_inputs)?.filter(|s| !s.snapshot.routes.is_empty());

    let mut page = Page::default();
    match (&runs, &snapshots) {
        (Some(runs), _) => page.add_runs(runs)?,
        (None, Some(snapshots)) => page.add_snapshot_headline(snapshots)?,
        (None, None) => return Err(ReportError::NothingMeasured { files: all_files }),
    }
    if let Some(snapshots) = &snapshots {
        page.add_snapshots(snapshots)?;
    }
    let Some(before) = page.before.take() else {
        return Err(ReportError::NothingMeasured { files: all_files });
    };
    let rows = headline::rows(&before.1, page.after.as_ref().map(|a| &a.1), !page.mirrored);
    let summary_text = prose::summary(&Facts {
        before: &before.0,
        after: page.after.as_ref().map(|a| &a.0),
        mirrored: page.mirrored,
        rows: &rows,
        slo: &page.summary.slo,
        health: &page.summary.health,
        diff: page.summary.diff.as_ref(),
        canary: page.summary.canary.as_ref(),
    });
    let mut summary = page.summary;
    summary.headline = Headline {
        basis: page.basis,
        before: before.0,
        after: page.after.map(|a| a.0),
        rows,
        summary: summary_text,
    };
    summary.inputs = infos;
    summary.reproducibility = reproducibility(runs.as_ref(), snapshots.as_ref());
    Ok((summary, page.charts))
}

/// The report as it is assembled.
struct Page {
    summary: Summary,
    charts: Charts,
    before: Option<(Column, Side)>,
    after: Option<(Column, Side)>,
    basis: String,
    /// Whether the headline compares the proxy's primary with its mirrored shadow.
    mirrored: bool,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            summary: Summary {
                schema: SUMMARY_SCHEMA.to_owned(),
                title: String::new(),
                headline: Headline {
                    basis: String::new(),
                    before: column("", false),
                    after: None,
                    rows: Vec::new(),
                    summary: Vec::new(),
                },
                slo: Vec::new(),
                routes: Vec::new(),
                delta: None,
                diff: None,
                replay_diff: Vec::new(),
                canary: None,
                charts: Vec::new(),
                reproducibility: Reproducibility::default(),
                health: Vec::new(),
                workers: Vec::new(),
                inputs: Vec::new(),
                notes: Vec::new(),
            },
            charts: Charts::default(),
            before: None,
            after: None,
            basis: String::new(),
            mirrored: false,
        }
    }
}

/// A headline column: `before (legacy)`, or just the name when only one system was measured.
fn column(name: &str, paired: bool) -> Column {
    Column {
        name: name.to_owned(),
        label: if paired {
            format!("before ({name})")
        } else {
            name.to_owned()
        },
    }
}

impl Page {
    /// The headline, SLOs, health and charts of the load runs.
    fn add_runs(&mut self, runs: &Runs) -> Result<(), ReportError> {
        let targets = runs.targets();
        let (Some(before), after) = before_and_after(&targets) else {
            return Ok(());
        };
        let limits = Limits::of(runs);
        let others: Vec<&str> = targets
            .iter()
            .filter(|t| **t != before && Some(*t) != after.as_ref())
            .map(String::as_str)
            .collect();
        if !others.is_empty() {
            self.note(format!(
                "Also measured, not compared here: {}.",
                others.join(", ")
            ));
        }
        if runs.merged() {
            self.note(format!(
                "{} run records were merged: histograms added, counters summed, and SLO \
                 verdicts evaluated again on the merged figures.",
                runs.files.len()
            ));
        }
        let s = &mut self.summary;
        s.title = match &after {
            Some(after) => format!("{}: {before} vs {after}", runs.record.scenario),
            None => format!("{}: {before}", runs.record.scenario),
        };
        s.slo = slo::rows(runs, &limits, Some(&before), after.as_deref())?;
        s.replay_diff = replay::views(runs);
        s.health = health::rows(runs)?;
        s.workers = workers::rows(runs);
        self.basis = "Latency is corrected for coordinated omission: each request is timed from \
                      the moment the scenario's schedule made it due, over every request of the \
                      run."
            .to_owned();
        let before_stats = side_stats(runs, &limits, &before)?;
        let after_stats = after
            .as_deref()
            .map(|a| side_stats(runs, &limits, a))
            .transpose()?;
        let mut curves = vec![(before.as_str(), BEFORE, &before_stats.stats.latency)];
        let mut lines = vec![(before.as_str(), BEFORE)];
        if let (Some(name), Some(side)) = (&after, &after_stats) {
            curves.push((name.as_str(), AFTER, &side.stats.latency));
            lines.push((name.as_str(), AFTER));
        }
        let chart_files: Vec<String> = lines.iter().flat_map(|(t, _)| runs.files_of(t)).collect();
        let chart_files = dedup(chart_files);
        self.charts.percentiles = Some(charts::percentiles(&curves)?);
        self.chart(
            "percentiles",
            "Latency by percentile (corrected)",
            &chart_files,
            "corrected_us of every request of every phase, added per system; percentiles read \
             from the sums",
        );
        if let Some(data) = timeline_data(runs, &limits, &lines) {
            self.charts.timeline = Some(charts::timeline(&data)?);
            self.chart(
                "timeline",
                "p99 latency and throughput over the run",
                &chart_files,
                "timeline points of every phase (p99_us, achieved_rps, intended_rps), phases \
                 laid end to end in the order they ran",
            );
        }
        let paired = after.is_some();
        self.before = Some((column(&before, paired), before_stats));
        self.after = after.zip(after_stats).map(|(name, stats)| {
            (
                Column {
                    label: format!("after ({name})"),
                    name,
                },
                stats,
            )
        });
        Ok(())
    }

    /// The headline from the snapshots alone: primary before, shadow after.
    fn add_snapshot_headline(&mut self, snapshots: &Snapshots) -> Result<(), ReportError> {
        let primary = snapshots.side_stats("primary")?;
        let shadow = snapshots.side_stats("shadow")?;
        self.mirrored = true;
        self.basis = "Latency is the proxy's time from sending each request upstream to the end \
                      of the answer, over all routes: the primary answered the clients, the \
                      shadow the mirrored copies."
            .to_owned();
        let mut curves = vec![("primary", BEFORE, &primary.latency)];
        if shadow.requests > 0 || !shadow.latency.is_empty() {
            curves.push(("shadow", AFTER, &shadow.latency));
            if primary.requests > 0 {
                self.note(format!(
                    "The shadow receives only the mirrored share of traffic ({} of the primary's \
                     requests), so throughput is shown but not compared.",
                    format::coverage(shadow.requests as f64 / primary.requests as f64)
                ));
            }
        }
        self.charts.percentiles = Some(charts::percentiles(&curves)?);
        self.chart(
            "percentiles",
            "Latency by percentile (proxy)",
            &snapshots.files,
            "routes[*].primary.latency_us and routes[*].shadow.latency_us, added per side",
        );
        let paired = curves.len() > 1;
        self.summary.title = if paired {
            "Mirrored traffic: primary vs shadow"
        } else {
            "Proxy traffic: primary"
        }
        .to_owned();
        self.before = Some((column("primary", paired), Side::measured(primary)));
        if paired {
            self.after = Some((
                Column {
                    name: "shadow".to_owned(),
                    label: "after (shadow)".to_owned(),
                },
                Side::measured(shadow),
            ));
        }
        Ok(())
    }

    /// The per-route table, the delta chart, the diff summary and the canary of the snapshots.
    fn add_snapshots(&mut self, snapshots: &Snapshots) -> Result<(), ReportError> {
        if snapshots.files.len() > 1 {
            self.note(format!(
                "{} proxy snapshots were merged: histograms added and counters summed.",
                snapshots.files.len()
            ));
        }
        if snapshots.configs.len() > 1 {
            self.note(format!(
                "The snapshots come from {} different proxy configurations.",
                snapshots.configs.len()
            ));
        }
        self.summary.routes = snapshots.route_rows();
        let delta = snapshots.delta()?;
        self.summary.delta = snapshots.delta_view(&delta);
        if self.summary.delta.is_some() {
            self.charts.delta = Some(charts::delta(&delta)?);
            self.chart(
                "delta",
                "Paired latency delta (shadow − primary)",
                &snapshots.files,
                "routes[*].delta, added; bars span the 1st to the 99th percentile and zero, \
                 the end bars include the tails",
            );
        }
        self.summary.diff = snapshots.diff_view();
        self.summary.canary = canary::view(snapshots);
        if let Some(data) = canary::chart_data(snapshots) {
            self.charts.canary = Some(charts::canary(&data)?);
            self.chart(
                "canary",
                "Canary share of live traffic over time",
                &snapshots.canary_files,
                "canary.decisions[*].weight as steps at each entry's time, to taken_at; \
                 advances, rollbacks and admin changes marked; canary.ramp drawn as levels",
            );
        }
        Ok(())
    }

    fn note(&mut self, note: String) {
        self.summary.notes.push(note);
    }

    fn chart(&mut self, id: &str, title: &str, files: &[String], derivation: &str) {
        self.summary.charts.push(ChartInfo {
            id: id.to_owned(),
            title: title.to_owned(),
            sources: files.to_vec(),
            derivation: derivation.to_owned(),
        });
    }
}

/// The items of `list` without repeats, in first-seen order.
fn dedup(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in list {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// What one input holds, in words.
fn describe(path: &std::path::Path, input: &Input) -> InputInfo {
    let description = match input {
        Input::Run(run) => {
            let targets = dedup(run.phases.iter().map(|p| p.target.clone()).collect());
            let sent: u64 = run
                .phases
                .iter()
                .flat_map(|p| p.requests.values())
                .map(|r| r.sent)
                .sum();
            format!(
                "load run of {} against {} ({} requests), {} to {}",
                run.scenario,
                if targets.is_empty() {
                    "no system".to_owned()
                } else {
                    targets.join(", ")
                },
                format::thousands(sent),
                run.started_at,
                run.ended_at
            )
        }
        Input::Snapshot(snapshot) => format!(
            "proxy snapshot of {} route{}, {} to {}",
            snapshot.routes.len(),
            if snapshot.routes.len() == 1 { "" } else { "s" },
            snapshot.started_at,
            snapshot.taken_at
        ),
    };
    InputInfo {
        path: path.display().to_string(),
        schema: input.schema().to_owned(),
        description,
    }
}

/// What is needed to run the measurement again.
fn reproducibility(runs: Option<&Runs>, snapshots: Option<&Snapshots>) -> Reproducibility {
    let mut r = Reproducibility::default();
    let mut versions = BTreeMap::new();
    if let Some(runs) = runs {
        let record = &runs.record;
        r.scenario = Some(record.scenario.clone());
        r.scenario_sha256 = Some(record.scenario_sha256.clone()).filter(|s| !s.is_empty());
        r.seed = Some(record.seed);
        r.scale = Some(scale(&runs.scale));
        r.run_started = Some(record.started_at.clone());
        r.run_ended = Some(record.ended_at.clone());
        versions.extend(record.versions.clone());
    }
    if let Some(snapshots) = snapshots {
        let snapshot = &snapshots.snapshot;
        r.proxy_config_sha256 = snapshots.configs.clone();
        r.snapshot_started = Some(snapshot.started_at.clone());
        r.snapshot_taken = Some(snapshot.taken_at.clone());
        for (component, version) in &snapshot.versions {
            versions
                .entry(component.clone())
                .or_insert_with(|| version.clone());
        }
    }
    r.versions = versions;
    r
}

/// `1×` when every system ran at the same scale, else `legacy 1×, rebuilt 2×`.
fn scale(per_target: &BTreeMap<String, f64>) -> String {
    let shown = |s: f64| {
        let text = format::decimal(s, 3);
        format!("{}×", text.trim_end_matches('0').trim_end_matches('.'))
    };
    let mut values: Vec<f64> = per_target.values().copied().collect();
    values.dedup();
    match values.as_slice() {
        [] => shown(1.0),
        [one] => shown(*one),
        _ => per_target
            .iter()
            .map(|(t, s)| format!("{t} {}", shown(*s)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
