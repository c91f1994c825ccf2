//! `twinpeak load`: its arguments and what it does with them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use twinpeak_core::units::InvalidValue;

use crate::checkpoint::Checkpoint;
use crate::runner::{new_record, run_checkpointed, RunOptions, Target};
use crate::scenario::{LoadedScenario, Scenario};

/// Exit status when an SLO failed.
pub const EXIT_SLO_FAILED: u8 = 1;
/// Exit status for bad input or a run that could not be made.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Arguments of `twinpeak load`.
#[derive(Debug, Args)]
pub struct LoadCommand {
    /// The scenario (YAML); not with --replay.
    #[arg(required_unless_present = "replay", conflicts_with = "replay")]
    pub scenario: Option<PathBuf>,
    /// A system to load: `URL`, or `NAME=URL`; repeat for several (names needed then).
    #[arg(long = "target", required = true)]
    pub targets: Vec<String>,
    /// With several targets, alternate them phase by phase instead of one after another.
    #[arg(long)]
    pub interleave: bool,
    /// Directory for the run record (default runs/SCENARIO-TIME); checked writable before
    /// any traffic.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Time between checkpoints of the run record while the run goes.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub checkpoint_every: Duration,
    /// Multiply every phase duration (0.1 for a quick rehearsal).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Seed for every random choice (default: drawn, and recorded).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Replay a JSON Lines file of requests (the proxy's diff corpus) instead of a scenario.
    #[arg(long)]
    pub replay: Option<PathBuf>,
    /// Replay rate, requests per second.
    #[arg(long, default_value_t = 50.0)]
    pub rps: f64,
    /// An arrival not sent this long after its due instant is dropped and counted: against the
    /// target when every user was busy waiting for it, against the generator otherwise.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub late_limit: Duration,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
}

impl LoadCommand {
    /// Runs the command; prints the summary and returns the exit status.
    pub fn execute(&self) -> ExitCode {
        match self.try_execute() {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(EXIT_BAD_INPUT)
            }
        }
    }

    fn try_execute(&self) -> anyhow::Result<ExitCode> {
        if !(self.scale > 0.0 && self.scale.is_finite()) {
            bail!("--scale must be above 0, got {}", self.scale);
        }
        if self.checkpoint_every.is_zero() {
            bail!("--checkpoint-every must be above 0");
        }
        let targets = parse_targets(&self.targets)?;
        let (loaded, replay) = match (&self.scenario, &self.replay) {
            (_, Some(file)) => {
                let entries = crate::replay::read(file)?;
                let loaded = crate::replay::scenario(file, entries.len(), self.rps, 256)?;
                (loaded, Some(Arc::new(entries)))
            }
            (Some(file), None) => {
                let loaded = Scenario::load(file)?;
                (loaded, None)
            }
            (None, None) => bail!("give a scenario file or --replay FILE"),
        };
        let loaded = LoadedScenario {
            scenario: loaded.scenario.scaled(self.scale),
            ..loaded
        };
        let seed = self.seed.unwrap_or_else(rand::random);
        let out = self.out.clone().unwrap_or_else(|| {
            let slug: String = loaded
                .scenario
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            PathBuf::from("runs").join(format!(
                "{slug}-{}",
                chrono::Local::now().format("%Y%m%d-%H%M%S")
            ))
        });
        let options = RunOptions {
            targets,
            interleave: self.interleave,
            seed,
            scale: self.scale,
            late_limit: self.late_limit,
            progress: !self.quiet,
            replay,
        };
        eprintln!(
            "twinpeak load: {} ({:.0} s, seed {seed}) against {}",
            loaded.scenario.name,
            loaded.scenario.total_duration().as_secs_f64() * options.targets.len() as f64,
            options
                .targets
                .iter()
                .map(|t| format!("{}={}", t.name, t.url))
                .collect::<Vec<_>>()
                .join(", ")
        );
        crate::runner::check_targets(&options.targets)?;
        // Before any traffic: a run whose record cannot be kept is not worth sending.
        let record_path = out.join("run.json");
        let mut first = new_record(&loaded, &options, std::time::SystemTime::now());
        first.partial = true;
        std::fs::create_dir_all(&out)
            .map_err(anyhow::Error::from)
            .and_then(|()| first.write(&record_path).map_err(anyhow::Error::from))
            .with_context(|| format!("--out {}: not writable", out.display()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the runtime")?;
        let checkpoint = Checkpoint {
            path: record_path.clone(),
            every: self.checkpoint_every,
        };
        let result = runtime.block_on(run_checkpointed(&loaded, &options, Some(checkpoint)))?;
        result.record.write(&record_path)?;
        print!(
            "{}",
            crate::summary::render(&result.record, &result.verdicts)
        );
        println!("run record: {}", record_path.display());
        if let Some(signal) = crate::interrupt::signal() {
            eprintln!(
                "the run was stopped by {}: the record holds what was measured until then",
                signal.name()
            );
            return Ok(ExitCode::from(signal.exit_code()));
        }
        let failed: Vec<_> = result.verdicts.iter().filter(|v| !v.pass).collect();
        if failed.is_empty() {
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!("{} SLO(s) failed:", failed.len());
            for v in failed {
                eprintln!("  {v}");
            }
            Ok(ExitCode::from(EXIT_SLO_FAILED))
        }
    }
}

/// `URL` or `NAME=URL`, repeated; several targets need names, and names must differ.
pub fn parse_targets(args: &[String]) -> Result<Vec<Target>, InvalidValue> {
    let mut targets = Vec::new();
    for arg in args {
        let (name, url) = match arg.split_once('=') {
            Some((name, url)) if !name.contains("://") => {
                (name.trim().to_string(), url.trim().to_string())
            }
            _ => ("target".to_string(), arg.trim().to_string()),
        };
        if !url.starts_with("http://") {
            return Err(InvalidValue(format!(
                "--target {arg:?}: the URL must start with http://"
            )));
        }
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(InvalidValue(format!(
                "--target {arg:?}: a name is letters, digits, - and _"
            )));
        }
        if targets.iter().any(|t: &Target| t.name == name) {
            return Err(InvalidValue(if name == "target" {
                "several --target need names: --target legacy=URL --target rebuilt=URL".to_string()
            } else {
                format!("--target name {name:?} is used twice")
            }));
        }
        targets.push(Target {
            name,
            url: url.trim_end_matches('/').to_string(),
        });
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_named_or_default() {
        let t = parse_targets(&["http://127.0.0.1:8080/".into()]).unwrap();
        assert_eq!(t[0].name, "target");
        assert_eq!(t[0].url, "http://127.0.0.1:8080");
        let t = parse_targets(&["legacy=http://a:1".into(), "rebuilt=http://b:2".into()]).unwrap();
        assert_eq!(
            (t[0].name.as_str(), t[1].name.as_str()),
            ("legacy", "rebuilt")
        );
        assert!(parse_targets(&["http://a:1".into(), "http://b:2".into()]).is_err());
        assert!(parse_targets(&["a=ftp://x".into()]).is_err());
        assert!(parse_targets(&["a=http://x".into(), "a=http://y".into()]).is_err());
    }
}
