//! The admin API's views of the state store: with PostgreSQL, `/api/v1/snapshot`,
//! `/api/v1/diffs` and `/api/v1/latency` answer for the whole fleet (every replica's rows
//! merged exactly, as of their last flush); with `?replica=ID`, for one replica. With SQLite
//! they answer from this replica's live figures, and `?replica=ID` reads the store. Also the
//! store's metrics and the canary's standing in the fleet.

use std::sync::Arc;

use http::{Response, StatusCode};
use prometheus::proto::MetricFamily;
use serde_json::json;
use twinpeak_core::{EncodedHistogram, LatencySummary, SignedHistogram, Snapshot};

use super::response::{error_response, json_response};
use super::{percent_decode, Admin, DeltaLatency, SideLatency};
use crate::canary::{Canary, Fleet};
use crate::state::live::Live;
use crate::state::{metrics, View};

/// The views the store can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StoredView {
    /// `twinpeak.snapshot/v1`.
    Snapshot,
    /// Findings per route.
    Diffs,
    /// Latency per route and side.
    Latency,
}

impl Admin {
    /// The admin API with the state store and the canary's fleet link, when they are on.
    pub fn with_state(mut self, state: Option<Arc<Live>>, fleet: Option<Arc<Fleet>>) -> Self {
        self.state = state;
        self.fleet = fleet;
        self
    }

    /// The store's metric families (none with state off).
    pub(super) fn state_families(&self) -> Vec<MetricFamily> {
        let Some(state) = &self.state else {
            return Vec::new();
        };
        let standing = self
            .canary
            .as_ref()
            .map(|c| c.standing())
            .unwrap_or_default();
        metrics::families(&state.health(), standing.leader, standing.holding.is_some())
    }

    /// The replica a view is asked of (`?replica=ID`): `Some(None)` for the fleet,
    /// `Some(Some(id))` for one replica, `None` for this replica's live figures.
    fn stored_scope(&self, query: &str) -> Option<Option<String>> {
        let state = self.state.as_ref()?;
        let replica = query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == "replica").then(|| percent_decode(v))
        });
        match replica {
            Some(r) if r == state.replica() && !state.shared() => None,
            Some(r) => Some(Some(r)),
            None if state.shared() => Some(None),
            None => None,
        }
    }

    /// Answers a view from the store when it is asked of the fleet or of another replica;
    /// `None` when this replica's live figures answer it.
    pub(super) async fn stored(&self, view: StoredView, query: &str) -> Option<Response<Vec<u8>>> {
        let scope = self.stored_scope(query)?;
        let state = self.state.as_ref()?;
        let read = match state.view(None, None, scope.clone()).await {
            Ok(read) => read,
            Err(e) => {
                return Some(error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("the state store cannot be read: {e}"),
                ))
            }
        };
        if let Some(replica) = &scope {
            if !read.replicas.contains(replica) {
                return Some(error_response(
                    StatusCode::NOT_FOUND,
                    &format!("no replica {replica:?} in the state store"),
                ));
            }
        }
        let mut snapshot = self.stored_snapshot(&read);
        let body = match view {
            StoredView::Snapshot => serde_json::to_value(&snapshot).unwrap_or_default(),
            StoredView::Latency => latency_of(&snapshot, self.canary.is_some()),
            StoredView::Diffs => {
                let mut diffs = self.diffs_of(&mut snapshot);
                diffs["replicas"] = json!(read.replicas);
                diffs
            }
        };
        let mut body = body;
        body["replicas"] = json!(read.replicas);
        Some(json_response(StatusCode::OK, &body))
    }

    fn stored_snapshot(&self, read: &View) -> Snapshot {
        let mut snapshot = read.snapshot(&self.config.sha256);
        snapshot.versions.insert(
            "twinpeak".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        );
        snapshot.canary = self.canary.as_ref().map(|c| c.history());
        snapshot
    }

    fn diffs_of(&self, snapshot: &mut Snapshot) -> serde_json::Value {
        let routes: serde_json::Map<String, serde_json::Value> = snapshot
            .routes
            .iter_mut()
            .filter_map(|(name, route)| {
                let summary = route.diff.take()?;
                let mut value = serde_json::to_value(&summary).unwrap_or_default();
                value["diff_rate"] = json!(summary.diff_rate());
                Some((name.clone(), value))
            })
            .collect();
        json!({ "noise_reference": self.noise_reference(), "routes": routes })
    }

    /// The canary's standing in the fleet, for `GET /api/v1/canary`.
    pub(super) fn standing_view(canary: &Canary) -> serde_json::Value {
        let standing = canary.standing();
        json!({
            "stored": standing.stored,
            "leader": standing.leader,
            "judge": standing.judge,
            "holding": standing.holding.is_some(),
            "holding_reason": standing.holding,
            "hold_since": canary.machine().to_record().hold_since,
        })
    }
}

/// A side's latency summary with its histogram.
pub(super) fn side_latency(histogram: &hdrhistogram::Histogram<u64>) -> serde_json::Value {
    let latency = SideLatency {
        summary: LatencySummary::from_histogram(histogram),
        histogram: EncodedHistogram(histogram.clone()),
    };
    serde_json::to_value(latency).unwrap_or_default()
}

/// The paired delta's summary with its histogram.
pub(super) fn delta_latency(delta: &SignedHistogram) -> serde_json::Value {
    let delta = DeltaLatency {
        summary: delta.summary(),
        histogram: delta.clone(),
    };
    serde_json::to_value(delta).unwrap_or_default()
}

/// `GET /api/v1/latency` of a snapshot's routes.
fn latency_of(snapshot: &Snapshot, candidate: bool) -> serde_json::Value {
    let routes: serde_json::Map<String, serde_json::Value> = snapshot
        .routes
        .iter()
        .map(|(name, route)| {
            let mut sides = serde_json::Map::new();
            sides.insert("primary".into(), side_latency(&route.primary.latency_us.0));
            sides.insert("shadow".into(), side_latency(&route.shadow.latency_us.0));
            if candidate {
                sides.insert(
                    "candidate".into(),
                    side_latency(&route.candidate.latency_us.0),
                );
            }
            sides.insert("delta".into(), delta_latency(&route.delta));
            (name.clone(), serde_json::Value::Object(sides))
        })
        .collect();
    json!({ "unit": "microseconds", "routes": routes })
}
