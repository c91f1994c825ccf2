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

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use twinpeak_core::sync::lock;
use twinpeak_core::timestamp::{parse_rfc3339, rfc3339};
use twinpeak_core::CanaryDecision;

use super::window::{PairWindow, SideWindow};
use super::{AdminAction, Canary, Refused, HISTORY_LIMIT};
use crate::comparison::store::DiffWindow;
use crate::state::{
    interval_of, interval_start, AuditEntry, CanaryRecord, CanaryRow, CanaryUpdate, IntervalWindow,
    SharedStore, SideCounts, StateError, Store,
};

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
            judged_interval: row.record.judged_interval,
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
                let record = canary.record_now();
                let written = store.change_canary(|current| match current {
                    Some(row) if row.record.plan == plan => None,
                    _ => Some(CanaryUpdate {
                        record: record.clone(),
                        decisions: start.clone(),
                        audit: None,
                    }),
                })?;
                let row = written.ok_or_else(|| StateError::Contended {
                    location: store.location().to_string(),
                    attempts: 0,
                })?;
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
        })
    }

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
    pub async fn admin(&self, action: AdminAction, who: &str) -> Result<String, FleetRefusal> {
        let canary = self.canary.clone();
        let own = self.own.clone();
        let who = who.to_string();
        let outcome = Arc::new(Mutex::new(None));
        let worked_out = outcome.clone();
        let written = self
            .store
            .call(move |store| {
                store.change_canary(|row| {
                    let now = SystemTime::now();
                    let machine = row
                        .map(|r| canary.machine_of(&r.record, now))
                        .unwrap_or_else(|| canary.machine());
                    let change = canary.work_out_admin(&machine, action, &who, now);
                    let update = change.as_ref().ok().map(|change| {
                        Fleet::remember(&own, std::slice::from_ref(&change.entry));
                        let record = CanaryRecord {
                            plan: canary.plan(),
                            ..change.after.to_record()
                        };
                        CanaryUpdate {
                            record: keep_judge_fields(record, row),
                            decisions: vec![change.entry.clone()],
                            audit: Some(AuditEntry {
                                at: now,
                                by: who.clone(),
                                action: action.as_str().to_string(),
                                summary: change.text.clone(),
                            }),
                        }
                    });
                    *lock(&worked_out) = Some(change);
                    update
                })
            })
            .await
            .map_err(|e| FleetRefusal::Store(e.to_string()))?;
        let change = lock(&outcome)
            .take()
            .ok_or_else(|| FleetRefusal::Store("no canary row".into()))??;
        self.canary.adopt(change.after.clone());
        self.canary.report_admin(&change);
        if let Some(row) = written {
            lock(&self.applied).generation = Some(row.generation);
        }
        Ok(change.text)
    }

    /// Takes up a decision made elsewhere, if the row moved: the machine, and the history
    /// entries not made here. Returns the row read, if any.
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
        let rows = self
            .store
            .call(move |s| s.intervals(width, seq - EXPECTED_WITHIN, seq))
            .await
            .map_err(|e| format!("the state store cannot be reached ({e})"))?;
        let fleet = fleet_window(&rows, seq)?;
        let (window, diff) = from_stored(&fleet.window);
        let decision = self.canary.judge(&window, diff);
        let note = format!(
            " [interval {} over {} replica{}: {}]",
            rfc3339(interval_start(seq, width)),
            fleet.replicas.len(),
            if fleet.replicas.len() == 1 { "" } else { "s" },
            fleet.replicas.join(", ")
        );
        let canary = self.canary.clone();
        let own = self.own.clone();
        let outcome = Arc::new(Mutex::new(None));
        let worked_out = outcome.clone();
        self.store
            .call(move |store| {
                store.change_canary(|row| {
                    if row.and_then(|r| r.record.judged_interval) >= Some(seq) {
                        return None;
                    }
                    let now = SystemTime::now();
                    let machine = row
                        .map(|r| canary.machine_of(&r.record, now))
                        .unwrap_or_else(|| canary.machine());
                    let judgement = canary.work_out(&machine, decision.clone(), now, &note);
                    let entries: Vec<CanaryDecision> =
                        judgement.entries.iter().map(|(_, e)| e.clone()).collect();
                    Fleet::remember(&own, &entries);
                    let record = CanaryRecord {
                        plan: canary.plan(),
                        judged_interval: Some(seq),
                        judged_at: rfc3339(now),
                        holding: String::new(),
                        ..judgement.after.to_record()
                    };
                    *lock(&worked_out) = Some(judgement);
                    Some(CanaryUpdate {
                        record,
                        decisions: entries,
                        audit: None,
                    })
                })
            })
            .await
            .map_err(|e| format!("the verdict could not be written ({e})"))?;
        if let Some(judgement) = lock(&outcome).take() {
            self.canary.adopt(judgement.after.clone());
            self.canary.report(&judgement);
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

    /// Records in the row that the judge holds, and why (once, when it begins to).
    async fn hold(&self, reason: String) {
        let canary = self.canary.clone();
        let own = self.own.clone();
        let entry = Arc::new(Mutex::new(None));
        let held = entry.clone();
        let written = self
            .store
            .call(move |store| {
                store.change_canary(|row| {
                    let row = row?;
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
                    Fleet::remember(&own, std::slice::from_ref(&entry));
                    *lock(&held) = Some(entry.clone());
                    Some(CanaryUpdate {
                        record: CanaryRecord {
                            holding: reason.clone(),
                            judged_at: rfc3339(SystemTime::now()),
                            ..row.record.clone()
                        },
                        decisions: vec![entry],
                        audit: None,
                    })
                })
            })
            .await;
        match written {
            Ok(_) => {
                if let Some(entry) = lock(&entry).take() {
                    self.canary.absorb(vec![entry]);
                }
            }
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
            if now >= lease_due {
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
                last_row.as_ref(),
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

/// Why the weight holds, if it does: the store away, the judge unable to judge, or no
/// judgement for longer than `stale`.
fn holding(
    store_error: Option<&str>,
    judge_problem: Option<&str>,
    row: Option<&CanaryRow>,
    stale: Duration,
) -> Option<String> {
    if let Some(e) = store_error {
        return Some(format!("the state store cannot be reached ({e})"));
    }
    if let Some(problem) = judge_problem {
        return Some(problem.to_string());
    }
    let row = row?;
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

/// Every replica's rows of one interval, added.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetWindow {
    /// The sum.
    pub window: IntervalWindow,
    /// The replicas added.
    pub replicas: Vec<String>,
}

/// Adds the rows of interval `seq`; refuses when a replica that wrote a row in the
/// intervals before it has none for it (its figures are late, or it stopped), or none did.
pub fn fleet_window(
    rows: &BTreeMap<i64, BTreeMap<String, IntervalWindow>>,
    seq: i64,
) -> Result<FleetWindow, String> {
    let present = rows
        .get(&seq)
        .ok_or_else(|| "no replica's figures of the interval are in the store".to_string())?;
    let missing: BTreeSet<&String> = rows
        .range(..seq)
        .flat_map(|(_, replicas)| replicas.keys())
        .filter(|r| !present.contains_key(*r))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "no figures of the interval from {}",
            missing
                .into_iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut window = IntervalWindow::default();
    for replica in present.values() {
        window.add(replica)?;
    }
    Ok(FleetWindow {
        window,
        replicas: present.keys().cloned().collect(),
    })
}

fn to_stored(window: &PairWindow, diff: Option<DiffWindow>) -> IntervalWindow {
    let side = |s: &SideWindow| SideCounts {
        requests: s.requests,
        errors: s.errors,
        latency: s.latency.clone(),
    };
    let diff = diff.unwrap_or_default();
    IntervalWindow {
        primary: side(&window.primary),
        candidate: side(&window.candidate),
        compared: diff.compared,
        different: diff.different,
    }
}

fn from_stored(window: &IntervalWindow) -> (PairWindow, Option<DiffWindow>) {
    let side = |s: &SideCounts| SideWindow {
        requests: s.requests,
        errors: s.errors,
        latency: s.latency.clone(),
    };
    let diff = (window.compared > 0).then_some(DiffWindow {
        compared: window.compared,
        different: window.different,
    });
    (
        PairWindow {
            primary: side(&window.primary),
            candidate: side(&window.candidate),
        },
        diff,
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn window(candidate: u64, errors: u64) -> IntervalWindow {
        let mut w = IntervalWindow::default();
        w.candidate.requests = candidate;
        w.candidate.errors = errors;
        w.primary.requests = candidate * 4;
        w
    }

    #[test]
    fn the_fleet_window_adds_every_replica_and_refuses_a_missing_one() {
        let mut rows: BTreeMap<i64, BTreeMap<String, IntervalWindow>> = BTreeMap::new();
        for (seq, replicas) in [(7, vec!["a", "b"]), (8, vec!["a", "b", "c"])] {
            for (i, r) in replicas.into_iter().enumerate() {
                rows.entry(seq)
                    .or_default()
                    .insert(r.to_string(), window(10 * (i as u64 + 1), i as u64));
            }
        }
        let fleet = fleet_window(&rows, 8).unwrap();
        assert_eq!(fleet.replicas, ["a", "b", "c"]);
        assert_eq!(fleet.window.candidate.requests, 60);
        assert_eq!(fleet.window.candidate.errors, 3);
        assert_eq!(fleet.window.primary.requests, 240);
        rows.get_mut(&8).unwrap().remove("b");
        let refused = fleet_window(&rows, 8).unwrap_err();
        assert!(refused.contains("from b"), "{refused}");
        assert!(fleet_window(&rows, 9).is_err());
    }
}
