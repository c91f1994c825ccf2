//! One canary decision for every replica, through the state store: the store's canary row is
//! the state machine every replica applies, one replica at a time (the holder of the judge's
//! lease) judges and moves the ramp, and an operator's change on any replica is written there
//! once, with its audit entry.
//!
//! Each judge interval (numbered on the wall clock, so replicas agree on it) every replica
//! writes what its primary and candidate did; a moment later the judge adds every replica's
//! row of that interval and judges the sum, so the verdict is over the fleet's traffic, counted
//! exactly once. When it cannot (the store is away, a replica's row is missing), the weight
//! holds: nothing advances, and `/api/v1/canary` and `twinpeak_canary_holding` say why.
//! Replicas poll the row's generation every [`POLL`] and apply a new decision at once; the
//! request path only ever reads the weight in force.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use twinpeak_core::sync::lock;
use twinpeak_core::timestamp::{parse_rfc3339, rfc3339};
use twinpeak_core::CanaryDecision;

use super::window::PairWindow;
use super::{AdminAction, Canary, Machine, Refused, HISTORY_LIMIT};
use crate::comparison::store::DiffWindow;
use crate::state::{
    interval_of, interval_start, AuditEntry, CanaryChange, CanaryRecord, CanaryRow, CanaryUpdate,
    SharedStore, StateError, Store,
};
use sum::{fleet_window, from_stored, one_width, to_stored};

/// How often a replica looks for a new decision.
pub const POLL: Duration = Duration::from_millis(500);

/// The judge's lease in the store.
const LEASE: &str = "judge";

/// Intervals before the one judged in which a replica that wrote a row is expected to have
/// written one for it too.
const EXPECTED_WITHIN: i64 = 3;

/// Decisions made here remembered, so they are not taken in again from the store.
const OWN_KEPT: usize = 64;

/// Why an operator's change was not made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FleetRefusal {
    /// The canary refused it as it stands.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The state store could not take it: nothing changed on any replica.
    #[error("the change was not made: the state store cannot be reached ({0})")]
    Store(String),
    /// The fleet's canary follows another plan (written by the named replica): a replica of
    /// another configuration changes nothing.
    #[error("the change was not made: {}", other_plan(.0))]
    OtherPlan(String),
}

/// Why a replica leaves the fleet's canary alone: the row follows another plan, written by
/// `by`.
fn other_plan(by: &str) -> String {
    format!(
        "another plan in force (written by {by}): this replica's canary configuration differs, \
         so it neither judges nor takes up the fleet's decisions"
    )
}

/// Whether `row` follows another plan than `plan`.
fn follows_other_plan(row: Option<&CanaryRow>, plan: &str) -> bool {
    row.is_some_and(|row| row.record.plan != plan)
}

/// The canary's link to the state store.
pub struct Fleet {
    canary: Arc<Canary>,
    store: SharedStore,
    /// Decisions written from here (`at|decision|summary`), newest last.
    own: Arc<Mutex<VecDeque<String>>>,
    /// The store's number of the newest decision in the history, and the row's generation
    /// applied.
    applied: Mutex<Applied>,
    /// Set when the listening sockets went to a new process of this replica: this one stops
    /// seeking the lease and judging, and leaves the lease it holds to the new process (the
    /// same holder), which renews it; it still writes its part of the intervals it serves.
    retired: AtomicBool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Applied {
    decision: Option<i64>,
    generation: Option<u64>,
}

fn key(entry: &CanaryDecision) -> String {
    format!("{}|{}|{}", entry.at, entry.decision, entry.summary)
}

/// The row's record with the judge's fields of `row` kept and the machine of `record`.
fn keep_judge_fields(record: CanaryRecord, row: Option<&CanaryRow>) -> CanaryRecord {
    match row {
        Some(row) => CanaryRecord {
            judged_until_ms: row.record.judged_until_ms,
            judged_at: row.record.judged_at.clone(),
            holding: row.record.holding.clone(),
            ..record
        },
        None => record,
    }
}

impl Fleet {
    /// Takes the canary up from the store (`store` is opened, not yet shared): the stored
    /// machine and history when the stored plan is this configuration's, else the canary as
    /// configured, written as the fleet's. Runs before the proxy serves.
    pub fn bootstrap(canary: Arc<Canary>, mut store: Store) -> Result<Fleet, StateError> {
        let plan = canary.plan();
        let now = SystemTime::now();
        let row = store.canary()?;
        let row = match row {
            Some(row) if row.record.plan == plan => {
                let machine = canary.machine_of(&row.record, now);
                log::info!(
                    "canary: taken up from the state store: {} at weight {}{} (written by {})",
                    machine.state().as_str(),
                    machine.weight(),
                    machine
                        .step()
                        .map(|s| format!(", step {}", s + 1))
                        .unwrap_or_default(),
                    row.updated_by
                );
                canary.adopt(machine);
                row
            }
            stale => {
                if stale.is_some() {
                    log::info!("canary: the stored canary followed another plan; it starts over");
                }
                let start = canary.history().decisions;
                let initial = canary.machine();
                let written = store.change_canary(|current| match current {
                    Some(row) if row.record.plan == plan => None,
                    _ => {
                        let (machine, stopped) =
                            keep_stopped(&canary, &initial, current.map(|r| &r.record), now);
                        Some(CanaryUpdate {
                            record: CanaryRecord {
                                plan: plan.clone(),
                                ..machine.to_record()
                            },
                            decisions: start.iter().cloned().chain(stopped).collect(),
                            audit: None,
                        })
                    }
                })?;
                let row = written.ok_or_else(|| StateError::Contended {
                    location: store.location().to_string(),
                    attempts: 0,
                })?;
                if row.record.state != initial.state().as_str() {
                    log::warn!(
                        "canary: {} under the plan before, the new plan starts so; resume to run it",
                        row.record.state.replace('_', " ")
                    );
                }
                canary.adopt(canary.machine_of(&row.record, now));
                row
            }
        };
        let decisions = store.decisions_after(None, 2 * HISTORY_LIMIT)?;
        let applied = Applied {
            decision: decisions.last().map(|(id, _)| *id),
            generation: Some(row.generation),
        };
        canary.replace_history(decisions.into_iter().map(|(_, d)| d).collect());
        canary.set_standing(|s| s.stored = true);
        Ok(Fleet {
            canary,
            store: SharedStore::new(store),
            own: Arc::new(Mutex::new(VecDeque::new())),
            applied: Mutex::new(applied),
            retired: AtomicBool::new(false),
        })
    }

    /// Leaves judging to the new process the listening sockets went to (a binary upgrade).
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Remembers entries written from here (once written: an entry never written must not
    /// hide the same entry read back).
    fn remember(own: &Mutex<VecDeque<String>>, entries: &[CanaryDecision]) {
        let mut own = lock(own);
        for entry in entries {
            if own.len() == OWN_KEPT {
                own.pop_front();
            }
            own.push_back(key(entry));
        }
    }

    /// Applies an operator's change to the fleet's canary: written to the store once (with
    /// its audit entry), then in force here; the other replicas take it up within [`POLL`].
    /// A replica whose plan is not the fleet's changes nothing.
    pub async fn admin(&self, action: AdminAction, who: &str) -> Result<String, FleetRefusal> {
        let canary = self.canary.clone();
        let own = self.own.clone();
        let who = who.to_string();
        let (row, change) = self
            .store
            .call(move |store| {
                let plan = canary.plan();
                let mut refusal = None;
                let changed = store
                    .change_canary_with(|row| {
                        refusal = None;
                        if follows_other_plan(row, &plan) {
                            refusal = row.map(|r| FleetRefusal::OtherPlan(r.updated_by.clone()));
                            return None;
                        }
                        let now = SystemTime::now();
                        let machine = row
                            .map(|r| canary.machine_of(&r.record, now))
                            .unwrap_or_else(|| canary.machine());
                        let change = match canary.work_out_admin(&machine, action, &who, now) {
                            Ok(change) => change,
                            Err(refused) => {
                                refusal = Some(refused.into());
                                return None;
                            }
                        };
                        let record = CanaryRecord {
                            plan: plan.clone(),
                            ..change.after.to_record()
                        };
                        let update = CanaryUpdate {
                            record: keep_judge_fields(record, row),
                            decisions: vec![change.entry.clone()],
                            audit: Some(AuditEntry {
                                at: now,
                                by: who.clone(),
                                action: action.as_str().to_string(),
                                summary: change.text.clone(),
                            }),
                        };
                        Some((update, change))
                    })
                    .map_err(|e| FleetRefusal::Store(e.to_string()))?;
                match changed {
                    CanaryChange::Written { row, outcome } => {
                        Fleet::remember(&own, std::slice::from_ref(&outcome.entry));
                        Ok((row, outcome))
                    }
                    CanaryChange::Unchanged(_) => {
                        Err(refusal.unwrap_or_else(|| FleetRefusal::Store("no canary row".into())))
                    }
                }
            })
            .await?;
        self.canary.adopt(change.after.clone());
        self.canary.report_admin(&change);
        lock(&self.applied).generation = Some(row.generation);
        Ok(change.text)
    }

    /// Takes up a decision made elsewhere, if the row moved: the machine (unless the row
    /// follows another plan), and the history entries not made here. Returns the row read,
    /// if any.
    async fn poll(&self) -> Result<Option<CanaryRow>, StateError> {
        let applied = *lock(&self.applied);
        let generation = self.store.call(|s| s.canary_generation()).await?;
        if generation.is_some() && generation == applied.generation {
            return Ok(None);
        }
        let (row, decisions) = self
            .store
            .call(move |s| {
                let row = s.canary()?;
                let decisions = s.decisions_after(applied.decision, 2 * HISTORY_LIMIT)?;
                Ok::<_, StateError>((row, decisions))
            })
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if follows_other_plan(Some(&row), &self.canary.plan()) {
            log::warn!(
                "canary: {}; the weight stays {}",
                other_plan(&row.updated_by),
                self.canary.weight()
            );
        } else {
            let machine = self.canary.machine_of(&row.record, SystemTime::now());
            let before = self.canary.weight();
            if machine.weight() != before {
                log::info!(
                    "canary: weight {before} → {} as decided on {}",
                    machine.weight(),
                    row.updated_by
                );
            }
            self.canary.adopt(machine);
        }
        let own: BTreeSet<String> = lock(&self.own).iter().cloned().collect();
        let mut applied = lock(&self.applied);
        applied.generation = Some(row.generation);
        if let Some((id, _)) = decisions.last() {
            applied.decision = Some(*id);
        }
        drop(applied);
        let theirs = decisions
            .into_iter()
            .map(|(_, d)| d)
            .filter(|d| !own.contains(&key(d)))
            .collect();
        self.canary.absorb(theirs);
        Ok(Some(row))
    }

    /// Writes this replica's window of interval `seq`.
    async fn write_interval(&self, seq: i64, window: PairWindow, diff: Option<DiffWindow>) {
        let width = self.canary.interval();
        let stored = to_stored(&window, diff);
        let written = self
            .store
            .call(move |s| s.write_interval(width, seq, &stored))
            .await;
        if let Err(e) = written {
            log::warn!("canary: this replica's figures of an interval were not written: {e}");
        }
    }

    /// Judges interval `seq` over every replica's rows, or says why it cannot.
    async fn judge(&self, seq: i64) -> Result<(), String> {
        let width = self.canary.interval();
        let since = interval_start(seq - EXPECTED_WITHIN, width);
        let (rows, widths) = self
            .store
            .call(move |s| {
                let rows = s.intervals(width, seq - EXPECTED_WITHIN, seq)?;
                Ok::<_, StateError>((rows, s.interval_widths(since)?))
            })
            .await
            .map_err(|e| format!("the state store cannot be reached ({e})"))?;
        one_width(&widths, width)?;
        let fleet = fleet_window(&rows, seq)?;
        let (window, diff) = from_stored(&fleet.window);
        let decision = self.canary.judge(&window, diff);
        let start = interval_start(seq, width);
        let note = format!(
            " [interval {} over {} replica{}: {}]",
            rfc3339(start),
            fleet.replicas.len(),
            if fleet.replicas.len() == 1 { "" } else { "s" },
            fleet.replicas.join(", ")
        );
        let end = interval_start(seq + 1, width);
        let canary = self.canary.clone();
        let own = self.own.clone();
        let (changed, refusal) = self
            .store
            .call(move |store| {
                let plan = canary.plan();
                let mut refusal = None;
                let changed = store.change_canary_with(|row| {
                    refusal = None;
                    if follows_other_plan(row, &plan) {
                        refusal = row.map(|r| other_plan(&r.updated_by));
                        return None;
                    }
                    if row.is_some_and(|r| r.record.judged_since(start)) {
                        return None;
                    }
                    let now = SystemTime::now();
                    let machine = row
                        .map(|r| canary.machine_of(&r.record, now))
                        .unwrap_or_else(|| canary.machine());
                    let judgement = canary.work_out(&machine, decision.clone(), now, &note);
                    let mut record = CanaryRecord {
                        plan: plan.clone(),
                        judged_at: rfc3339(now),
                        holding: String::new(),
                        ..judgement.after.to_record()
                    };
                    record.judged_until(end);
                    let update = CanaryUpdate {
                        record,
                        decisions: judgement.entries.iter().map(|(_, e)| e.clone()).collect(),
                        audit: None,
                    };
                    Some((update, judgement))
                })?;
                if let CanaryChange::Written { outcome, .. } = &changed {
                    let entries: Vec<CanaryDecision> =
                        outcome.entries.iter().map(|(_, e)| e.clone()).collect();
                    Fleet::remember(&own, &entries);
                }
                Ok::<_, StateError>((changed, refusal))
            })
            .await
            .map_err(|e| format!("the verdict could not be written ({e})"))?;
        if let Some(reason) = refusal {
            return Err(reason);
        }
        if let CanaryChange::Written { outcome, .. } = changed {
            self.canary.adopt(outcome.after.clone());
            self.canary.report(&outcome);
        }
        Ok(())
    }

    /// Judges interval `seq`, or holds and returns why it could not.
    async fn judge_or_hold(&self, seq: i64) -> Option<String> {
        match self.judge(seq).await {
            Ok(()) => None,
            Err(reason) => {
                log::warn!("canary: interval not judged, the weight holds: {reason}");
                self.hold(reason.clone()).await;
                Some(reason)
            }
        }
    }

    /// Records in the row that the judge holds, and why (once, when it begins to); not in a
    /// row of another plan.
    async fn hold(&self, reason: String) {
        let canary = self.canary.clone();
        let own = self.own.clone();
        let written = self
            .store
            .call(move |store| {
                let plan = canary.plan();
                let changed = store.change_canary_with(|row| {
                    let row = row.filter(|r| !follows_other_plan(Some(r), &plan))?;
                    if row.record.holding == reason {
                        return None;
                    }
                    let machine = canary.machine_of(&row.record, SystemTime::now());
                    let entry = CanaryDecision {
                        at: rfc3339(SystemTime::now()),
                        decision: "hold".into(),
                        by: "judge".into(),
                        weight: machine.weight(),
                        step: machine.step(),
                        summary: format!("hold at weight {}: {reason}", machine.weight()),
                        reasons: Vec::new(),
                    };
                    let update = CanaryUpdate {
                        record: CanaryRecord {
                            holding: reason.clone(),
                            judged_at: rfc3339(SystemTime::now()),
                            ..row.record.clone()
                        },
                        decisions: vec![entry.clone()],
                        audit: None,
                    };
                    Some((update, entry))
                })?;
                if let CanaryChange::Written { outcome, .. } = &changed {
                    Fleet::remember(&own, std::slice::from_ref(outcome));
                }
                Ok::<_, StateError>(changed)
            })
            .await;
        match written {
            Ok(CanaryChange::Written { outcome, .. }) => self.canary.absorb(vec![outcome]),
            Ok(CanaryChange::Unchanged(_)) => {}
            Err(e) => log::debug!("canary: could not record the hold: {e}"),
        }
    }

    /// Runs until `shutdown`: polls, writes intervals, keeps or seeks the lease, judges.
    pub async fn run(&self, mut shutdown: ShutdownWatch) {
        let interval = self.canary.interval();
        let ttl = interval.max(Duration::from_secs(1));
        // Time for every replica's row to land before the judge reads them.
        let grace = (interval / 4).clamp(
            Duration::from_millis(50).min(interval / 2),
            Duration::from_secs(5),
        );
        let mut boundary = interval_of(SystemTime::now(), interval);
        let mut lease_due = Instant::now();
        let mut poll_due = Instant::now();
        let mut judge_due: Option<(i64, Instant)> = None;
        let mut lease_until: Option<Instant> = None;
        let mut store_error: Option<String> = None;
        let mut judge_problem: Option<String> = None;
        let mut last_row: Option<CanaryRow> = None;
        loop {
            let now = Instant::now();
            let current = interval_of(SystemTime::now(), interval);
            if current > boundary {
                let (window, diff) = self.canary.take_interval();
                self.write_interval(current - 1, window, diff).await;
                boundary = current;
                if let Some((seq, _)) = judge_due.take() {
                    judge_problem = self.judge_or_hold(seq).await;
                }
                if lease_until.is_some_and(|until| Instant::now() < until) {
                    judge_due = Some((current - 1, Instant::now() + grace));
                }
            }
            let retired = self.retired.load(Ordering::Acquire);
            if retired {
                // Not released: the new process holds it as the same replica.
                lease_until = None;
            }
            if now >= lease_due && !retired {
                lease_due = now + ttl / 3;
                match self.store.call(move |s| s.try_lease(LEASE, ttl)).await {
                    Ok(lease) => {
                        let held = lease.holds(Instant::now());
                        if held && lease_until.is_none() {
                            log::info!(
                                "canary: this replica judges for the fleet now (lease term {})",
                                lease.term
                            );
                        }
                        lease_until = lease.valid_until.filter(|_| held);
                        self.canary.set_standing(|s| {
                            s.leader = held;
                            s.judge = Some(lease.holder.clone());
                        });
                    }
                    Err(e) => {
                        store_error = Some(e.to_string());
                        if lease_until.is_some_and(|until| Instant::now() >= until) {
                            lease_until = None;
                        }
                    }
                }
            }
            let leader = lease_until.is_some_and(|until| Instant::now() < until);
            if !leader {
                judge_problem = None;
                judge_due = None;
            }
            self.canary.set_standing(|s| s.leader = leader);
            if let Some((seq, due)) = judge_due {
                if Instant::now() >= due {
                    judge_due = None;
                    judge_problem = self.judge_or_hold(seq).await;
                    poll_due = Instant::now();
                }
            }
            if Instant::now() >= poll_due {
                poll_due = Instant::now() + POLL;
                match self.poll().await {
                    Ok(row) => {
                        store_error = None;
                        if row.is_some() {
                            last_row = row;
                        }
                    }
                    Err(e) => store_error = Some(e.to_string()),
                }
            }
            let holding = holding(
                store_error.as_deref(),
                judge_problem.as_deref(),
                last_row
                    .as_ref()
                    .map(|row| (row, follows_other_plan(Some(row), &self.canary.plan()))),
                interval * EXPECTED_WITHIN as u32 + grace * 2,
            );
            self.canary.set_standing(|s| s.holding = holding);
            let next = [Some(lease_due), Some(poll_due), judge_due.map(|(_, d)| d)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(poll_due);
            let until_boundary = until_next_interval(interval);
            let wait = next
                .saturating_duration_since(Instant::now())
                .min(until_boundary)
                .min(Duration::from_millis(250));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => break,
            }
        }
        if lease_until.is_some() {
            let _ = self.store.call(|s| s.release_lease(LEASE)).await;
        }
    }
}

/// Why the weight holds, if it does: the store away, the judge unable to judge, the row read
/// (with whether it follows another plan) of another plan or holding, or no judgement for
/// longer than `stale`.
fn holding(
    store_error: Option<&str>,
    judge_problem: Option<&str>,
    row: Option<(&CanaryRow, bool)>,
    stale: Duration,
) -> Option<String> {
    if let Some(e) = store_error {
        return Some(format!("the state store cannot be reached ({e})"));
    }
    if let Some((row, true)) = row {
        return Some(other_plan(&row.updated_by));
    }
    if let Some(problem) = judge_problem {
        return Some(problem.to_string());
    }
    let (row, _) = row?;
    if !row.record.holding.is_empty() {
        return Some(row.record.holding.clone());
    }
    let judged = parse_rfc3339(&row.record.judged_at).unwrap_or(row.updated_at);
    let age = SystemTime::now().duration_since(judged).unwrap_or_default();
    (age > stale).then(|| format!("no judgement for {}s", age.as_secs()))
}

/// Time to the start of the next interval of `width` on the wall clock.
fn until_next_interval(width: Duration) -> Duration {
    let now = SystemTime::now();
    let next = interval_start(interval_of(now, width) + 1, width);
    next.duration_since(now).unwrap_or_default()
}

/// The machine a new plan starts with over `stored` (the row of another plan, if any): the
/// `initial` one, except that a canary stopped under the plan before (rolled back or paused)
/// stays stopped, with the history entry that says so. A config rollout never undoes a
/// rollback.
fn keep_stopped(
    canary: &Canary,
    initial: &Machine,
    stored: Option<&CanaryRecord>,
    now: SystemTime,
) -> (Machine, Option<CanaryDecision>) {
    let mut machine = initial.clone();
    let stopped = match stored.map(|r| r.state.as_str()) {
        Some("rolled_back") => machine.rollback(now).map(|text| ("rollback", text)),
        Some("paused") => machine.pause().map(|text| ("pause", text)),
        _ => return (machine, None),
    };
    let Ok((decision, text)) = stopped else {
        return (initial.clone(), None);
    };
    let summary = format!(
        "{text}: the canary was {} under the plan before, and the new plan starts so; \
         resume to run it",
        stored.map_or("", |r| r.state.as_str()).replace('_', " ")
    );
    let entry = canary.entry(decision, "config", &machine, summary, Vec::new());
    (machine, Some(entry))
}

/// The fleet link as a Pingora background service.
pub struct FleetService {
    fleet: Arc<Fleet>,
}

impl FleetService {
    /// The service running `fleet`.
    pub fn new(fleet: Arc<Fleet>) -> Self {
        FleetService { fleet }
    }
}

#[async_trait]
impl BackgroundService for FleetService {
    async fn start(&self, shutdown: ShutdownWatch) {
        self.fleet.run(shutdown).await;
    }
}

mod sum;
#[cfg(test)]
mod tests;
