//! `twinpeak load`: its arguments and what it does with them. With `--worker K/N` the process is
//! one of N load workers of a run (see [`crate::worker`]); `--check` validates without traffic.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use clap::Args;
use twinpeak_core::units::InvalidValue;

use crate::checkpoint::Checkpoint;
use crate::runner::{new_record, run_share, schedule_of, RunOptions, Target};
use crate::scenario::{LoadedScenario, Scenario};
use crate::schedule::Share;
use crate::worker::{clock_offset_ms, note_clock_offset, WorkerPlan, JOB_INDEX_VARIABLE};

/// Exit status when an SLO failed.
pub const EXIT_SLO_FAILED: u8 = 1;
/// Exit status for bad input or a run that could not be made.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Longest the end of a run waits for the load generator's leftover tasks.
const RUNTIME_SHUTDOWN: Duration = Duration::from_millis(100);

/// Arguments of `twinpeak load`.
#[derive(Debug, Args)]
pub struct LoadCommand {
    /// The scenario (YAML); not with --replay.
    #[arg(required_unless_present = "replay")]
    pub scenario: Option<PathBuf>,
    /// A system to load: `URL`, or `NAME=URL`; repeat for several (names needed then).
    #[arg(long = "target", required_unless_present = "check")]
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
    /// Replay recorded traffic instead of a scenario: recording directories or segment files
    /// (sent at their recorded instants), or JSON Lines files of requests such as the proxy's
    /// diff corpus (sent in order at --rps). Several recordings interleave by time.
    #[arg(long, num_args = 1.., value_name = "DIR|FILE")]
    pub replay: Vec<PathBuf>,
    /// A recording's pace: `10x` sends it ten times as fast, `0.5x` at half speed.
    #[arg(
        long,
        value_name = "FACTOR",
        requires = "replay",
        conflicts_with = "rps"
    )]
    pub speed: Option<String>,
    /// A recording's mean rate (requests per second; the speed follows), or a corpus's rate
    /// (50 unless given).
    #[arg(long, requires = "replay")]
    pub rps: Option<f64>,
    /// Start the recording over at its end (after one mean gap) until --duration.
    #[arg(long = "loop", requires_all = ["replay", "duration"])]
    pub repeat: bool,
    /// How long a looped replay lasts.
    #[arg(long, requires = "repeat", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Replay only requests of this route template (repeat for several).
    #[arg(long = "route", value_name = "TEMPLATE", requires = "replay")]
    pub routes: Vec<String>,
    /// Replay only requests of this method (repeat for several).
    #[arg(long = "method", value_name = "METHOD", requires = "replay")]
    pub methods: Vec<String>,
    /// Replay only requests recorded at or after this (RFC 3339, or `+5m` from the start).
    #[arg(long, value_name = "TIME", requires = "replay")]
    pub from: Option<String>,
    /// Replay only requests recorded before this (RFC 3339, or `+5m` from the start).
    #[arg(long, value_name = "TIME", requires = "replay")]
    pub until: Option<String>,
    /// The Host header replayed requests carry.
    #[arg(long, value_name = "NAME", requires = "replay")]
    pub host: Option<String>,
    /// A header every replayed request carries, replacing the recorded one (`Name: value`;
    /// repeat for several).
    #[arg(long = "set-header", value_name = "HEADER", requires = "replay")]
    pub set_headers: Vec<String>,
    /// A recorded header not replayed (repeat for several).
    #[arg(long = "remove-header", value_name = "NAME", requires = "replay")]
    pub remove_headers: Vec<String>,
    /// Rewrite replayed paths: `REGEX=>REPLACEMENT` with `$1` for groups (repeat; applied in
    /// order).
    #[arg(long = "rewrite-path", value_name = "RULE", requires = "replay")]
    pub rewrite_paths: Vec<String>,
    /// Credentials for replayed requests, which never carry the recorded ones:
    /// `header-file:PATH` (a `Name: value` line) or `login:SPEC.yaml` (a login per load user).
    #[arg(long, value_name = "SOURCE", requires = "replay")]
    pub auth: Option<String>,
    /// Replay writes (POST, PUT, PATCH, DELETE, ...): refused without it.
    #[arg(long, requires = "replay")]
    pub allow_writes: bool,
    /// Replay to the primary the recording was made from: refused without it.
    #[arg(long = "i-know-this-is-the-recorded-primary", requires = "replay")]
    pub aim_at_recorded_primary: bool,
    /// Compare each replayed answer with the recorded primary's answer through the proxy's
    /// diff engine; the findings join the run record.
    #[arg(long, requires = "replay")]
    pub compare: bool,
    /// The proxy configuration whose comparison rules --compare applies.
    #[arg(long, value_name = "PROXY.yaml", requires = "compare")]
    pub config: Option<PathBuf>,
    /// An arrival not sent this long after its due instant is dropped and counted: against the
    /// target when every user was busy waiting for it, against the generator otherwise.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub late_limit: Duration,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
    /// Be load worker K of N of one run (K counts from 0: `0/4` … `3/4`) and send the run's
    /// arrivals K, K + N, K + 2N, … (without --seed, every worker derives one from the run id).
    /// Without it, K is read from
    /// JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) when --workers gives N.
    #[arg(long, value_name = "K/N")]
    pub worker: Option<String>,
    /// Number of load workers of the run, with K from JOB_COMPLETION_INDEX.
    #[arg(long, value_name = "N", env = "TWINPEAK_WORKERS")]
    pub workers: Option<u32>,
    /// When the schedule starts, on every worker alike (RFC 3339: 2026-12-24T18:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub start_at: Option<String>,
    /// Names the run in every worker's record (default: derived from the scenario, seed,
    /// number of workers, --start-at and --scale, the same on every worker of one launch).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Check the scenario and the flags, and say what this process would send, without sending
    /// anything: exit 0 when all is well, 2 otherwise.
    #[arg(long)]
    pub check: bool,
}

/// A run ready to go: what every flag said, checked.
struct Prepared {
    loaded: LoadedScenario,
    options: RunOptions,
    worker: Option<WorkerPlan>,
    /// The scenario's `max_users` before the worker's share was taken.
    all_users: usize,
}

/// The comparer `--compare` hands the replayed answers to, made by the caller.
pub type Comparer = Arc<dyn crate::compare::ReplayCompare>;

impl LoadCommand {
    /// Runs the command; prints the summary and returns the exit status. `--compare` needs
    /// [`LoadCommand::execute_with`].
    pub fn execute(&self) -> ExitCode {
        self.execute_with(None)
    }

    /// Runs the command with `compare` comparing replayed answers (`--compare`); prints the
    /// summary and returns the exit status.
    pub fn execute_with(&self, compare: Option<Comparer>) -> ExitCode {
        match self.try_execute(compare) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(EXIT_BAD_INPUT)
            }
        }
    }

    fn try_execute(&self, compare: Option<Comparer>) -> anyhow::Result<ExitCode> {
        let prepared = self.prepare(compare)?;
        if self.check {
            print!("{}", check_report(&prepared)?);
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(plan) = &prepared.worker {
            plan.check_start_soon(SystemTime::now())?;
        }
        self.run(prepared)
    }

    /// Reads the scenario and checks every flag, before any traffic.
    fn prepare(&self, compare: Option<Comparer>) -> anyhow::Result<Prepared> {
        if !(self.scale > 0.0 && self.scale.is_finite()) {
            bail!("--scale must be above 0, got {}", self.scale);
        }
        if self.checkpoint_every.is_zero() {
            bail!("--checkpoint-every must be above 0");
        }
        let targets = parse_targets(&self.targets)?;
        let (loaded, replay) = match &self.scenario {
            _ if !self.replay.is_empty() => {
                if self.scenario.is_some() {
                    bail!("give a scenario file or --replay, not both");
                }
                let (loaded, plan) = self.prepare_replay(&targets, compare)?;
                (loaded, Some(Arc::new(plan)))
            }
            Some(file) => (Scenario::load(file)?, None),
            None => bail!("give a scenario file or --replay DIR|FILE"),
        };
        // A recording's replay keeps its pace: its scenario is not scaled.
        let scale = if replay.is_some() { 1.0 } else { self.scale };
        let job_index = std::env::var(JOB_INDEX_VARIABLE).ok();
        let worker = WorkerPlan::from_flags(
            self.worker.as_deref(),
            self.workers,
            job_index.as_deref(),
            self.start_at.as_deref(),
            self.run_id.as_deref(),
            (&loaded.sha256, self.seed, self.scale),
        )?;
        let all_users = loaded.scenario.max_users;
        let mut loaded = LoadedScenario {
            scenario: loaded.scenario.try_scaled(scale)?,
            ..loaded
        };
        if let Some(plan) = &worker {
            let (index, count) = (plan.share.index as usize, plan.share.count as usize);
            loaded.scenario.max_users = plan.users(all_users)?;
            loaded.data = loaded
                .data
                .share(index, count)
                .map_err(|e| anyhow::anyhow!("{}: {e}", loaded.path.display()))?;
        }
        crate::runner::schedule_of(
            &loaded.scenario,
            0..loaded.scenario.phases.len(),
            Share::WHOLE,
            replay.as_deref(),
        )?;
        let options = RunOptions {
            targets,
            interleave: self.interleave,
            seed: self
                .seed
                .or(worker.as_ref().map(|w| w.seed))
                .unwrap_or_else(rand::random),
            scale: self.scale,
            late_limit: self.late_limit,
            progress: !self.quiet,
            replay,
            end_at_schedule: true,
        };
        Ok(Prepared {
            loaded,
            options,
            worker,
            all_users,
        })
    }

    /// Reads and checks what `--replay` and its flags ask for.
    fn prepare_replay(
        &self,
        targets: &[Target],
        compare: Option<Comparer>,
    ) -> anyhow::Result<(LoadedScenario, crate::replay::ReplayPlan)> {
        use crate::replay::{Auth, Filter, ReplayRequest, Rewrite};
        if self.compare && compare.is_none() {
            bail!("--compare needs the proxy's diff engine, which this build of twinpeak load does not supply");
        }
        let request = ReplayRequest {
            inputs: &self.replay,
            speed: self.speed.as_deref(),
            rps: self.rps,
            repeat_until: self.duration.filter(|_| self.repeat),
            filter: Filter::new(
                &self.routes,
                &self.methods,
                self.from.as_deref(),
                self.until.as_deref(),
            )?,
            rewrite: Rewrite::new(
                self.host.as_deref(),
                &self.set_headers,
                &self.remove_headers,
                &self.rewrite_paths,
            )?,
            auth: self.auth.as_deref().map(Auth::parse).transpose()?,
            allow_writes: self.allow_writes,
            aim_at_primary: self.aim_at_recorded_primary,
            targets,
            scale: self.scale,
        };
        let (loaded, mut plan) = crate::replay::prepare(&request)?;
        if self.compare {
            plan.compare = compare;
        }
        Ok((loaded, plan))
    }

    /// Runs what [`LoadCommand::prepare`] made ready; prints the summary.
    fn run(&self, prepared: Prepared) -> anyhow::Result<ExitCode> {
        let Prepared {
            loaded,
            options,
            worker,
            ..
        } = prepared;
        let seed = options.seed;
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
        if let Some(plan) = &worker {
            eprintln!(
                "worker {}/{} of run {}{}",
                plan.share.index,
                plan.share.count,
                plan.run_id,
                self.start_at
                    .as_ref()
                    .map(|t| format!(", starting at {t}"))
                    .unwrap_or_default()
            );
        }
        crate::runner::check_targets(&options.targets)?;
        // Before any traffic: a run whose record cannot be kept is not worth sending.
        let record_path = out.join("run.json");
        let mut first = new_record(&loaded, &options, std::time::SystemTime::now());
        first.worker = worker.as_ref().map(|w| Box::new(w.mark()));
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
        if let (Some(mark), Some(target)) = (first.worker.as_mut(), options.targets.first()) {
            if let Some(offset) = runtime.block_on(clock_offset_ms(&target.url)) {
                note_clock_offset(mark, &target.name, offset);
            }
        }
        for warning in first.worker.iter().flat_map(|m| &m.warnings) {
            eprintln!("warning: {warning}");
        }
        first.partial = false;
        let result = runtime.block_on(run_share(
            &loaded,
            &options,
            Some(checkpoint),
            first,
            worker.as_ref(),
        ));
        // What Goose leaves running once the run is over only delays the exit.
        runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
        let result = result?;
        for warning in result.record.worker.iter().flat_map(|m| &m.warnings) {
            eprintln!("warning: {warning}");
        }
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
        if let Some(plan) = worker.as_ref().filter(|w| w.share.count > 1) {
            // A worker's share is not the run: the merge of every worker's record judges it,
            // and a worker that failed would be run again by a Job that retries failed pods.
            if !failed.is_empty() {
                eprintln!(
                    "worker {}/{}: {} SLO verdict(s) of this share alone failed; the run's \
                     verdict is that of `twinpeak report` over every worker's run.json",
                    plan.share.index,
                    plan.share.count,
                    failed.len()
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
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

/// What `--check` says of a prepared run: the scenario, and the share this process would send.
fn check_report(prepared: &Prepared) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let Prepared {
        loaded,
        worker,
        all_users,
        options,
    } = prepared;
    let scenario = &loaded.scenario;
    let share = worker.as_ref().map_or(Share::WHOLE, |w| w.share);
    let phases = 0..scenario.phases.len();
    let replay = options.replay.as_deref();
    let whole = schedule_of(scenario, phases.clone(), Share::WHOLE, replay)?;
    let ours = schedule_of(scenario, phases, share, replay)?;
    let mut text = String::new();
    if let Some(replay) = replay {
        let _ = writeln!(text, "replay: {}", replay.description);
    }
    text += &format!(
        "{}: scenario `{}` is valid (sha256 {}): {} phase(s), {:.0} s, {} arrivals per target\n",
        loaded.path.display(),
        scenario.name,
        loaded.sha256,
        scenario.phases.len(),
        scenario.total_duration().as_secs_f64(),
        whole.total_arrivals(),
    );
    if let Some(plan) = worker {
        let _ = writeln!(
            text,
            "worker {}/{} (from 0) of run {}: {} of those arrivals (the run's {}, {}, {}, …), {} of {} users",
            share.index,
            share.count,
            plan.run_id,
            ours.total_arrivals(),
            share.index,
            share.index + share.count,
            share.index + 2 * share.count,
            scenario.max_users,
            all_users,
        );
        if let Some(start) = plan.start_at {
            let _ = writeln!(
                text,
                "starts at {}",
                twinpeak_core::timestamp::rfc3339(start)
            );
            if let Err(far) = plan.check_start_soon(SystemTime::now()) {
                let _ = writeln!(text, "note: launched now, the run would stop: {far}");
            }
        }
        for name in loaded.data.split_names() {
            let values = loaded.data.values(name).map_or(0, <[String]>::len);
            let _ = writeln!(
                text,
                "data.{name}: split, {values} value(s) for this worker"
            );
        }
    }
    Ok(text)
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
mod tests;
