//! Load runs as the report reads them: every run record merged into one, and each system's
//! figures added up over its phases.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hdrhistogram::Histogram;

use super::ReportError;
use crate::histogram::new_latency_histogram;
use crate::merge::add_histogram;
use crate::run::{Arrivals, PhaseRecord, RequestRecord, RunRecord, SloRecord};

/// All run records of the report, merged.
pub(super) struct Runs {
    /// The records added together: histograms added, counters summed.
    pub record: RunRecord,
    /// Every run record file, in the order given.
    pub files: Vec<String>,
    /// Per system, the files with phases of that system.
    pub target_files: BTreeMap<String, Vec<String>>,
    /// Per system, its rate multiplier: the sum over the records that measured it.
    pub scale: BTreeMap<String, f64>,
    /// The SLO verdicts as recorded, each with its file.
    pub slo: Vec<(SloRecord, String)>,
}

/// One system's figures over every phase of the merged run.
pub(super) struct TargetTotals {
    /// Requests sent.
    pub sent: u64,
    /// Failed requests.
    pub errors: u64,
    /// Coordinated-omission-corrected latency of the requests that succeeded, µs.
    pub corrected: Histogram<u64>,
    /// Latency from the actual send, µs.
    pub raw: Histogram<u64>,
    /// The arrivals meant for the system: what it answered, failed and could not take.
    pub arrivals: Arrivals,
    /// Seconds the phases lasted, added up.
    pub duration_s: f64,
    /// The files the figures came from.
    pub files: Vec<String>,
}

impl Runs {
    /// Merges `inputs` with [`RunRecord::merge`]; `None` if there are none.
    pub fn merge(inputs: Vec<(PathBuf, RunRecord)>) -> Result<Option<Runs>, ReportError> {
        let mut inputs = inputs.into_iter();
        let Some((first_path, first)) = inputs.next() else {
            return Ok(None);
        };
        let mut runs = Runs {
            record: first.clone(),
            files: Vec::new(),
            target_files: BTreeMap::new(),
            scale: BTreeMap::new(),
            slo: Vec::new(),
        };
        runs.note(&first_path, &first);
        for (path, record) in inputs {
            runs.record
                .merge(&record)
                .map_err(|source| ReportError::RunMerge {
                    path: path.clone(),
                    into: first_path.clone(),
                    source: Box::new(source),
                })?;
            runs.note(&path, &record);
        }
        Ok(Some(runs))
    }

    /// Remembers where `record`'s figures, scale and verdicts came from.
    fn note(&mut self, path: &std::path::Path, record: &RunRecord) {
        let file = path.display().to_string();
        self.files.push(file.clone());
        let mut measured: Vec<&str> = record.phases.iter().map(|p| p.target.as_str()).collect();
        measured.sort_unstable();
        measured.dedup();
        for target in measured {
            self.target_files
                .entry(target.to_owned())
                .or_default()
                .push(file.clone());
            *self.scale.entry(target.to_owned()).or_default() += record.scale;
        }
        self.slo
            .extend(record.slo.iter().map(|slo| (slo.clone(), file.clone())));
    }

    /// Whether the run was merged from more than one record.
    pub fn merged(&self) -> bool {
        self.files.len() > 1
    }

    /// The systems measured: those the records list, then any other a phase names.
    pub fn targets(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let listed = self.record.targets.iter().map(|t| &t.name);
        for name in listed.chain(self.record.phases.iter().map(|p| &p.target)) {
            if !names.contains(name) && self.target_files.contains_key(name) {
                names.push(name.clone());
            }
        }
        names
    }

    /// The phases run against `target`, in the order they ran.
    pub fn phases_of<'a>(&'a self, target: &'a str) -> impl Iterator<Item = &'a PhaseRecord> {
        self.record
            .phases
            .iter()
            .filter(move |p| p.target == target)
    }

    /// The files with figures of `target`.
    pub fn files_of(&self, target: &str) -> Vec<String> {
        self.target_files.get(target).cloned().unwrap_or_default()
    }

    /// `target`'s figures over all its phases.
    pub fn totals(&self, target: &str) -> Result<TargetTotals, ReportError> {
        let files = self.files_of(target);
        let mut totals = TargetTotals {
            sent: 0,
            errors: 0,
            corrected: new_latency_histogram(),
            raw: new_latency_histogram(),
            arrivals: Arrivals::default(),
            duration_s: 0.0,
            files,
        };
        for phase in self.phases_of(target) {
            let request = phase_totals(phase, &totals.files)?;
            let added = add_histogram(&mut totals.corrected, &request.corrected_us)
                .and_then(|()| add_histogram(&mut totals.raw, &request.raw_us))
                .and_then(|()| totals.arrivals.add_phase(phase));
            added.map_err(|source| ReportError::Histogram {
                what: format!("system `{target}`"),
                files: totals.files.clone(),
                source,
            })?;
            totals.sent = totals.sent.saturating_add(request.sent);
            totals.errors = totals.errors.saturating_add(request.error_total());
            totals.duration_s += phase.duration_s;
        }
        Ok(totals)
    }
}

/// All requests of `phase` together; errors name the phase and `files`.
pub(super) fn phase_totals(
    phase: &PhaseRecord,
    files: &[String],
) -> Result<RequestRecord, ReportError> {
    phase.totals().map_err(|source| ReportError::Histogram {
        what: format!("phase `{}` of `{}`", phase.name, phase.target),
        files: files.to_vec(),
        source,
    })
}

/// Which systems are compared: (before, after).
///
/// Before is the system named `legacy`, else `primary`, else the first; after is the one
/// named `rebuilt`, else `candidate`, else `shadow`, else the first other one.
pub(super) fn before_and_after(names: &[String]) -> (Option<String>, Option<String>) {
    let named = |wanted: &[&str], except: Option<&String>| {
        wanted
            .iter()
            .find_map(|w| {
                names
                    .iter()
                    .find(|n| n.as_str() == *w && Some(*n) != except)
            })
            .or_else(|| names.iter().find(|n| Some(*n) != except))
            .cloned()
    };
    let before = named(&["legacy", "primary"], None);
    let after = named(&["rebuilt", "candidate", "shadow"], before.as_ref());
    (before, after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn picks_legacy_and_rebuilt_by_name_then_by_order() {
        assert_eq!(
            before_and_after(&names(&["rebuilt", "legacy"])),
            (Some("legacy".into()), Some("rebuilt".into()))
        );
        assert_eq!(
            before_and_after(&names(&["candidate", "x", "primary"])),
            (Some("primary".into()), Some("candidate".into()))
        );
        assert_eq!(
            before_and_after(&names(&["v1", "v2", "v3"])),
            (Some("v1".into()), Some("v2".into()))
        );
        assert_eq!(
            before_and_after(&names(&["legacy"])),
            (Some("legacy".into()), None)
        );
        assert_eq!(before_and_after(&[]), (None, None));
    }
}
