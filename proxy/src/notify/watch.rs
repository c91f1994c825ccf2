//! Watching the comparison results for what is worth an event, off the request path: a field
//! that differs for real on a route for the first time, and a route's diff rate crossing the
//! configured threshold (once per crossing, back below a lower one before it counts again).
//!
//! Fields are read from the store's summaries, classified with the noise known when read, so
//! a nonce is not announced once the reference answers have shown it to be noise; fields the
//! store had before the proxy started (restored from the state store) are known already. The
//! rate is taken from `twinpeak_compared_total` over a sliding window, as the alert rule
//! `TwinpeakDiffRateHigh` takes it.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use twinpeak_core::timestamp::parse_rfc3339;
use twinpeak_core::DiffSummary;

use super::config::{DiffRateConfig, EventKind};
use super::event::About;
use super::Notifier;
use crate::comparison::store::DiffStore;
use crate::labels::PairResult;
use crate::routes::{RouteId, RouteTable};
use crate::stats::Stats;

/// How often the results are looked at.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Samples of the counters kept per route: the window is seen in this many steps.
const RATE_SAMPLES: u32 = 60;

/// What the watcher reads and whom it tells.
pub struct DiffWatch {
    store: Arc<DiffStore>,
    stats: Arc<Stats>,
    routes: Arc<RouteTable>,
    notifier: Notifier,
    fields: FieldWatch,
    rates: Option<RateWatch>,
}

impl DiffWatch {
    /// A watcher over every route's results, telling `notifier`; fields first seen before
    /// `started` are known already.
    pub fn new(
        store: Arc<DiffStore>,
        stats: Arc<Stats>,
        routes: Arc<RouteTable>,
        notifier: Notifier,
        rate: Option<&DiffRateConfig>,
        started: SystemTime,
    ) -> Self {
        DiffWatch {
            fields: FieldWatch::new(routes.len(), started),
            rates: rate.map(|config| RateWatch::new(config.clone(), routes.len())),
            store,
            stats,
            routes,
            notifier,
        }
    }

    /// Looks at every route once and sends what is new.
    pub fn poll(&mut self, now: Instant) {
        let want_fields = self.notifier.wants(EventKind::NewDifference);
        for (id, route) in self.routes.names().iter().enumerate() {
            if want_fields {
                let summary = self.store.summary(id);
                for (field, kind, pairs) in self.fields.news(id, &summary) {
                    self.notifier.publish(
                        EventKind::NewDifference,
                        format!(
                            "{field} ({kind}) differs for real on {route}: {pairs} pair(s) so far"
                        ),
                        About::Difference {
                            route: route.clone(),
                            field,
                            kind,
                            pairs,
                        },
                    );
                }
            }
            let (different, compared) = self.counts(id);
            if let Some(rates) = &mut self.rates {
                if let Some(crossing) = rates.observe(id, now, different, compared) {
                    self.notifier.publish(
                        crossing.kind,
                        crossing.summary(route, &rates.config),
                        About::DiffRate {
                            route: route.clone(),
                            diff_rate: crossing.rate,
                            threshold: crossing.threshold,
                            pairs: crossing.pairs,
                            window_seconds: rates.config.window.0.as_secs_f64(),
                        },
                    );
                }
            }
        }
    }

    /// A route's pairs with a real difference and pairs compared, as counted when compared.
    fn counts(&self, route: RouteId) -> (u64, u64) {
        if self.rates.is_none() {
            return (0, 0);
        }
        let counters = &self.stats.route_metrics(route).compared;
        let count = |result: PairResult| counters[result.index()].get();
        let different = count(PairResult::Different);
        (
            different,
            different + count(PairResult::Identical) + count(PairResult::Noise),
        )
    }
}

/// The real fields seen so far, per route.
pub struct FieldWatch {
    started: SystemTime,
    known: Vec<HashSet<(String, String)>>,
}

impl FieldWatch {
    /// Nothing seen yet on `routes` routes; fields first seen before `started` count as seen.
    pub fn new(routes: usize, started: SystemTime) -> Self {
        FieldWatch {
            started,
            known: vec![HashSet::new(); routes],
        }
    }

    /// The fields (path, kind, pairs) `summary` shows as real for the first time. Fields the
    /// store no longer has (it was reset) are forgotten, so they are announced again when
    /// they come back; a field now classified as noise stays known. Bounded as the store is.
    pub fn news(&mut self, route: RouteId, summary: &DiffSummary) -> Vec<(String, String, u64)> {
        let known = &mut self.known[route];
        let present: HashSet<(String, String)> = summary
            .fields
            .iter()
            .chain(&summary.noise)
            .map(|f| (f.path.clone(), f.kind.clone()))
            .collect();
        known.retain(|key| present.contains(key));
        let mut news = Vec::new();
        for field in &summary.fields {
            let key = (field.path.clone(), field.kind.clone());
            if known.contains(&key) {
                continue;
            }
            known.insert(key);
            let restored = parse_rfc3339(&field.first_seen).is_some_and(|t| t < self.started);
            if !restored {
                news.push((field.path.clone(), field.kind.clone(), field.count));
            }
        }
        news
    }
}

/// A diff rate that crossed a threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossing {
    /// `diff_rate_high` or `diff_rate_normal`.
    pub kind: EventKind,
    /// The rate over the window (a fraction).
    pub rate: f64,
    /// The threshold crossed (a fraction).
    pub threshold: f64,
    /// Pairs compared within the window.
    pub pairs: u64,
}

impl Crossing {
    fn summary(&self, route: &str, config: &DiffRateConfig) -> String {
        let percent = |f: f64| format!("{:.2}%", f * 100.0);
        let direction = if self.kind == EventKind::DiffRateHigh {
            "above"
        } else {
            "back below"
        };
        format!(
            "{} of {} pairs compared on {route} in the last {} differ for real: {direction} {}",
            percent(self.rate),
            self.pairs,
            config.window,
            percent(self.threshold)
        )
    }
}

/// Each route's counters over the window, and whether its rate is high.
pub struct RateWatch {
    config: DiffRateConfig,
    routes: Vec<RouteRate>,
}

#[derive(Default)]
struct RouteRate {
    /// (when, different, compared), oldest first; one at most every window / RATE_SAMPLES.
    samples: VecDeque<(Instant, u64, u64)>,
    high: bool,
}

impl RateWatch {
    /// Every route normal, nothing sampled.
    pub fn new(config: DiffRateConfig, routes: usize) -> Self {
        RateWatch {
            config,
            routes: (0..routes).map(|_| RouteRate::default()).collect(),
        }
    }

    /// Takes a route's counters at `now`; returns the crossing they make, if any.
    pub fn observe(
        &mut self,
        route: RouteId,
        now: Instant,
        different: u64,
        compared: u64,
    ) -> Option<Crossing> {
        let window = self.config.window.0;
        let state = &mut self.routes[route];
        let spacing = window / RATE_SAMPLES;
        let due = state
            .samples
            .back()
            .is_none_or(|(at, _, _)| now.duration_since(*at) >= spacing);
        if due {
            state.samples.push_back((now, different, compared));
        }
        // Keep the newest sample at or before the window's start, and those after it.
        while state.samples.len() > 1 && now.duration_since(state.samples[1].0) >= window {
            state.samples.pop_front();
        }
        let (_, old_different, old_compared) = *state.samples.front()?;
        let pairs = compared.saturating_sub(old_compared);
        if pairs < self.config.min_pairs.max(1) {
            return None;
        }
        let rate = different.saturating_sub(old_different) as f64 / pairs as f64;
        let (above, below) = (self.config.above.fraction(), self.config.below_fraction());
        let (kind, threshold) = match state.high {
            false if rate > above => (EventKind::DiffRateHigh, above),
            true if rate < below => (EventKind::DiffRateNormal, below),
            _ => return None,
        };
        state.high = kind == EventKind::DiffRateHigh;
        Some(Crossing {
            kind,
            rate,
            threshold,
            pairs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinpeak_core::timestamp::rfc3339;
    use twinpeak_core::FieldSummary;

    fn field(path: &str, count: u64, first_seen: SystemTime) -> FieldSummary {
        FieldSummary {
            path: path.into(),
            kind: "value_changed".into(),
            count,
            rate: 0.0,
            reference_count: 0,
            reference_rate: None,
            first_seen: rfc3339(first_seen),
            last_seen: rfc3339(first_seen),
            suggested_ignore: None,
        }
    }

    #[test]
    fn a_field_is_announced_once_and_again_only_after_a_reset() {
        let started = SystemTime::now();
        let mut watch = FieldWatch::new(1, started);
        let later = started + Duration::from_secs(5);
        let restored = field("$.old", 40, started - Duration::from_secs(3600));
        let mut summary = DiffSummary {
            fields: vec![restored, field("$.price", 1, later)],
            ..DiffSummary::default()
        };
        let news = watch.news(0, &summary);
        assert_eq!(news, vec![("$.price".into(), "value_changed".into(), 1)]);
        summary.fields[1].count = 9;
        assert!(watch.news(0, &summary).is_empty());
        // Now noise: still known, not announced when it is real again.
        let price = summary.fields.pop().unwrap();
        summary.noise.push(price.clone());
        assert!(watch.news(0, &summary).is_empty());
        summary.noise.clear();
        summary.fields.push(price.clone());
        assert!(watch.news(0, &summary).is_empty());
        // After a reset the store forgets it, and so does the watch.
        assert!(watch.news(0, &DiffSummary::default()).is_empty());
        assert_eq!(watch.news(0, &summary).len(), 1);
    }

    #[test]
    fn a_rate_crossing_is_told_once_with_hysteresis() {
        let config: DiffRateConfig =
            serde_yaml::from_str("{above: 10%, below: 5%, window: 60s, min_pairs: 50}").unwrap();
        let mut rates = RateWatch::new(config, 1);
        let start = Instant::now();
        let mut events = Vec::new();
        let (mut different, mut compared) = (0u64, 0u64);
        // 100 pairs a second: 2% differ for 2 minutes, then 20% for 2 minutes, then 7% (between
        // the thresholds), then 1%.
        for second in 0..600u64 {
            let share = match second {
                0..120 => 2,
                120..240 => 20,
                240..360 => 7,
                _ => 1,
            };
            compared += 100;
            different += share;
            let now = start + Duration::from_secs(second);
            if let Some(crossing) = rates.observe(0, now, different, compared) {
                events.push((second, crossing));
            }
        }
        let kinds: Vec<EventKind> = events.iter().map(|(_, c)| c.kind).collect();
        assert_eq!(kinds, [EventKind::DiffRateHigh, EventKind::DiffRateNormal]);
        let (high_at, high) = events[0];
        assert!((120..180).contains(&high_at), "{high_at}");
        assert!(high.rate > 0.10 && high.pairs >= 50, "{high:?}");
        let (normal_at, normal) = events[1];
        // 7% is not below 5%: the rate goes back to normal only once it is 1%.
        assert!((360..420).contains(&normal_at), "{normal_at}");
        assert!(normal.rate < 0.05);
        // Too few pairs in the window say nothing.
        let mut quiet = RateWatch::new(rates.config.clone(), 1);
        assert_eq!(quiet.observe(0, start, 0, 0), None);
        assert_eq!(
            quiet.observe(0, start + Duration::from_secs(2), 10, 10),
            None
        );
    }
}
