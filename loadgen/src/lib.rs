//! twinpeak's load harness: peak scenarios written in YAML (holiday 10×, Black Friday 5×, lunch
//! spike, soak), replayed on Goose at open-model arrival rates against one or more systems, with
//! coordinated-omission-corrected latencies, SLO gates and `twinpeak.run/v1` records.
//!
//! # One arrival, module by module
//!
//! 1. `scenario` reads the YAML (`format`), checks what holds across its keys (`validate`) and
//!    resolves its data variables (`data`); `command` and `runner` turn it, or a recording read
//!    by `replay`, into one leg per system.
//! 2. `schedule` says when each arrival of a leg is due: the k-th arrival at the instant the
//!    expected count of the phases' rates reaches k, whatever the system answers (open model).
//!    A load worker's schedule is its share of the run's (`worker`: which share, the run id,
//!    the common start, the split of users and data).
//! 3. `pacer` hands each arrival, at its instant, to one idle load user, or keeps it for the
//!    first user to finish when all are busy, or drops it past the late limit; it counts which
//!    of the three became of every arrival, and whose doing a drop was.
//! 4. `session` picks the arrival's request by weight with a generator seeded by the run's seed
//!    and the arrival's place, and renders its `after` chain through `template`.
//! 5. A Goose user sends each request of the chain (`runner` registers the one transaction that
//!    takes arrivals from the pacer; `progress` shows where the leg stands).
//! 6. `recorder` adds the answer to the histograms of its phase and request: latency from the
//!    intended instant (corrected) and from the send (raw), statuses, error kinds, the
//!    generator's own lag, the timeline (a load worker's with each point's latency histogram,
//!    so the merge of the workers' records reads each second's p99 exactly).
//! 7. `checkpoint` writes the record as measured so far every few seconds, so a killed run
//!    loses at most one interval; `interrupt` turns SIGINT and SIGTERM into a graceful stop.
//! 8. `slo` holds the merged figures over the intended arrivals against the thresholds the
//!    record carries (of one machine's run, or of a run merged from its workers), and `summary`
//!    prints the closing table beside the `twinpeak.run/v1` record.

mod checkpoint;
mod command;
mod compare;
mod data;
mod derive;
pub mod interrupt;
mod pacer;
mod progress;
mod recorder;
mod replay;
mod runner;
mod scenario;
mod schedule;
mod session;
mod slo;
mod summary;
mod template;
mod worker;

pub use command::LoadCommand;
pub use compare::{ReplayCompare, ReplayedAnswer};
pub use derive::{
    derive_scenario, DeriveError, DeriveOptions, Derived, DerivedRequest, FromRecordingCommand,
};
pub use runner::{run, RunError, RunOptions, RunResult, Target};
pub use scenario::{LoadedScenario, Scenario, ScenarioError};
pub use slo::{judge, SloVerdict};
