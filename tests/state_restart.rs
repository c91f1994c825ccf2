//! The default state (an SQLite file beside the configuration) across `kill -9`: a ramp goes on
//! at its step with its hold, a rollback stays, findings, counters and latency histograms go on
//! from what was flushed, and the judge goes on judging after a restart with a longer judge
//! interval; a proxy stopped with SIGINT or SIGTERM writes everything before it exits. Real
//! processes on loopback; every wait bounded.

mod common;
mod state_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use state_support::*;
use twinpeak_core::timestamp::parse_rfc3339;

async fn fixed(status: u16, body: &'static str) -> Backend {
    Backend::start(Duration::ZERO, Arc::new(move |_| text(status, body))).await
}

/// Sends `n` GETs to `path` and returns how many the candidate served.
async fn candidate_share(proxy: &Replica, n: usize) -> usize {
    let c = client();
    let mut candidate = 0;
    for i in 0..n {
        let res = c
            .get(proxy.url(&format!("/items/{i}")))
            .header("x-user-id", format!("user-{i}"))
            .send()
            .await
            .unwrap();
        let side = res.headers().get("x-twinpeak-side").cloned();
        let _ = res.bytes().await;
        candidate += usize::from(side.is_some_and(|s| s == "candidate"));
    }
    candidate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ramp_goes_on_at_its_step_with_its_hold_after_kill_9() {
    let primary = fixed(200, "legacy").await;
    let candidate = fixed(200, "rebuilt").await;
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "primary: {{ url: {} }}\nroutes: [\"/items/{{id}}\"]\ncanary:\n  upstream: {}\n  \
         sticky: header:x-user-id\n  \
         ramp: [{{weight: 20, hold: 1s}}, {{weight: 50, hold: 1h}}, {{weight: 100}}]\n  \
         judge: {{interval: 300ms, min_requests: 5, max_p99_ratio: 100, latency_effect: 0.95}}\n\
         state: {{flush_interval: 500ms}}\n",
        primary.url(),
        candidate.url()
    );
    let mut proxy = Replica::start(dir.path(), "solo", &body).await;
    assert!(
        dir.path().join("solo.state.sqlite3").is_file(),
        "the state file sits beside the configuration"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let seen = load(
        vec![proxy.url("/items")],
        4,
        Duration::from_secs(20),
        stop.clone(),
    );
    let advanced = eventually(Duration::from_secs(15), || async {
        proxy.json("/api/v1/canary").await["weight"] == 50.0
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    assert!(advanced, "the ramp never advanced: {}", proxy.log());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = proxy.json("/api/v1/canary").await;
    assert_eq!(before["step"], 1);
    let served = seen.ok.load(Ordering::Relaxed);
    assert!(served > 0);

    proxy.kill();
    proxy.restart().await;
    let after = proxy.json("/api/v1/canary").await;
    assert_eq!(after["state"], "running", "{after}");
    assert_eq!(
        (after["weight"].clone(), after["step"].clone()),
        (50.0.into(), 1.into())
    );
    assert_eq!(
        after["fleet"]["hold_since"], before["fleet"]["hold_since"],
        "the hold goes on from when it began"
    );
    let kinds: Vec<String> = after["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["decision"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(&"advance".to_string()), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| *k == "start").count(),
        1,
        "a restart does not start the canary over: {kinds:?}"
    );
    // The weight in force is the one taken up: about half of 400 users reach the candidate.
    let share = candidate_share(&proxy, 400).await;
    assert!(
        (140..260).contains(&share),
        "{share} of 400 on the candidate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollback_stays_and_findings_go_on_after_kill_9() {
    let primary = fixed(200, r#"{"price": 10}"#).await;
    let shadow = fixed(200, r#"{"price": 12}"#).await;
    let failing = fixed(503, "down").await;
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {} }}\nmirror: {{ percent: 100 }}\n\
         routes: [\"/items/{{id}}\"]\ncanary:\n  upstream: {}\n  weight: 20\n  \
         judge: {{interval: 300ms, min_requests: 5, failures_to_rollback: 2}}\n\
         state: {{flush_interval: 500ms}}\n",
        primary.url(),
        shadow.url(),
        failing.url()
    );
    let mut proxy = Replica::start(dir.path(), "solo", &body).await;
    let stop = Arc::new(AtomicBool::new(false));
    let _seen = load(
        vec![proxy.url("/items")],
        4,
        Duration::from_secs(20),
        stop.clone(),
    );
    let rolled_back = eventually(Duration::from_secs(15), || async {
        proxy.json("/api/v1/canary").await["state"] == "rolled_back"
    })
    .await;
    assert!(rolled_back, "never rolled back: {}", proxy.log());
    // Let findings pile up, then stop and give the flush time to write them.
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let compared = |diffs: &serde_json::Value| diffs["routes"]["/items/{id}"]["compared"].as_u64();
    let diffs_before = proxy.json("/api/v1/diffs").await;
    let pairs_before = compared(&diffs_before).expect("pairs were compared");
    let latency_before = proxy.json("/api/v1/latency").await["routes"]["/items/{id}"]["primary"]
        ["count"]
        .as_u64()
        .unwrap();
    let requests =
        r#"twinpeak_requests_total{route="/items/{id}",side="primary",status_class="2xx"}"#;
    let requests_before = proxy.metric(requests).await.unwrap();
    assert!(pairs_before > 10 && latency_before > 10, "{diffs_before}");

    proxy.kill();
    proxy.restart().await;
    let canary = proxy.json("/api/v1/canary").await;
    assert_eq!(canary["state"], "rolled_back", "{canary}");
    assert_eq!(canary["weight"], 0.0);
    let diffs = proxy.json("/api/v1/diffs").await;
    assert_eq!(compared(&diffs), Some(pairs_before), "{diffs}");
    let field = &diffs["routes"]["/items/{id}"]["fields"][0];
    assert_eq!(field["path"], "$.price", "{diffs}");
    assert_eq!(field["count"].as_u64(), Some(pairs_before));
    let latency = proxy.json("/api/v1/latency").await["routes"]["/items/{id}"]["primary"]["count"]
        .as_u64()
        .unwrap();
    assert_eq!(latency, latency_before);
    assert_eq!(proxy.metric(requests).await, Some(requests_before));
    let examples = proxy
        .json("/api/v1/diffs/examples?route=/items/%7Bid%7D&path=$.price")
        .await;
    assert!(
        !examples["examples"].as_array().unwrap().is_empty(),
        "kept examples come back: {examples}"
    );

    // Findings go on accumulating from there, and are flushed again.
    let c = client();
    for i in 0..20 {
        let res = c
            .get(proxy.url(&format!("/items/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let grew = eventually(Duration::from_secs(5), || async {
        compared(&proxy.json("/api/v1/diffs").await) >= Some(pairs_before + 20)
    })
    .await;
    assert!(grew, "findings did not go on from the restored counts");
    let canary = proxy.json("/api/v1/canary").await;
    assert_eq!(canary["state"], "rolled_back", "a rollback stays: {canary}");
}

/// The verdicts in a canary view's history made at or after `since`.
fn verdicts_since(canary: &serde_json::Value, since: SystemTime) -> Vec<serde_json::Value> {
    canary["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| is_verdict(d))
        .filter(|d| {
            d["at"]
                .as_str()
                .and_then(parse_rfc3339)
                .is_some_and(|at| at >= since)
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_judge_goes_on_after_a_restart_with_a_longer_interval() {
    let primary = fixed(200, "legacy").await;
    let candidate = fixed(200, "rebuilt").await;
    let dir = tempfile::tempdir().unwrap();
    let body = |interval: &str| {
        format!(
            "primary: {{ url: {} }}\nroutes: [\"/items/{{id}}\"]\ncanary:\n  upstream: {}\n  \
             weight: 20\n  sticky: header:x-user-id\n  \
             judge: {{interval: {interval}, min_requests: 5, max_p99_ratio: 100, latency_effect: 0.95}}\n\
             state: {{flush_interval: 500ms}}\n",
            primary.url(),
            candidate.url()
        )
    };
    let mut proxy = Replica::start(dir.path(), "solo", &body("300ms")).await;
    let started = SystemTime::now();
    let stop = Arc::new(AtomicBool::new(false));
    let _seen = load(
        vec![proxy.url("/items")],
        4,
        Duration::from_secs(20),
        stop.clone(),
    );
    let judged = eventually(Duration::from_secs(5), || async {
        verdicts_since(&proxy.json("/api/v1/canary").await, started).len() >= 3
    })
    .await;
    assert!(judged, "never judged: {}", proxy.log());

    // The judge interval is not part of the plan: the stored canary is taken up as it is.
    proxy.kill();
    proxy.reconfigure(&body("1s"));
    let restarted = SystemTime::now();
    proxy.restart().await;
    let judging = eventually(Duration::from_secs(6), || async {
        verdicts_since(&proxy.json("/api/v1/canary").await, restarted).len() >= 2
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let canary = proxy.json("/api/v1/canary").await;
    assert!(
        judging,
        "no verdict after the restart: {canary} {}",
        proxy.log()
    );
    let starts = canary["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["decision"] == "start")
        .count();
    assert_eq!(starts, 1, "the canary was started over: {canary}");
    // One verdict per interval, and none over time an earlier verdict judged.
    let mut judged_until = SystemTime::UNIX_EPOCH;
    for verdict in verdicts_since(&canary, started) {
        let at = parse_rfc3339(verdict["at"].as_str().unwrap()).unwrap();
        let (start, _) = judged_interval(verdict["summary"].as_str().unwrap()).unwrap();
        assert!(
            start >= judged_until,
            "{verdict} judges time judged already (up to {judged_until:?})"
        );
        let width = if at < restarted { 300 } else { 1_000 };
        judged_until = start + Duration::from_millis(width);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigint_and_sigterm_write_everything_recorded_since_the_last_flush() {
    let primary = fixed(200, r#"{"price": 10}"#).await;
    let shadow = fixed(200, r#"{"price": 12}"#).await;
    let dir = tempfile::tempdir().unwrap();
    // No periodic flush within the test: only the one on the way out can keep what it sees.
    let body = format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {} }}\nmirror: {{ percent: 100 }}\n\
         routes: [\"/items/{{id}}\"]\nstate: {{flush_interval: 10m}}\n",
        primary.url(),
        shadow.url(),
    );
    let mut proxy = Replica::start(dir.path(), "solo", &body).await;
    let requests =
        r#"twinpeak_requests_total{route="/items/{id}",side="primary",status_class="2xx"}"#;
    let c = client();
    let mut sent = 0;
    for signal in ["INT", "TERM"] {
        for i in 0..50 {
            let res = c
                .get(proxy.url(&format!("/items/{i}")))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let _ = res.bytes().await;
            sent += 1;
        }
        let compared = eventually(Duration::from_secs(5), || async {
            proxy.json("/api/v1/diffs").await["routes"]["/items/{id}"]["compared"].as_u64()
                == Some(sent)
        })
        .await;
        assert!(compared, "every pair compared before SIG{signal}");
        assert!(proxy.stop(signal), "SIG{signal} exits 0: {}", proxy.log());
        assert!(
            proxy.log().contains("flushed to"),
            "SIG{signal} flushes on the way out: {}",
            proxy.log()
        );
        proxy.restart().await;
        assert_eq!(
            proxy.metric(requests).await,
            Some(sent as f64),
            "after SIG{signal}"
        );
        let diffs = proxy.json("/api/v1/diffs").await;
        assert_eq!(
            diffs["routes"]["/items/{id}"]["compared"].as_u64(),
            Some(sent),
            "after SIG{signal}: {diffs}"
        );
    }
}
