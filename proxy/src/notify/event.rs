//! An event and the bodies it is sent as: the generic `twinpeak.event/v1` JSON object, and a
//! Slack-compatible message.
//!
//! The JSON body has `schema`, `event` (its kind), `at` (RFC 3339), `replica` (the proxy that
//! saw it) and `summary` (one line), and then what it is about:
//!
//! - canary events: `state` (`running`, `paused`, `rolled_back`), `weight` (percent),
//!   `step` (the ramp step's index, as `/api/v1/canary` shows it; absent without a ramp) and
//!   `by` (`judge`, or the operator);
//! - `new_difference`: `route`, `field` (the path, `status` or `header:NAME`), `kind` and
//!   `pairs` (pairs that differed on it so far);
//! - `diff_rate_*`: `route`, `diff_rate` and `threshold` (fractions), `pairs` (compared in
//!   the window) and `window_seconds`.

use std::time::SystemTime;

use serde::Serialize;
use serde_json::json;
use twinpeak_core::timestamp::rfc3339;

use super::config::{EventKind, Format};

/// The `schema` of the JSON body.
pub const SCHEMA: &str = "twinpeak.event/v1";

/// Something worth telling people about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// What it is.
    #[serde(rename = "event")]
    pub kind: EventKind,
    /// When it happened.
    #[serde(serialize_with = "as_rfc3339")]
    pub at: SystemTime,
    /// The proxy replica that saw it.
    pub replica: String,
    /// One line saying what happened.
    pub summary: String,
    /// What it is about.
    #[serde(flatten)]
    pub about: About,
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum About {
    /// The canary, as it stands after the change.
    Canary {
        /// `running`, `paused` or `rolled_back`.
        state: String,
        /// The candidate's share, in percent.
        weight: f64,
        /// The ramp step's index, when there is a ramp.
        #[serde(skip_serializing_if = "Option::is_none")]
        step: Option<usize>,
        /// `judge`, or the operator who made the change.
        by: String,
    },
    /// A field that differed for real on a route.
    Difference {
        /// The route template.
        route: String,
        /// The field's path (`$.price`, `status`, `header:etag`).
        field: String,
        /// How it differed (`value_changed`, `missing`, `status`, ...).
        kind: String,
        /// Pairs that differed on it so far.
        pairs: u64,
    },
    /// A route's diff rate over the window.
    DiffRate {
        /// The route template.
        route: String,
        /// Share of compared pairs with a real difference (a fraction).
        diff_rate: f64,
        /// The threshold it crossed (a fraction).
        threshold: f64,
        /// Pairs compared within the window.
        pairs: u64,
        /// The window's length.
        window_seconds: f64,
    },
}

fn as_rfc3339<S: serde::Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*at))
}

impl Event {
    /// The body in `format`.
    pub fn body(&self, format: Format) -> Vec<u8> {
        let value = match format {
            Format::Json => {
                let mut value = serde_json::to_value(self).unwrap_or_default();
                value["schema"] = json!(SCHEMA);
                value
            }
            Format::Slack => self.slack(),
        };
        serde_json::to_vec(&value).unwrap_or_default()
    }

    /// The headline: what happened, where.
    pub fn title(&self) -> String {
        match &self.about {
            About::Canary { weight, .. } => match self.kind {
                EventKind::CanaryAdvance => format!("Canary advanced to {weight}%"),
                EventKind::CanaryRollback => "Canary rolled back to 0%".to_string(),
                EventKind::CanaryPromote => "Canary promoted to 100%".to_string(),
                EventKind::CanaryPause => format!("Canary paused at {weight}%"),
                EventKind::CanaryResume => format!("Canary resumed at {weight}%"),
                EventKind::CanaryWeight => format!("Canary weight set to {weight}%"),
                _ => format!("Canary failing at {weight}%"),
            },
            About::Difference {
                route, field, kind, ..
            } => format!("New difference on {route}: {field} ({kind})"),
            About::DiffRate {
                route,
                diff_rate,
                threshold,
                ..
            } => {
                let (rate, threshold) = (percent(*diff_rate), percent(*threshold));
                if self.kind == EventKind::DiffRateHigh {
                    format!("Diff rate on {route} is {rate}, above {threshold}")
                } else {
                    format!("Diff rate on {route} is back to {rate}, below {threshold}")
                }
            }
        }
    }

    /// `{"text": ..., "blocks": [...]}`: the text for notifications and clients without
    /// blocks, the blocks for the channel.
    fn slack(&self) -> serde_json::Value {
        let title = escape(&self.title());
        let summary = escape(&self.summary);
        let context = format!(
            "twinpeak · replica {} · {}",
            escape(&self.replica),
            rfc3339(self.at)
        );
        json!({
            "text": format!("twinpeak: {title}: {summary}"),
            "blocks": [
                { "type": "section", "text": { "type": "mrkdwn", "text": format!("*{title}*\n{summary}") } },
                { "type": "context", "elements": [ { "type": "mrkdwn", "text": context } ] },
            ],
        })
    }
}

/// A fraction as a percentage with two decimals at most (`2.5%`).
fn percent(fraction: f64) -> String {
    let text = format!("{:.2}", fraction * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// Text with Slack's three control characters escaped, so a field path cannot make a link.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rollback() -> Event {
        Event {
            kind: EventKind::CanaryRollback,
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            replica: "proxy-1".into(),
            summary: "rollback: weight 5 → 0 after 2 failing intervals in a row".into(),
            about: About::Canary {
                state: "rolled_back".into(),
                weight: 0.0,
                step: Some(1),
                by: "judge".into(),
            },
        }
    }

    #[test]
    fn the_json_body_follows_the_schema() {
        let body: serde_json::Value =
            serde_json::from_slice(&rollback().body(Format::Json)).unwrap();
        assert_eq!(
            body,
            json!({
                "schema": "twinpeak.event/v1",
                "event": "canary_rollback",
                "at": "2023-11-14T22:13:20.000Z",
                "replica": "proxy-1",
                "summary": "rollback: weight 5 → 0 after 2 failing intervals in a row",
                "state": "rolled_back",
                "weight": 0.0,
                "step": 1,
                "by": "judge",
            })
        );
        let difference = Event {
            kind: EventKind::NewDifference,
            about: About::Difference {
                route: "/bookings/{id}".into(),
                field: "$.price".into(),
                kind: "value_changed".into(),
                pairs: 3,
            },
            ..rollback()
        };
        let body: serde_json::Value =
            serde_json::from_slice(&difference.body(Format::Json)).unwrap();
        assert_eq!(body["event"], "new_difference");
        assert_eq!(body["route"], "/bookings/{id}");
        assert_eq!(body["field"], "$.price");
        assert_eq!(body["pairs"], 3);
        assert!(body.get("state").is_none());
    }

    #[test]
    fn the_slack_body_has_text_and_blocks_with_links_defused() {
        let event = Event {
            kind: EventKind::DiffRateHigh,
            summary: "<!channel> & more".into(),
            about: About::DiffRate {
                route: "/bookings".into(),
                diff_rate: 0.125,
                threshold: 0.05,
                pairs: 400,
                window_seconds: 300.0,
            },
            ..rollback()
        };
        let body: serde_json::Value = serde_json::from_slice(&event.body(Format::Slack)).unwrap();
        assert_eq!(
            body["text"],
            "twinpeak: Diff rate on /bookings is 12.5%, above 5%: &lt;!channel&gt; &amp; more"
        );
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "section");
        assert!(blocks[1]["elements"][0]["text"]
            .as_str()
            .unwrap()
            .contains("replica proxy-1"));
    }
}
