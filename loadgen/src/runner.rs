//! Runs a scenario on Goose: every Goose user takes its next arrival from one shared pacer, so
//! the offered rate follows the schedule whatever the system under test does (open model), and
//! each latency is measured from the arrival's intended time as well as from the actual send.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use goose::config::GooseConfiguration;
use goose::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;
use twinpeak_reports::{PhaseRecord, RunRecord, RunTarget, SloRecord};

use crate::data::Data;
use crate::pacer::{Pacer, PhasePlan, Schedule};
use crate::progress::ProgressReporter;
use crate::recorder::{ErrorKind, Observation, Recorder};
use crate::replay::ReplayEntry;
use crate::scenario::{LoadedScenario, RequestSpec, Scenario, Slo};
use crate::slo::{evaluate, SloTargets, SloVerdict};
use crate::template::RenderContext;

/// Time between Goose's start of a run and its first arrival, beyond the time Goose takes to
/// launch every user.
const STARTUP_MARGIN: Duration = Duration::from_millis(250);

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
    /// Recorded requests to send in order instead of the scenario's (`--replay`).
    pub replay: Option<Arc<Vec<ReplayEntry>>>,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunResult {
    /// The `twinpeak.run/v1` record.
    pub record: RunRecord,
    /// Every SLO verdict, run-wide and per phase, per system.
    pub verdicts: Vec<SloVerdict>,
    /// Whether Ctrl-C cut the run short (the record holds what was measured until then).
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
}

/// One system's session state in a Goose user: extracted values and requests done.
#[derive(Debug, Clone, Default)]
struct Session {
    vars: HashMap<String, serde_json::Value>,
    done: HashSet<usize>,
}

/// What every user of one leg shares.
struct Leg {
    /// The schedule and what it measured, from the moment Goose starts the run.
    clock: OnceLock<Clocked>,
    schedule: Schedule,
    late_limit: Duration,
    /// Time Goose takes to launch every user.
    hatch: Duration,
    scenario: Arc<Scenario>,
    data: Arc<Data>,
    /// Index in the whole scenario of this leg's first phase, so arrivals seed alike on every
    /// system and in every order.
    first_phase: usize,
    seed: u64,
    in_flight: AtomicUsize,
    today: chrono::NaiveDate,
    replay: Option<Arc<Vec<ReplayEntry>>>,
}

/// The pacer and recorder of a leg, made when Goose starts it.
struct Clocked {
    pacer: Pacer,
    recorder: Recorder,
}

impl Leg {
    /// Starts the clock: the first arrival is due once every user is running.
    fn begin(&self) -> &Clocked {
        self.clock.get_or_init(|| {
            let start = Instant::now() + self.hatch + STARTUP_MARGIN;
            let names = self
                .scenario
                .requests
                .iter()
                .map(|r| r.name.clone())
                .collect();
            let phases = self.schedule.phases().len();
            Clocked {
                recorder: Recorder::new(phases, names, start, self.schedule.total_duration()),
                pacer: Pacer::new(self.schedule.clone(), start, self.late_limit),
            }
        })
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

/// Runs the scenario against every target and judges the SLOs.
pub async fn run(loaded: &LoadedScenario, options: &RunOptions) -> Result<RunResult, RunError> {
    let scenario = Arc::new(loaded.scenario.clone());
    for r in &scenario.requests {
        goose_method(&r.method)
            .ok_or_else(|| RunError::Method(r.name.clone(), r.method.to_string()))?;
    }
    check_targets(&options.targets)?;
    let data = Arc::new(loaded.data.clone());
    let started = SystemTime::now();
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
    let mut phases: Vec<PhaseRecord> = Vec::new();
    for (target, range) in legs {
        let target = &options.targets[target];
        phases.extend(run_leg(&scenario, &data, target, range, options).await?);
        if crate::interrupt::interrupted() {
            break;
        }
    }
    let mut versions = BTreeMap::new();
    versions.insert(
        "twinpeak".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    versions.insert("goose".to_string(), "0.19".to_string());
    let mut record = RunRecord::new(
        scenario.name.clone(),
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
        })
        .collect();
    record.phases = phases;
    let verdicts = judge(&scenario, &record, &options.targets);
    record.slo = verdicts.iter().map(SloRecord::from).collect();
    Ok(RunResult {
        record,
        verdicts,
        interrupted: crate::interrupt::interrupted(),
    })
}

/// The SLO verdicts: per system for the whole run, and per phase.
fn judge(scenario: &Scenario, record: &RunRecord, targets: &[Target]) -> Vec<SloVerdict> {
    let mut verdicts = Vec::new();
    for target in targets {
        let mut all = twinpeak_reports::new_latency_histogram();
        let (mut sent, mut errors) = (0, 0);
        for (phase, spec) in scenario.phases.iter().enumerate() {
            let Some(p) = record
                .phases
                .iter()
                .find(|r| r.target == target.name && r.name == scenario.phases[phase].name)
            else {
                continue;
            };
            let Ok(totals) = p.totals() else { continue };
            let _ = all.add(&totals.corrected_us.0);
            sent += totals.sent;
            errors += totals.error_total();
            let slo = scenario.slo_for(spec);
            if spec.slo.is_some() {
                verdicts.extend(evaluate(
                    &format!("phase {}", spec.name),
                    &target.name,
                    &slo_targets(&slo),
                    &totals.corrected_us.0,
                    totals.sent,
                    totals.error_total(),
                ));
            }
        }
        verdicts.extend(evaluate(
            "run",
            &target.name,
            &slo_targets(&scenario.slo),
            &all,
            sent,
            errors,
        ));
    }
    verdicts
}

fn slo_targets(slo: &Slo) -> SloTargets {
    SloTargets {
        p50: slo.p50,
        p95: slo.p95,
        p99: slo.p99,
        p999: slo.p999,
        max: slo.max,
        error_rate: slo.error_rate,
    }
}

fn goose_method(method: &http::Method) -> Option<GooseMethod> {
    Some(match *method {
        http::Method::GET => GooseMethod::Get,
        http::Method::HEAD => GooseMethod::Head,
        http::Method::POST => GooseMethod::Post,
        http::Method::PUT => GooseMethod::Put,
        http::Method::PATCH => GooseMethod::Patch,
        http::Method::DELETE => GooseMethod::Delete,
        _ => return None,
    })
}

/// Runs some consecutive phases against one system.
async fn run_leg(
    scenario: &Arc<Scenario>,
    data: &Arc<Data>,
    target: &Target,
    phases: std::ops::Range<usize>,
    options: &RunOptions,
) -> Result<Vec<PhaseRecord>, RunError> {
    let plans: Vec<PhasePlan> = scenario.phases[phases.clone()]
        .iter()
        .map(|p| PhasePlan {
            name: p.name.clone(),
            duration: p.duration,
            start_rps: p.rps.start * scenario.baseline_rps,
            end_rps: p.rps.end * scenario.baseline_rps,
        })
        .collect();
    let schedule = Schedule::new(plans).map_err(|e| RunError::Schedule(e.to_string()))?;
    let total = schedule.total_duration();
    let users = scenario.max_users.max(1);
    let hatch = Duration::from_secs_f64(users as f64 / hatch_rate(users) as f64);
    let leg = Arc::new(Leg {
        clock: OnceLock::new(),
        schedule,
        late_limit: options.late_limit,
        hatch,
        scenario: scenario.clone(),
        data: data.clone(),
        first_phase: phases.start,
        seed: options.seed,
        in_flight: AtomicUsize::new(0),
        today: chrono::Local::now().date_naive(),
        replay: options.replay.clone(),
    });
    let reporter = options
        .progress
        .then(|| ProgressReporter::start(leg.clone_for_progress(), target.name.clone()));

    let start_leg = leg.clone();
    let begin = Transaction::new(Arc::new(move |_user| {
        let leg = start_leg.clone();
        Box::pin(async move {
            leg.begin();
            Ok(())
        })
    }));
    let step_leg = leg.clone();
    let transaction = Transaction::new(Arc::new(move |user| {
        let leg = step_leg.clone();
        Box::pin(async move { step(user, &leg).await })
    }))
    .set_name("arrival");
    let run_time = (total + hatch + STARTUP_MARGIN + scenario.timeout + Duration::from_secs(2))
        .as_secs()
        .max(1) as usize;
    let attack = GooseAttack::initialize_with_config(GooseConfiguration::default())
        .map_err(|e| RunError::Goose(e.to_string()))?
        .register_scenario(
            goose::goose::Scenario::new("twinpeak").register_transaction(transaction),
        )
        .test_start(begin);
    let attack = goose_defaults(attack, target, scenario, run_time)
        .map_err(|e| RunError::Goose(e.to_string()))?;
    let result = attack.execute().await;
    let clocked = leg.begin();
    clocked.pacer.stop();
    if let Some(reporter) = reporter {
        reporter.finish();
    }
    result.map_err(|e| RunError::Goose(e.to_string()))?;
    Ok(clocked.recorder.phase_records(&target.name, &clocked.pacer))
}

/// Users launched per second: all of them in about a quarter of a second.
fn hatch_rate(users: usize) -> usize {
    (users * 4).max(1)
}

fn goose_defaults(
    attack: GooseAttack,
    target: &Target,
    scenario: &Scenario,
    run_time: usize,
) -> Result<GooseAttack, GooseError> {
    let users = scenario.max_users.max(1);
    let attack = *attack.set_default(GooseDefault::Host, target.url.as_str())?;
    let attack = *attack.set_default(GooseDefault::Users, users)?;
    // All users start before the first arrival (see `Leg::begin`).
    let attack = *attack.set_default(
        GooseDefault::IncreaseRate,
        hatch_rate(users).to_string().as_str(),
    )?;
    // And all stop as fast once the schedule is over.
    let attack = *attack.set_default(
        GooseDefault::DecreaseRate,
        hatch_rate(users).to_string().as_str(),
    )?;
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
        let elapsed = Instant::now().saturating_duration_since(pacer.start());
        let schedule = pacer.schedule();
        let phase = (0..schedule.phases().len())
            .rev()
            .find(|p| schedule.phase_start(*p).is_some_and(|s| s <= elapsed))
            .unwrap_or(0);
        let plan = &schedule.phases()[phase];
        let into = elapsed.saturating_sub(schedule.phase_start(phase).unwrap_or_default());
        let fraction = (into.as_secs_f64() / plan.duration.as_secs_f64().max(1e-9)).min(1.0);
        let progress = recorder.progress(phase);
        Some(crate::progress::ProgressLine {
            phase: plan.name.clone(),
            elapsed,
            total: schedule.total_duration(),
            target_rps: plan.start_rps + (plan.end_rps - plan.start_rps) * fraction,
            achieved_rps: progress.recent_rps,
            p99_us: progress.p99_us,
            requests: progress.requests,
            errors: progress.errors,
            dropped: (0..schedule.phases().len()).map(|p| pacer.dropped(p)).sum(),
        })
    }
}

/// Decrements the in-flight count when a request is over, whatever happened.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One Goose transaction: take an arrival, send one request, record it.
async fn step(user: &mut GooseUser, leg: &Leg) -> TransactionResult {
    let Clocked { pacer, recorder } = leg.begin();
    let Some(slot) = pacer.next().await else {
        // The schedule is over: once nothing is in flight, end the attack.
        if leg.in_flight.load(Ordering::Acquire) == 0 {
            goose::trigger_killswitch("schedule complete");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        return Ok(());
    };
    leg.in_flight.fetch_add(1, Ordering::AcqRel);
    let _in_flight = InFlight(&leg.in_flight);
    if let Some(entries) = &leg.replay {
        let entry = &entries[(slot.arrival.index % entries.len() as u64) as usize];
        let mut observation = Observation {
            phase: slot.arrival.phase,
            request: 0,
            intended: slot.intended,
            sent: Instant::now(),
            done: Instant::now(),
            status: None,
            error: None,
        };
        send_replay(user, entry, &mut observation).await;
        observation.done = Instant::now();
        recorder.record(&observation);
        return Ok(());
    }
    let global_phase = leg.first_phase + slot.arrival.phase;
    let mut rng =
        ChaCha8Rng::seed_from_u64(arrival_seed(leg.seed, global_phase, slot.arrival.index));
    if user.get_session_data::<Session>().is_none() {
        user.set_session_data(Session::default());
    }
    let session = user
        .get_session_data::<Session>()
        .cloned()
        .unwrap_or_default();
    let Some(index) = choose_request(&leg.scenario.requests, &session, &mut rng) else {
        return Ok(());
    };
    let spec = &leg.scenario.requests[index];
    let mut observation = Observation {
        phase: slot.arrival.phase,
        request: index,
        intended: slot.intended,
        sent: Instant::now(),
        done: Instant::now(),
        status: None,
        error: None,
    };
    let outcome = send(user, leg, spec, &session, &mut rng, &mut observation).await;
    observation.done = Instant::now();
    if let Some(extracted) = outcome {
        if let Some(session) = user.get_session_data_mut::<Session>() {
            session.vars.extend(extracted);
            session.done.insert(index);
        }
    }
    recorder.record(&observation);
    Ok(())
}

/// Mixes the seed with the arrival's place in the scenario, so every system gets the same
/// request for the same arrival.
fn arrival_seed(seed: u64, phase: usize, index: u64) -> u64 {
    let mut h = seed ^ 0x9e37_79b9_7f4a_7c15;
    for v in [phase as u64, index] {
        h ^= v
            .wrapping_add(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(h << 6)
            .wrapping_add(h >> 2);
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    }
    h
}

/// Picks a request by weight among those whose `after` has already succeeded in this session.
fn choose_request(
    requests: &[RequestSpec],
    session: &Session,
    rng: &mut ChaCha8Rng,
) -> Option<usize> {
    let eligible = |r: &RequestSpec| match &r.after {
        None => true,
        Some(after) => requests
            .iter()
            .position(|o| &o.name == after)
            .is_some_and(|i| session.done.contains(&i)),
    };
    let total: u64 = requests
        .iter()
        .filter(|r| eligible(r))
        .map(|r| u64::from(r.weight))
        .sum();
    if total == 0 {
        return None;
    }
    let mut pick = rng.random_range(0..total);
    for (i, r) in requests.iter().enumerate() {
        if !eligible(r) {
            continue;
        }
        let w = u64::from(r.weight);
        if pick < w {
            return Some(i);
        }
        pick -= w;
    }
    None
}

/// Sends one recorded request as it was; any answer counts as success but 5xx.
async fn send_replay(user: &mut GooseUser, entry: &ReplayEntry, observation: &mut Observation) {
    let Some(method) = goose_method(&entry.method) else {
        observation.error = Some(ErrorKind::Check);
        return;
    };
    let Ok(mut builder) = user.get_request_builder(&method, &entry.path) else {
        observation.error = Some(ErrorKind::Check);
        return;
    };
    for (k, v) in &entry.headers {
        builder = builder.header(k, v);
    }
    if !entry.body.is_empty() {
        builder = builder.body(entry.body.clone());
    }
    let request = GooseRequest::builder()
        .method(method)
        .path(entry.path.as_str())
        .name("replay")
        .set_request_builder(builder)
        .build();
    observation.sent = Instant::now();
    let (status, error) = exchange(user, request).await;
    observation.status = status;
    observation.error = error.or_else(|| status.filter(|s| *s >= 500).map(|_| ErrorKind::Status));
}

/// Sends a request and reads the whole answer: its status, and why it failed if it did.
async fn exchange(
    user: &mut GooseUser,
    request: GooseRequest<'_>,
) -> (Option<u16>, Option<ErrorKind>) {
    exchange_body(user, request)
        .await
        .map_or_else(|e| (e.0, Some(e.1)), |(s, _)| (Some(s), None))
}

/// Sends a request and reads the whole answer: its status and body, or the status (if any)
/// and why it failed.
async fn exchange_body(
    user: &mut GooseUser,
    request: GooseRequest<'_>,
) -> Result<(u16, bytes::Bytes), (Option<u16>, ErrorKind)> {
    let kind = |e: &reqwest::Error| {
        if e.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::Connect
        }
    };
    let response = match user.request(request).await {
        Ok(goose) => goose.response,
        Err(_) => return Err((None, ErrorKind::Connect)),
    };
    let response = response.map_err(|e| (None, kind(&e)))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| (Some(status), kind(&e)))?;
    Ok((status, body))
}

/// Sends one request; on success returns the values it extracted.
async fn send(
    user: &mut GooseUser,
    leg: &Leg,
    spec: &RequestSpec,
    session: &Session,
    rng: &mut ChaCha8Rng,
    observation: &mut Observation,
) -> Option<HashMap<String, serde_json::Value>> {
    let mut ctx = RenderContext {
        rng,
        data: &leg.data,
        session: &session.vars,
        today: leg.today,
    };
    let rendered = (|| {
        let path = spec.path.render(&mut ctx)?;
        let headers: Vec<(String, String)> = spec
            .headers
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.render(&mut ctx)?)))
            .collect::<Result<_, crate::template::RenderError>>()?;
        let json = spec.json.as_ref().map(|j| j.render(&mut ctx)).transpose()?;
        let body = spec.body.as_ref().map(|b| b.render(&mut ctx)).transpose()?;
        Ok::<_, crate::template::RenderError>((path, headers, json, body))
    })();
    let Ok((path, headers, json, body)) = rendered else {
        observation.error = Some(ErrorKind::Check);
        return None;
    };
    let method = goose_method(&spec.method)?;
    let Ok(mut builder) = user.get_request_builder(&method, &path) else {
        observation.error = Some(ErrorKind::Check);
        return None;
    };
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    if let Some(json) = json {
        builder = builder
            .header("content-type", "application/json")
            .body(json.to_string());
    } else if let Some(body) = body {
        builder = builder.body(body);
    }
    let request = GooseRequest::builder()
        .method(method)
        .path(path.as_str())
        .name(spec.name.as_str())
        .set_request_builder(builder)
        .build();
    observation.sent = Instant::now();
    let (status, body) = match exchange_body(user, request).await {
        Ok(answer) => answer,
        Err((status, kind)) => {
            observation.status = status;
            observation.error = Some(kind);
            return None;
        }
    };
    observation.status = Some(status);
    if !spec.is_success(status) {
        observation.error = Some(ErrorKind::Status);
        return None;
    }
    if spec.extract.is_empty() {
        return Some(HashMap::new());
    }
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            observation.error = Some(ErrorKind::Check);
            return None;
        }
    };
    let mut extracted = HashMap::new();
    for (name, path) in &spec.extract {
        match path.extract(&value) {
            Some(v) => {
                extracted.insert(name.clone(), v);
            }
            None => {
                observation.error = Some(ErrorKind::Check);
                return None;
            }
        }
    }
    Some(extracted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_seeds_differ_and_repeat() {
        assert_eq!(arrival_seed(1, 0, 5), arrival_seed(1, 0, 5));
        assert_ne!(arrival_seed(1, 0, 5), arrival_seed(1, 0, 6));
        assert_ne!(arrival_seed(1, 0, 5), arrival_seed(1, 1, 5));
        assert_ne!(arrival_seed(1, 0, 5), arrival_seed(2, 0, 5));
    }

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
