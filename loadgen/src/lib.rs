//! twinpeak's load harness: peak scenarios written in YAML (holiday 10×, Black Friday 5×, lunch
//! spike, soak), replayed on Goose at open-model arrival rates against one or more systems, with
//! coordinated-omission-corrected latencies, SLO gates and `twinpeak.run/v1` records.

pub mod checkpoint;
pub mod command;
pub mod data;
pub mod interrupt;
pub mod pacer;
pub mod progress;
pub mod recorder;
pub mod replay;
pub mod runner;
pub mod scenario;
pub mod schedule;
mod session;
pub mod slo;
pub mod summary;
pub mod template;
