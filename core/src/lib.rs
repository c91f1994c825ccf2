//! What every twinpeak part shares: the records every component writes and the merge that
//! combines them, the histograms inside them, timestamps, and the located errors of its YAML
//! files.
//!
//! The proxy writes [`Snapshot`]s (`twinpeak.snapshot/v1`); the load harness writes run records;
//! the reports read both. Latencies are kept as whole HdrHistograms, serialized in the standard
//! V2 deflate encoding, so records from several proxies or load workers merge exactly and any
//! HdrHistogram tool can read them. Percentiles are computed from merged histograms, never
//! averaged.
//!
//! [`yaml_error`] holds the errors, with file, line and key, that the proxy's configuration and
//! the load harness's scenarios share.

pub mod diff;
pub mod digest;
pub mod histogram;
pub mod merge;
pub mod recording;
pub mod run;
pub mod snapshot;
pub mod sync;
pub mod timestamp;
pub mod units;
pub mod yaml_error;
pub use diff::{DiffSummary, FieldSummary};
pub use histogram::{
    new_latency_histogram, record_saturating, EncodedHistogram, LatencySummary, SignedHistogram,
    SignedSummary,
};
pub use merge::MergeError;
pub use run::{
    PhaseRecord, RequestRecord, RunFileError, RunMergeError, RunRecord, RunTarget, SloRecord,
    TimelinePoint, RUN_SCHEMA,
};
pub use snapshot::{
    CanaryDecision, CanaryHistory, CanaryReason, CanaryStep, RouteSnapshot, SideSnapshot, Snapshot,
    SNAPSHOT_SCHEMA,
};
pub use yaml_error::YamlFileError;
