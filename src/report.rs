//! `twinpeak report INPUT... --out DIR`: the before/after page from run records and proxy
//! snapshots.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use twinpeak_reports::report::{read_input, Report};

/// Arguments of `twinpeak report`.
#[derive(Debug, Args)]
pub struct ReportCommand {
    /// Run records (`twinpeak.run/v1`) and proxy snapshots (`twinpeak.snapshot/v1`), any number.
    #[arg(required_unless_present = "state")]
    pub inputs: Vec<PathBuf>,
    /// Also the proxy's state store: what every replica flushed there, merged.
    #[command(flatten)]
    pub state: crate::report_state::StateInput,
    /// Where report.html, report.md and summary.json are written.
    #[arg(long)]
    pub out: PathBuf,
}

impl ReportCommand {
    /// Writes the report and prints its headline; exit status 2 on unreadable input.
    pub fn execute(&self) -> ExitCode {
        match self.write() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        }
    }

    fn write(&self) -> anyhow::Result<()> {
        let inputs = self
            .inputs
            .iter()
            .map(|p| read_input(p).map(|i| (p.clone(), i)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut inputs = inputs;
        inputs.extend(self.state.read()?);
        let report = Report::build(inputs)?;
        let written = report.write(&self.out)?;
        println!("{}", report.headline());
        println!("report: {}", written.html.display());
        println!("        {}", written.markdown.display());
        println!("        {}", written.summary.display());
        Ok(())
    }
}
