//! The ramp's state machine: weight, step, state (running, paused, rolled back) and the hold
//! in progress. Pure: every call is given the time, so tests can compress hours into a loop.
//! Times are the wall clock's, so a hold outlives the process that began it: the machine is
//! kept in the state store as a [`CanaryRecord`] and taken up again by a restarted proxy, or
//! by whichever replica judges next.
//!
//! - A step advances once its `hold` has passed since the step began (or since its last
//!   failing verdict) *and* at least one verdict since then passed: a fail restarts the hold.
//! - An inconclusive verdict neither counts as a pass nor restarts the hold, and it neither
//!   extends nor breaks a run of fails.
//! - `failures_to_rollback` failing verdicts in a row set the weight to 0 and stop the ramp
//!   (`rolled_back`) until an operator resumes it.
//! - While paused the ramp does not advance, but failures still roll it back.

use std::time::{Duration, SystemTime};

use twinpeak_core::timestamp::{parse_rfc3339, rfc3339};

use crate::state::CanaryRecord;

use super::config::CanaryConfig;
use super::judge::Verdict;
use crate::units::InvalidValue;

/// Where the canary stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Judged every interval; the ramp advances.
    Running,
    /// Judged, and still rolled back on failures, but the ramp does not advance.
    Paused,
    /// Set to weight 0 by the judge or an operator; stays so until resumed.
    RolledBack,
}

impl State {
    /// The name the admin API and records use.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Paused => "paused",
            State::RolledBack => "rolled_back",
        }
    }
}

/// A weight change the ramp made on its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// The hold of a step passed with passing verdicts: on to the next step.
    Advance {
        /// Weight before.
        from: f64,
        /// Weight after.
        to: f64,
        /// The new step's index.
        step: usize,
    },
    /// `failures_to_rollback` failing verdicts in a row: weight 0.
    Rollback {
        /// Weight before.
        from: f64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Step {
    weight: f64,
    hold: Option<Duration>,
}

/// The ramp's state machine: weight, step, state, and the hold in progress. Pure: the caller
/// passes the time.
#[derive(Debug, Clone)]
pub struct Machine {
    ramp: Vec<Step>,
    failures_to_rollback: u32,
    state: State,
    weight: f64,
    step: Option<usize>,
    hold_since: SystemTime,
    passes: u32,
    fails_in_a_row: u32,
    weight_before_rollback: f64,
}

impl Machine {
    /// The machine for a configuration, starting at `now` at the first ramp step (or at the
    /// configured weight without a ramp).
    pub fn new(config: &CanaryConfig, now: SystemTime) -> Self {
        let ramp: Vec<Step> = config
            .ramp
            .iter()
            .map(|s| Step {
                weight: s.weight.value(),
                hold: s.hold.map(|h| h.0),
            })
            .collect();
        Machine {
            step: (!ramp.is_empty()).then_some(0),
            ramp,
            failures_to_rollback: config.judge.failures_to_rollback,
            state: State::Running,
            weight: config.initial_weight().value(),
            hold_since: now,
            passes: 0,
            fails_in_a_row: 0,
            weight_before_rollback: 0.0,
        }
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The candidate's share in percent.
    pub fn weight(&self) -> f64 {
        self.weight
    }

    /// The ramp step in force, when there is a ramp.
    pub fn step(&self) -> Option<usize> {
        self.step
    }

    /// Failing verdicts in a row so far.
    pub fn fails_in_a_row(&self) -> u32 {
        self.fails_in_a_row
    }

    fn restart_hold(&mut self, now: SystemTime) {
        self.hold_since = now;
        self.passes = 0;
    }

    /// Takes a verdict made at `now`; returns the weight change it leads to, if any.
    pub fn on_verdict(&mut self, verdict: Verdict, now: SystemTime) -> Option<Change> {
        if self.state == State::RolledBack {
            return None;
        }
        match verdict {
            Verdict::Inconclusive => {}
            Verdict::Pass => {
                self.fails_in_a_row = 0;
                self.passes += 1;
            }
            Verdict::Fail => {
                self.fails_in_a_row += 1;
                self.restart_hold(now);
                if self.fails_in_a_row >= self.failures_to_rollback {
                    let from = self.weight;
                    self.roll_back(now);
                    return Some(Change::Rollback { from });
                }
            }
        }
        if self.state != State::Running {
            return None;
        }
        let step = self.step?;
        let hold = self.ramp[step].hold?;
        let next = self.ramp.get(step + 1)?;
        let held = now.duration_since(self.hold_since).unwrap_or_default();
        if self.passes == 0 || held < hold {
            return None;
        }
        let from = self.weight;
        self.weight = next.weight;
        self.step = Some(step + 1);
        self.restart_hold(now);
        Some(Change::Advance {
            from,
            to: self.weight,
            step: step + 1,
        })
    }

    /// The machine as the state store keeps it (the plan and the judge's fields are the
    /// caller's to fill in).
    pub fn to_record(&self) -> CanaryRecord {
        CanaryRecord {
            state: self.state.as_str().to_string(),
            weight: self.weight,
            step: self.step,
            hold_since: rfc3339(self.hold_since),
            passes: self.passes,
            fails_in_a_row: self.fails_in_a_row,
            weight_before_rollback: self.weight_before_rollback,
            ..CanaryRecord::default()
        }
    }

    /// The machine for `config` taken up where `record` left it; `now` stands in for a hold
    /// start that does not read. A step beyond the ramp is its last.
    pub fn from_record(config: &CanaryConfig, record: &CanaryRecord, now: SystemTime) -> Self {
        let mut machine = Machine::new(config, now);
        machine.state = match record.state.as_str() {
            "paused" => State::Paused,
            "rolled_back" => State::RolledBack,
            _ => State::Running,
        };
        machine.weight = record.weight.clamp(0.0, 100.0);
        machine.step = match (machine.ramp.len(), record.step) {
            (0, _) => None,
            (n, step) => Some(step.unwrap_or(0).min(n - 1)),
        };
        machine.hold_since = parse_rfc3339(&record.hold_since).unwrap_or(now);
        machine.passes = record.passes;
        machine.fails_in_a_row = record.fails_in_a_row;
        machine.weight_before_rollback = record.weight_before_rollback.clamp(0.0, 100.0);
        machine
    }

    fn roll_back(&mut self, now: SystemTime) {
        self.weight_before_rollback = self.weight;
        self.weight = 0.0;
        self.state = State::RolledBack;
        self.fails_in_a_row = 0;
        self.restart_hold(now);
    }

    fn describe_step(&self) -> String {
        match self.step {
            Some(step) => format!(" (step {} of {})", step + 1, self.ramp.len()),
            None => String::new(),
        }
    }

    /// Sets the weight by hand. With a ramp, the ramp is paused so the weight holds until
    /// resumed. Returns what changed, in words.
    pub fn set_weight(&mut self, weight: f64, now: SystemTime) -> String {
        let from = self.weight;
        self.weight = weight;
        self.fails_in_a_row = 0;
        self.restart_hold(now);
        if self.ramp.is_empty() {
            self.state = State::Running;
            format!("weight {from} → {weight}")
        } else {
            self.state = State::Paused;
            format!("weight {from} → {weight} (ramp paused; resume to continue it)")
        }
    }

    /// Stops the ramp from advancing. Only a running canary can be paused.
    pub fn pause(&mut self) -> Result<String, Refused> {
        if self.state != State::Running {
            return Err(Refused::NotRunning(self.state));
        }
        self.state = State::Paused;
        Ok(format!(
            "paused at weight {}{}",
            self.weight,
            self.describe_step()
        ))
    }

    /// Runs a paused or rolled-back canary again. With a ramp it continues at the first step
    /// whose weight is at least the current one (the first step after a rollback); without
    /// one, a rolled-back canary gets back the weight it had.
    pub fn resume(&mut self, now: SystemTime) -> Result<String, Refused> {
        if self.state == State::Running {
            return Err(Refused::AlreadyRunning);
        }
        let from = self.weight;
        if self.ramp.is_empty() {
            if self.state == State::RolledBack {
                self.weight = self.weight_before_rollback;
            }
        } else {
            let step = self
                .ramp
                .iter()
                .position(|s| s.weight >= self.weight)
                .unwrap_or(self.ramp.len() - 1);
            self.step = Some(step);
            self.weight = self.ramp[step].weight;
        }
        self.state = State::Running;
        self.fails_in_a_row = 0;
        self.restart_hold(now);
        Ok(format!(
            "resumed: weight {from} → {}{}",
            self.weight,
            self.describe_step()
        ))
    }

    /// Sends all traffic to the candidate (weight 100); the ramp, if any, is complete. The
    /// judge still rolls back on failures.
    pub fn promote(&mut self, now: SystemTime) -> String {
        let from = self.weight;
        self.weight = 100.0;
        if !self.ramp.is_empty() {
            self.step = Some(self.ramp.len() - 1);
        }
        self.state = State::Running;
        self.fails_in_a_row = 0;
        self.restart_hold(now);
        format!("promoted: weight {from} → 100")
    }

    /// Sets the weight to 0 and stops the ramp until resumed.
    pub fn rollback(&mut self, now: SystemTime) -> Result<String, Refused> {
        if self.state == State::RolledBack {
            return Err(Refused::AlreadyRolledBack);
        }
        let from = self.weight;
        self.roll_back(now);
        Ok(format!("rolled back: weight {from} → 0"))
    }
}

/// Why an operator's change was refused; the canary is left as it was.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    /// Only a running canary can be paused.
    #[error("the canary is {}; only a running canary can be paused", .0.as_str())]
    NotRunning(State),
    /// A running canary cannot be resumed.
    #[error("the canary is already running")]
    AlreadyRunning,
    /// A rolled-back canary cannot be rolled back again.
    #[error("the canary is already rolled back")]
    AlreadyRolledBack,
    /// A weight that is not a percentage.
    #[error("weight {0}")]
    Weight(InvalidValue),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::config::config;

    const RAMP: &str = "{ramp: [{weight: 1, hold: 10m}, {weight: 5, hold: 30m}, {weight: 100}], judge: {failures_to_rollback: 3}}";

    fn minutes(start: SystemTime, m: u64) -> SystemTime {
        start + Duration::from_secs(60 * m)
    }

    #[test]
    fn the_ramp_advances_after_a_hold_with_passes() {
        let t0 = SystemTime::now();
        let mut m = Machine::new(&config(RAMP), t0);
        assert_eq!((m.weight(), m.step()), (1.0, Some(0)));
        // Passes before the hold is over do not advance.
        assert_eq!(m.on_verdict(Verdict::Pass, minutes(t0, 5)), None);
        assert_eq!(
            m.on_verdict(Verdict::Pass, minutes(t0, 10)),
            Some(Change::Advance {
                from: 1.0,
                to: 5.0,
                step: 1
            })
        );
        // The next hold starts at the advance: 30 minutes with a pass.
        assert_eq!(m.on_verdict(Verdict::Inconclusive, minutes(t0, 45)), None);
        assert_eq!(
            m.on_verdict(Verdict::Pass, minutes(t0, 46)),
            Some(Change::Advance {
                from: 5.0,
                to: 100.0,
                step: 2
            })
        );
        // The last step holds for ever.
        assert_eq!(m.on_verdict(Verdict::Pass, minutes(t0, 600)), None);
        assert_eq!(m.weight(), 100.0);
    }

    #[test]
    fn a_hold_needs_a_pass_and_a_fail_restarts_it() {
        let t0 = SystemTime::now();
        let mut m = Machine::new(&config(RAMP), t0);
        // Only inconclusive verdicts: the hold has passed but nothing was judged good.
        assert_eq!(m.on_verdict(Verdict::Inconclusive, minutes(t0, 20)), None);
        assert_eq!(m.weight(), 1.0);
        m.on_verdict(Verdict::Pass, minutes(t0, 5));
        assert_eq!(m.on_verdict(Verdict::Fail, minutes(t0, 9)), None);
        // The fail at minute 9 restarted the hold: minute 12 is too early, 19 is not.
        assert_eq!(m.on_verdict(Verdict::Pass, minutes(t0, 12)), None);
        assert!(matches!(
            m.on_verdict(Verdict::Pass, minutes(t0, 19)),
            Some(Change::Advance { to, .. }) if to == 5.0
        ));
    }

    #[test]
    fn consecutive_fails_roll_back_and_stop_the_ramp_until_resumed() {
        let t0 = SystemTime::now();
        let mut m = Machine::new(&config(RAMP), t0);
        m.on_verdict(Verdict::Pass, minutes(t0, 10));
        assert_eq!(m.weight(), 5.0);
        m.on_verdict(Verdict::Fail, minutes(t0, 11));
        m.on_verdict(Verdict::Pass, minutes(t0, 12));
        // A pass broke the run; an inconclusive verdict does not.
        m.on_verdict(Verdict::Fail, minutes(t0, 13));
        m.on_verdict(Verdict::Inconclusive, minutes(t0, 14));
        m.on_verdict(Verdict::Fail, minutes(t0, 15));
        assert_eq!(m.fails_in_a_row(), 2);
        assert_eq!(
            m.on_verdict(Verdict::Fail, minutes(t0, 16)),
            Some(Change::Rollback { from: 5.0 })
        );
        assert_eq!((m.weight(), m.state()), (0.0, State::RolledBack));
        // Rolled back: passes change nothing until an operator resumes.
        assert_eq!(m.on_verdict(Verdict::Pass, minutes(t0, 200)), None);
        assert_eq!(m.weight(), 0.0);
        assert!(m.pause().is_err());
        let text = m.resume(minutes(t0, 201)).unwrap();
        assert_eq!(text, "resumed: weight 0 → 1 (step 1 of 3)");
        assert_eq!((m.weight(), m.state()), (1.0, State::Running));
        assert!(m.resume(minutes(t0, 202)).is_err());
    }

    #[test]
    fn paused_ramps_do_not_advance_but_still_roll_back() {
        let t0 = SystemTime::now();
        let mut m = Machine::new(&config(RAMP), t0);
        m.pause().unwrap();
        assert_eq!(m.on_verdict(Verdict::Pass, minutes(t0, 30)), None);
        assert_eq!(m.weight(), 1.0);
        for i in 0..2 {
            assert_eq!(m.on_verdict(Verdict::Fail, minutes(t0, 31 + i)), None);
        }
        assert_eq!(
            m.on_verdict(Verdict::Fail, minutes(t0, 33)),
            Some(Change::Rollback { from: 1.0 })
        );
    }

    #[test]
    fn manual_weights_pause_the_ramp_and_resume_re_anchors_it() {
        let t0 = SystemTime::now();
        let mut m = Machine::new(&config(RAMP), t0);
        assert_eq!(
            m.set_weight(3.0, t0),
            "weight 1 → 3 (ramp paused; resume to continue it)"
        );
        assert_eq!(m.state(), State::Paused);
        // The first step at or above 3% is the 5% step.
        m.resume(minutes(t0, 1)).unwrap();
        assert_eq!((m.weight(), m.step()), (5.0, Some(1)));
        assert_eq!(m.promote(minutes(t0, 2)), "promoted: weight 5 → 100");
        assert_eq!((m.weight(), m.step()), (100.0, Some(2)));
        assert_eq!(
            m.rollback(minutes(t0, 3)).unwrap(),
            "rolled back: weight 100 → 0"
        );
        assert!(m.rollback(minutes(t0, 3)).is_err());
    }

    #[test]
    fn a_machine_taken_up_from_its_record_continues_its_hold() {
        let t0 = SystemTime::now();
        let mut m = Machine::new(&config(RAMP), t0);
        m.on_verdict(Verdict::Pass, minutes(t0, 10));
        m.on_verdict(Verdict::Pass, minutes(t0, 20));
        let record = m.to_record();
        assert_eq!((record.state.as_str(), record.step), ("running", Some(1)));
        // Taken up later: the hold began at minute 10, so at minute 40 it has passed.
        let mut again = Machine::from_record(&config(RAMP), &record, minutes(t0, 39));
        assert_eq!((again.weight(), again.step()), (5.0, Some(1)));
        assert!(matches!(
            again.on_verdict(Verdict::Pass, minutes(t0, 40)),
            Some(Change::Advance { to, .. }) if to == 100.0
        ));
        m.rollback(minutes(t0, 21)).unwrap();
        let back = Machine::from_record(&config(RAMP), &m.to_record(), minutes(t0, 22));
        assert_eq!((back.state(), back.weight()), (State::RolledBack, 0.0));
        let resumed = {
            let mut b = back.clone();
            b.resume(minutes(t0, 23)).unwrap();
            b.weight()
        };
        assert_eq!(resumed, 1.0);
    }

    #[test]
    fn without_a_ramp_resume_restores_the_weight_before_the_rollback() {
        let t0 = SystemTime::now();
        let mut m = Machine::new(
            &config("{weight: 12.5, judge: {failures_to_rollback: 1}}"),
            t0,
        );
        assert_eq!(m.step(), None);
        assert_eq!(
            m.on_verdict(Verdict::Fail, t0),
            Some(Change::Rollback { from: 12.5 })
        );
        m.resume(t0).unwrap();
        assert_eq!((m.weight(), m.state()), (12.5, State::Running));
        assert_eq!(m.set_weight(20.0, t0), "weight 12.5 → 20");
        assert_eq!(m.state(), State::Running);
    }
}
