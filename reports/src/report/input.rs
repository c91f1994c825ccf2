//! Reading report inputs: run records and proxy snapshots, told apart by their schema tag.

use std::fs;
use std::path::Path;

use serde::Deserialize;

use super::ReportError;
use crate::run::{RunRecord, RUN_SCHEMA};
use crate::snapshot::{Snapshot, SNAPSHOT_SCHEMA};

/// One record a report is built from.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A load run (`twinpeak.run/v1`).
    Run(RunRecord),
    /// A proxy snapshot (`twinpeak.snapshot/v1`).
    Snapshot(Snapshot),
}

impl Input {
    /// The record's schema tag.
    pub fn schema(&self) -> &str {
        match self {
            Input::Run(run) => &run.schema,
            Input::Snapshot(snapshot) => &snapshot.schema,
        }
    }
}

/// Reads the record in `path`, whichever of the known kinds its `schema` field names.
///
/// Errors name the file: unreadable, not JSON, no `schema` field, an unknown schema, or a
/// record that does not match its schema.
pub fn read_input(path: &Path) -> Result<Input, ReportError> {
    let text = fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_owned(),
        source,
    })?;
    #[derive(Deserialize)]
    struct Tag {
        schema: Option<String>,
    }
    let json = |source| ReportError::Json {
        path: path.to_owned(),
        source,
    };
    let tag: Tag = serde_json::from_str(&text).map_err(json)?;
    match tag.schema.as_deref() {
        Some(RUN_SCHEMA) => serde_json::from_str(&text).map(Input::Run).map_err(json),
        Some(SNAPSHOT_SCHEMA) => serde_json::from_str(&text)
            .map(Input::Snapshot)
            .map_err(json),
        other => Err(ReportError::Schema {
            path: path.to_owned(),
            schema: other.map(str::to_owned),
        }),
    }
}
