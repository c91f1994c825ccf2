//! The admin listener: Prometheus metrics, status, latency, snapshot records, and live changes
//! to the mirror and the canary. It runs as its own Pingora service, apart from client traffic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use serde::{Deserialize, Serialize};
use serde_json::json;
use twinpeak_core::timestamp::rfc3339;
use twinpeak_core::{EncodedHistogram, LatencySummary, SignedSummary, Snapshot};

use crate::canary::{AdminAction, Canary};
use crate::comparison::Comparator;
use crate::config::LoadedConfig;
use crate::labels::{MirrorOutcome, PairResult, Side};
use crate::mirror::{Mirror, MirrorSettings};
use crate::routes::RouteTable;
use crate::stats::Stats;
use crate::units::{Method as ConfigMethod, Percent, SampleKey};

mod fleet;
mod guard;
mod probes;
mod record;
mod response;
use fleet::StoredView;
use guard::{Change, Guard};
pub use probes::{AdminApp, ListenerProbe, MetricsListener, Readiness};
use response::{error_response, json_response, respond};

/// The admin API's view of the running proxy.
pub struct Admin {
    config: LoadedConfig,
    routes: Arc<RouteTable>,
    stats: Arc<Stats>,
    mirror: Arc<Mirror>,
    comparator: Arc<Comparator>,
    canary: Option<Arc<Canary>>,
    guard: Guard,
    started_at: SystemTime,
    started: Instant,
    readiness: Readiness,
    /// The state store, when state is on.
    state: Option<Arc<crate::state::live::Live>>,
    /// The canary's link to the store, when both are on.
    fleet: Option<Arc<crate::canary::Fleet>>,
    /// The recorder, when `record:` is configured.
    recorder: Option<Arc<crate::record::Recorder>>,
}

/// The body of a change that takes no settings (`POST /api/v1/canary/pause`, ...).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoSettings {}

/// A `PUT /api/v1/canary` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CanaryUpdate {
    weight: Percent,
}

/// A `PUT /api/v1/mirror` body: any subset of the live settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorUpdate {
    percent: Option<Percent>,
    key: Option<SampleKey>,
    methods: Option<Vec<ConfigMethod>>,
}

/// Latency of one route × side, with the histogram so other tools can merge it.
#[derive(Serialize)]
struct SideLatency {
    #[serde(flatten)]
    summary: LatencySummary,
    histogram: EncodedHistogram,
}

/// The paired shadow − primary delta of one route.
#[derive(Serialize)]
struct DeltaLatency {
    #[serde(flatten)]
    summary: SignedSummary,
    histogram: twinpeak_core::SignedHistogram,
}

impl Admin {
    /// The admin API for a running proxy.
    pub fn new(
        config: LoadedConfig,
        routes: Arc<RouteTable>,
        stats: Arc<Stats>,
        mirror: Arc<Mirror>,
        comparator: Arc<Comparator>,
        canary: Option<Arc<Canary>>,
    ) -> Self {
        Admin {
            guard: Guard::new(&config.config.admin),
            config,
            routes,
            stats,
            mirror,
            comparator,
            canary,
            started_at: SystemTime::now(),
            started: Instant::now(),
            readiness: Readiness::new(),
            state: None,
            fleet: None,
            recorder: None,
        }
    }

    /// The `twinpeak.snapshot/v1` record of everything seen so far.
    pub fn snapshot(&self) -> Snapshot {
        let mut versions = BTreeMap::new();
        versions.insert(
            "twinpeak".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        );
        let mut snapshot = Snapshot::new(self.config.sha256.clone(), self.started_at, versions);
        for (id, name) in self.routes.names().iter().enumerate() {
            let mut route = self.stats.route_snapshot(id);
            let diff = self.comparator.store().summary(id);
            if diff.compared > 0 || diff.reference_compared > 0 {
                route.diff = Some(diff);
            }
            snapshot.routes.insert(name.clone(), route);
        }
        snapshot.canary = self.canary.as_ref().map(|c| c.history());
        snapshot
    }

    /// `GET /metrics`, here and on the metrics listener: every metric, those made at scrape
    /// time among them.
    pub fn metrics(&self) -> Response<Vec<u8>> {
        let buffered = self.mirror.budget().used();
        let metrics = self.stats.metrics();
        metrics.mirror_buffered_bytes.set(buffered as i64);
        let store = self.comparator.store();
        let summaries: Vec<(&str, twinpeak_core::DiffSummary)> = self
            .routes
            .names()
            .iter()
            .enumerate()
            .map(|(id, name)| (name.as_str(), store.summary(id)))
            .collect();
        let mut extra = vec![crate::metrics::diff_field_family(&summaries)];
        extra.extend(self.state_families());
        let body = self.stats.render_metrics_with(&self.routes, extra);
        respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            body,
        )
    }

    /// Whether the proxy is ready for traffic (`/ready`); the server marks it.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// `GET /api/v1/canary`: state, weight, step, ramp, settings and the decision history.
    fn canary_view(canary: &Canary) -> serde_json::Value {
        let history = canary.history();
        let config = canary.config();
        json!({
            "state": history.state,
            "weight": history.weight,
            "step": history.step,
            "ramp": history.ramp,
            "upstream": canary.upstream().to_string(),
            "sticky": canary.sticky().to_string(),
            "force_header": config.force.header,
            "side_header": config.side_header,
            "judge": config.judge,
            "fails_in_a_row": canary.fails_in_a_row(),
            "fleet": Self::standing_view(canary),
            "holding": canary.standing().holding.is_some(),
            "history": history.decisions,
        })
    }

    /// A canary change that takes no settings: its body may only name who and why.
    async fn canary_action(&self, action: AdminAction, change: Change) -> Response<Vec<u8>> {
        let action = change
            .settings::<NoSettings>()
            .map(|NoSettings {}| action)
            .map_err(|e| {
                format!("bad body (expected {{}} or {{\"by\": ..., \"reason\": ...}}): {e}")
            });
        self.canary_change(action, &change).await
    }

    async fn canary_change(
        &self,
        action: Result<AdminAction, String>,
        change: &Change,
    ) -> Response<Vec<u8>> {
        let Some(canary) = &self.canary else {
            return error_response(StatusCode::NOT_FOUND, "no canary is configured");
        };
        let action = match action {
            Ok(action) => action,
            Err(message) => return error_response(StatusCode::BAD_REQUEST, &message),
        };
        let done = match &self.fleet {
            Some(fleet) => fleet.admin(action, &change.who()).await,
            None => canary.admin(action, &change.who()).map_err(Into::into),
        };
        match done {
            Ok(change) => json_response(
                StatusCode::OK,
                &json!({ "change": change, "canary": Self::canary_view(canary) }),
            ),
            Err(
                refusal @ (crate::canary::FleetRefusal::Refused(_)
                | crate::canary::FleetRefusal::OtherPlan(_)),
            ) => error_response(StatusCode::CONFLICT, &refusal.to_string()),
            Err(unreachable) => {
                error_response(StatusCode::SERVICE_UNAVAILABLE, &unreachable.to_string())
            }
        }
    }

    fn status(&self) -> serde_json::Value {
        let settings = self.mirror.settings();
        let mirror_totals = self.stats.mirror_totals();
        let pair_totals = self.stats.pair_totals();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "started_at": rfc3339(self.started_at),
            "uptime_seconds": self.started.elapsed().as_secs_f64(),
            "config_file": self.config.path.display().to_string(),
            "config_sha256": self.config.sha256,
            "config": self.config.config,
            "mirror": {
                "settings": *settings,
                "in_flight": self.mirror.in_flight(),
                "buffered_bytes": self.mirror.budget().used(),
                "max_buffered_bytes": self.mirror.budget().limit(),
                "examples_over_budget": self.comparator.store().examples_over_budget(),
            },
            "corpus_drops": self.comparator.corpus_drops(),
            "canary": self.canary.as_ref().map(|c| {
                let history = c.history();
                json!({ "state": history.state, "weight": history.weight, "step": history.step })
            }),
            "counters": {
                "mirror": MirrorOutcome::ALL.iter().map(|o| (o.as_str(), mirror_totals[o.index()])).collect::<BTreeMap<_, _>>(),
                "compared": PairResult::ALL.iter().map(|r| (r.as_str(), pair_totals[r.index()])).collect::<BTreeMap<_, _>>(),
                "requests": self.routes.names().iter().enumerate().map(|(id, name)| {
                    (name.as_str(), self.stats.requests(id, Side::Primary))
                }).collect::<BTreeMap<_, _>>(),
            },
        })
    }

    fn latency(&self) -> serde_json::Value {
        let routes: BTreeMap<&str, serde_json::Value> = self
            .routes
            .names()
            .iter()
            .enumerate()
            .map(|(id, name)| {
                let mut sides = serde_json::Map::new();
                for side in Side::ALL {
                    if side == Side::Candidate && self.canary.is_none() {
                        continue;
                    }
                    let histogram = self.stats.latency(id, side);
                    sides.insert(side.as_str().into(), fleet::side_latency(&histogram));
                }
                sides.insert("delta".into(), fleet::delta_latency(&self.stats.delta(id)));
                (name.as_str(), serde_json::Value::Object(sides))
            })
            .collect();
        json!({ "unit": "microseconds", "routes": routes })
    }

    fn diffs(&self) -> serde_json::Value {
        let store = self.comparator.store();
        let routes: BTreeMap<&str, serde_json::Value> = self
            .routes
            .names()
            .iter()
            .enumerate()
            .filter_map(|(id, name)| {
                let summary = store.summary(id);
                let seen = summary.compared > 0 || summary.reference_compared > 0;
                seen.then(|| {
                    let mut value = serde_json::to_value(&summary).unwrap_or_default();
                    value["diff_rate"] = json!(summary.diff_rate());
                    (name.as_str(), value)
                })
            })
            .collect();
        json!({ "noise_reference": self.noise_reference(), "routes": routes })
    }

    /// Where the noise reference comes from.
    fn noise_reference(&self) -> serde_json::Value {
        let noise = &self.config.config.diff.noise;
        match (&noise.secondary, noise.resample_percent.value()) {
            (Some(url), _) => json!({ "source": "secondary", "url": url }),
            (None, p) if p > 0.0 => json!({ "source": "resample", "percent": p }),
            _ => json!({ "source": "none" }),
        }
    }

    fn diff_examples(&self, query: &str) -> Result<serde_json::Value, (StatusCode, String)> {
        let param = |name: &str| {
            query.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k == name).then(|| percent_decode(v))
            })
        };
        let route =
            param("route").ok_or((StatusCode::BAD_REQUEST, "route=... is required".to_string()))?;
        let path =
            param("path").ok_or((StatusCode::BAD_REQUEST, "path=... is required".to_string()))?;
        let id = self
            .routes
            .names()
            .iter()
            .position(|n| *n == route)
            .ok_or((StatusCode::NOT_FOUND, format!("no route {route:?}")))?;
        let examples = self.comparator.store().examples(id, &path);
        let examples: Vec<&serde_json::Value> = examples.iter().map(|e| e.as_ref()).collect();
        Ok(json!({ "route": route, "path": path, "examples": examples }))
    }

    fn update_mirror(&self, change: &Change) -> Result<serde_json::Value, (StatusCode, String)> {
        let update: MirrorUpdate = change
            .settings()
            .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad mirror settings: {e}")))?;
        let current = self.mirror.settings();
        let settings = MirrorSettings::new(
            update.percent.unwrap_or(current.percent),
            update.key.unwrap_or_else(|| current.key.clone()),
            update.methods.unwrap_or_else(|| current.methods.clone()),
        );
        self.mirror
            .set_settings(settings.clone())
            .map_err(|e| (StatusCode::CONFLICT, e.to_string()))?;
        log::info!(
            "{}: mirror settings changed: percent {} -> {}, key {} -> {}, methods [{}] -> [{}]",
            change.who(),
            current.percent.value(),
            settings.percent.value(),
            current.key,
            settings.key,
            join(&current.methods),
            join(&settings.methods),
        );
        Ok(serde_json::to_value(&settings).unwrap_or_default())
    }

    async fn route(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        let query = session.req_header().uri.query().unwrap_or("").to_string();
        match (method.clone(), path.as_str()) {
            (Method::GET, "/health") => return probes::health_response(),
            (Method::GET, "/ready") => return self.readiness.response(),
            _ => {}
        }
        let caller = match self.guard.admit(session) {
            Ok(caller) => caller,
            Err(refusal) => return refusal.into_response(),
        };
        let is_change = matches!(method, Method::PUT | Method::POST | Method::DELETE);
        let change = if is_change {
            match self.guard.change(session, caller).await {
                Ok(change) => Some(change),
                Err(refusal) => return refusal.into_response(),
            }
        } else {
            None
        };
        match (method, path.as_str()) {
            (Method::GET, "/metrics") => self.metrics(),
            (Method::GET, "/api/v1/status") => json_response(StatusCode::OK, &self.status()),
            (Method::GET, "/api/v1/latency") => {
                match self.stored(StoredView::Latency, &query).await {
                    Some(stored) => stored,
                    None => json_response(StatusCode::OK, &self.latency()),
                }
            }
            (Method::GET, "/api/v1/snapshot") => {
                match self.stored(StoredView::Snapshot, &query).await {
                    Some(stored) => stored,
                    None => json_response(StatusCode::OK, &self.snapshot()),
                }
            }
            (Method::GET, "/api/v1/mirror") => {
                json_response(StatusCode::OK, &*self.mirror.settings())
            }
            (Method::PUT, "/api/v1/mirror") => {
                let change = change.expect("PUT is a change");
                match self.update_mirror(&change) {
                    Ok(v) => json_response(StatusCode::OK, &v),
                    Err((status, message)) => error_response(status, &message),
                }
            }
            (Method::GET, "/api/v1/record") => self.record_view(),
            (Method::PUT, "/api/v1/record") => {
                self.update_record(&change.expect("PUT is a change"))
            }
            (Method::GET, "/api/v1/canary") => match &self.canary {
                Some(canary) => json_response(StatusCode::OK, &Self::canary_view(canary)),
                None => error_response(StatusCode::NOT_FOUND, "no canary is configured"),
            },
            (Method::PUT, "/api/v1/canary") => {
                let change = change.expect("PUT is a change");
                let action = change
                    .settings::<CanaryUpdate>()
                    .map(|u| AdminAction::Weight(u.weight.value()))
                    .map_err(|e| {
                        format!("bad canary settings (expected {{\"weight\": 12.5}}): {e}")
                    });
                self.canary_change(action, &change).await
            }
            (Method::POST, "/api/v1/canary/pause") => {
                self.canary_action(AdminAction::Pause, change.expect("POST is a change"))
                    .await
            }
            (Method::POST, "/api/v1/canary/resume") => {
                self.canary_action(AdminAction::Resume, change.expect("POST is a change"))
                    .await
            }
            (Method::POST, "/api/v1/canary/promote") => {
                self.canary_action(AdminAction::Promote, change.expect("POST is a change"))
                    .await
            }
            (Method::POST, "/api/v1/canary/rollback") => {
                self.canary_action(AdminAction::Rollback, change.expect("POST is a change"))
                    .await
            }
            (Method::GET, "/api/v1/diffs") => match self.stored(StoredView::Diffs, &query).await {
                Some(stored) => stored,
                None => json_response(StatusCode::OK, &self.diffs()),
            },
            (Method::DELETE, "/api/v1/diffs") => {
                let change = change.expect("DELETE is a change");
                self.comparator.store().reset();
                log::info!("{}: comparison results reset", change.who());
                json_response(StatusCode::OK, &json!({ "reset": true }))
            }
            (Method::GET, "/api/v1/diffs/examples") => {
                let query = session.req_header().uri.query().unwrap_or("").to_string();
                match self.diff_examples(&query) {
                    Ok(v) => json_response(StatusCode::OK, &v),
                    Err((status, message)) => error_response(status, &message),
                }
            }
            (
                _,
                "/metrics"
                | "/api/v1/status"
                | "/api/v1/latency"
                | "/api/v1/snapshot"
                | "/api/v1/mirror"
                | "/api/v1/record"
                | "/api/v1/canary"
                | "/api/v1/canary/pause"
                | "/api/v1/canary/resume"
                | "/api/v1/canary/promote"
                | "/api/v1/canary/rollback"
                | "/health"
                | "/ready",
            ) => error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here"),
            _ => error_response(StatusCode::NOT_FOUND, "no such admin endpoint"),
        }
    }
}

/// Decodes a query parameter (`+` and `%XX` escapes).
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn join(methods: &[ConfigMethod]) -> String {
    methods
        .iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        self.route(session).await
    }
}
