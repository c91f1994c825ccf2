//! Where the canary hands its decisions to the notifier. The canary is made before the
//! notifier, so it holds an empty [`Hook`] that the server connects once both exist; until
//! then (and in tests that never connect it) its events go nowhere.
//!
//! The canary reports a decision once, on the replica that made it (in a fleet: the judge,
//! or the replica an operator asked), so each event is sent once however many replicas take
//! the decision up.

use std::sync::OnceLock;

use super::config::EventKind;
use super::event::About;
use super::Notifier;
use crate::canary::judge::Verdict;
use crate::canary::ramp::State;
use crate::canary::{AdminAction, AdminChange, Change, Judgement, Machine};

/// The canary's way to the notifier.
#[derive(Default)]
pub struct Hook(OnceLock<Notifier>);

impl Hook {
    /// Sends what is reported from now on to `notifier` (once; later calls are ignored).
    pub fn connect(&self, notifier: Notifier) {
        let _ = self.0.set(notifier);
    }

    /// A judgement made here: a failing verdict after one that did not fail starts a run of
    /// them (unless the canary is rolled back already: a late fail there changes nothing);
    /// an advance or a rollback is a change.
    pub fn judged(&self, judgement: &Judgement) {
        let Some(notifier) = self.0.get() else {
            return;
        };
        let before = &judgement.before;
        let starts_a_run = before.fails_in_a_row() == 0 && before.state() != State::RolledBack;
        if judgement.decision.verdict == Verdict::Fail && starts_a_run {
            let summary = format!("fail: {}", judgement.decision.summary());
            send(
                notifier,
                EventKind::CanaryFailStreak,
                "judge",
                &judgement.before,
                summary,
            );
        }
        let kind = match judgement.change {
            Some(Change::Advance { .. }) => EventKind::CanaryAdvance,
            Some(Change::Rollback { .. }) => EventKind::CanaryRollback,
            None => return,
        };
        let summary = judgement
            .entries
            .iter()
            .rev()
            .find(|(verdict, _)| !verdict)
            .map(|(_, entry)| entry.summary.clone())
            .unwrap_or_else(|| judgement.decision.summary());
        send(notifier, kind, "judge", &judgement.after, summary);
    }

    /// An operator's change made here.
    pub fn changed(&self, change: &AdminChange) {
        let Some(notifier) = self.0.get() else {
            return;
        };
        let kind = match change.action {
            AdminAction::Weight(_) => EventKind::CanaryWeight,
            AdminAction::Pause => EventKind::CanaryPause,
            AdminAction::Resume => EventKind::CanaryResume,
            AdminAction::Promote => EventKind::CanaryPromote,
            AdminAction::Rollback => EventKind::CanaryRollback,
        };
        let summary = change.entry.summary.clone();
        send(notifier, kind, &change.who, &change.after, summary);
    }
}

/// An event about the canary as `machine` shows it.
fn send(notifier: &Notifier, kind: EventKind, by: &str, machine: &Machine, summary: String) {
    notifier.publish(
        kind,
        summary,
        About::Canary {
            state: machine.state().as_str().to_string(),
            weight: machine.weight(),
            step: machine.step(),
            by: by.to_string(),
        },
    );
}
