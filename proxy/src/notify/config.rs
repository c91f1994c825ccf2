//! The `notify:` section: the webhooks that hear of canary changes and new real differences,
//! and how hard each event is tried.
//!
//! ```yaml
//! notify:
//!   webhooks:
//!     - name: oncall                       # label value; default: its index (0, 1, ...)
//!       url_file: /etc/twinpeak/slack-url  # or url: https://..., or url_env: NAME
//!       format: slack                      # or json (the default)
//!       events: [canary_rollback, canary_fail_streak, new_difference, diff_rate_high]
//!     - url: https://hooks.example.com/twinpeak
//!       headers: { x-team: payments }
//!       authorization: { file: /etc/twinpeak/hook-token }   # Authorization: Bearer TOKEN
//!   diff_rate: { above: 2%, below: 1%, window: 5m, min_pairs: 100 }
//!   queue: 256
//!   max_attempts: 5
//!   backoff: 1s
//!   max_backoff: 1m
//!   timeout: 5s
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::error::InvalidKey;
use crate::secret::{OneOf, SecretSource};
use crate::units::{HumanDuration, Percent};

/// The `notify:` section; absent, nobody is told anything.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Where events go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookConfig>,
    /// When a route's diff rate crosses a threshold; absent, no `diff_rate_*` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_rate: Option<DiffRateConfig>,
    /// Events waiting for each webhook; past it a new event is dropped and counted.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Attempts at each event, the first one included.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Wait before the first retry; it doubles with each retry, with jitter, up to
    /// `max_backoff`.
    #[serde(default = "default_backoff")]
    pub backoff: HumanDuration,
    /// Longest wait between two attempts (also the most of a `Retry-After` that is honoured).
    #[serde(default = "default_max_backoff")]
    pub max_backoff: HumanDuration,
    /// Limit on one attempt, from connecting to the end of the answer.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// The webhooks once read ([`NotifyConfig::resolve`]).
    #[serde(skip)]
    resolved: Vec<Webhook>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            webhooks: Vec::new(),
            diff_rate: None,
            queue: default_queue(),
            max_attempts: default_max_attempts(),
            backoff: default_backoff(),
            max_backoff: default_max_backoff(),
            timeout: default_timeout(),
            resolved: Vec::new(),
        }
    }
}

/// One webhook.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Its name in `twinpeak_notify_total{webhook}` and the log; default: its index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `https://...` or `http://...`, given here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A file whose first line is the URL (a Slack webhook's URL is its credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// An environment variable holding the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// The body: the generic JSON event, or a Slack-compatible message.
    #[serde(default)]
    pub format: Format,
    /// The events it is sent; default: every kind.
    #[serde(default = "EventKind::all")]
    pub events: Vec<EventKind>,
    /// Headers sent with every event (not secrets: those go in `authorization`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// An `Authorization` header whose secret comes from a file or the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<AuthorizationConfig>,
}

/// `Authorization: SCHEME SECRET`, the secret read from a file or the environment at start.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationConfig {
    /// What precedes the secret (`Bearer`, `Token`, `GenieKey`); empty: the secret alone.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// A file whose first line is the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// An environment variable holding the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

/// A webhook's body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The `twinpeak.event/v1` JSON object.
    #[default]
    Json,
    /// `{"text": ..., "blocks": [...]}`, as Slack (and Mattermost, and others) take it.
    Slack,
}

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The ramp moved on to its next step.
    CanaryAdvance,
    /// The canary was set to weight 0, by the judge or an operator.
    CanaryRollback,
    /// An operator set the weight to 100.
    CanaryPromote,
    /// An operator paused the ramp.
    CanaryPause,
    /// An operator resumed the ramp (after a pause or a rollback).
    CanaryResume,
    /// An operator set the weight by hand.
    CanaryWeight,
    /// The judge failed an interval after one that did not fail: a run of failures starts.
    CanaryFailStreak,
    /// A field differed for real on a route for the first time.
    NewDifference,
    /// A route's diff rate rose above `diff_rate.above`.
    DiffRateHigh,
    /// A route's diff rate fell back below `diff_rate.below`.
    DiffRateNormal,
}

impl EventKind {
    /// Every kind, in a fixed order.
    pub const ALL: [EventKind; 10] = [
        EventKind::CanaryAdvance,
        EventKind::CanaryRollback,
        EventKind::CanaryPromote,
        EventKind::CanaryPause,
        EventKind::CanaryResume,
        EventKind::CanaryWeight,
        EventKind::CanaryFailStreak,
        EventKind::NewDifference,
        EventKind::DiffRateHigh,
        EventKind::DiffRateNormal,
    ];

    /// Every kind, as a list (the default of `events`).
    pub fn all() -> Vec<EventKind> {
        Self::ALL.to_vec()
    }

    /// The name configurations and bodies use.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CanaryAdvance => "canary_advance",
            EventKind::CanaryRollback => "canary_rollback",
            EventKind::CanaryPromote => "canary_promote",
            EventKind::CanaryPause => "canary_pause",
            EventKind::CanaryResume => "canary_resume",
            EventKind::CanaryWeight => "canary_weight",
            EventKind::CanaryFailStreak => "canary_fail_streak",
            EventKind::NewDifference => "new_difference",
            EventKind::DiffRateHigh => "diff_rate_high",
            EventKind::DiffRateNormal => "diff_rate_normal",
        }
    }

    /// Whether the comparison watcher makes it (rather than the canary).
    pub fn is_about_differences(self) -> bool {
        matches!(
            self,
            EventKind::NewDifference | EventKind::DiffRateHigh | EventKind::DiffRateNormal
        )
    }
}

/// When a route's diff rate is worth an event: above `above` over `window` (with at least
/// `min_pairs` compared), then once more when it is back below `below`. The gap between the
/// two keeps a rate hovering at the threshold from sending an event every few seconds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DiffRateConfig {
    /// Share of compared pairs with a real difference that is too many.
    pub above: Percent,
    /// Share it must fall below to count as back to normal; default: half of `above`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<Percent>,
    /// The span the rate is taken over.
    #[serde(default = "default_window")]
    pub window: HumanDuration,
    /// Fewest pairs compared within the window for the rate to count.
    #[serde(default = "default_min_pairs")]
    pub min_pairs: u64,
}

impl DiffRateConfig {
    /// The rate (a fraction) to fall below to be back to normal.
    pub fn below_fraction(&self) -> f64 {
        self.below
            .map(Percent::fraction)
            .unwrap_or(self.above.fraction() / 2.0)
    }
}

/// A webhook ready to be used: its target and headers read and checked.
#[derive(Clone)]
pub struct Webhook {
    /// Its label value.
    pub name: String,
    /// Where events are posted.
    pub url: reqwest::Url,
    /// The body it takes.
    pub format: Format,
    /// The events it is sent.
    pub events: Vec<EventKind>,
    /// Headers sent with every event, `Authorization` among them when configured.
    pub headers: http::HeaderMap,
}

impl std::fmt::Debug for Webhook {
    /// Shows the URL without its path or query: a webhook's URL may be its credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "webhook {} ({})", self.name, redacted(&self.url))
    }
}

/// `scheme://host:port/…`: where a URL goes, without what may be secret in it.
pub fn redacted(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}/…", url.scheme()),
        None => format!("{}://{host}/…", url.scheme()),
    }
}

impl NotifyConfig {
    /// Checks that hold across keys; returns the key at fault and why.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        for (key, value) in [
            ("notify.queue", self.queue),
            ("notify.max_attempts", self.max_attempts as usize),
        ] {
            if value == 0 {
                return Err(InvalidKey::new(key, "must be at least 1"));
            }
        }
        if self.timeout.0.is_zero() {
            return Err(InvalidKey::new("notify.timeout", "must be above 0"));
        }
        if self.backoff.0 > self.max_backoff.0 {
            return Err(InvalidKey::new(
                "notify.backoff",
                format!("is longer than notify.max_backoff ({})", self.max_backoff),
            ));
        }
        if let Some(rate) = &self.diff_rate {
            if rate.above.value() <= 0.0 {
                return Err(InvalidKey::new("notify.diff_rate.above", "must be above 0"));
            }
            if rate.below_fraction() >= rate.above.fraction() {
                return Err(InvalidKey::new(
                    "notify.diff_rate.below",
                    "must be below notify.diff_rate.above",
                ));
            }
            if rate.window.0 < Duration::from_secs(1) {
                return Err(InvalidKey::new(
                    "notify.diff_rate.window",
                    "must be at least 1s",
                ));
            }
        }
        let mut names = Vec::new();
        for (index, webhook) in self.webhooks.iter().enumerate() {
            let key = |sub: &str| format!("notify.webhooks[{index}].{sub}");
            let name = webhook.label(index);
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                return Err(InvalidKey::new(
                    key("name"),
                    "must be 1 to 64 letters, digits, '-' or '_'",
                ));
            }
            if names.contains(&name) {
                return Err(InvalidKey::new(
                    key("name"),
                    format!("{name:?} names another webhook too"),
                ));
            }
            names.push(name);
            if webhook.events.is_empty() {
                return Err(InvalidKey::new(
                    key("events"),
                    "lists no event (leave it out for every kind)",
                ));
            }
            for (header, value) in &webhook.headers {
                let header = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                    InvalidKey::new(key("headers"), format!("{header:?} is not a header name"))
                })?;
                if HeaderValue::from_str(value).is_err() {
                    return Err(InvalidKey::new(
                        key("headers"),
                        format!("the value of {header} is not a valid header value"),
                    ));
                }
                if header == http::header::AUTHORIZATION || header == http::header::CONTENT_TYPE {
                    return Err(InvalidKey::new(
                        key("headers"),
                        format!(
                            "{header} is set by the proxy (use authorization: {{file: PATH}} \
                             for a secret)"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reads each webhook's URL and secret from where it is given and builds its headers
    /// ([`NotifyConfig::ready_webhooks`]). On failure returns the key at fault and why (never
    /// the secret).
    pub fn resolve(&mut self) -> Result<(), InvalidKey> {
        self.resolved = self
            .webhooks
            .iter()
            .enumerate()
            .map(|(index, webhook)| webhook.resolve(index))
            .collect::<Result<_, _>>()?;
        Ok(())
    }

    /// The webhooks, ready to use, once [`NotifyConfig::resolve`] has read them.
    pub fn ready_webhooks(&self) -> &[Webhook] {
        &self.resolved
    }
}

impl WebhookConfig {
    /// Its label value: the name, else its index.
    pub fn label(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| index.to_string())
    }

    fn resolve(&self, index: usize) -> Result<Webhook, InvalidKey> {
        let key = |sub: &str| format!("notify.webhooks[{index}].{sub}");
        let parent = format!("notify.webhooks[{index}]");
        let given = OneOf {
            parent: &parent,
            name: "url",
            inline: self.url.as_deref(),
            file: self.url_file.as_deref(),
            env: self.url_env.as_deref(),
        }
        .read()?
        .ok_or_else(|| InvalidKey::new(key("url"), "is required (or url_file, or url_env)"))?;
        let (text, url_key) = (given.text, given.key);
        let url = reqwest::Url::parse(text.trim())
            .map_err(|e| InvalidKey::new(url_key.clone(), format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(InvalidKey::new(
                url_key,
                "must be an http:// or https:// URL with a host",
            ));
        }
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in &self.headers {
            // Checked by `validate`.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(name, value);
            }
        }
        if let Some(auth) = &self.authorization {
            headers.insert(
                http::header::AUTHORIZATION,
                auth.header(&key("authorization"))?,
            );
        }
        Ok(Webhook {
            name: self.label(index),
            url,
            format: self.format,
            events: self.events.clone(),
            headers,
        })
    }
}

impl AuthorizationConfig {
    /// The header's value, marked sensitive so it is never shown.
    fn header(&self, key: &str) -> Result<HeaderValue, InvalidKey> {
        let mut source = SecretSource::of(self.file.clone(), self.env.clone());
        source.resolve(key)?;
        let secret = source
            .secret()
            .ok_or_else(|| InvalidKey::new(key, "needs file: PATH or env: NAME"))?;
        let secret = String::from_utf8_lossy(secret.expose()).into_owned();
        let text = match self.scheme.trim() {
            "" => secret,
            scheme => format!("{scheme} {secret}"),
        };
        let mut value = HeaderValue::from_str(&text)
            .map_err(|_| InvalidKey::new(format!("{key}.scheme"), "is not valid in a header"))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

fn default_queue() -> usize {
    256
}
fn default_max_attempts() -> u32 {
    5
}
fn default_backoff() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_max_backoff() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
fn default_window() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}
fn default_min_pairs() -> u64 {
    100
}
fn default_scheme() -> String {
    "Bearer".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> NotifyConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn webhooks_read_their_url_and_secret_from_where_they_are_given() {
        let dir = tempfile::tempdir().unwrap();
        let url_file = dir.path().join("slack-url");
        std::fs::write(
            &url_file,
            "https://hooks.slack.test/services/T0/B0/secretpart\n",
        )
        .unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "0123456789abcdef-hook\n").unwrap();
        let mut config = parse(&format!(
            "webhooks:\n\
             - {{name: oncall, url_file: {}, format: slack, events: [canary_rollback]}}\n\
             - {{url: 'http://127.0.0.1:9/hook', headers: {{x-team: payments}}, \
                 authorization: {{file: {}}}}}\n",
            url_file.display(),
            token.display()
        ));
        config.validate().unwrap();
        config.resolve().unwrap();
        let [slack, json] = config.ready_webhooks() else {
            panic!("two webhooks expected");
        };
        assert_eq!(slack.name, "oncall");
        assert_eq!(slack.format, Format::Slack);
        assert_eq!(slack.events, [EventKind::CanaryRollback]);
        assert_eq!(slack.url.path(), "/services/T0/B0/secretpart");
        // Neither the URL's path nor the token is ever shown.
        assert_eq!(
            format!("{slack:?}"),
            "webhook oncall (https://hooks.slack.test/…)"
        );
        assert_eq!(json.name, "1");
        assert_eq!(json.events.len(), EventKind::ALL.len());
        assert_eq!(json.headers["x-team"], "payments");
        let auth = &json.headers[http::header::AUTHORIZATION];
        assert_eq!(auth, "Bearer 0123456789abcdef-hook");
        assert!(auth.is_sensitive());
        let printed = serde_yaml::to_string(&config).unwrap();
        assert!(!printed.contains("secretpart") && !printed.contains("abcdef-hook"));
    }

    #[test]
    fn bad_settings_name_their_key() {
        let key = |yaml: &str| {
            let mut config = parse(yaml);
            config
                .validate()
                .and_then(|()| config.resolve())
                .unwrap_err()
                .key
        };
        assert_eq!(key("webhooks: [{}]"), "notify.webhooks[0].url");
        assert_eq!(
            key("webhooks: [{url: 'ftp://x/y'}]"),
            "notify.webhooks[0].url"
        );
        assert_eq!(
            key("webhooks: [{url: 'http://a/', url_env: X}]"),
            "notify.webhooks[0].url"
        );
        assert_eq!(
            key("webhooks: [{url_env: TWINPEAK_TEST_NO_SUCH_HOOK}]"),
            "notify.webhooks[0].url_env"
        );
        assert_eq!(
            key("webhooks: [{name: 'a b', url: 'http://a/'}]"),
            "notify.webhooks[0].name"
        );
        assert_eq!(
            key("webhooks: [{name: a, url: 'http://a/'}, {name: a, url: 'http://b/'}]"),
            "notify.webhooks[1].name"
        );
        assert_eq!(
            key("webhooks: [{url: 'http://a/', events: []}]"),
            "notify.webhooks[0].events"
        );
        assert_eq!(
            key("webhooks: [{url: 'http://a/', headers: {authorization: x}}]"),
            "notify.webhooks[0].headers"
        );
        assert_eq!(
            key(
                "webhooks: [{url: 'http://a/', authorization: {env: TWINPEAK_TEST_NO_SUCH_TOKEN}}]"
            ),
            "notify.webhooks[0].authorization.env"
        );
        assert_eq!(
            key("webhooks: [{url: 'http://a/', authorization: {scheme: Token}}]"),
            "notify.webhooks[0].authorization"
        );
        assert_eq!(
            key("webhooks: [{url: 'http://a/', authorization: {file: /nonexistent, env: X}}]"),
            "notify.webhooks[0].authorization"
        );
        assert_eq!(key("queue: 0"), "notify.queue");
        assert_eq!(key("backoff: 2m"), "notify.backoff");
        assert_eq!(
            key("diff_rate: {above: 2%, below: 3%}"),
            "notify.diff_rate.below"
        );
        assert!(serde_yaml::from_str::<NotifyConfig>(
            "webhooks: [{url: 'http://a/', events: [nope]}]"
        )
        .is_err());
    }
}
