//! The recorded requests of one method and route template: how many there were, the query
//! they were most often sent with, a bounded sample of their variables' values, a small body
//! to send again, and the statuses the primary answered.

use std::collections::{BTreeMap, HashMap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use twinpeak_core::recording::RecordedExchange;

use super::path::PathShape;

/// Values kept per request: a uniform sample of its observations beyond this.
pub(super) const MAX_ROWS: usize = 10_000;
/// Distinct query shapes counted per request; further shapes still count as requests.
const MAX_QUERY_SHAPES: usize = 64;
/// Distinct statuses kept per request.
const MAX_STATUSES: usize = 16;
/// Largest recorded body kept as the request's body template.
pub(super) const MAX_BODY_TEMPLATE_BYTES: usize = 4096;

/// A recorded body to send again.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum BodyTemplate {
    /// A JSON body: the scenario's `json:`.
    Json(Value),
    /// Any other text, with its content type: the scenario's `body:`.
    Text {
        /// The body.
        text: String,
        /// The recorded `content-type`, if any.
        content_type: Option<String>,
    },
}

/// What the recording holds of one method and route template.
pub(super) struct Group {
    /// Requests recorded.
    pub count: u64,
    /// Per query shape, how often it was sent and its first request.
    shapes: HashMap<Vec<(String, bool)>, (u64, PathShape)>,
    /// Sampled observations: (column, value) per request.
    rows: Vec<Vec<(String, String)>>,
    /// Observations seen, for the uniform sample.
    observed: u64,
    /// The first value seen per column, so every column has one.
    first_values: BTreeMap<String, String>,
    /// The body to send, for writes.
    pub body: Option<BodyTemplate>,
    /// Statuses the primary answered, with how often.
    pub statuses: BTreeMap<u16, u64>,
    /// Recorded latencies added up, and how many.
    pub latency_us: (u64, u64),
    sample: ChaCha8Rng,
}

impl Group {
    /// An empty group.
    pub(super) fn new() -> Group {
        Group {
            count: 0,
            shapes: HashMap::new(),
            rows: Vec::new(),
            observed: 0,
            first_values: BTreeMap::new(),
            body: None,
            statuses: BTreeMap::new(),
            latency_us: (0, 0),
            sample: ChaCha8Rng::seed_from_u64(0),
        }
    }

    /// Adds one recorded request, taken apart as `shape`.
    pub(super) fn add(&mut self, exchange: &RecordedExchange, shape: PathShape, write: bool) {
        self.count += 1;
        let values = shape.values();
        for (column, value) in &values {
            if !value.trim().is_empty() && !self.first_values.contains_key(column) {
                self.first_values.insert(column.clone(), value.clone());
            }
        }
        self.keep_row(values);
        let keys = shape.query_keys();
        if let Some((count, _)) = self.shapes.get_mut(&keys) {
            *count += 1;
        } else if self.shapes.len() < MAX_QUERY_SHAPES {
            self.shapes.insert(keys, (1, shape));
        }
        if write && self.body.is_none() {
            self.body = body_template(exchange);
        }
        if let Some(response) = &exchange.response {
            if let Some(count) = self.statuses.get_mut(&response.status) {
                *count += 1;
            } else if self.statuses.len() < MAX_STATUSES {
                self.statuses.insert(response.status, 1);
            }
            self.latency_us.0 = self.latency_us.0.saturating_add(response.latency_us);
            self.latency_us.1 += 1;
        }
    }

    /// Keeps a uniform sample of at most [`MAX_ROWS`] observations (reservoir sampling).
    fn keep_row(&mut self, values: Vec<(String, String)>) {
        self.observed += 1;
        if values.is_empty() {
            return;
        }
        if self.rows.len() < MAX_ROWS {
            self.rows.push(values);
        } else {
            let slot = self.sample.random_range(0..self.observed);
            if let Some(row) = self.rows.get_mut(slot as usize) {
                *row = values;
            }
        }
    }

    /// The request's path as it was most often sent (ties: the first in query order).
    pub(super) fn shape(&self) -> Option<&PathShape> {
        self.shapes
            .iter()
            .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then_with(|| b.0.cmp(a.0)))
            .map(|(_, (_, shape))| shape)
    }

    /// The sampled values as CSV rows under `columns`, every column with at least one value.
    pub(super) fn table(&self, columns: &[String]) -> Vec<Vec<String>> {
        let mut rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .map(|c| {
                        row.iter()
                            .find(|(column, _)| column == c)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect();
        for (i, column) in columns.iter().enumerate() {
            if rows.iter().all(|row| row[i].trim().is_empty()) {
                let mut row = vec![String::new(); columns.len()];
                row[i] = self
                    .first_values
                    .get(column)
                    .cloned()
                    .unwrap_or_else(|| "-".into());
                rows.push(row);
            }
        }
        rows
    }

    /// Mean recorded latency, in seconds, when answers were recorded.
    pub(super) fn mean_latency_s(&self) -> Option<f64> {
        let (sum, n) = self.latency_us;
        (n > 0).then(|| sum as f64 / n as f64 / 1e6)
    }
}

/// The recorded body as a template, when it was kept whole, is small, and holds no `{{`
/// (which would read as a placeholder).
fn body_template(exchange: &RecordedExchange) -> Option<BodyTemplate> {
    let bytes = exchange.body.bytes()?;
    if bytes.is_empty() || bytes.len() > MAX_BODY_TEMPLATE_BYTES {
        return None;
    }
    let text = String::from_utf8(bytes).ok()?;
    if text.contains("{{") || text.contains("}}") {
        return None;
    }
    if let Ok(value @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str(&text) {
        return Some(BodyTemplate::Json(value));
    }
    let content_type = exchange
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.clone());
    Some(BodyTemplate::Text { text, content_type })
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinpeak_core::recording::{RecordedBody, RecordedResponse};

    fn exchange(path: &str, body: &str, status: u16) -> RecordedExchange {
        RecordedExchange {
            at_us: 0,
            request_id: String::new(),
            route: "/partners".into(),
            method: "POST".into(),
            path: path.into(),
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: RecordedBody {
                data: body.into(),
                ..RecordedBody::default()
            },
            response: Some(RecordedResponse {
                status,
                headers: Vec::new(),
                body: RecordedBody::default(),
                latency_us: 2_000,
            }),
        }
    }

    fn add(group: &mut Group, path: &str, body: &str, status: u16) {
        let e = exchange(path, body, status);
        group.add(&e, PathShape::of(&e.route, &e.path), true);
    }

    #[test]
    fn the_most_frequent_query_and_every_column_s_values_are_kept() {
        let mut group = Group::new();
        add(&mut group, "/partners?city=pune", r#"{"a":"{{x}}"}"#, 201);
        add(&mut group, "/partners?city=delhi&page=2", r#"{"a":1}"#, 201);
        add(&mut group, "/partners?city=goa", "plain", 409);
        assert_eq!(group.count, 3);
        assert_eq!(
            group.shape().unwrap().template("p"),
            "/partners?city={{p_city}}"
        );
        let columns = vec!["city".to_string(), "page".to_string()];
        let table = group.table(&columns);
        assert_eq!(table.len(), 3);
        assert_eq!(table[1], vec!["delhi".to_string(), "2".to_string()]);
        // A body with braces is not a template; the next small JSON one is.
        assert_eq!(
            group.body,
            Some(BodyTemplate::Json(serde_json::json!({"a": 1})))
        );
        assert_eq!(group.statuses, BTreeMap::from([(201, 2), (409, 1)]));
        assert_eq!(group.mean_latency_s(), Some(0.002));
    }

    #[test]
    fn the_sample_is_bounded_and_a_column_never_empty() {
        let mut group = Group::new();
        add(&mut group, "/partners?rare=yes", "", 200);
        for i in 0..(MAX_ROWS + 500) {
            add(&mut group, &format!("/partners?city=c{i}"), "", 200);
        }
        let table = group.table(&["rare".to_string()]);
        assert!(table.len() <= MAX_ROWS + 1);
        assert!(table.iter().any(|row| row[0] == "yes"));
        assert_eq!(group.body, None);
    }

    #[test]
    fn a_text_body_keeps_its_content_type() {
        let mut group = Group::new();
        add(&mut group, "/partners", "a=1", 200);
        assert_eq!(
            group.body,
            Some(BodyTemplate::Text {
                text: "a=1".into(),
                content_type: Some("text/plain".into())
            })
        );
    }
}
