//! `twinpeak scenario ...`: scenarios made from what was observed.

use std::process::ExitCode;

use clap::Subcommand;
use twinpeak_loadgen::FromRecordingCommand;

/// What `twinpeak scenario` makes.
#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// Derive a peak scenario from a recording of live traffic: its route mix, observed path
    /// and query values as data, its rate over time, then a ramp to and a hold at --peak.
    FromRecording(FromRecordingCommand),
}

impl ScenarioCommand {
    /// Runs the subcommand; returns the exit status.
    pub fn execute(&self) -> ExitCode {
        match self {
            ScenarioCommand::FromRecording(command) => command.execute(),
        }
    }
}
