//! Proxy snapshots as the report reads them: merged into one, each side added up over its
//! routes, and the per-route, delta and diff views.

use std::path::PathBuf;

use hdrhistogram::Histogram;

use super::figures::{latency_change, latency_figure, Provenance};
use super::findings::{self, RouteFindings};
use super::format;
use super::headline::SideStats;
use super::model::{DeltaView, DiffView, Figure, RouteRow};
use super::ReportError;
use crate::diff::DiffSummary;
use crate::histogram::SignedHistogram;
use crate::snapshot::{RouteSnapshot, SideSnapshot, Snapshot};
use crate::timestamp::parse_rfc3339;

/// All snapshots of the report, merged.
pub(super) struct Snapshots {
    /// The snapshots added together with [`Snapshot::merge`].
    pub snapshot: Snapshot,
    /// Every snapshot file, in the order given.
    pub files: Vec<String>,
    /// The distinct proxy configuration digests, in the order seen.
    pub configs: Vec<String>,
    /// The snapshot files with a canary history, in the order given.
    pub canary_files: Vec<String>,
}

impl Snapshots {
    /// Merges `inputs`; `None` if there are none.
    pub fn merge(inputs: Vec<(PathBuf, Snapshot)>) -> Result<Option<Snapshots>, ReportError> {
        let mut inputs = inputs.into_iter();
        let Some((first_path, first)) = inputs.next() else {
            return Ok(None);
        };
        let mut merged = Snapshots {
            configs: vec![first.proxy_config_sha256.clone()],
            files: vec![first_path.display().to_string()],
            canary_files: Vec::new(),
            snapshot: first,
        };
        if merged.snapshot.canary.is_some() {
            merged.canary_files.push(first_path.display().to_string());
        }
        for (path, snapshot) in inputs {
            merged
                .snapshot
                .merge(&snapshot)
                .map_err(|source| ReportError::SnapshotMerge {
                    path: path.clone(),
                    into: first_path.clone(),
                    source: Box::new(source),
                })?;
            if !merged.configs.contains(&snapshot.proxy_config_sha256) {
                merged.configs.push(snapshot.proxy_config_sha256.clone());
            }
            if snapshot.canary.is_some() {
                merged.canary_files.push(path.display().to_string());
            }
            merged.files.push(path.display().to_string());
        }
        Ok(Some(merged))
    }

    /// One side (`primary` or `shadow`) over all routes.
    pub fn side(&self, side: &str) -> Result<SideSnapshot, ReportError> {
        let mut total = SideSnapshot::default();
        for route in self.snapshot.routes.values() {
            total
                .merge(pick(route, side))
                .map_err(|source| ReportError::Histogram {
                    what: format!("the {side} side of the snapshots"),
                    files: self.files.clone(),
                    source,
                })?;
        }
        Ok(total)
    }

    /// One side's headline measurements over all routes: latency, failures (`5xx` and
    /// `error` status classes) and requests per second over the snapshot's span.
    pub fn side_stats(&self, side: &str) -> Result<SideStats, ReportError> {
        let total = self.side(side)?;
        let failed = ["5xx", "error"]
            .iter()
            .filter_map(|class| total.status_classes.get(*class))
            .sum();
        Ok(SideStats {
            latency: total.latency_us.0,
            latency_from: self.provenance(format!("routes[*].{side}.latency_us, added")),
            requests: total.requests,
            errors: failed,
            errors_from: self.provenance(format!(
                "routes[*].{side}: status classes 5xx and error over requests, summed"
            )),
            throughput: self.span_s().map(|s| total.requests as f64 / s),
            throughput_from: self.provenance(format!(
                "routes[*].{side}.requests, summed, over the time from started_at to taken_at"
            )),
            compliance: None,
            compliance_from: self.provenance(""),
        })
    }

    /// Seconds between the proxy starting to count and the snapshot.
    pub fn span_s(&self) -> Option<f64> {
        let start = parse_rfc3339(&self.snapshot.started_at)?;
        let end = parse_rfc3339(&self.snapshot.taken_at)?;
        end.duration_since(start)
            .ok()
            .map(|d| d.as_secs_f64())
            .filter(|s| *s > 0.0)
    }

    /// Paired deltas over all routes.
    pub fn delta(&self) -> Result<SignedHistogram, ReportError> {
        let mut total = SignedHistogram::new();
        for route in self.snapshot.routes.values() {
            total
                .add(&route.delta)
                .map_err(|source| ReportError::Histogram {
                    what: "the paired deltas of the snapshots".to_owned(),
                    files: self.files.clone(),
                    source,
                })?;
        }
        Ok(total)
    }

    /// Where a figure of the snapshots came from.
    pub fn provenance(&self, derivation: impl Into<String>) -> Provenance {
        Provenance::new(self.files.clone(), derivation)
    }

    /// One row per route, busiest first.
    pub fn route_rows(&self) -> Vec<RouteRow> {
        let mut routes: Vec<(&String, &RouteSnapshot)> = self.snapshot.routes.iter().collect();
        routes.sort_by(|a, b| {
            b.1.primary
                .requests
                .cmp(&a.1.primary.requests)
                .then_with(|| a.0.cmp(b.0))
        });
        routes
            .into_iter()
            .map(|(name, route)| self.route_row(name, route))
            .collect()
    }

    fn route_row(&self, name: &str, route: &RouteSnapshot) -> RouteRow {
        let from = |what: &str| self.provenance(format!("routes[\"{name}\"].{what}"));
        let quantile = |side: &SideSnapshot, what: &str, q: f64| {
            let h: &Histogram<u64> = &side.latency_us;
            (!h.is_empty()).then(|| latency_figure(h.value_at_quantile(q), &from(what)))
        };
        let (primary, shadow) = (&route.primary, &route.shadow);
        let primary_p99 = quantile(primary, "primary.latency_us at 0.99", 0.99);
        let shadow_p99 = quantile(shadow, "shadow.latency_us at 0.99", 0.99);
        let p99_change = match (&primary_p99, &shadow_p99) {
            (Some(b), Some(a)) => Some(latency_change(b.value, a.value)),
            _ => None,
        };
        RouteRow {
            route: name.to_owned(),
            requests: count(primary.requests, "requests", &from("primary.requests")),
            mirrored: count(shadow.requests, "requests", &from("shadow.requests")),
            primary_p50: quantile(primary, "primary.latency_us at 0.5", 0.5),
            primary_p99,
            shadow_p50: quantile(shadow, "shadow.latency_us at 0.5", 0.5),
            shadow_p99,
            p99_change,
            diff_rate: compared(route).map(|(different, compared)| {
                let rate = different as f64 / compared as f64;
                from("diff (different over compared)").figure(
                    rate * 100.0,
                    "%",
                    format::share(rate),
                )
            }),
        }
    }

    /// The paired delta figures; `None` without pairs.
    pub fn delta_view(&self, delta: &SignedHistogram) -> Option<DeltaView> {
        if delta.is_empty() {
            return None;
        }
        let from = self.provenance("routes[*].delta, added");
        let ms = |us: i64| {
            let value = us as f64 / 1_000.0;
            let text = format!("{} ms", format::ms(value));
            let text = if us > 0 { format!("+{text}") } else { text };
            from.figure(value, "ms", text)
        };
        let faster = delta.faster.len() as f64 / delta.count() as f64;
        Some(DeltaView {
            pairs: count(delta.count(), "pairs", &from),
            shadow_faster: from.figure(faster * 100.0, "%", format::coverage(faster)),
            p50: ms(delta.quantile(0.5)),
            p10: ms(delta.quantile(0.1)),
            p90: ms(delta.quantile(0.9)),
        })
    }

    /// The comparison results over all routes; `None` if nothing was compared.
    pub fn diff_view(&self) -> Option<DiffView> {
        let routes = self.snapshot.routes.iter().filter_map(|(name, route)| {
            let (different, compared) = compared(route)?;
            Some(RouteFindings {
                route: name,
                compared,
                different,
                summary: route.diff.as_ref(),
            })
        });
        findings::diff_view(
            routes,
            &self.files,
            "routes[*].diff: different over compared, added",
        )
    }
}

/// `side` of `route`: `primary` or `shadow`.
fn pick<'a>(route: &'a RouteSnapshot, side: &str) -> &'a SideSnapshot {
    if side == "shadow" {
        &route.shadow
    } else {
        &route.primary
    }
}

/// (different, compared) pairs of a route, from its diff summary or else (records without
/// one) its compare counters; `None` if nothing was compared.
fn compared(route: &RouteSnapshot) -> Option<(u64, u64)> {
    let (different, compared) = match &route.diff {
        Some(DiffSummary {
            compared,
            different,
            ..
        }) if *compared > 0 => (*different, *compared),
        _ => {
            let get = |k: &str| route.compare.get(k).copied().unwrap_or(0);
            let judged = get("identical") + get("different") + get("noise");
            (get("different"), judged)
        }
    };
    (compared > 0).then_some((different, compared))
}

fn count(n: u64, unit: &str, from: &Provenance) -> Figure {
    from.figure(n as f64, unit, format::thousands(n))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use super::*;
    use crate::diff::{FieldSummary, NoiseRule, Signature};

    /// A proxy's snapshot of 100 pairs, all differing on a nonce and 10 also on the price,
    /// with too few reference comparisons (6) to call the nonce noise on its own.
    fn learning_proxy() -> Snapshot {
        let field = |path: &str, count, reference_count| FieldSummary {
            path: path.into(),
            kind: "value_changed".into(),
            count,
            rate: 0.0,
            reference_count,
            reference_rate: None,
            first_seen: "2026-01-01T00:00:00Z".into(),
            last_seen: "2026-01-01T00:00:00Z".into(),
            suggested_ignore: None,
        };
        let signature = |paths: &[&str], pairs| Signature {
            fields: paths
                .iter()
                .map(|p| (p.to_string(), "value_changed".to_string()))
                .collect(),
            pairs,
        };
        let mut diff = DiffSummary {
            compared: 100,
            reference_compared: 6,
            fields: vec![field("$.nonce", 100, 6), field("$.price", 10, 0)],
            noise_rule: Some(NoiseRule {
                min_samples: 10,
                absolute_threshold: 0.03,
                relative_threshold: 0.2,
            }),
            signatures: vec![
                signature(&["$.nonce"], 90),
                signature(&["$.nonce", "$.price"], 10),
            ],
            ..DiffSummary::default()
        };
        diff.classify();
        let mut snapshot = Snapshot::new("ab12", SystemTime::now(), BTreeMap::new());
        let route = RouteSnapshot {
            diff: Some(diff),
            ..RouteSnapshot::default()
        };
        snapshot.routes.insert("/bookings/{id}".into(), route);
        snapshot
    }

    #[test]
    fn the_diff_view_of_merged_proxies_agrees_with_their_merged_fields() {
        let alone = Snapshots::merge(vec![("a.json".into(), learning_proxy())])
            .unwrap()
            .unwrap();
        assert_eq!(alone.diff_view().unwrap().rate.text, "100%");
        // Together the two proxies hold enough reference comparisons to know the nonce is
        // noise: the headline rate is the price's.
        let both = Snapshots::merge(vec![
            ("a.json".into(), learning_proxy()),
            ("b.json".into(), learning_proxy()),
        ])
        .unwrap()
        .unwrap();
        let view = both.diff_view().unwrap();
        assert_eq!((view.compared, view.different), (200, 20));
        assert_eq!(view.rate.text, "10%");
        assert_eq!(view.fields.len(), 1);
        assert_eq!(
            (view.fields[0].path.as_str(), view.fields[0].rate.as_str()),
            ("$.price", "10%")
        );
        assert_eq!(view.noise[0].path, "$.nonce");
        assert_eq!(view.routes[0].noise_only, "180");
        let row = &both.route_rows()[0];
        assert_eq!(row.diff_rate.as_ref().unwrap().text, "10%");
    }
}
