//! The before/after report: run records and proxy snapshots in, a page leadership can read out.
//!
//! [`read_input`] reads each record, [`Report::build`] merges records of the same systems
//! exactly (histograms added, never percentiles averaged) and computes every figure the page
//! shows, and [`Report::write`] writes `report.html` (self-contained: inline SVG charts, no
//! external resources), `report.md` and `summary.json` (every figure with the input files it
//! came from).
//!
//! In load runs, *before* is the system named `legacy` (else `primary`, else the first) and
//! *after* the one named `rebuilt` (else `candidate`, `shadow`, or the second). From proxy
//! snapshots alone, before is the primary and after the shadow, over all routes.

mod build;
mod canary;
mod charts;
mod error;
mod figures;
mod findings;
mod format;
mod from_runs;
mod headline;
mod health;
mod input;
mod model;
mod prose;
mod render;
mod replay;
mod runs;
mod slo;
mod snapshots;
mod table;
mod workers;

use std::fs;
use std::path::{Path, PathBuf};

pub use error::ReportError;
pub use input::{read_input, Input};
pub use model::{
    CanaryChange, CanaryReasonRow, CanaryRollback, CanaryView, Change, ChartInfo, Column,
    DeltaView, DiffRouteRow, DiffView, FieldRow, Figure, Headline, HeadlineRow, HealthRow,
    InputInfo, Outcome, ReplayDiffView, Reproducibility, RouteRow, SloCell, SloRow, Summary,
    WorkerRow, SUMMARY_SCHEMA,
};

/// A built report: the computed figures and the charts drawn from them.
#[derive(Debug, Clone)]
pub struct Report {
    summary: Summary,
    charts: Charts,
}

/// The report's charts, each an SVG element for inline use in HTML, with no external
/// resources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Charts {
    /// Latency by percentile of both systems, on a logarithmic percentile axis.
    pub percentiles: Option<String>,
    /// p99 latency and throughput over the run, with the phases marked (load runs).
    pub timeline: Option<String>,
    /// Distribution of paired latency deltas, shadow − primary (proxy snapshots).
    pub delta: Option<String>,
    /// The canary's share of traffic over time, with its advances and rollbacks (proxy
    /// snapshots with a canary).
    pub canary: Option<String>,
}

/// The files [`Report::write`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The page: `report.html`.
    pub html: PathBuf,
    /// The same content as Markdown: `report.md`.
    pub markdown: PathBuf,
    /// Every figure with its sources: `summary.json`.
    pub summary: PathBuf,
}

impl Report {
    /// Builds the report of `inputs`, each with the path it was read from.
    ///
    /// Run records are merged with [`crate::RunRecord::merge`] (they must be runs of one
    /// scenario) and snapshots with [`crate::Snapshot::merge`]. The headline comes from the
    /// runs when there are any, else from the snapshots.
    pub fn build(inputs: Vec<(PathBuf, Input)>) -> Result<Report, ReportError> {
        let (summary, charts) = build::build(inputs)?;
        Ok(Report { summary, charts })
    }

    /// The before/after table and the plain-language summary, for the CLI to print.
    pub fn headline(&self) -> &Headline {
        &self.summary.headline
    }

    /// Every figure of the report, with its sources: what `summary.json` holds.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The charts, as SVG.
    pub fn charts(&self) -> &Charts {
        &self.charts
    }

    /// Writes `report.html`, `report.md` and `summary.json` into `dir`, creating it if needed.
    pub fn write(&self, dir: &Path) -> Result<Written, ReportError> {
        let written = |source, path: &Path| ReportError::Write {
            path: path.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(|e| written(e, dir))?;
        let files = Written {
            html: dir.join("report.html"),
            markdown: dir.join("report.md"),
            summary: dir.join("summary.json"),
        };
        let html = render::html(&self.summary, &self.charts)?;
        let markdown = render::markdown(&self.summary)?;
        let mut json = serde_json::to_string_pretty(&self.summary)
            .expect("the summary holds only finite numbers and strings");
        json.push('\n');
        for (path, text) in [
            (&files.html, html),
            (&files.markdown, markdown),
            (&files.summary, json),
        ] {
            fs::write(path, text).map_err(|e| written(e, path))?;
        }
        Ok(files)
    }
}
