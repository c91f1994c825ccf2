//! Replayed answers against the recorded ones (`twinpeak load --replay --compare`): each answer
//! a target gives to a replayed request is compared with the primary's answer recorded with it,
//! by the same engine and rules as a mirrored pair (status, compared headers, bodies with the
//! configuration's ignore, tolerance and unordered rules), and counted in the same per-route
//! store, so the result is the per-route, per-field [`DiffSummary`] a proxy snapshot carries.
//!
//! The recorded answer stands as the primary, the replayed one as the shadow. Recorded bodies
//! were redacted when they were recorded and are compared as captured; one that was cut at the
//! recording's cap, or withheld, is not compared and counts as truncated, as a capped capture
//! does. Routes are the configuration's when it has any, else the route each exchange was
//! recorded under; either way their number per target is bounded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use twinpeak_core::recording::{RecordedBody, RecordedExchange};
use twinpeak_core::sync::lock;
use twinpeak_core::DiffSummary;

use super::config::DiffConfig;
use super::store::{DiffStore, Example, ExampleMessage};
use super::Comparator;
use crate::budget::ByteBudget;
use crate::capture::{CapturedBody, CapturedResponse, Outcome};
use crate::config::Config;
use crate::diff::Finding;
use crate::routes::{RouteTable, OTHER_ROUTE};
use crate::stats::Stats;

/// Most distinct routes kept per target when the recorded route names are used; exchanges of
/// further routes are counted under `other`.
pub const MAX_RECORDED_ROUTES: usize = 256;

/// Compares replayed answers with recorded ones and keeps the results per target and route.
pub struct ReplayComparison {
    /// Compares two answers under the configuration's `diff:` rules; its own store is unused.
    comparator: Comparator,
    /// The rules the per-route stores are bounded by.
    diff: DiffConfig,
    /// The configuration's routes, when it has any.
    routes: Option<RouteTable>,
    /// Per target, per route, what was found.
    targets: Mutex<BTreeMap<String, BTreeMap<String, Arc<DiffStore>>>>,
}

impl std::fmt::Debug for ReplayComparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayComparison")
            .field("targets", &lock(&self.targets).keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for ReplayComparison {
    /// Comparison under the default `diff:` rules, by the recorded routes.
    fn default() -> Self {
        ReplayComparison::build(DiffConfig::default(), None)
    }
}

impl ReplayComparison {
    /// Comparison under a proxy configuration's `diff:` rules and `routes:` (the recorded
    /// routes when it lists none). Its corpus, if any, is not written to.
    pub fn new(config: &Config) -> Self {
        let routes = (!config.routes.is_empty()).then(|| RouteTable::new(&config.routes));
        ReplayComparison::build(config.diff.clone(), routes)
    }

    fn build(mut diff: DiffConfig, routes: Option<RouteTable>) -> Self {
        diff.corpus = None;
        // The summary carries no examples: none are kept.
        diff.examples_per_field = 0;
        let table = Arc::new(RouteTable::new(&[]));
        let stats = Arc::new(Stats::new(&table, 1, false));
        let comparator = Comparator::new(&diff, table, stats, ByteBudget::new(0))
            .expect("a comparator without a corpus opens no file");
        ReplayComparison {
            comparator,
            diff,
            routes,
            targets: Mutex::new(BTreeMap::new()),
        }
    }

    /// Compares `target`'s answer (`status`, `headers`, `body`) to `recorded`'s request with
    /// the answer recorded with it; an exchange recorded without an answer is not compared.
    pub fn compare(
        &self,
        target: &str,
        recorded: &RecordedExchange,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) {
        let Some(primary) = recorded.response.as_ref() else {
            return;
        };
        let primary = captured(
            primary.status,
            header_map(&primary.headers),
            recorded_body(&primary.body),
        );
        let mut replayed = CapturedBody::default();
        replayed.bytes = bytes::Bytes::copy_from_slice(body);
        let replayed = captured(status, headers.clone(), replayed);
        let (findings, truncated) = self.comparator.compare_answers(&primary, &replayed);
        let store = self.store(target, recorded);
        let example = |finding: &Finding| example(recorded, status, finding);
        store.record(0, findings, truncated, &example);
    }

    /// What was found for `target` so far, per route.
    pub fn summary(&self, target: &str) -> BTreeMap<String, DiffSummary> {
        let stores: Vec<(String, Arc<DiffStore>)> = lock(&self.targets)
            .get(target)
            .map(|routes| routes.iter().map(|(r, s)| (r.clone(), s.clone())).collect())
            .unwrap_or_default();
        stores
            .into_iter()
            .map(|(route, store)| (route, store.summary(0)))
            .collect()
    }

    /// The store of `recorded`'s route on `target`, made on first use.
    fn store(&self, target: &str, recorded: &RecordedExchange) -> Arc<DiffStore> {
        let route = match &self.routes {
            Some(table) => table.name(table.route_for(&recorded.path)),
            None if recorded.route.is_empty() => OTHER_ROUTE,
            None => recorded.route.as_str(),
        };
        let mut targets = lock(&self.targets);
        let routes = targets.entry(target.to_string()).or_default();
        let route = if routes.contains_key(route) || routes.len() < MAX_RECORDED_ROUTES {
            route
        } else {
            OTHER_ROUTE
        };
        routes
            .entry(route.to_string())
            .or_insert_with(|| Arc::new(DiffStore::new(1, &self.diff, ByteBudget::new(0))))
            .clone()
    }
}

/// An answer as the comparator takes it.
fn captured(status: u16, headers: HeaderMap, body: CapturedBody) -> CapturedResponse {
    let mut answer = CapturedResponse::failed(Outcome::Answered, std::time::Duration::ZERO);
    answer.status = StatusCode::from_u16(status).ok();
    answer.headers = headers;
    answer.body = body;
    answer
}

/// A recorded body as a capture: whole, or truncated (not compared) when it was cut or
/// withheld.
fn recorded_body(body: &RecordedBody) -> CapturedBody {
    let mut captured = CapturedBody::default();
    match body.bytes() {
        Some(bytes) => captured.bytes = bytes.into(),
        None => captured.truncated = true,
    }
    captured
}

/// Recorded headers as a map; a name or value that is not one is left out.
fn header_map(headers: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// An example of a finding: the request and both statuses.
fn example(recorded: &RecordedExchange, status: u16, finding: &Finding) -> Example {
    let message = |start_line: String| ExampleMessage {
        start_line,
        headers: Vec::new(),
        body: String::new(),
        body_encoding: "text",
        truncated: false,
    };
    let recorded_status = recorded.response.as_ref().map_or(0, |r| r.status);
    Example {
        request_id: recorded.request_id.clone(),
        seen_at: String::new(),
        finding: finding.clone(),
        request: message(format!("{} {}", recorded.method, recorded.path)),
        primary: message(recorded_status.to_string()),
        shadow: message(status.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinpeak_core::recording::{RecordedResponse, BODY_TEXT, BODY_WITHHELD};

    fn body(text: &str) -> RecordedBody {
        RecordedBody {
            data: text.into(),
            encoding: BODY_TEXT.into(),
            truncated_from: None,
        }
    }

    fn exchange(n: u64, answer: RecordedBody) -> RecordedExchange {
        RecordedExchange {
            at_us: n,
            request_id: format!("r{n}"),
            route: "/bookings/{id}".into(),
            method: "GET".into(),
            path: format!("/bookings/{n}"),
            headers: Vec::new(),
            body: RecordedBody::default(),
            response: Some(RecordedResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: answer,
                latency_us: 100,
            }),
        }
    }

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers
    }

    #[test]
    fn a_changed_field_is_counted_per_target_and_route() {
        let comparison = ReplayComparison::default();
        let headers = json_headers();
        for n in 0..20 {
            let recorded = exchange(n, body(&format!(r#"{{"id":{n},"price":10}}"#)));
            let price = if n % 4 == 0 { 11 } else { 10 };
            let answer = format!(r#"{{"id":{n},"price":{price}}}"#);
            comparison.compare("rebuilt", &recorded, 200, &headers, answer.as_bytes());
            comparison.compare("legacy", &recorded, 200, &headers, answer.as_bytes());
        }
        comparison.compare("rebuilt", &exchange(99, body("{}")), 500, &headers, b"{}");
        let summary = comparison.summary("rebuilt");
        let route = &summary["/bookings/{id}"];
        assert_eq!(
            (route.compared, route.identical, route.different),
            (21, 15, 6)
        );
        let price = route.fields.iter().find(|f| f.path == "$.price").unwrap();
        assert_eq!(price.count, 5);
        assert!(route.fields.iter().any(|f| f.path == "status"));
        assert_eq!(comparison.summary("legacy")["/bookings/{id}"].compared, 20);
        assert!(comparison.summary("nobody").is_empty());
    }

    #[test]
    fn cut_or_withheld_recorded_bodies_are_not_compared_and_unanswered_ones_skipped() {
        let comparison = ReplayComparison::default();
        let headers = json_headers();
        let mut cut = body(r#"{"id":1"#);
        cut.truncated_from = Some(4096);
        let withheld = RecordedBody {
            data: "not redactable".into(),
            encoding: BODY_WITHHELD.into(),
            truncated_from: None,
        };
        comparison.compare("t", &exchange(1, cut), 200, &headers, br#"{"id":2}"#);
        comparison.compare("t", &exchange(2, withheld), 200, &headers, b"{}");
        let mut unanswered = exchange(3, body("{}"));
        unanswered.response = None;
        comparison.compare("t", &unanswered, 200, &headers, b"{}");
        let route = &comparison.summary("t")["/bookings/{id}"];
        assert_eq!(
            (route.compared, route.truncated, route.identical),
            (2, 2, 2)
        );
    }

    #[test]
    fn the_configuration_s_rules_and_routes_apply() {
        let yaml = "listen: 127.0.0.1:0\nprimary: {url: http://127.0.0.1:9}\n\
                    routes: [\"/bookings/{booking}\"]\n\
                    diff: {ignore: [\"$.price\"]}\n";
        let config = Config::parse(yaml, std::path::Path::new("proxy.yaml")).unwrap();
        let comparison = ReplayComparison::new(&config);
        let headers = json_headers();
        let recorded = exchange(1, body(r#"{"id":1,"price":10}"#));
        comparison.compare("t", &recorded, 200, &headers, br#"{"id":1,"price":12}"#);
        let mut elsewhere = exchange(2, body("{}"));
        elsewhere.path = "/partners".into();
        comparison.compare("t", &elsewhere, 200, &headers, b"{}");
        let summary = comparison.summary("t");
        assert_eq!(summary["/bookings/{booking}"].identical, 1);
        assert_eq!(summary[OTHER_ROUTE].identical, 1);
    }

    #[test]
    fn recorded_routes_per_target_are_bounded() {
        let comparison = ReplayComparison::default();
        let headers = HeaderMap::new();
        for n in 0..(MAX_RECORDED_ROUTES as u64 + 10) {
            let mut recorded = exchange(n, body(""));
            recorded.route = format!("/r{n}");
            comparison.compare("t", &recorded, 200, &headers, b"");
        }
        let summary = comparison.summary("t");
        assert_eq!(summary.len(), MAX_RECORDED_ROUTES + 1);
        assert_eq!(summary[OTHER_ROUTE].compared, 10);
    }
}
