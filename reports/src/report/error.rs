//! Why a report could not be built or written.

use std::io;
use std::path::PathBuf;

use hdrhistogram::AdditionError;

use crate::merge::MergeError;
use crate::run::{RunMergeError, RUN_SCHEMA};
use crate::snapshot::SNAPSHOT_SCHEMA;

/// Why a report could not be built or written; every variant names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// An input could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system reported.
        #[source]
        source: io::Error,
    },
    /// An input is not JSON, or not a valid record of its schema.
    #[error("{} is not a valid record", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What was wrong, with its line and column.
        #[source]
        source: serde_json::Error,
    },
    /// An input names no schema, or one the report does not read.
    #[error(
        "{} is {}, not a `{RUN_SCHEMA}` or `{SNAPSHOT_SCHEMA}` record",
        path.display(),
        schema.as_ref().map_or("a record without a `schema` field".to_owned(), |s| format!("a `{s}` record"))
    )]
    Schema {
        /// The file.
        path: PathBuf,
        /// Its schema tag, if it has one.
        schema: Option<String>,
    },
    /// No input was given.
    #[error("no input records: give at least one run record or proxy snapshot")]
    NoInputs,
    /// The inputs hold no measured request.
    #[error("nothing to report: {} hold no measured requests", files.join(", "))]
    NothingMeasured {
        /// The input files.
        files: Vec<String>,
    },
    /// Two run records could not be merged, e.g. runs of different scenarios.
    #[error("cannot merge run record {} with {}", path.display(), into.display())]
    RunMerge {
        /// The file merged.
        path: PathBuf,
        /// The first file of the run it was merged into.
        into: PathBuf,
        /// Why.
        #[source]
        source: Box<RunMergeError>,
    },
    /// Two snapshots could not be merged.
    #[error("cannot merge snapshot {} with {}", path.display(), into.display())]
    SnapshotMerge {
        /// The file merged.
        path: PathBuf,
        /// The first snapshot it was merged into.
        into: PathBuf,
        /// Why.
        #[source]
        source: Box<MergeError>,
    },
    /// Histograms of one system could not be added together.
    #[error("cannot add the histograms of {what} (from {})", files.join(", "))]
    Histogram {
        /// Which histograms.
        what: String,
        /// The files they came from.
        files: Vec<String>,
        /// What hdrhistogram reported.
        #[source]
        source: AdditionError,
    },
    /// A chart could not be drawn.
    #[error("cannot draw the {chart} chart: {message}")]
    Chart {
        /// Which chart.
        chart: &'static str,
        /// What the plotting library reported.
        message: String,
    },
    /// A template could not be rendered.
    #[error("cannot render {name}")]
    Template {
        /// Template name.
        name: &'static str,
        /// What the template engine reported.
        #[source]
        source: minijinja::Error,
    },
    /// An output could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// What the system reported.
        #[source]
        source: io::Error,
    },
}
