//! `twinpeak report INPUT... --out DIR`: the before/after page from run records and proxy
//! snapshots. The records of a run spread over load workers are merged into the record of the
//! whole run first (written to `DIR/run.json`), judged against the scenario's SLOs, and the
//! command exits 1 when one fails.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use twinpeak_core::run::{merge_workers, MergedRun};
use twinpeak_core::units::HumanDuration;
use twinpeak_core::SloRecord;
use twinpeak_reports::report::{read_input, Input, Report};

/// Exit status when an SLO of a run merged from load workers failed.
const EXIT_SLO_FAILED: u8 = 1;

/// A report input with the file it was read from.
type FiledInput = (PathBuf, Input);

/// Arguments of `twinpeak report`.
#[derive(Debug, Args)]
pub struct ReportCommand {
    /// Run records (`twinpeak.run/v1`) and proxy snapshots (`twinpeak.snapshot/v1`), any number;
    /// the records of one run's load workers are merged into one.
    #[arg(required_unless_present = "state")]
    pub inputs: Vec<PathBuf>,
    /// How long after `--start-at` a load worker may have started its schedule: the records of
    /// a run with a worker later than this are refused (exit 2), as its share was sent at
    /// other times than the others'.
    #[arg(long, default_value = "1s")]
    pub max_late: HumanDuration,
    /// Also the proxy's state store: what every replica flushed there, merged.
    #[command(flatten)]
    pub state: crate::report_state::StateInput,
    /// Where report.html, report.md and summary.json are written (and run.json, the record
    /// merged from load workers).
    #[arg(long)]
    pub out: PathBuf,
}

impl ReportCommand {
    /// Writes the report and prints its headline; exit status 2 on unreadable input or worker
    /// records that do not make up their run, 1 when a merged run fails an SLO.
    pub fn execute(&self) -> ExitCode {
        match self.write() {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        }
    }

    fn write(&self) -> anyhow::Result<ExitCode> {
        let inputs = self
            .inputs
            .iter()
            .map(|p| read_input(p).map(|i| (p.clone(), i)))
            .collect::<Result<Vec<_>, _>>()?;
        let (mut inputs, failed) = self.merge_workers(inputs)?;
        inputs.extend(self.state.read()?);
        let report = Report::build(inputs)?;
        let written = report.write(&self.out)?;
        println!("{}", report.headline());
        println!("report: {}", written.html.display());
        println!("        {}", written.markdown.display());
        println!("        {}", written.summary.display());
        if failed.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("{} SLO(s) failed:", failed.len());
        for verdict in failed {
            eprintln!("  {verdict}");
        }
        Ok(ExitCode::from(EXIT_SLO_FAILED))
    }

    /// The inputs with the records of each run spread over load workers replaced by the run's
    /// merged record, judged and written under `--out`; and the verdicts that failed.
    fn merge_workers(
        &self,
        inputs: Vec<FiledInput>,
    ) -> anyhow::Result<(Vec<FiledInput>, Vec<twinpeak_loadgen::SloVerdict>)> {
        let (runs, mut others): (Vec<_>, Vec<_>) = inputs
            .into_iter()
            .partition(|(_, input)| matches!(input, Input::Run(_)));
        let records = runs
            .into_iter()
            .filter_map(|(path, input)| match input {
                Input::Run(record) => Some((path, record)),
                Input::Snapshot(_) => None,
            })
            .collect();
        let (merged, single) = merge_workers(records, self.max_late.0)?;
        let mut single: Vec<FiledInput> = single
            .into_iter()
            .map(|(path, record)| (path, Input::Run(record)))
            .collect();
        let mut failed = Vec::new();
        let mut inputs = Vec::new();
        for (n, MergedRun { files, mut record }) in merged.into_iter().enumerate() {
            let verdicts = twinpeak_loadgen::judge(&record);
            record.slo = verdicts.iter().map(SloRecord::from).collect();
            let path = self.out.join(if n == 0 {
                "run.json".to_owned()
            } else {
                format!("run-{n}.json")
            });
            write_merged(&path, &record)?;
            println!(
                "run {}: {} worker records merged into {}",
                record
                    .workers
                    .first()
                    .map_or("", |w| w.mark.run_id.as_str()),
                files.len(),
                path.display()
            );
            for verdict in &verdicts {
                println!("  {verdict}");
            }
            failed.extend(verdicts.into_iter().filter(|v| !v.pass));
            inputs.push((path, Input::Run(record)));
        }
        inputs.append(&mut single);
        inputs.append(&mut others);
        Ok((inputs, failed))
    }
}

fn write_merged(path: &Path, record: &twinpeak_core::RunRecord) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--out {}: not writable", dir.display()))?;
    }
    record.write(path)?;
    Ok(())
}
