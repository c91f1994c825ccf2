//! Timelines of several load workers' records as one: a point per second and system.

use std::collections::BTreeMap;

use hdrhistogram::AdditionError;

use super::TimelinePoint;
use crate::merge::add_histogram;

/// Both timelines as one, a point per second and system, in time order; see
/// [`super::PhaseRecord::merge`].
pub(super) fn merge(
    ours: &[TimelinePoint],
    theirs: &[TimelinePoint],
) -> Result<Vec<TimelinePoint>, AdditionError> {
    let mut seconds: BTreeMap<(i64, &str), TimelinePoint> = BTreeMap::new();
    for point in ours.iter().chain(theirs) {
        // Rounds to the nearest second; NaN becomes 0 and out-of-range values saturate.
        let second = point.t_s.round() as i64;
        match seconds.get_mut(&(second, point.target.as_str())) {
            Some(merged) => add(merged, point)?,
            None => {
                let first = TimelinePoint {
                    t_s: second as f64,
                    ..point.clone()
                };
                seconds.insert((second, &point.target), first);
            }
        }
    }
    let mut points: Vec<TimelinePoint> = seconds.into_values().collect();
    for point in &mut points {
        if let Some(latency) = &point.latency_us {
            point.p99_us = if latency.is_empty() {
                0
            } else {
                latency.value_at_quantile(0.99)
            };
        }
    }
    Ok(points)
}

/// Adds `point` into `merged`, the same second and system.
fn add(merged: &mut TimelinePoint, point: &TimelinePoint) -> Result<(), AdditionError> {
    merged.intended_rps += point.intended_rps;
    merged.achieved_rps += point.achieved_rps;
    merged.p99_us = merged.p99_us.max(point.p99_us);
    merged.errors = merged.errors.saturating_add(point.errors);
    merged.requests = merged.requests.saturating_add(point.requests);
    merged.dropped = merged.dropped.saturating_add(point.dropped);
    match (&mut merged.latency_us, &point.latency_us) {
        (Some(ours), Some(theirs)) => add_histogram(ours, theirs)?,
        _ => merged.latency_us = None,
    }
    Ok(())
}
