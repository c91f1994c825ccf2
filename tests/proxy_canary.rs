//! Canary routing end to end: the real binary between in-process backends, the judge running on
//! compressed intervals. Every loop is bounded in count and time.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use twinpeak_core::timestamp::parse_rfc3339;

/// A backend that answers 200 `body` after `delay`.
async fn healthy(body: &'static str, delay: Duration) -> Backend {
    Backend::start(delay, Arc::new(move |_| text(200, body))).await
}

fn canary_config(primary: &Backend, candidate: &str, canary: &str) -> String {
    format!(
        "primary: {{ url: {} }}\ncanary:\n  upstream: {candidate}\n{canary}",
        primary.url()
    )
}

/// The side a response names.
fn side_of(res: &reqwest::Response) -> String {
    res.headers()
        .get("x-twinpeak-side")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .to_string()
}

/// What a load loop saw: (side, status) → count.
type Seen = Arc<Mutex<HashMap<(String, u16), u64>>>;

/// Sends GETs from `concurrency` tasks until `stop` is set or `limit` passes.
fn load(proxy: &Proxy, concurrency: usize, limit: Duration, stop: Arc<AtomicBool>) -> Seen {
    let seen: Seen = Arc::default();
    let deadline = Instant::now() + limit;
    for task in 0..concurrency {
        let url = proxy.url(&format!("/items/{task}"));
        let (seen, stop) = (seen.clone(), stop.clone());
        tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok(res) = c.get(&url).send().await else {
                    continue;
                };
                let key = (side_of(&res), res.status().as_u16());
                let _ = res.bytes().await;
                *seen.lock().unwrap().entry(key).or_default() += 1;
            }
        });
    }
    seen
}

async fn canary_state(proxy: &Proxy) -> serde_json::Value {
    proxy.admin_json("/api/v1/canary").await
}

fn decisions(state: &serde_json::Value) -> Vec<String> {
    state["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["decision"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_split_follows_the_weight_sticks_per_key_and_is_never_mirrored() {
    let primary = Backend::fixed("primary").await;
    let candidate = Backend::fixed("candidate").await;
    // The candidate is also the shadow: copies of primary-served requests reach it marked.
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {} }}\nmirror: {{ percent: 100 }}\n\
         canary: {{ weight: 20, sticky: header:x-user-id, judge: {{ interval: 1h }} }}\n",
        primary.url(),
        candidate.url()
    ))
    .await;
    const KEYS: usize = 2_000;
    let sides: Arc<Mutex<HashMap<usize, String>>> = Arc::default();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (url, sides) = (proxy.url("/bookings/1"), sides.clone());
            tokio::spawn(async move {
                let c = client();
                for key in (t..KEYS).step_by(8) {
                    let res = c
                        .get(&url)
                        .header("x-user-id", format!("user-{key}"))
                        .send()
                        .await
                        .unwrap();
                    let side = side_of(&res);
                    let body = res.text().await.unwrap();
                    assert_eq!(
                        body, side,
                        "the side header names the backend that answered"
                    );
                    sides.lock().unwrap().insert(key, side);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let sides = sides.lock().unwrap().clone();
    let on_candidate = sides.values().filter(|s| *s == "candidate").count();
    // 20% of 2,000 keys is 400; the standard deviation is about 18.
    assert!(
        (320..480).contains(&on_candidate),
        "{on_candidate} of {KEYS}"
    );

    // Stickiness: the same key lands on the same side every time.
    let c = client();
    for key in 0..100 {
        for _ in 0..3 {
            let res = c
                .get(proxy.url("/bookings/2"))
                .header("x-user-id", format!("user-{key}"))
                .send()
                .await
                .unwrap();
            assert_eq!(side_of(&res), sides[&key], "user-{key}");
        }
    }

    // Candidate-served requests were not mirrored; every primary-served one was.
    let served_by_primary = KEYS - on_candidate;
    let extra_primary = (0..100).filter(|k| sides[k] == "primary").count() * 3;
    let extra_candidate = 300 - extra_primary;
    assert!(
        eventually(Duration::from_secs(5), || async {
            candidate.count() == on_candidate + extra_candidate + served_by_primary + extra_primary
        })
        .await,
        "candidate received {}",
        candidate.count()
    );
    let received = candidate.requests();
    let copies = received
        .iter()
        .filter(|r| r.header("x-twinpeak-shadow") == Some("1"))
        .count();
    assert_eq!(copies, served_by_primary + extra_primary);
    assert_eq!(received.len() - copies, on_candidate + extra_candidate);
    assert_eq!(primary.count(), served_by_primary + extra_primary);
    let metrics = proxy.metrics().await;
    let line = format!(
        "twinpeak_requests_total{{route=\"other\",side=\"candidate\",status_class=\"2xx\"}} {}",
        on_candidate + extra_candidate
    );
    assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    assert!(metrics.contains("twinpeak_canary_weight 20"), "{metrics}");
}

#[tokio::test]
async fn the_force_header_picks_a_side_and_the_side_header_can_be_turned_off() {
    let primary = Backend::fixed("primary").await;
    let candidate = Backend::fixed("candidate").await;
    let proxy = Proxy::start(&canary_config(
        &primary,
        &candidate.url(),
        "  weight: 0\n  force: { from: [127.0.0.1], while_off: true }\n  judge: { interval: 1h }\n",
    ))
    .await;
    let c = client();
    let get = |force: Option<&'static str>| {
        let mut req = c.get(proxy.url("/x"));
        if let Some(force) = force {
            req = req.header("x-twinpeak-canary", force);
        }
        req.send()
    };
    for _ in 0..5 {
        let res = get(Some("always")).await.unwrap();
        assert_eq!(side_of(&res), "candidate");
        assert_eq!(res.text().await.unwrap(), "candidate");
        let res = get(None).await.unwrap();
        assert_eq!(side_of(&res), "primary");
        assert_eq!(res.text().await.unwrap(), "primary");
    }
    let res = admin_change(
        "PUT",
        &proxy.admin_url("/api/v1/canary"),
        r#"{"weight": 100}"#,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    for _ in 0..5 {
        assert_eq!(side_of(&get(Some("never")).await.unwrap()), "primary");
        assert_eq!(side_of(&get(None).await.unwrap()), "candidate");
        // Unknown values are ignored.
        assert_eq!(side_of(&get(Some("maybe")).await.unwrap()), "candidate");
    }

    let quiet = Proxy::start(&canary_config(
        &primary,
        &candidate.url(),
        "  weight: 100\n  side_header: false\n  judge: { interval: 1h }\n",
    ))
    .await;
    let res = c.get(quiet.url("/x")).send().await.unwrap();
    assert!(res.headers().get("x-twinpeak-side").is_none());
    assert_eq!(res.text().await.unwrap(), "candidate");
}

#[tokio::test]
async fn a_candidate_that_starts_failing_is_rolled_back_in_time() {
    let primary = healthy("primary", Duration::from_millis(1)).await;
    let failing = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let (flag, counter) = (failing.clone(), served.clone());
    let candidate = Backend::start(
        Duration::from_millis(1),
        Arc::new(move |_| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            // Once failing, exactly one request in 20 (5%) gets a 500.
            if flag.load(Ordering::Relaxed) && n % 20 == 0 {
                text(500, "broken")
            } else {
                text(200, "candidate")
            }
        }),
    )
    .await;
    let interval = Duration::from_millis(400);
    let failures = 3;
    // Latency limits are wide on purpose: this test is about errors, and timing on a shared
    // machine belongs in benchmarks.
    let proxy = Proxy::start(&canary_config(
        &primary,
        &candidate.url(),
        &format!(
            "  weight: 50\n  judge: {{ interval: {}ms, min_requests: 20, failures_to_rollback: {failures}, \
             max_p99_ratio: 100, latency_effect: 0.95 }}\n",
            interval.as_millis()
        ),
    ))
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let seen = load(&proxy, 8, Duration::from_secs(20), stop.clone());

    // Healthy first: the judge passes it.
    assert!(
        eventually(Duration::from_secs(10), || async {
            decisions(&canary_state(&proxy).await).contains(&"pass".to_string())
        })
        .await,
        "no pass: {}",
        canary_state(&proxy).await
    );
    // Start failing just after a verdict, so whole intervals follow.
    let judged = decisions(&canary_state(&proxy).await).len();
    let deadline = Instant::now() + Duration::from_secs(5);
    while decisions(&canary_state(&proxy).await).len() == judged && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started_failing = SystemTime::now();
    failing.store(true, Ordering::Relaxed);
    assert_eq!(canary_state(&proxy).await["state"], "running");

    let limit = interval * (failures + 1);
    assert!(
        eventually(limit + Duration::from_secs(5), || async {
            canary_state(&proxy).await["state"] == "rolled_back"
        })
        .await,
        "not rolled back: {}",
        canary_state(&proxy).await
    );
    let state = canary_state(&proxy).await;
    assert_eq!(state["weight"], 0.0);
    let history = state["history"].as_array().unwrap();
    let rollback = history
        .iter()
        .find(|d| d["decision"] == "rollback")
        .unwrap();
    assert_eq!(rollback["by"], "judge");
    let rolled_back_at = parse_rfc3339(rollback["at"].as_str().unwrap()).unwrap();
    let took = rolled_back_at
        .duration_since(started_failing)
        .unwrap_or_default();
    // The history keeps milliseconds: allow one for rounding.
    assert!(
        took <= limit + Duration::from_millis(1),
        "rolled back {took:?} after the failures began (limit {limit:?})"
    );
    let fail = history
        .iter()
        .rev()
        .find(|d| d["decision"] == "fail")
        .unwrap();
    let error_rate = fail["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == "error_rate")
        .unwrap();
    assert_eq!(error_rate["ok"], false);
    assert_eq!(error_rate["threshold"], 0.01);
    assert!(
        error_rate["candidate"].as_f64().unwrap() >= 0.04,
        "{error_rate}"
    );

    // From now on, clients see only the primary.
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = candidate.count();
    let c = client();
    for _ in 0..100 {
        let res = c.get(proxy.url("/after")).send().await.unwrap();
        assert_eq!(side_of(&res), "primary");
        assert_eq!(res.status(), 200);
    }
    assert_eq!(candidate.count(), before);
    let metrics = proxy.metrics().await;
    assert!(metrics.contains("twinpeak_canary_weight 0"), "{metrics}");
    assert!(
        metrics.contains(r#"twinpeak_canary_decisions_total{decision="rollback"} 1"#),
        "{metrics}"
    );
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.get(&("candidate".into(), 500)).copied().unwrap_or(0) > 0,
        "{seen:?}"
    );
    assert!(proxy.log_text().contains("canary: rollback: weight 50 → 0"));
}

#[tokio::test]
async fn too_little_traffic_is_inconclusive_with_no_advance_and_no_rollback() {
    let primary = Backend::fixed("primary").await;
    // A candidate that always fails: with too little traffic, still no verdict.
    let candidate = Backend::start(Duration::ZERO, Arc::new(|_| text(500, "broken"))).await;
    let proxy = Proxy::start(&canary_config(
        &primary,
        &candidate.url(),
        "  ramp: [{weight: 50, hold: 200ms}, {weight: 100}]\n  \
         judge: { interval: 150ms, min_requests: 1000, failures_to_rollback: 1 }\n",
    ))
    .await;
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = 0;
    while Instant::now() < deadline {
        c.get(proxy.url("/x")).send().await.unwrap();
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let state = canary_state(&proxy).await;
        let verdicts = decisions(&state);
        if verdicts.iter().filter(|d| *d == "inconclusive").count() >= 5 {
            break;
        }
    }
    assert!(sent < 500);
    let state = canary_state(&proxy).await;
    let verdicts = decisions(&state);
    assert!(
        verdicts.iter().filter(|d| *d == "inconclusive").count() >= 5,
        "{state}"
    );
    assert!(
        verdicts.iter().all(|d| d == "start" || d == "inconclusive"),
        "{verdicts:?}"
    );
    assert_eq!(state["state"], "running");
    assert_eq!(state["weight"], 50.0);
    assert_eq!(state["step"], 0);
    let inconclusive = &state["history"][1];
    assert_eq!(inconclusive["reasons"][0]["metric"], "requests");
    assert_eq!(inconclusive["reasons"][0]["threshold"], 1000.0);
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains(r#"twinpeak_canary_decisions_total{decision="fail"} 0"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"twinpeak_canary_decisions_total{decision="advance"} 0"#));
}

#[tokio::test]
async fn a_healthy_candidate_walks_the_whole_ramp() {
    let primary = healthy("primary", Duration::from_millis(2)).await;
    let candidate = healthy("candidate", Duration::from_millis(2)).await;
    // Holds of a few hundred milliseconds; wide latency limits (see the rollback test).
    let proxy = Proxy::start(&canary_config(
        &primary,
        &candidate.url(),
        "  ramp:\n    - {weight: 1, hold: 300ms}\n    - {weight: 5, hold: 300ms}\n    \
         - {weight: 25, hold: 300ms}\n    - {weight: 50, hold: 300ms}\n    - {weight: 100}\n  \
         judge: { interval: 150ms, min_requests: 2, max_p99_ratio: 100, latency_effect: 0.95 }\n",
    ))
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let seen = load(&proxy, 16, Duration::from_secs(30), stop.clone());
    let walked = eventually(Duration::from_secs(30), || async {
        canary_state(&proxy).await["weight"] == 100.0
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let state = canary_state(&proxy).await;
    assert!(walked, "{state}");
    assert_eq!(state["state"], "running");
    assert_eq!(state["step"], 4);
    let history = state["history"].as_array().unwrap();
    let advances: Vec<f64> = history
        .iter()
        .filter(|d| d["decision"] == "advance")
        .map(|d| d["weight"].as_f64().unwrap())
        .collect();
    assert_eq!(advances, [5.0, 25.0, 50.0, 100.0]);
    assert!(!decisions(&state).contains(&"rollback".to_string()));
    // Every advance follows a pass since the step began.
    let mut passed = false;
    for entry in history {
        match entry["decision"].as_str().unwrap() {
            "pass" => passed = true,
            "fail" => passed = false,
            "advance" => {
                assert!(passed, "advance without a pass: {state}");
                passed = false;
            }
            _ => {}
        }
    }
    // The snapshot carries the same history, for reports.
    let snapshot = proxy.admin_json("/api/v1/snapshot").await;
    let canary = &snapshot["canary"];
    assert_eq!(canary["weight"], 100.0);
    assert_eq!(canary["ramp"].as_array().unwrap().len(), 5);
    assert_eq!(canary["ramp"][0]["hold_seconds"], 0.3);
    let snapshot_advances = canary["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["decision"] == "advance")
        .count();
    assert_eq!(snapshot_advances, 4);
    assert!(
        snapshot["routes"]["other"]["candidate"]["requests"]
            .as_u64()
            .unwrap()
            > 0
    );
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains(r#"twinpeak_canary_decisions_total{decision="advance"} 4"#),
        "{metrics}"
    );
    assert!(metrics.contains("twinpeak_canary_weight 100"));
    let seen = seen.lock().unwrap().clone();
    assert!(seen.keys().all(|(_, status)| *status == 200), "{seen:?}");
}

#[tokio::test]
async fn an_unreachable_candidate_never_fails_idempotent_requests() {
    let primary = Backend::fixed("primary").await;
    let proxy = Proxy::start(&canary_config(
        &primary,
        &format!("http://{}", refused_addr()),
        "  weight: 100\n  force: { from: [127.0.0.1], methods: [GET, HEAD, PUT, DELETE, OPTIONS, POST] }\n  \
         judge: { interval: 500ms, min_requests: 5, failures_to_rollback: 1 }\n",
    ))
    .await;
    let c = client();
    // Forced to the candidate, a write is not retried: the client gets the 502.
    let res = c
        .post(proxy.url("/bookings"))
        .header("x-twinpeak-canary", "always")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(side_of(&res), "candidate");
    assert!(res.text().await.unwrap().contains("candidate backend"));
    let posts = primary.count();
    assert_eq!(posts, 0);
    // Idempotent requests are retried on the primary, before and after the rollback.
    let mut retried = 0;
    for i in 0..40 {
        let method = ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"][i % 5];
        let mut req = c.request(method.parse().unwrap(), proxy.url(&format!("/items/{i}")));
        if i % 2 == 0 {
            req = req.header("x-twinpeak-canary", "always");
        }
        if method == "PUT" {
            req = req.body("put body");
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200, "{method} {i}");
        assert_eq!(side_of(&res), "primary", "{method} {i}");
        retried += 1;
    }
    assert_eq!(primary.count(), retried);
    let put = primary
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(put.body, b"put body");
    // The failed attempts count against the candidate: the judge rolls it back.
    assert!(
        eventually(Duration::from_secs(5), || async {
            canary_state(&proxy).await["state"] == "rolled_back"
        })
        .await,
        "{}",
        canary_state(&proxy).await
    );
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains(
            r#"twinpeak_upstream_errors_total{kind="connect",route="other",side="candidate"}"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"twinpeak_requests_total{route="other",side="candidate",status_class="5xx"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_admin_api_changes_the_canary_and_audits_every_change() {
    let primary = Backend::fixed("primary").await;
    let candidate = Backend::fixed("candidate").await;
    let proxy = Proxy::start(&canary_config(
        &primary,
        &candidate.url(),
        "  ramp: [{weight: 1, hold: 1h}, {weight: 5, hold: 1h}, {weight: 25, hold: 1h}, {weight: 100}]\n  \
         judge: { interval: 1h }\n",
    ))
    .await;
    let c = client();
    let state = canary_state(&proxy).await;
    assert_eq!(
        (state["state"].as_str(), state["weight"].as_f64()),
        (Some("running"), Some(1.0))
    );
    assert_eq!(state["upstream"], candidate.url());
    assert_eq!(decisions(&state), ["start"]);

    let put =
        |body: &'static str| admin_change("PUT", &proxy.admin_url("/api/v1/canary"), body).send();
    let res = put(r#"{"weight": 12.5}"#).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["canary"]["weight"], 12.5);
    assert_eq!(body["canary"]["state"], "paused");
    assert_eq!(put(r#"{"weight": 150}"#).await.unwrap().status(), 400);
    assert_eq!(put(r#"{"percent": 5}"#).await.unwrap().status(), 400);

    let post = |action: &str| {
        admin_change(
            "POST",
            &proxy.admin_url(&format!("/api/v1/canary/{action}")),
            "{}",
        )
        .send()
    };
    let res = post("resume").await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    // The first step at or above 12.5% is the 25% step.
    assert_eq!(
        (
            body["canary"]["weight"].as_f64(),
            body["canary"]["step"].as_u64()
        ),
        (Some(25.0), Some(2))
    );
    assert_eq!(post("resume").await.unwrap().status(), 409);
    assert_eq!(post("pause").await.unwrap().status(), 200);
    assert_eq!(post("promote").await.unwrap().status(), 200);
    assert_eq!(canary_state(&proxy).await["weight"], 100.0);
    assert_eq!(post("rollback").await.unwrap().status(), 200);
    assert_eq!(post("rollback").await.unwrap().status(), 409);
    assert_eq!(post("pause").await.unwrap().status(), 409);
    assert_eq!(post("explode").await.unwrap().status(), 404);

    let state = canary_state(&proxy).await;
    assert_eq!(state["state"], "rolled_back");
    assert_eq!(
        decisions(&state),
        ["start", "weight", "resume", "pause", "promote", "rollback"]
    );
    let weight = &state["history"][1];
    assert!(
        weight["by"]
            .as_str()
            .unwrap()
            .starts_with("admin (local, 127.0.0.1:"),
        "{weight}"
    );
    assert!(
        weight["summary"]
            .as_str()
            .unwrap()
            .contains("weight 1 → 12.5"),
        "{weight}"
    );
    let log = proxy.log_text();
    for change in [
        "weight 1 → 12.5",
        "resumed: weight 12.5 → 25",
        "promoted: weight 25 → 100",
        "rolled back: weight 100 → 0",
    ] {
        assert!(log.contains(change), "{change} not in the log:\n{log}");
    }
    let metrics = proxy.metrics().await;
    assert!(metrics.contains("twinpeak_canary_weight 0"), "{metrics}");
    assert!(metrics.contains(r#"twinpeak_canary_decisions_total{decision="rollback"} 1"#));
    let status = proxy.admin_json("/api/v1/status").await;
    assert_eq!(status["canary"]["state"], "rolled_back");

    // Without a canary there is nothing to change.
    let plain = Proxy::start(&format!("primary: {{ url: {} }}\n", primary.url())).await;
    let res = c
        .get(plain.admin_url("/api/v1/canary"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = c.get(plain.url("/x")).send().await.unwrap();
    assert!(res.headers().get("x-twinpeak-side").is_none());
}

#[test]
fn a_canary_without_a_candidate_is_refused_naming_the_key() {
    let out = check_config(
        "listen: 127.0.0.1:8080\nprimary: { url: http://127.0.0.1:9001 }\ncanary:\n  weight: 5\n",
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("proxy.yaml:3:1: canary.upstream:"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_forced_request_reaches_the_candidate_only_where_the_operator_allows() {
    let primary = Backend::fixed("primary").await;
    let candidate = Backend::fixed("candidate").await;
    let proxy = Proxy::start(&canary_config(
        &primary,
        &candidate.url(),
        "  weight: 10\n  force: { from: [127.0.0.1] }\n  judge: { interval: 1h }\n",
    ))
    .await;
    let c = client();
    let forced = |method: &str| {
        c.request(method.parse().unwrap(), proxy.url("/bookings"))
            .header("x-twinpeak-canary", "always")
    };
    for _ in 0..5 {
        let res = forced("GET").send().await.unwrap();
        assert_eq!(side_of(&res), "candidate");
    }
    // A forced write stays where the weight puts it: with no sticky key, mostly the primary,
    // and never the candidate because of the header.
    let before = candidate.count();
    for _ in 0..20 {
        forced("POST").body("{}").send().await.unwrap();
    }
    let posts_on_candidate = candidate.count() - before;
    assert!(
        posts_on_candidate < 10,
        "{posts_on_candidate} of 20 forced POSTs"
    );
    // After a rollback nothing reaches the candidate, forced or not.
    let res = admin_change(
        "POST",
        &proxy.admin_url("/api/v1/canary/rollback"),
        r#"{"by": "sre", "reason": "5xx on checkout"}"#,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let before = candidate.count();
    for _ in 0..10 {
        let res = forced("GET").send().await.unwrap();
        assert_eq!(side_of(&res), "primary");
        assert_eq!(res.text().await.unwrap(), "primary");
    }
    assert_eq!(candidate.count(), before);
    // The audit trail names who rolled back, and why.
    let state = canary_state(&proxy).await;
    let rollback = state["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["decision"] == "rollback")
        .unwrap();
    let by = rollback["by"].as_str().unwrap();
    assert!(
        by.starts_with("sre (local, 127.0.0.1:") && by.ends_with("because 5xx on checkout"),
        "{by}"
    );

    // From a network the operator did not name, the header does nothing.
    let elsewhere = Proxy::start(&canary_config(
        &primary,
        &candidate.url(),
        "  weight: 0\n  force: { from: [10.0.0.0/8], while_off: true }\n  judge: { interval: 1h }\n",
    ))
    .await;
    let before = candidate.count();
    for _ in 0..10 {
        let res = c
            .get(elsewhere.url("/x"))
            .header("x-twinpeak-canary", "always")
            .send()
            .await
            .unwrap();
        assert_eq!(side_of(&res), "primary");
    }
    assert_eq!(candidate.count(), before);
}

#[tokio::test]
async fn client_sent_twinpeak_headers_reach_no_upstream() {
    let primary = Backend::fixed("primary").await;
    let candidate = Backend::fixed("candidate").await;
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {} }}\nmirror: {{ percent: 100 }}\n\
         canary:\n  upstream: {}\n  weight: 50\n  force: {{ header: x-pick-side, from: [127.0.0.1] }}\n  \
         judge: {{ interval: 1h }}\n",
        primary.url(),
        candidate.url(),
        candidate.url()
    ))
    .await;
    let c = client();
    for i in 0..20 {
        let res = c
            .get(proxy.url(&format!("/items/{i}")))
            .header("x-twinpeak-canary-secret", "guess")
            .header("x-twinpeak-debug", "1")
            .header("x-pick-side", if i % 2 == 0 { "never" } else { "always" })
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            primary.count() >= 10 && candidate.count() >= 10
        })
        .await
    );
    for received in primary.requests().iter().chain(candidate.requests().iter()) {
        let steering: Vec<&(String, String)> = received
            .headers
            .iter()
            .filter(|(k, _)| {
                (k.starts_with("x-twinpeak-") && k != "x-twinpeak-shadow") || k == "x-pick-side"
            })
            .collect();
        assert!(steering.is_empty(), "{} got {steering:?}", received.uri);
    }
}
