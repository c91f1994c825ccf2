//! Canary routing: a weighted, optionally sticky share of live traffic is served by the rebuilt
//! backend (the *candidate*) instead of the primary. A judge ([`judge`]) compares the two sides
//! over every interval ([`window`]); the ramp ([`ramp`]) advances after a hold with passing
//! verdicts, and a run of failing verdicts sets the weight to 0 at once. [`Canary`] ties them
//! together: the routing decision on the request path, the verdicts and their history, and the
//! operators' changes.

pub mod config;
pub mod fleet;
pub mod force;
pub mod judge;
pub mod ramp;
pub mod window;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use http::{HeaderMap, HeaderName};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use twinpeak_core::digest::hex_sha256;
use twinpeak_core::timestamp::rfc3339;
use twinpeak_core::{CanaryDecision, CanaryHistory, CanaryReason, CanaryStep};

use crate::comparison::store::{DiffStore, DiffWindow};
use crate::error::{SetupError, SetupProblem};
use crate::labels::{CanaryDecision as DecisionLabel, Side};
use crate::ratelimit::RateLimitedLog;
use crate::sampling::{key_value, salted_hash, unit_interval};
use crate::state::CanaryRecord;
use crate::stats::Stats;
use crate::units::{Percent, SampleKey, UpstreamUrl};
use twinpeak_core::sync::lock;

use config::CanaryConfig;
pub use fleet::{Fleet, FleetRefusal};
use force::ForcePolicy;
use judge::{Decision, Verdict};
pub use ramp::{Change, Machine, Refused};
use window::{PairWindow, Windows};

/// Salt of the sticky hash, so the canary split is independent of the mirror sample even when
/// both are keyed by the same header.
const STICKY_SALT: &[u8] = b"twinpeak-canary:";

/// Entries kept of each kind: judge verdicts, and weight or state changes.
pub const HISTORY_LIMIT: usize = 1000;

/// The history: judge verdicts and changes, each kind bounded, in one sequence.
#[derive(Default)]
struct History {
    next: u64,
    verdicts: VecDeque<(u64, CanaryDecision)>,
    changes: VecDeque<(u64, CanaryDecision)>,
}

impl History {
    fn push(&mut self, verdict: bool, entry: CanaryDecision) {
        let list = if verdict {
            &mut self.verdicts
        } else {
            &mut self.changes
        };
        if list.len() == HISTORY_LIMIT {
            list.pop_front();
        }
        list.push_back((self.next, entry));
        self.next += 1;
    }

    /// Whether an entry is a judge's verdict (rather than a change).
    fn is_verdict(entry: &CanaryDecision) -> bool {
        ["pass", "fail", "inconclusive"].contains(&entry.decision.as_str())
    }

    /// Every entry, oldest first.
    fn entries(&self) -> Vec<CanaryDecision> {
        let mut all: Vec<&(u64, CanaryDecision)> =
            self.verdicts.iter().chain(self.changes.iter()).collect();
        all.sort_by_key(|(seq, _)| *seq);
        all.into_iter().map(|(_, e)| e.clone()).collect()
    }
}

/// An operator's change through the admin API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AdminAction {
    /// Set the weight (percent).
    Weight(f64),
    /// Stop the ramp from advancing.
    Pause,
    /// Run again after a pause or rollback.
    Resume,
    /// Weight 100.
    Promote,
    /// Weight 0.
    Rollback,
}

impl AdminAction {
    fn as_str(self) -> &'static str {
        match self {
            AdminAction::Weight(_) => "weight",
            AdminAction::Pause => "pause",
            AdminAction::Resume => "resume",
            AdminAction::Promote => "promote",
            AdminAction::Rollback => "rollback",
        }
    }
}

/// The canary shared by every request, the judge and the admin API.
pub struct Canary {
    config: CanaryConfig,
    upstream: UpstreamUrl,
    force: ForcePolicy,
    /// The weight in force (percent, as `f64` bits): read by every request without a lock.
    weight: AtomicU64,
    windows: Windows,
    machine: Mutex<Machine>,
    history: Mutex<History>,
    stats: Arc<Stats>,
    /// The comparison results, when mirrored pairs are compared against the candidate itself
    /// (the shadow is the candidate), so their diff rate says something about it.
    comparisons: Option<Arc<DiffStore>>,
    unreachable_log: RateLimitedLog,
    /// Where its decisions are told (webhooks).
    notify: crate::notify::Hook,
    /// Where the canary stands in the fleet, when its state is kept in the store.
    standing: Mutex<Standing>,
}

/// Where this replica's canary stands in the fleet (with the state store on).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Standing {
    /// Whether the state store keeps the canary (one decision for every replica).
    pub stored: bool,
    /// Whether this replica holds the judge's lease.
    pub leader: bool,
    /// The replica that holds it, as last seen.
    pub judge: Option<String>,
    /// Why the weight holds because no fresh judgement is possible; `None` when it does not.
    pub holding: Option<String>,
}

/// One judgement worked out on a machine: the verdict and every check, the machine before and
/// after it, the change it led to, and the history entries it makes (each with whether it is
/// a verdict).
#[derive(Debug, Clone)]
pub struct Judgement {
    /// The verdict and its checks.
    pub decision: Decision,
    /// The machine as judged.
    pub before: Machine,
    /// The machine after the verdict.
    pub after: Machine,
    /// The advance or rollback it led to.
    pub change: Option<Change>,
    /// The history entries, oldest first.
    pub entries: Vec<(bool, CanaryDecision)>,
}

/// One operator's change worked out on a machine.
#[derive(Debug, Clone)]
pub struct AdminChange {
    /// What was done.
    pub action: AdminAction,
    /// Who did it.
    pub who: String,
    /// The change in words.
    pub text: String,
    /// The machine after it.
    pub after: Machine,
    /// The history entry.
    pub entry: CanaryDecision,
}

impl Canary {
    /// The canary of a (validated) configuration; `shadow` is the mirror's upstream, if any,
    /// and `comparisons` the results of comparing its answers, judged when the shadow is the
    /// candidate. Statistics windows are split in `shards` (one per worker thread is best).
    pub fn new(
        config: &CanaryConfig,
        shadow: Option<&UpstreamUrl>,
        comparisons: Arc<DiffStore>,
        stats: Arc<Stats>,
        shards: usize,
    ) -> Result<Self, SetupError> {
        let upstream =
            config
                .upstream
                .clone()
                .or_else(|| shadow.cloned())
                .ok_or(SetupError::new(
                    "canary.upstream",
                    SetupProblem::NoCandidate,
                ))?;
        let force = ForcePolicy::new(&config.force)?;
        let machine = Machine::new(config, SystemTime::now());
        let canary = Canary {
            comparisons: (shadow == Some(&upstream)).then_some(comparisons),
            upstream,
            force,
            weight: AtomicU64::new(machine.weight().to_bits()),
            windows: Windows::new(shards),
            history: Mutex::new(History::default()),
            stats,
            unreachable_log: RateLimitedLog::new(Duration::from_secs(5)),
            config: config.clone(),
            machine: Mutex::new(machine),
            standing: Mutex::new(Standing::default()),
            notify: crate::notify::Hook::default(),
        };
        let summary = format!(
            "canary to {} starting at weight {}{}",
            canary.upstream,
            canary.weight(),
            match config.ramp.len() {
                0 => String::new(),
                n => format!(" (step 1 of {n})"),
            }
        );
        log::info!("{summary}");
        canary.publish_weight(canary.weight());
        let start = canary.entry(
            "start",
            "config",
            &lock(&canary.machine),
            summary,
            Vec::new(),
        );
        canary.record(false, start);
        Ok(canary)
    }

    /// A digest of the plan the canary follows (candidate, weight, ramp): the state store's
    /// record of a canary with another plan is not taken up.
    pub fn plan(&self) -> String {
        let plan = serde_json::json!({
            "upstream": self.upstream.to_string(),
            "weight": self.config.weight.value(),
            "ramp": self.config.ramp,
        });
        hex_sha256(plan.to_string().as_bytes())
    }

    /// A copy of the machine in force.
    pub fn machine(&self) -> Machine {
        lock(&self.machine).clone()
    }

    /// The machine `record` describes, for this configuration.
    pub fn machine_of(&self, record: &CanaryRecord, now: SystemTime) -> Machine {
        Machine::from_record(&self.config, record, now)
    }

    /// Puts `machine` in force: its weight serves the next request.
    pub fn adopt(&self, machine: Machine) {
        let weight = machine.weight();
        *lock(&self.machine) = machine;
        self.publish_weight(weight);
    }

    /// Replaces the history with `entries` (oldest first), as the state store holds it.
    pub fn replace_history(&self, entries: Vec<CanaryDecision>) {
        let mut history = History::default();
        for entry in entries {
            history.push(History::is_verdict(&entry), entry);
        }
        *lock(&self.history) = history;
    }

    /// Adds entries another replica made (read from the state store) to the history.
    pub fn absorb(&self, entries: Vec<CanaryDecision>) {
        let mut history = lock(&self.history);
        for entry in entries {
            history.push(History::is_verdict(&entry), entry);
        }
    }

    /// Where the canary stands in the fleet.
    pub fn standing(&self) -> Standing {
        lock(&self.standing).clone()
    }

    /// Changes where the canary stands in the fleet.
    pub fn set_standing(&self, change: impl FnOnce(&mut Standing)) {
        change(&mut lock(&self.standing));
    }

    /// The judge's interval.
    pub fn interval(&self) -> Duration {
        self.config.judge.interval()
    }

    /// What the two sides did since the last call, and the pairs compared against the
    /// candidate: the interval that ends now.
    pub fn take_interval(&self) -> (PairWindow, Option<DiffWindow>) {
        (self.windows.take(), self.diff_window())
    }

    /// Where its decisions are told: connected to the notifier by the server.
    pub fn notify(&self) -> &crate::notify::Hook {
        &self.notify
    }

    /// The configuration in force.
    pub fn config(&self) -> &CanaryConfig {
        &self.config
    }

    /// The candidate's address.
    pub fn upstream(&self) -> &UpstreamUrl {
        &self.upstream
    }

    /// The candidate's share of live traffic, in percent.
    pub fn weight(&self) -> f64 {
        f64::from_bits(self.weight.load(Ordering::Relaxed))
    }

    fn publish_weight(&self, weight: f64) {
        self.weight.store(weight.to_bits(), Ordering::Relaxed);
        self.stats.metrics().canary_weight.set(weight);
    }

    /// The headers a client may send to force a side; they are never passed upstream.
    pub fn force_headers(&self) -> [&HeaderName; 2] {
        self.force.headers()
    }

    /// Which side serves a request: the force header first (`always`, `never`) where the
    /// operator allows it to `client`, then the sticky key's hash against the weight, or a
    /// random draw when the request has no key. A rolled-back canary is at weight 0, so
    /// `always` does not reach it either (unless `force.while_off`).
    pub fn choose(
        &self,
        method: &http::Method,
        headers: &HeaderMap,
        client: Option<IpAddr>,
    ) -> Side {
        let fraction = self.weight() / 100.0;
        let off = fraction <= 0.0;
        if let Some(side) = self.force.forced_side(method, headers, client, off) {
            return side;
        }
        if fraction <= 0.0 {
            return Side::Primary;
        }
        if fraction >= 1.0 {
            return Side::Candidate;
        }
        let point = match key_value(&self.config.sticky, headers) {
            Some(value) => unit_interval(salted_hash(STICKY_SALT, value)),
            None => rand::random::<f64>(),
        };
        if point < fraction {
            Side::Candidate
        } else {
            Side::Primary
        }
    }

    /// The routing key in force (`random` when none).
    pub fn sticky(&self) -> &SampleKey {
        &self.config.sticky
    }

    /// Counts one request served (or failed) by a side for the interval in progress.
    pub fn observe(&self, side: Side, error: bool, latency: Option<Duration>) {
        self.windows.record(side, error, latency);
    }

    /// Notes (at most once every 5 s in the log) that the candidate could not be reached.
    pub fn unreachable(&self, message: impl FnOnce() -> String) {
        self.unreachable_log.warn(message);
    }

    /// Judges the interval that ends now and acts on the verdict.
    pub fn tick(&self, now: SystemTime) -> Decision {
        let (window, diff) = self.take_interval();
        self.judge_window(&window, diff, now)
    }

    /// Compared pairs since the last call, when they are about the candidate, classified with
    /// the noise known now (the comparison store's derivation, as the admin API's).
    fn diff_window(&self) -> Option<DiffWindow> {
        let window = self.comparisons.as_ref()?.take_window();
        (window.compared > 0).then_some(window)
    }

    /// Judges one interval's figures at `now`, records the verdict, and applies what it
    /// leads to (an advance or a rollback).
    pub fn judge_window(
        &self,
        window: &PairWindow,
        diff: Option<DiffWindow>,
        now: SystemTime,
    ) -> Decision {
        let decision = judge::judge(window, diff, &self.config.judge);
        let mut machine = lock(&self.machine);
        let judgement = self.work_out(&machine, decision, now, "");
        *machine = judgement.after.clone();
        drop(machine);
        self.report(&judgement);
        judgement.decision
    }

    /// Judges `window` against the configured thresholds (nothing is applied).
    pub fn judge(&self, window: &PairWindow, diff: Option<DiffWindow>) -> Decision {
        judge::judge(window, diff, &self.config.judge)
    }

    /// Works out what `decision`, made at `now`, does to `machine`: the machine after it, the
    /// change, and the history entries (`note` is added to the verdict's summary). Applies
    /// nothing.
    pub fn work_out(
        &self,
        machine: &Machine,
        decision: Decision,
        now: SystemTime,
        note: &str,
    ) -> Judgement {
        let before = machine.clone();
        let mut after = machine.clone();
        let change = after.on_verdict(decision.verdict, now);
        let summary = decision.summary();
        let reasons = decision
            .reasons
            .iter()
            .map(|r| CanaryReason {
                metric: r.metric.as_str().to_string(),
                candidate: r.candidate,
                primary: r.primary,
                threshold: r.threshold,
                ok: r.ok,
                detail: r.detail.clone(),
            })
            .collect();
        let label = decision.verdict.label();
        let mut entries = vec![(
            true,
            self.entry(
                label.as_str(),
                "judge",
                &before,
                format!("{summary}{note}"),
                reasons,
            ),
        )];
        match change {
            Some(Change::Advance { from, to, step }) => {
                let text = format!(
                    "advance: weight {from} → {to} (step {} of {}) after a hold with passing verdicts",
                    step + 1,
                    self.config.ramp.len()
                );
                entries.push((
                    false,
                    self.entry("advance", "judge", &after, text, Vec::new()),
                ));
            }
            Some(Change::Rollback { from }) => {
                let text = match self.config.judge.failures_to_rollback {
                    1 => format!("rollback: weight {from} → 0 after a failing interval: {summary}"),
                    n => format!(
                        "rollback: weight {from} → 0 after {n} failing intervals in a row; last: {summary}"
                    ),
                };
                entries.push((
                    false,
                    self.entry("rollback", "judge", &after, text, Vec::new()),
                ));
            }
            None => {}
        }
        Judgement {
            decision,
            before,
            after,
            change,
            entries,
        }
    }

    /// Tells what a judgement applied here did: the log, the decision counters, the history,
    /// and the weight.
    pub fn report(&self, judgement: &Judgement) {
        self.notify.judged(judgement);
        let decision = &judgement.decision;
        self.stats.metrics().canary_decisions[decision.verdict.label().index()].inc();
        let summary = decision.summary();
        let weight = judgement.before.weight();
        match decision.verdict {
            Verdict::Fail => log::warn!("canary: fail at weight {weight}: {summary}"),
            Verdict::Pass => log::info!("canary: pass at weight {weight}: {summary}"),
            // Every interval at weight 0 is inconclusive: not worth a line each time.
            Verdict::Inconclusive => {
                log::debug!("canary: inconclusive at weight {weight}: {summary}")
            }
        }
        match judgement.change {
            Some(Change::Advance { .. }) => {
                self.publish_weight(judgement.after.weight());
                self.stats.metrics().canary_decisions[DecisionLabel::Advance.index()].inc();
            }
            Some(Change::Rollback { .. }) => {
                self.publish_weight(0.0);
                self.stats.metrics().canary_decisions[DecisionLabel::Rollback.index()].inc();
            }
            None => {}
        }
        for (verdict, entry) in &judgement.entries {
            if !verdict {
                if judgement
                    .change
                    .is_some_and(|c| matches!(c, Change::Rollback { .. }))
                {
                    log::warn!("canary: {}", entry.summary);
                } else {
                    log::info!("canary: {}", entry.summary);
                }
            }
            self.record(*verdict, entry.clone());
        }
    }

    /// Applies an operator's change; `who` names them in the log and the history. Returns the
    /// change in words, or why it was refused.
    pub fn admin(&self, action: AdminAction, who: &str) -> Result<String, Refused> {
        let mut machine = lock(&self.machine);
        let change = self.work_out_admin(&machine, action, who, SystemTime::now())?;
        *machine = change.after.clone();
        drop(machine);
        self.report_admin(&change);
        Ok(change.text)
    }

    /// Works out an operator's change on `machine` at `now`; applies nothing.
    pub fn work_out_admin(
        &self,
        machine: &Machine,
        action: AdminAction,
        who: &str,
        now: SystemTime,
    ) -> Result<AdminChange, Refused> {
        let mut after = machine.clone();
        let text = match action {
            AdminAction::Weight(weight) => {
                let weight = Percent::new(weight).map_err(Refused::Weight)?;
                after.set_weight(weight.value(), now)
            }
            AdminAction::Pause => after.pause()?,
            AdminAction::Resume => after.resume(now)?,
            AdminAction::Promote => after.promote(now),
            AdminAction::Rollback => after.rollback(now)?,
        };
        let entry = self.entry(
            action.as_str(),
            who,
            &after,
            format!("{who}: {text}"),
            Vec::new(),
        );
        Ok(AdminChange {
            action,
            who: who.to_string(),
            text,
            after,
            entry,
        })
    }

    /// Tells what an operator's change applied here did: the weight, the log, the counter
    /// of rollbacks and the history.
    pub fn report_admin(&self, change: &AdminChange) {
        self.notify.changed(change);
        self.publish_weight(change.after.weight());
        if change.action == AdminAction::Rollback {
            self.stats.metrics().canary_decisions[DecisionLabel::Rollback.index()].inc();
            log::warn!("canary: {}: {}", change.who, change.text);
        } else {
            log::info!("canary: {}: {}", change.who, change.text);
        }
        self.record(false, change.entry.clone());
    }

    /// A history entry made now.
    fn entry(
        &self,
        decision: &str,
        by: &str,
        machine: &Machine,
        summary: String,
        reasons: Vec<CanaryReason>,
    ) -> CanaryDecision {
        CanaryDecision {
            at: rfc3339(SystemTime::now()),
            decision: decision.to_string(),
            by: by.to_string(),
            weight: machine.weight(),
            step: machine.step(),
            summary,
            reasons,
        }
    }

    /// A decision made on this replica: kept in the history.
    fn record(&self, verdict: bool, entry: CanaryDecision) {
        lock(&self.history).push(verdict, entry);
    }

    /// The state, the ramp and every decision kept, as snapshots and the admin API show them.
    pub fn history(&self) -> CanaryHistory {
        let (state, weight, step) = {
            let machine = lock(&self.machine);
            (machine.state(), machine.weight(), machine.step())
        };
        CanaryHistory {
            state: state.as_str().to_string(),
            weight,
            step,
            ramp: self
                .config
                .ramp
                .iter()
                .map(|s| CanaryStep {
                    weight: s.weight.value(),
                    hold_seconds: s.hold.map(|h| h.0.as_secs_f64()),
                })
                .collect(),
            decisions: lock(&self.history).entries(),
        }
    }

    /// Failing verdicts in a row so far.
    pub fn fails_in_a_row(&self) -> u32 {
        lock(&self.machine).fails_in_a_row()
    }
}

/// The judge as a Pingora background service: it ticks every `judge.interval`.
pub struct JudgeService {
    canary: Arc<Canary>,
}

impl JudgeService {
    /// The service judging `canary`.
    pub fn new(canary: Arc<Canary>) -> Self {
        JudgeService { canary }
    }
}

#[async_trait]
impl BackgroundService for JudgeService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let period = self.canary.config.judge.interval();
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    self.canary.tick(SystemTime::now());
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::config::config;
    use crate::routes::RouteTable;
    use crate::sampling::headers;

    pub(crate) fn canary(text: &str) -> Canary {
        let routes = RouteTable::new(&[]);
        let stats = Arc::new(Stats::new(&routes, 1, true));
        let comparisons = Arc::new(DiffStore::new(
            routes.len(),
            &crate::comparison::config::DiffConfig::default(),
            crate::budget::ByteBudget::new(1 << 20),
        ));
        Canary::new(&config(text), None, comparisons, stats, 2).unwrap()
    }

    /// Which side a GET with `h` from a tester on loopback goes to.
    fn side(c: &Canary, h: &HeaderMap) -> Side {
        c.choose(&http::Method::GET, h, Some(IpAddr::from([127, 0, 0, 1])))
    }

    #[test]
    fn routing_follows_weight_stickiness_and_the_allowed_force_header() {
        let c = canary("{weight: 20, sticky: header:x-user-id, force: {from: [127.0.0.1]}}");
        let mut candidates = 0;
        for user in 0..10_000 {
            let h = headers(&[("x-user-id", &format!("u{user}"))]);
            let side = side(&c, &h);
            assert!((0..3).all(|_| super::tests::side(&c, &h) == side));
            candidates += usize::from(side == Side::Candidate);
        }
        // 20% of 10,000 is 2,000; the standard deviation is 40.
        assert!((1_850..2_150).contains(&candidates), "{candidates}");
        let always = headers(&[("x-twinpeak-canary", "Always")]);
        let never = headers(&[("x-twinpeak-canary", "never"), ("x-user-id", "u1")]);
        assert_eq!(side(&c, &always), Side::Candidate);
        assert_eq!(side(&c, &never), Side::Primary);
        // Not from an allowed source, or not a safe method: the header is ignored.
        let elsewhere = Some(IpAddr::from([192, 0, 2, 1]));
        let from_elsewhere: Vec<Side> = (0..200)
            .map(|_| c.choose(&http::Method::GET, &always, elsewhere))
            .collect();
        assert!(from_elsewhere.contains(&Side::Primary));
        c.admin(AdminAction::Weight(0.0), "test").unwrap();
        // At weight 0 nobody reaches the candidate, forced or not.
        assert_eq!(side(&c, &always), Side::Primary);
        assert_eq!(side(&c, &headers(&[])), Side::Primary);
        c.admin(AdminAction::Promote, "test").unwrap();
        assert_eq!(side(&c, &never), Side::Primary);
        assert_eq!(side(&c, &headers(&[])), Side::Candidate);
        c.admin(AdminAction::Weight(50.0), "test").unwrap();
        let post = (0..200).map(|_| c.choose(&http::Method::POST, &always, None));
        assert!(post.collect::<Vec<_>>().contains(&Side::Primary));
    }

    #[test]
    fn a_rolled_back_canary_is_not_forced_unless_configured() {
        let c = canary("{weight: 10, force: {from: [127.0.0.1]}}");
        let always = headers(&[("x-twinpeak-canary", "always")]);
        assert_eq!(side(&c, &always), Side::Candidate);
        c.admin(AdminAction::Rollback, "test").unwrap();
        assert_eq!(c.history().state, "rolled_back");
        assert_eq!(side(&c, &always), Side::Primary);
        let c = canary("{weight: 10, force: {from: [127.0.0.1], while_off: true}}");
        c.admin(AdminAction::Rollback, "test").unwrap();
        assert_eq!(side(&c, &always), Side::Candidate);
    }

    #[test]
    fn raising_the_weight_keeps_candidates_on_the_candidate() {
        let c = canary("{weight: 5, sticky: cookie:session}");
        let users: Vec<HeaderMap> = (0..2_000)
            .map(|u| headers(&[("cookie", &format!("a=1; session=s{u}"))]))
            .collect();
        let before: Vec<Side> = users.iter().map(|h| side(&c, h)).collect();
        c.admin(AdminAction::Weight(25.0), "test").unwrap();
        for (h, was) in users.iter().zip(before) {
            if was == Side::Candidate {
                assert_eq!(side(&c, h), Side::Candidate);
            }
        }
    }

    #[test]
    fn verdicts_and_changes_are_recorded_with_reasons_and_counted() {
        let c = canary("{weight: 10, judge: {min_requests: 10, failures_to_rollback: 2}}");
        let now = SystemTime::now();
        let mut failing = PairWindow::default();
        for i in 0..100 {
            failing
                .primary
                .record(false, Some(Duration::from_millis(2)));
            failing
                .candidate
                .record(i % 10 == 0, Some(Duration::from_millis(2)));
        }
        assert_eq!(c.judge_window(&failing, None, now).verdict, Verdict::Fail);
        assert_eq!(c.weight(), 10.0);
        assert_eq!(c.judge_window(&failing, None, now).verdict, Verdict::Fail);
        assert_eq!(c.weight(), 0.0);
        let history = c.history();
        assert_eq!(history.state, "rolled_back");
        let kinds: Vec<&str> = history
            .decisions
            .iter()
            .map(|d| d.decision.as_str())
            .collect();
        assert_eq!(kinds, ["start", "fail", "fail", "rollback"]);
        let fail = &history.decisions[1];
        assert_eq!(fail.weight, 10.0);
        let error_rate = fail
            .reasons
            .iter()
            .find(|r| r.metric == "error_rate")
            .unwrap();
        assert_eq!(
            (error_rate.candidate, error_rate.threshold, error_rate.ok),
            (0.1, 0.01, false)
        );
        assert_eq!(history.decisions[3].weight, 0.0);
        assert!(history.decisions[3].summary.contains("2 failing intervals"));
        c.admin(AdminAction::Resume, "admin (127.0.0.1:1)").unwrap();
        let last = c.history().decisions.pop().unwrap();
        assert_eq!(last.decision, "resume");
        assert_eq!(last.summary, "admin (127.0.0.1:1): resumed: weight 0 → 10");
        let text = String::from_utf8(c.stats.metrics().render(Vec::new())).unwrap();
        assert!(text.contains(r#"twinpeak_canary_decisions_total{decision="fail"} 2"#));
        assert!(text.contains(r#"twinpeak_canary_decisions_total{decision="rollback"} 1"#));
        assert!(text.contains("twinpeak_canary_weight 10"));
        assert!(c.admin(AdminAction::Weight(101.0), "x").is_err());
    }

    #[test]
    fn the_history_is_bounded_per_kind() {
        let c = canary("{weight: 10}");
        let now = SystemTime::now();
        for _ in 0..HISTORY_LIMIT + 50 {
            c.judge_window(&PairWindow::default(), None, now);
        }
        let history = c.history();
        assert_eq!(history.decisions.len(), HISTORY_LIMIT + 1);
        // The start survives however many verdicts follow.
        assert_eq!(history.decisions[0].decision, "start");
    }
}
