//! Runs a scenario on Goose: every Goose user takes its next arrival from one shared pacer, so
//! the offered rate follows the schedule whatever the system under test does (open model), and
//! each latency is measured from the arrival's intended time as well as from the actual send.
//! While it runs, the record as measured so far can be checkpointed. A load worker runs its
//! share of the schedule from the run's common start (see [`crate::worker`]).

use std::collections::BTreeMap;
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use goose::client::GooseClientBuilder;
use goose::config::GooseConfiguration;
use goose::prelude::*;
use twinpeak_core::run::WorkerMark;
use twinpeak_core::sync::lock;
use twinpeak_core::{PhaseRecord, RunRecord, RunTarget, SloRecord};

use crate::checkpoint::{Checkpoint, Checkpointer};
use crate::data::Data;
use crate::pacer::Pacer;
use crate::progress::ProgressReporter;
use crate::recorder::Recorder;
use crate::replay::ReplayPlan;
use crate::scenario::{LoadedScenario, Scenario};
use crate::schedule::{PhasePlan, Schedule, Share};
use crate::session::{goose_method, RequestPlan};
use crate::slo::{judge, SloVerdict};
use crate::worker::{note_late_start, WorkerPlan};

/// How a leg's users start: how many Goose launches (and stops) a second, and the time between
/// the last one's launch and the first arrival.
#[derive(Debug, Clone, Copy)]
struct Launch {
    per_second: usize,
    margin: Duration,
}

impl Launch {
    /// Users with a client each are launched in about a quarter of a second, the first arrival
    /// a quarter of a second later. Users that share one client (a replay's) cost little to
    /// launch: all of them in about a twentieth of a second, a tenth before the first arrival.
    fn of(users: usize, shared_client: bool) -> Launch {
        if shared_client {
            Launch {
                per_second: (users * 20).max(1),
                margin: Duration::from_millis(100),
            }
        } else {
            Launch {
                per_second: (users * 4).max(1),
                margin: Duration::from_millis(250),
            }
        }
    }
}

/// Longest a launched user waits for the others, beyond the time Goose is asked to take to
/// launch them all, before the clock starts without them.
const LAUNCH_WAIT: Duration = Duration::from_secs(10);

/// With a common start, how long before it a worker starts Goose at the latest: launching
/// hundreds of users (a client each) can take seconds on a busy machine, and users launched
/// early only wait for the first arrival.
const START_LEAD: Duration = Duration::from_secs(30);

/// With a common start and several legs (targets), the time between the end of one leg's
/// schedule and the start of the next, beyond the scenario's request timeout: every worker
/// starts each leg at the same instant.
const LEG_GAP: Duration = Duration::from_secs(3);

/// A system the load goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its name in records (`legacy`, `rebuilt`; `target` when only one is given).
    pub name: String,
    /// Its base URL (`http://127.0.0.1:8080`).
    pub url: String,
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The systems, run in turn on the same schedule.
    pub targets: Vec<Target>,
    /// Alternate systems phase by phase, so drift of the machine hits both alike.
    pub interleave: bool,
    /// Seeds every random choice: the same seed sends the same requests at the same offsets.
    pub seed: u64,
    /// The factor the scenario's durations were scaled by (recorded).
    pub scale: f64,
    /// An arrival late by more than this when a user is free is dropped (and counted).
    pub late_limit: Duration,
    /// Show progress while running.
    pub progress: bool,
    /// Recorded requests to send instead of the scenario's (`--replay`), at their recorded
    /// instants when they have them.
    pub replay: Option<Arc<ReplayPlan>>,
    /// End the run as soon as the last leg's schedule is over and answered, leaving Goose to
    /// stop its users in the background: Goose notices the end of an attack only on its next
    /// half-second tick. Only for a process that runs once (`twinpeak load`): a run that
    /// followed in the same process would meet the users left behind.
    pub end_at_schedule: bool,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunResult {
    /// The `twinpeak.run/v1` record.
    pub record: RunRecord,
    /// Every SLO verdict, run-wide and per phase, per system.
    pub verdicts: Vec<SloVerdict>,
    /// Whether a signal (Ctrl-C, SIGTERM) cut the run short; the record holds what was measured
    /// until then and names the signal.
    pub interrupted: bool,
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A target could not be reached before any traffic was sent.
    #[error("cannot reach {name} at {url}: {reason}")]
    Unreachable {
        /// Target name.
        name: String,
        /// Its URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// A request uses a method Goose cannot send.
    #[error(
        "request {0:?}: method {1} is not supported (GET, HEAD, POST, PUT, PATCH, DELETE are)"
    )]
    Method(String, String),
    /// The schedule could not be built.
    #[error("bad schedule: {0}")]
    Schedule(String),
    /// Goose failed.
    #[error("load generator failed: {0}")]
    Goose(String),
    /// The checkpoint thread could not be started.
    #[error("cannot start checkpointing: {0}")]
    Checkpoint(#[source] std::io::Error),
}

/// What every user of one leg (some consecutive phases against one system) shares.
struct Leg {
    /// The pacer and recorder, from the moment every user is launched.
    clock: OnceLock<Clocked>,
    /// Wakes the users waiting for the clock to start.
    clock_started: tokio::sync::Notify,
    /// Users launched so far.
    launched: AtomicUsize,
    /// When the leg's schedule is to start on every load worker, if they share a start.
    start_at: Option<Instant>,
    /// Set by [`Leg::stop`]: a clock started later stops at once.
    stopped: AtomicBool,
    schedule: Schedule,
    late_limit: Duration,
    /// Time Goose is asked to take to launch every user (its hatch rate).
    hatch: Duration,
    /// Time between the last user's launch and the first arrival.
    margin: Duration,
    users: usize,
    target: String,
    request_names: Vec<String>,
    plan: RequestPlan,
    /// Users taking or sending an arrival now.
    in_flight: AtomicUsize,
    /// Told once the schedule is over and no user is taking or sending an arrival.
    finished: tokio::sync::Notify,
}

/// The pacer and recorder of a leg, made when Goose starts it.
struct Clocked {
    pacer: Arc<Pacer>,
    recorder: Recorder,
}

impl Leg {
    /// Counts a user launched; the last one starts the clock. Users launch one by one, each
    /// with a client of its own, which takes longer than Goose's hatch rate says on a busy
    /// machine: an arrival due before its user runs would be counted as the target's delay.
    fn user_launched(&self) {
        if self.launched.fetch_add(1, Ordering::AcqRel) + 1 >= self.users {
            self.begin();
        }
    }

    /// The clock, once the last user is launched; if that takes longer than the launch should,
    /// the clock starts without the rest.
    async fn clocked(&self) -> &Clocked {
        let notified = self.clock_started.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(clocked) = self.clock.get() {
            return clocked;
        }
        let _ = tokio::time::timeout(self.hatch + LAUNCH_WAIT, notified).await;
        self.begin()
    }

    /// Starts the clock: the first arrival is due a moment from now, and not before the common
    /// start if there is one.
    fn begin(&self) -> &Clocked {
        let clocked = self.clock.get_or_init(|| {
            let ready = Instant::now() + self.margin;
            let start = self.start_at.map_or(ready, |at| at.max(ready));
            let phases = self.schedule.phases().len();
            Clocked {
                recorder: Recorder::new(
                    phases,
                    self.request_names.clone(),
                    start,
                    self.schedule.total_duration(),
                ),
                pacer: Pacer::start(self.schedule.clone(), start, self.late_limit),
            }
        });
        self.clock_started.notify_waiters();
        if self.stopped.load(Ordering::SeqCst) {
            clocked.pacer.stop();
        }
        clocked
    }

    /// Ends the leg's schedule: every user's next arrival is none.
    /// Users still waiting for the others to launch are let go at once.
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Starts the clock if need be, stopped: it stops the pacer and wakes the waiting users.
        self.begin();
    }

    /// How much later than the common start the leg's schedule started.
    fn late(&self) -> Option<Duration> {
        let start_at = self.start_at?;
        let clocked = self.clock.get()?;
        Some(
            clocked
                .pacer
                .start_instant()
                .saturating_duration_since(start_at),
        )
    }

    /// The records of the leg's phases started so far; with `point_latency` (a load worker's),
    /// each timeline point's latency histogram too.
    fn records(&self, point_latency: bool) -> Vec<PhaseRecord> {
        self.clock.get().map_or_else(Vec::new, |c| {
            c.recorder
                .phase_records(&self.target, &c.pacer, self.users as u64, point_latency)
        })
    }
}

/// A run in progress: the record's own fields, the phases of the legs done, and the leg going.
struct LiveRun {
    base: RunRecord,
    /// What compares replayed answers with the recorded ones, whose findings join the record.
    compare: Option<Arc<dyn crate::compare::ReplayCompare>>,
    /// The worker's mark, with what its legs' starts added to it.
    worker: Mutex<Option<WorkerMark>>,
    done: Mutex<Vec<PhaseRecord>>,
    current: Mutex<Option<Arc<Leg>>>,
}

impl LiveRun {
    /// The record as measured so far.
    fn record(&self) -> RunRecord {
        let mut record = self.base.clone();
        record.ended_at = twinpeak_core::timestamp::rfc3339(SystemTime::now());
        record.phases = lock(&self.done).clone();
        record.worker = lock(&self.worker).clone().map(Box::new);
        if let Some(leg) = lock(&self.current).as_ref() {
            record.phases.extend(leg.records(record.worker.is_some()));
        }
        if let Some(compare) = &self.compare {
            for target in &mut record.targets {
                target.comparison = compare.summary(&target.name);
            }
        }
        record
    }
}

/// Checks that every target accepts connections, before any traffic.
pub fn check_targets(targets: &[Target]) -> Result<(), RunError> {
    for t in targets {
        let unreachable = |reason: String| RunError::Unreachable {
            name: t.name.clone(),
            url: t.url.clone(),
            reason,
        };
        let url: http::Uri = t
            .url
            .parse()
            .map_err(|e| unreachable(format!("not a URL ({e})")))?;
        if !matches!(url.scheme_str(), Some("http")) {
            return Err(unreachable("only http:// targets are supported".into()));
        }
        let host = url.host().ok_or_else(|| unreachable("no host".into()))?;
        let port = url.port_u16().unwrap_or(80);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<_> = (host, port)
            .to_socket_addrs()
            .map_err(|e| unreachable(e.to_string()))?
            .collect();
        let connected = addrs
            .iter()
            .any(|a| std::net::TcpStream::connect_timeout(a, Duration::from_secs(3)).is_ok());
        if !connected {
            return Err(unreachable("connection refused or timed out".into()));
        }
    }
    Ok(())
}

/// The record of `loaded` run with `options` from `started`, before any phase: what a run record
/// says of the run itself.
pub fn new_record(loaded: &LoadedScenario, options: &RunOptions, started: SystemTime) -> RunRecord {
    let mut versions = BTreeMap::new();
    versions.insert(
        "twinpeak".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    versions.insert("goose".to_string(), "0.19".to_string());
    let mut record = RunRecord::new(
        loaded.scenario.name.clone(),
        loaded.sha256.clone(),
        options.seed,
        options.scale,
        started,
        versions,
    );
    record.targets = options
        .targets
        .iter()
        .map(|t| RunTarget {
            name: t.name.clone(),
            url: t.url.clone(),
            ..RunTarget::default()
        })
        .collect();
    record.thresholds = loaded.scenario.thresholds();
    record
}

/// Runs the scenario against every target and judges the SLOs.
pub async fn run(loaded: &LoadedScenario, options: &RunOptions) -> Result<RunResult, RunError> {
    run_checkpointed(loaded, options, None).await
}

/// Runs the scenario against every target, writing the record as measured so far to
/// `checkpoint` while it runs, and judges the SLOs.
pub async fn run_checkpointed(
    loaded: &LoadedScenario,
    options: &RunOptions,
    checkpoint: Option<Checkpoint>,
) -> Result<RunResult, RunError> {
    let base = new_record(loaded, options, SystemTime::now());
    run_share(loaded, options, checkpoint, base, None).await
}

/// Runs `worker`'s share of the scenario (all of it for `None`) as [`run_checkpointed`] does,
/// into `base`: the record's own fields, as [`new_record`] makes them and the caller completed
/// (the worker's mark).
pub async fn run_share(
    loaded: &LoadedScenario,
    options: &RunOptions,
    checkpoint: Option<Checkpoint>,
    base: RunRecord,
    worker: Option<&WorkerPlan>,
) -> Result<RunResult, RunError> {
    let scenario = Arc::new(loaded.scenario.clone());
    for r in &scenario.requests {
        goose_method(&r.method)
            .ok_or_else(|| RunError::Method(r.name.clone(), r.method.to_string()))?;
    }
    check_targets(&options.targets)?;
    let data = Arc::new(loaded.data.clone());
    let live = Arc::new(LiveRun {
        compare: options.replay.as_ref().and_then(|r| r.compare.clone()),
        worker: Mutex::new(base.worker.as_deref().cloned()),
        base,
        done: Mutex::new(Vec::new()),
        current: Mutex::new(None),
    });
    let phase_count = scenario.phases.len();
    let legs: Vec<(usize, std::ops::Range<usize>)> = if options.interleave {
        (0..phase_count)
            .flat_map(|p| (0..options.targets.len()).map(move |t| (t, p..p + 1)))
            .collect()
    } else {
        (0..options.targets.len())
            .map(|t| (t, 0..phase_count))
            .collect()
    };
    crate::interrupt::install();
    let checkpointer = match checkpoint {
        Some(checkpoint) => {
            let live = Arc::clone(&live);
            let current = move || RunRecord {
                partial: true,
                ..live.record()
            };
            Some(Checkpointer::start(checkpoint, current).map_err(RunError::Checkpoint)?)
        }
        None => None,
    };
    let mut start_at = worker.and_then(WorkerPlan::start_instant);
    let share = worker.map_or(Share::WHOLE, |w| w.share);
    let last_leg = legs.len().saturating_sub(1);
    for (index, (target, range)) in legs.into_iter().enumerate() {
        if crate::interrupt::interrupted() {
            break;
        }
        let target = &options.targets[target];
        let leg_length: Duration = scenario.phases[range.clone()]
            .iter()
            .map(|p| p.duration)
            .sum();
        let phases = run_leg(
            &scenario,
            &data,
            target,
            range,
            options,
            &live,
            (
                share,
                start_at,
                options.end_at_schedule && index == last_leg,
            ),
        )
        .await?;
        lock(&live.done).extend(phases);
        start_at = start_at.map(|at| at + leg_length + scenario.timeout + LEG_GAP);
    }
    if let Some(checkpointer) = checkpointer {
        checkpointer.finish();
    }
    let mut record = live.record();
    record.interrupted = crate::interrupt::signal().map(|s| s.name().to_owned());
    let verdicts = judge(&record);
    record.slo = verdicts.iter().map(SloRecord::from).collect();
    Ok(RunResult {
        record,
        verdicts,
        interrupted: crate::interrupt::interrupted(),
    })
}

/// The schedule of `share` of the scenario's `phases`: a recording's replay keeps its recorded
/// instants (its one phase is the whole recording).
pub(crate) fn schedule_of(
    scenario: &Scenario,
    phases: std::ops::Range<usize>,
    share: Share,
    replay: Option<&ReplayPlan>,
) -> Result<Schedule, RunError> {
    if let Some(recorded) = replay.and_then(|r| r.schedule(share)) {
        return recorded.map_err(|e| RunError::Schedule(e.to_string()));
    }
    let plans: Vec<PhasePlan> = scenario.phases[phases]
        .iter()
        .map(|p| PhasePlan {
            name: p.name.clone(),
            duration: p.duration,
            start_rps: p.rps.start * scenario.baseline_rps,
            end_rps: p.rps.end * scenario.baseline_rps,
        })
        .collect();
    Ok(Schedule::new(plans)
        .map_err(|e| RunError::Schedule(e.to_string()))?
        .share(share))
}

/// Runs some consecutive phases against one system.
async fn run_leg(
    scenario: &Arc<Scenario>,
    data: &Arc<Data>,
    target: &Target,
    phases: std::ops::Range<usize>,
    options: &RunOptions,
    live: &LiveRun,
    (share, start_at, end_at_schedule): (Share, Option<Instant>, bool),
) -> Result<Vec<PhaseRecord>, RunError> {
    let schedule = schedule_of(scenario, phases.clone(), share, options.replay.as_deref())?;
    let total = schedule.total_duration();
    let users = scenario.max_users.max(1);
    let start = Launch::of(users, options.replay.is_some());
    let hatch = Duration::from_secs_f64(users as f64 / start.per_second as f64);
    if let Some(at) = start_at {
        // Goose starts early enough to have every user running by the common start.
        let goose_start = at.checked_sub(START_LEAD);
        if let Some(goose_start) = goose_start.filter(|&t| t > Instant::now()) {
            tokio::select! {
                () = tokio::time::sleep_until(goose_start.into()) => {}
                () = crate::interrupt::stopping() => return Ok(Vec::new()),
            }
        }
    }
    let leg = Arc::new(Leg {
        clock: OnceLock::new(),
        clock_started: tokio::sync::Notify::new(),
        launched: AtomicUsize::new(0),
        start_at,
        stopped: AtomicBool::new(false),
        schedule,
        late_limit: options.late_limit,
        hatch,
        margin: start.margin,
        users,
        target: target.name.clone(),
        request_names: scenario.requests.iter().map(|r| r.name.clone()).collect(),
        plan: RequestPlan::new(
            scenario.clone(),
            data.clone(),
            options.seed,
            (phases.start, &target.name),
            options.replay.clone(),
        ),
        in_flight: AtomicUsize::new(0),
        finished: tokio::sync::Notify::new(),
    });
    *lock(&live.current) = Some(Arc::clone(&leg));
    let reporter = options
        .progress
        .then(|| ProgressReporter::start(leg.clone_for_progress(), target.name.clone()));
    // A signal ends the schedule, so users waiting for their next arrival return at once.
    let stopper = {
        let leg = Arc::clone(&leg);
        tokio::spawn(async move {
            crate::interrupt::stopping().await;
            leg.stop();
        })
    };

    let launch_leg = leg.clone();
    let launch = Transaction::new(Arc::new(move |user| {
        let leg = launch_leg.clone();
        Box::pin(async move {
            leg.plan.prepare_user(user).await;
            leg.user_launched();
            Ok(())
        })
    }))
    .set_on_start();
    let step_leg = leg.clone();
    let transaction = Transaction::new(Arc::new(move |user| {
        let leg = step_leg.clone();
        Box::pin(async move { step(user, &leg).await })
    }))
    .set_name("arrival");
    let wait = start_at.map_or(Duration::ZERO, |at| {
        at.saturating_duration_since(Instant::now())
    });
    let run_time = (wait
        + total
        + hatch
        + LAUNCH_WAIT
        + start.margin
        + scenario.timeout
        + Duration::from_secs(2))
    .as_secs()
    .max(1) as usize;
    let attack = GooseAttack::initialize_with_config(GooseConfiguration::default())
        .map_err(|e| RunError::Goose(e.to_string()))?
        .register_scenario(
            goose::goose::Scenario::new("twinpeak")
                .register_transaction(launch)
                .register_transaction(transaction),
        );
    let attack = goose_defaults(attack, target, scenario, (run_time, start.per_second))
        .map_err(|e| RunError::Goose(e.to_string()))?;
    // A replay's users share one client (and its connection pool): building a client per
    // user is what makes launching hundreds of them slow, and a replay keeps no cookies.
    let attack = if options.replay.is_some() {
        attack
            .set_client_builder_without_cookies(GooseClientBuilder::new().without_cookies())
            .map_err(|e| RunError::Goose(e.to_string()))?
    } else {
        attack
    };
    let mut execute = Box::pin(attack.execute());
    let result = if end_at_schedule {
        tokio::select! {
            result = &mut execute => result.map(drop),
            () = leg.finished.notified() => {
                // Every arrival is sent and answered: the records are whole. Goose stops its
                // users on its own once it sees the killswitch.
                tokio::spawn(async move { drop(execute.await) });
                Ok(())
            }
        }
    } else {
        execute.await.map(drop)
    };
    stopper.abort();
    leg.begin();
    leg.stop();
    if let Some(reporter) = reporter {
        reporter.finish();
    }
    let records = leg.records(lock(&live.worker).is_some());
    if let (Some(late), Some(mark)) = (leg.late(), lock(&live.worker).as_mut()) {
        note_late_start(mark, late);
    }
    *lock(&live.current) = None;
    result.map_err(|e| RunError::Goose(e.to_string()))?;
    Ok(records)
}

fn goose_defaults(
    attack: GooseAttack,
    target: &Target,
    scenario: &Scenario,
    (run_time, per_second): (usize, usize),
) -> Result<GooseAttack, GooseError> {
    let users = scenario.max_users.max(1);
    let attack = *attack.set_default(GooseDefault::Host, target.url.as_str())?;
    let attack = *attack.set_default(GooseDefault::Users, users)?;
    // All users start before the first arrival (see `Leg::user_launched`).
    let attack =
        *attack.set_default(GooseDefault::IncreaseRate, per_second.to_string().as_str())?;
    // And all stop as fast once the schedule is over.
    let attack =
        *attack.set_default(GooseDefault::DecreaseRate, per_second.to_string().as_str())?;
    let attack = *attack.set_default(GooseDefault::RunTime, run_time)?;
    // No remote control: its listeners would only collide between runs.
    let attack = *attack.set_default(GooseDefault::NoTelnet, true)?;
    let attack = *attack.set_default(
        GooseDefault::Timeout,
        format!("{}", scenario.timeout.as_secs_f64()).as_str(),
    )?;
    // twinpeak keeps its own measurements; Goose's would only duplicate them.
    let attack = *attack.set_default(GooseDefault::NoMetrics, true)?;
    let attack = *attack.set_default(GooseDefault::NoPrintMetrics, true)?;
    let attack = *attack.set_default(GooseDefault::NoErrorSummary, true)?;
    let attack = *attack.set_default(GooseDefault::Quiet, 1)?;
    Ok(attack)
}

impl Leg {
    fn clone_for_progress(self: &Arc<Self>) -> Arc<dyn crate::progress::ProgressSource> {
        self.clone()
    }
}

impl crate::progress::ProgressSource for Leg {
    fn snapshot(&self) -> Option<crate::progress::ProgressLine> {
        let Clocked { pacer, recorder } = self.clock.get()?;
        let elapsed = Instant::now().saturating_duration_since(pacer.start_instant());
        let schedule = pacer.schedule();
        let phase = (0..schedule.phases().len())
            .rev()
            .find(|p| schedule.phase_start(*p).is_some_and(|s| s <= elapsed))
            .unwrap_or(0);
        let plan = &schedule.phases()[phase];
        let into = elapsed.saturating_sub(schedule.phase_start(phase).unwrap_or_default());
        let fraction = (into.as_secs_f64() / plan.duration.as_secs_f64().max(1e-9)).min(1.0);
        let progress = recorder.progress(phase);
        let counts = (0..schedule.phases().len()).map(|p| pacer.counts(p));
        let (dropped_busy, dropped_late) = counts.fold((0, 0), |(busy, late), c| {
            (busy + c.dropped_busy, late + c.dropped_late)
        });
        Some(crate::progress::ProgressLine {
            phase: plan.name.clone(),
            elapsed,
            total: schedule.total_duration(),
            target_rps: (plan.start_rps + (plan.end_rps - plan.start_rps) * fraction)
                / schedule.share_of_run().count as f64,
            achieved_rps: progress.recent_rps,
            p99_us: progress.p99_us,
            lag_p99_us: progress.lag_p99_us,
            requests: progress.requests,
            errors: progress.errors,
            dropped_busy,
            dropped_late,
            users: self.users,
        })
    }
}

/// A user taking or sending an arrival, counted in the leg's in-flight count until dropped
/// (whatever happened).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One Goose transaction: take an arrival, send what it sends, record it.
async fn step(user: &mut GooseUser, leg: &Leg) -> TransactionResult {
    let Clocked { pacer, recorder } = leg.clocked().await;
    // Counted before the arrival is taken, so that a user who finds the schedule over and
    // nothing counted knows the last arrival's request is recorded.
    let in_flight = InFlight::enter(&leg.in_flight);
    let Some(slot) = pacer.next().await else {
        drop(in_flight);
        // The schedule is over: once nothing is in flight, end the attack.
        if leg.in_flight.load(Ordering::Acquire) == 0 {
            goose::trigger_killswitch("schedule complete");
            leg.finished.notify_one();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        return Ok(());
    };
    leg.plan.send(user, slot, recorder).await;
    drop(in_flight);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_targets_fail_fast() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = check_targets(&[Target {
            name: "legacy".into(),
            url: format!("http://127.0.0.1:{port}"),
        }])
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot reach legacy at http://127.0.0.1:"),
            "{err}"
        );
    }
}
