//! Webhooks end to end: the real binary posts canary changes and new real differences to
//! in-process receivers on loopback, as generic JSON and as Slack messages; retries a
//! receiver that fails; and stays bounded, and serving, while a receiver is down. Every loop
//! is bounded in count and time.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// A receiver that records what it is sent (and when), answering `status(n)` to request n.
struct Receiver {
    backend: Backend,
    times: Arc<Mutex<Vec<Instant>>>,
}

impl Receiver {
    async fn start(status: impl Fn(usize) -> u16 + Send + Sync + 'static) -> Receiver {
        let times = Arc::new(Mutex::new(Vec::new()));
        let seen = times.clone();
        let counter = AtomicUsize::new(0);
        let backend = Backend::start(
            Duration::ZERO,
            Arc::new(move |_| {
                seen.lock().unwrap().push(Instant::now());
                text(status(counter.fetch_add(1, Ordering::SeqCst)), "noted")
            }),
        )
        .await;
        Receiver { backend, times }
    }

    /// The JSON bodies posted to `path`, in order.
    fn bodies(&self, path: &str) -> Vec<serde_json::Value> {
        self.backend
            .requests()
            .iter()
            .filter(|r| r.uri == path)
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }

    /// The events (their `event` field) posted to `path`, in order.
    fn events(&self, path: &str) -> Vec<String> {
        self.bodies(path)
            .iter()
            .map(|b| b["event"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// The value of one series in Prometheus text, 0 when absent.
fn series(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

fn notify_total(metrics: &str, webhook: &str, outcome: &str) -> f64 {
    series(
        metrics,
        &format!(r#"twinpeak_notify_total{{outcome="{outcome}",webhook="{webhook}"}}"#),
    )
}

/// Sends GETs to `path` on the proxy from a few tasks for `limit`.
fn traffic(proxy: &Proxy, path: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    for _ in 0..4 {
        let url = proxy.url(path);
        tokio::spawn(async move {
            let c = client();
            while Instant::now() < deadline {
                if let Ok(res) = c.get(&url).send().await {
                    let _ = res.bytes().await;
                }
            }
        });
    }
}

#[tokio::test]
async fn judge_decisions_and_new_differences_reach_both_formats() {
    let receiver = Receiver::start(|_| 200).await;
    let primary = Backend::start(
        Duration::ZERO,
        Arc::new(|_| text(200, r#"{"id": 7, "price": 10}"#)),
    )
    .await;
    // The rebuilt build: it errs and prices differently; it is both the shadow and the
    // canary's candidate.
    let rebuilt = Backend::start(
        Duration::ZERO,
        Arc::new(|_| text(500, r#"{"id": 7, "price": 12}"#)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("hook-token");
    std::fs::write(&token, "0123456789abcdef-hook-token\n").unwrap();
    let hook = receiver.backend.url();
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {} }}\nmirror: {{ percent: 100 }}\n\
         routes: [\"/items/{{id}}\"]\n\
         canary:\n  weight: 50\n  judge: {{ interval: 300ms, min_requests: 5, failures_to_rollback: 2, \
         max_p99_ratio: 100, latency_effect: 0.95 }}\n\
         state: {{ replica: notify-replica }}\n\
         notify:\n  diff_rate: {{ above: 50%, window: 5s, min_pairs: 5 }}\n  webhooks:\n\
         \x20   - {{ name: everything, url: '{hook}/json', headers: {{ x-team: payments }}, \
         authorization: {{ file: {} }} }}\n\
         \x20   - {{ name: chat, url: '{hook}/slack', format: slack, \
         events: [canary_rollback, new_difference] }}\n",
        primary.url(),
        rebuilt.url(),
        token.display()
    ))
    .await;
    traffic(&proxy, "/items/7", Duration::from_secs(15));
    let expected = [
        "canary_fail_streak",
        "canary_rollback",
        "new_difference",
        "diff_rate_high",
    ];
    let all_there = eventually(Duration::from_secs(15), || async {
        let events = receiver.events("/json");
        expected.iter().all(|e| events.iter().any(|seen| seen == e))
            && receiver.events("/slack").len() >= 3
    })
    .await;
    assert!(
        all_there,
        "json: {:?}, slack: {:?}\n{}",
        receiver.events("/json"),
        receiver.events("/slack"),
        proxy.log_text()
    );
    // Let a few more intervals pass: a run of fails and each field are told once.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let json = receiver.bodies("/json");
    let one = |event: &str| {
        let found: Vec<&serde_json::Value> = json.iter().filter(|b| b["event"] == event).collect();
        assert!(!found.is_empty(), "no {event} in {json:?}");
        found
    };
    assert_eq!(one("canary_fail_streak").len(), 1, "{json:?}");
    let streak = one("canary_fail_streak")[0];
    assert_eq!(streak["schema"], "twinpeak.event/v1", "{streak}");
    assert_eq!(streak["by"], "judge", "{streak}");
    assert_eq!(streak["state"], "running", "{streak}");
    assert_eq!(streak["weight"], 50.0, "{streak}");
    assert_eq!(streak["replica"], "notify-replica");
    assert!(
        streak["summary"].as_str().unwrap().contains("error_rate"),
        "{streak}"
    );
    let rollback = one("canary_rollback")[0];
    assert_eq!(rollback["state"], "rolled_back");
    assert_eq!(rollback["weight"], 0.0);
    assert!(
        rollback["summary"]
            .as_str()
            .unwrap()
            .contains("rollback: weight 50 → 0"),
        "{rollback}"
    );
    twinpeak_core::timestamp::parse_rfc3339(rollback["at"].as_str().unwrap()).unwrap();
    let fields: Vec<(String, String)> = one("new_difference")
        .iter()
        .map(|b| {
            assert_eq!(b["route"], "/items/{id}");
            assert!(b["pairs"].as_u64().unwrap() >= 1);
            (b["field"].to_string(), b["kind"].to_string())
        })
        .collect();
    assert!(
        fields.contains(&("\"status\"".into(), "\"status\"".into())),
        "{fields:?}"
    );
    assert!(
        fields.contains(&("\"$.price\"".into(), "\"value_changed\"".into())),
        "{fields:?}"
    );
    let unique: std::collections::HashSet<&(String, String)> = fields.iter().collect();
    assert_eq!(unique.len(), fields.len(), "a field told twice: {fields:?}");
    let high = one("diff_rate_high")[0];
    assert_eq!(high["route"], "/items/{id}");
    assert!(high["diff_rate"].as_f64().unwrap() > 0.5, "{high}");
    assert_eq!(high["threshold"], 0.5);
    assert_eq!(one("diff_rate_high").len(), 1);

    let request = receiver
        .backend
        .requests()
        .into_iter()
        .find(|r| r.uri == "/json")
        .unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("authorization"),
        Some("Bearer 0123456789abcdef-hook-token")
    );
    assert_eq!(request.header("x-team"), Some("payments"));
    assert!(request
        .header("user-agent")
        .unwrap()
        .starts_with("twinpeak/"));

    // Slack gets only what it asked for, as text and blocks.
    let slack = receiver.bodies("/slack");
    let texts: Vec<&str> = slack.iter().map(|b| b["text"].as_str().unwrap()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("twinpeak: Canary rolled back to 0%: rollback: weight 50")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("twinpeak: New difference on /items/{id}: $.price")),
        "{texts:?}"
    );
    assert!(
        texts.iter().all(|t| !t.contains("Canary failing")),
        "{texts:?}"
    );
    for body in &slack {
        assert_eq!(body["blocks"][0]["type"], "section", "{body}");
        assert!(body.get("event").is_none());
    }
    let metrics = proxy.metrics().await;
    assert_eq!(
        notify_total(&metrics, "everything", "sent") as usize,
        json.len(),
        "{metrics}"
    );
    assert_eq!(notify_total(&metrics, "chat", "failed"), 0.0);
}

#[tokio::test]
async fn operator_changes_are_sent_with_who_made_them() {
    let receiver = Receiver::start(|_| 204).await;
    let primary = Backend::fixed("primary").await;
    let candidate = Backend::fixed("candidate").await;
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\ncanary:\n  upstream: {}\n  \
         ramp: [{{weight: 1, hold: 1h}}, {{weight: 5, hold: 1h}}, {{weight: 100}}]\n  \
         judge: {{ interval: 1h }}\n\
         notify:\n  webhooks: [{{ url: '{}/hook' }}]\n",
        primary.url(),
        candidate.url(),
        receiver.backend.url()
    ))
    .await;
    let change = |method: &str, path: &str, body: &'static str| {
        admin_change(method, &proxy.admin_url(path), body).send()
    };
    let put = change(
        "PUT",
        "/api/v1/canary",
        r#"{"weight": 3, "by": "sre-on-call"}"#,
    );
    assert_eq!(put.await.unwrap().status(), 200);
    for action in ["resume", "pause", "promote", "rollback"] {
        let path = format!("/api/v1/canary/{action}");
        let res = admin_change("POST", &proxy.admin_url(&path), "{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{action}");
    }
    let expected = [
        "canary_weight",
        "canary_resume",
        "canary_pause",
        "canary_promote",
        "canary_rollback",
    ];
    assert!(
        eventually(Duration::from_secs(10), || async {
            receiver.events("/hook").len() >= expected.len()
        })
        .await,
        "{:?}",
        receiver.events("/hook")
    );
    assert_eq!(receiver.events("/hook"), expected);
    let bodies = receiver.bodies("/hook");
    let weight = &bodies[0];
    assert_eq!(weight["weight"], 3.0, "{weight}");
    assert_eq!(weight["state"], "paused", "{weight}");
    assert!(
        weight["by"].as_str().unwrap().contains("sre-on-call"),
        "{weight}"
    );
    let resume = &bodies[1];
    // Resumed at the first step at or above 3%: the 5% step (index 1).
    assert_eq!(resume["weight"], 5.0, "{resume}");
    assert_eq!(resume["step"], 1, "{resume}");
    assert_eq!(bodies[3]["weight"], 100.0);
    assert_eq!(bodies[4]["weight"], 0.0);
    assert_eq!(bodies[4]["state"], "rolled_back");
    // The webhook's label defaults to its index.
    let metrics = proxy.metrics().await;
    assert_eq!(notify_total(&metrics, "0", "sent"), 5.0, "{metrics}");
}

#[tokio::test]
async fn a_failing_webhook_is_retried_with_backoff_and_a_refusing_one_is_not() {
    // Answers 500 twice, then 200.
    let flaky = Receiver::start(|n| if n < 2 { 500 } else { 200 }).await;
    let refusing = Receiver::start(|_| 400).await;
    let primary = Backend::fixed("primary").await;
    let candidate = Backend::fixed("candidate").await;
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\ncanary: {{ upstream: {}, weight: 10, judge: {{ interval: 1h }} }}\n\
         notify:\n  backoff: 200ms\n  max_attempts: 4\n  webhooks:\n\
         \x20   - {{ name: flaky, url: '{}/hook' }}\n\
         \x20   - {{ name: refusing, url: '{}/hook' }}\n",
        primary.url(),
        candidate.url(),
        flaky.backend.url(),
        refusing.backend.url()
    ))
    .await;
    let pause = admin_change("POST", &proxy.admin_url("/api/v1/canary/pause"), "{}");
    assert_eq!(pause.send().await.unwrap().status(), 200);
    assert!(
        eventually(Duration::from_secs(10), || async {
            flaky.backend.count() >= 3
        })
        .await,
        "{} attempts",
        flaky.backend.count()
    );
    let metrics_settled = eventually(Duration::from_secs(5), || async {
        let metrics = proxy.metrics().await;
        notify_total(&metrics, "flaky", "sent") == 1.0
            && notify_total(&metrics, "refusing", "failed") == 1.0
    })
    .await;
    assert!(metrics_settled, "{}", proxy.metrics().await);
    // Three attempts at the same event; none after the one that was taken.
    let bodies = flaky.bodies("/hook");
    assert_eq!(bodies.len(), 3);
    assert!(bodies
        .iter()
        .all(|b| *b == bodies[0] && b["event"] == "canary_pause"));
    // Each retry waited at least half the backoff (jitter never takes more).
    let times = flaky.times.lock().unwrap().clone();
    assert!(
        times[1] - times[0] >= Duration::from_millis(90),
        "{times:?}"
    );
    assert!(
        times[2] - times[1] >= Duration::from_millis(190),
        "{times:?}"
    );
    // A 400 is the receiver's final word: one attempt.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(refusing.backend.count(), 1);
    assert_eq!(flaky.backend.count(), 3);
    let metrics = proxy.metrics().await;
    assert_eq!(notify_total(&metrics, "flaky", "failed"), 0.0);
    assert_eq!(notify_total(&metrics, "refusing", "sent"), 0.0);
    assert!(
        proxy.log_text().contains("answered 400 Bad Request"),
        "{}",
        proxy.log_text()
    );
}

#[tokio::test]
async fn a_webhook_that_is_down_is_bounded_and_costs_clients_nothing() {
    let primary = Backend::fixed("primary").await;
    let candidate = Backend::fixed("candidate").await;
    let down = refused_addr();
    let changes = 20;
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\ncanary: {{ upstream: {}, weight: 10, judge: {{ interval: 1h }} }}\n\
         notify:\n  queue: 2\n  max_attempts: 3\n  backoff: 300ms\n  \
         webhooks: [{{ name: down, url: 'http://{down}/services/secret-path' }}]\n",
        primary.url(),
        candidate.url()
    ))
    .await;
    let c = client();
    for i in 0..changes {
        let action = if i % 2 == 0 { "pause" } else { "resume" };
        let path = format!("/api/v1/canary/{action}");
        let res = admin_change("POST", &proxy.admin_url(&path), "{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        // Clients are served as before, promptly (the margin is wide on purpose).
        let started = Instant::now();
        let res = c.get(proxy.url("/while-down")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    let metrics = proxy.metrics().await;
    let dropped = notify_total(&metrics, "down", "dropped");
    // One event in flight and two queued at most: the rest did not fit.
    assert!(dropped >= (changes - 3 - 3) as f64, "{metrics}");
    // Every event ends counted: given up after its attempts, or dropped.
    let all_counted = eventually(Duration::from_secs(15), || async {
        let metrics = proxy.metrics().await;
        notify_total(&metrics, "down", "failed") + notify_total(&metrics, "down", "dropped")
            == changes as f64
    })
    .await;
    let metrics = proxy.metrics().await;
    assert!(all_counted, "{metrics}");
    assert_eq!(notify_total(&metrics, "down", "sent"), 0.0);
    assert!(notify_total(&metrics, "down", "failed") >= 1.0);
    let health = c.get(proxy.admin_url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // The log says it could not connect, naming the host but never the URL's path.
    let log = proxy.log_text();
    assert!(log.contains("could not connect"), "{log}");
    assert!(log.contains(&format!("http://{down}/…")), "{log}");
    assert!(!log.contains("secret-path"), "{log}");
}
