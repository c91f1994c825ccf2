//! twinpeak's report renderer: the before/after page leadership reads, built from run records
//! and proxy snapshots (the record types live in `twinpeak-core`). See [`report`].

pub mod report;

// The record modules, under the names the renderer has always used for them.
use twinpeak_core::{diff, histogram, merge, run, snapshot, timestamp};
