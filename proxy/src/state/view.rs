//! Reading the store back: latency, counters and findings of a period (or of all time), for
//! one replica or merged over the fleet, exactly (histograms added, counts summed, findings
//! re-derived from added counts); and a replica's findings as a whole, for its restart.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use hdrhistogram::Histogram;
use twinpeak_core::merge::add_histogram;
use twinpeak_core::timestamp::rfc3339;
use twinpeak_core::{DiffSummary, EncodedHistogram, RouteSnapshot, SignedHistogram, Snapshot};

use super::batch::RouteFindings;
use super::conn::{Conn, Value};
use super::error::DbError;
use super::pending::unix_s;
use super::rows::{CounterKey, RowKey, RowValue, Series};
use super::windows::{decode_rows, ALL_TIME};

/// What the store holds for a period, merged over the replicas asked for.
#[derive(Debug, Clone)]
pub struct View {
    /// Start of the period (`None`: since the store began).
    pub from: Option<SystemTime>,
    /// End of the period (`None`: up to the last flush).
    pub to: Option<SystemTime>,
    /// The replicas whose rows were read.
    pub replicas: BTreeSet<String>,
    /// Per route.
    pub routes: BTreeMap<String, RouteView>,
    /// Every counter.
    pub counters: BTreeMap<CounterKey, u64>,
    /// Rows that could not be decoded and were left out.
    pub skipped_rows: u64,
}

/// One route's latency and findings.
#[derive(Debug, Clone, Default)]
pub struct RouteView {
    /// Latency per side (µs).
    pub latency: BTreeMap<Series, Histogram<u64>>,
    /// Paired deltas, shadow − primary.
    pub delta: SignedHistogram,
    /// The comparison findings, noise told apart from the added counts.
    pub findings: Option<DiffSummary>,
}

impl View {
    fn new(from: Option<SystemTime>, to: Option<SystemTime>) -> Self {
        View {
            from,
            to,
            replicas: BTreeSet::new(),
            routes: BTreeMap::new(),
            counters: BTreeMap::new(),
            skipped_rows: 0,
        }
    }

    /// Adds one decoded row.
    fn add(&mut self, key: RowKey, value: RowValue) -> Result<(), String> {
        match (key, value) {
            (RowKey::Latency(route, Series::Delta), RowValue::Delta(d)) => {
                let view = self.routes.entry(route).or_default();
                view.delta.add(&d).map_err(|e| format!("{e:?}"))
            }
            (RowKey::Latency(route, series), RowValue::Latency(h)) => {
                let view = self.routes.entry(route).or_default();
                match view.latency.entry(series) {
                    Entry::Occupied(mut into) => {
                        add_histogram(into.get_mut(), &h).map_err(|e| format!("{e:?}"))
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(h);
                        Ok(())
                    }
                }
            }
            (RowKey::Counter(key), RowValue::Count(n)) => {
                let total = self.counters.entry(key).or_default();
                *total = total.saturating_add(n);
                Ok(())
            }
            (RowKey::Findings(route), RowValue::Findings(f)) => {
                let view = self.routes.entry(route).or_default();
                match &mut view.findings {
                    Some(into) => into.merge(&f),
                    None => view.findings = Some(*f),
                }
                Ok(())
            }
            _ => Err("a row whose value does not match its kind".into()),
        }
    }

    /// The view as a proxy snapshot (`twinpeak.snapshot/v1`), for the report: latency per side
    /// and the delta, request counts per status class, mirror outcomes and compare results from
    /// the counters, and the findings.
    pub fn snapshot(&self, config_sha256: &str) -> Snapshot {
        let started = self.from.unwrap_or(SystemTime::UNIX_EPOCH);
        let mut snapshot = Snapshot::new(config_sha256, started, BTreeMap::new());
        if let Some(to) = self.to {
            snapshot.taken_at = rfc3339(to);
        }
        for (name, view) in &self.routes {
            let mut route = RouteSnapshot {
                delta: view.delta.clone(),
                diff: view.findings.clone(),
                ..RouteSnapshot::default()
            };
            for (series, side) in [
                (Series::Primary, &mut route.primary),
                (Series::Shadow, &mut route.shadow),
                (Series::Candidate, &mut route.candidate),
            ] {
                if let Some(h) = view.latency.get(&series) {
                    side.latency_us = EncodedHistogram(h.clone());
                }
            }
            snapshot.routes.insert(name.clone(), route);
        }
        for (key, count) in &self.counters {
            let Some(route_name) = key.labels.get("route") else {
                continue;
            };
            let route = snapshot.routes.entry(route_name.clone()).or_default();
            let label = |name: &str| key.labels.get(name).cloned().unwrap_or_default();
            let into = match key.name.as_str() {
                "twinpeak_requests_total" => {
                    let side = match label("side").as_str() {
                        "primary" => &mut route.primary,
                        "shadow" => &mut route.shadow,
                        "candidate" => &mut route.candidate,
                        _ => continue,
                    };
                    side.requests += count;
                    side.status_classes.entry(label("status_class"))
                }
                "twinpeak_mirror_total" => route.mirror.entry(label("outcome")),
                "twinpeak_compared_total" => route.compare.entry(label("result")),
                _ => continue,
            };
            *into.or_default() += count;
        }
        snapshot
    }
}

/// Reads rows of `kind, key, count, data, replica` into a view.
fn fill(view: &mut View, rows: Vec<Vec<Value>>) {
    for mut row in rows {
        let replica = row.pop().and_then(Value::into_text).unwrap_or_default();
        view.replicas.insert(replica);
        for (key, cell) in decode_rows(vec![row]) {
            let added = RowValue::decode(&key, &cell).and_then(|value| view.add(key, value));
            if let Err(e) = added {
                log::warn!("state: leaving a row out of the view: {e}");
                view.skipped_rows += 1;
            }
        }
    }
}

/// Latency, counters and findings of the windows that overlap `[from, to)` (whole windows:
/// minutes, or hours past the coarsening age), or of all time when both are `None`; of one
/// replica, or of every replica merged.
pub(crate) fn read(
    conn: &mut dyn Conn,
    from: Option<SystemTime>,
    to: Option<SystemTime>,
    replica: Option<&str>,
) -> Result<View, DbError> {
    let mut view = View::new(from, to);
    let only = |sql: &str, n: usize| match replica {
        Some(_) => format!("{sql} AND replica = ${n}"),
        None => sql.to_string(),
    };
    let mut params: Vec<Value>;
    let sql;
    if from.is_none() && to.is_none() {
        sql = only(
            "SELECT kind, key, count, data, replica FROM twinpeak_windows WHERE width_s = $1",
            2,
        );
        params = vec![ALL_TIME.into()];
    } else {
        let from_s = from.map_or(i64::MIN / 2, unix_s);
        let to_s = to.map_or(i64::MAX / 2, |t| unix_s(t).saturating_add(1));
        sql = only(
            "SELECT kind, key, count, data, replica FROM twinpeak_windows \
             WHERE width_s > 0 AND start_s < $1 AND start_s + width_s > $2",
            3,
        );
        params = vec![to_s.into(), from_s.into()];
    }
    if let Some(replica) = replica {
        params.push(replica.into());
    }
    fill(&mut view, conn.query(&sql, &params)?);
    if from.is_none() && to.is_none() {
        for ((replica, route), findings) in findings(conn, replica)? {
            view.replicas.insert(replica);
            let row = RowValue::Findings(Box::new(findings.summary));
            if let Err(e) = view.add(RowKey::Findings(route), row) {
                log::warn!("state: leaving findings out of the view: {e}");
            }
        }
    }
    for route in view.routes.values_mut() {
        if let Some(f) = &mut route.findings {
            f.classify();
        }
    }
    Ok(view)
}

/// Findings as a whole with their examples, per replica and route.
pub(crate) fn findings(
    conn: &mut dyn Conn,
    replica: Option<&str>,
) -> Result<BTreeMap<(String, String), RouteFindings>, DbError> {
    let rows = match replica {
        Some(r) => conn.query(
            "SELECT replica, route, summary, examples FROM twinpeak_findings WHERE replica = $1",
            &[r.into()],
        )?,
        None => conn.query(
            "SELECT replica, route, summary, examples FROM twinpeak_findings",
            &[],
        )?,
    };
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let mut row = row.into_iter();
            let replica = row.next()?.into_text()?;
            let route = row.next()?.into_text()?;
            let summary = row.next()?.into_text()?;
            let examples = row.next()?.into_text()?;
            let decoded = serde_json::from_str(&summary)
                .map_err(|e| log::warn!("state: findings of {route} do not decode: {e}"))
                .ok()?;
            Some((
                (replica, route),
                RouteFindings {
                    summary: decoded,
                    examples: serde_json::from_str(&examples).unwrap_or_default(),
                },
            ))
        })
        .collect())
}

/// Used by tests: the row count of a window width.
#[cfg(test)]
pub(crate) fn rows_of_width(
    conn: &mut dyn Conn,
    width_s: i64,
) -> Result<Vec<(i64, RowKey, super::rows::Cell)>, DbError> {
    let rows = conn.query(
        "SELECT kind, key, count, data, start_s FROM twinpeak_windows WHERE width_s = $1 ORDER BY start_s",
        &[width_s.into()],
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|mut row| {
            let start = row.pop()?.int()?;
            decode_rows(vec![row])
                .into_iter()
                .next()
                .map(|(k, c)| (start, k, c))
        })
        .collect())
}
