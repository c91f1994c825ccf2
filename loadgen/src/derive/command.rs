//! The arguments of `twinpeak scenario from-recording`, and what it prints.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::{derive_scenario, DeriveOptions, Derived};

/// Arguments of `twinpeak scenario from-recording`.
#[derive(Debug, Args)]
pub struct FromRecordingCommand {
    /// The recording: the proxy's `record.dir`, or one segment file of it.
    pub recording: PathBuf,
    /// The scenario file to write (its data files go beside it).
    #[arg(long)]
    pub out: PathBuf,
    /// The peak the last phases ramp to and hold, as a multiple of the recording's mean rate.
    #[arg(long, default_value = "10x", value_parser = parse_multiple)]
    pub peak: f64,
    /// How long the ramp from the recorded rate to the peak lasts.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub ramp: Duration,
    /// How long the peak is held.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub hold: Duration,
    /// Directory for the CSV files of observed path and query values (default: STEM-data/
    /// beside the scenario).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl FromRecordingCommand {
    /// Derives and writes the scenario; prints what it holds. Exit 2 when it cannot.
    pub fn execute(&self) -> ExitCode {
        let options = DeriveOptions {
            peak: self.peak,
            ramp: self.ramp,
            hold: self.hold,
            data_dir: self.data_dir.clone(),
        };
        match derive_scenario(&self.recording, &self.out, &options) {
            Ok(derived) => {
                print!("{}", self.summary(&derived));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    }

    fn summary(&self, derived: &Derived) -> String {
        let scenario = &derived.scenario;
        let total: u64 = derived.requests.iter().map(|r| r.count).sum();
        let mut text = format!(
            "wrote {} from {} recorded requests: baseline {:.2}/s, {} phases over {}, peak {}x\n",
            self.out.display(),
            derived.recorded,
            scenario.baseline_rps,
            scenario.phases.len(),
            humantime::format_duration(Duration::from_secs(scenario.total_duration().as_secs())),
            self.peak
        );
        for request in &derived.requests {
            text.push_str(&format!(
                "  {:>6.2}%  {:<40} {}\n",
                request.count as f64 * 100.0 / total.max(1) as f64,
                request.route,
                request.name
            ));
        }
        for file in &derived.data_files {
            text.push_str(&format!("  data: {}\n", file.display()));
        }
        for (reason, count) in &derived.left_out {
            text.push_str(&format!("  left out: {count} request(s), {reason}\n"));
        }
        for torn in &derived.torn {
            text.push_str(&format!("  note: {torn}\n"));
        }
        text
    }
}

/// `10x`, `10×` or `10`.
fn parse_multiple(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches(['x', '×']);
    match number.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!(
            "expected a multiple above 0 such as 10x, got {text:?}"
        )),
    }
}
