//! Comparing replayed answers with the recorded ones (`twinpeak load --replay --compare`): the
//! harness hands every answer to a replayed recorded exchange to a [`ReplayCompare`], and puts
//! what it found, per target and route, in the run record. The comparison itself is the
//! proxy's diff engine, supplied by the caller (the `twinpeak` binary), so the harness does not
//! depend on the proxy.

use std::collections::BTreeMap;

use twinpeak_core::recording::RecordedExchange;
use twinpeak_core::DiffSummary;

/// One answer to a replayed request, as the target gave it.
#[derive(Debug)]
pub struct ReplayedAnswer<'a> {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: &'a http::HeaderMap,
    /// The whole body.
    pub body: &'a [u8],
}

/// Compares replayed answers with recorded ones and keeps the results per target and route.
pub trait ReplayCompare: Send + Sync + std::fmt::Debug {
    /// Compares `target`'s answer to `recorded`'s request with the answer recorded with it
    /// (exchanges recorded without an answer are not compared).
    fn compare(&self, target: &str, recorded: &RecordedExchange, answer: &ReplayedAnswer<'_>);

    /// What was found for `target` so far, per route template.
    fn summary(&self, target: &str) -> BTreeMap<String, DiffSummary>;
}
