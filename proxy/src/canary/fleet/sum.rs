//! Every replica's rows of one judge interval, added into the fleet's window the judge
//! judges, and the checks before: every replica counts intervals of one width, and none that
//! wrote rows lately is missing from the interval.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::super::window::{PairWindow, SideWindow};
use crate::comparison::store::DiffWindow;
use crate::state::{IntervalWindow, SideCounts};

/// Refuses to judge while a replica counts judge intervals of another width than `width`
/// (`widths`: every replica that wrote one lately, with the width of its newest): the judge
/// would add only part of the fleet's traffic, and could not tell a replica missing.
pub(super) fn one_width(
    widths: &BTreeMap<String, Duration>,
    width: Duration,
) -> Result<(), String> {
    let others: Vec<String> = widths
        .iter()
        .filter(|(_, w)| **w != width)
        .map(|(replica, w)| format!("{replica} ({w:?})"))
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    Err(format!(
        "judge.interval differs across the fleet: this judge's intervals are {width:?}, \
         other widths from {}",
        others.join(", ")
    ))
}

/// Every replica's rows of one interval, added.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FleetWindow {
    /// The sum.
    pub window: IntervalWindow,
    /// The replicas added.
    pub replicas: Vec<String>,
}

/// Adds the rows of interval `seq`; refuses when a replica that wrote a row in the
/// intervals before it has none for it (its figures are late, or it stopped), or none did.
pub(super) fn fleet_window(
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

pub(super) fn to_stored(window: &PairWindow, diff: Option<DiffWindow>) -> IntervalWindow {
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

pub(super) fn from_stored(window: &IntervalWindow) -> (PairWindow, Option<DiffWindow>) {
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
