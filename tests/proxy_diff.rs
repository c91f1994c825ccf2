//! Response comparison end to end: a shadow that differs on one field of one route in about
//! 10% of answers, while both sides emit a random id field; figures that agree while the noise
//! is learned; secrets kept out of examples, the corpus and logs; the corpus rotated and
//! replayed.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::Response;
use serde_json::Value;
use twinpeak_core::timestamp::parse_rfc3339;

/// A booking API answer: a random id on every answer; on the shadow, every tenth booking's
/// price is off by one.
fn booking_backend(is_shadow: bool) -> Handler {
    let counter = Arc::new(AtomicU64::new(0));
    Arc::new(move |req| {
        let nonce = counter.fetch_add(1, Ordering::Relaxed) * 7919 + u64::from(is_shadow);
        let body = if let Some(n) = req.uri.strip_prefix("/bookings/") {
            let n: u64 = n.parse().unwrap_or(0);
            let amount = if is_shadow && n.is_multiple_of(10) {
                1001
            } else {
                1000
            };
            format!(
                r#"{{"id": "req-{nonce}", "booking": {{"id": {n}, "status": "confirmed", "price": {{"amount": {amount}, "currency": "INR"}}}}}}"#
            )
        } else {
            format!(r#"{{"id": "req-{nonce}", "partners": [{{"id": 1, "city": "pune"}}]}}"#)
        };
        Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    })
}

#[tokio::test]
async fn a_real_field_difference_is_found_and_volatile_fields_are_noise() {
    let primary = Backend::start(Duration::ZERO, booking_backend(false)).await;
    let shadow = Backend::start(Duration::ZERO, booking_backend(true)).await;
    let corpus = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&format!(
        r#"primary: {{ url: {} }}
shadow: {{ url: {} }}
mirror: {{ percent: 100 }}
routes: ["/bookings/{{id}}", "/partners"]
diff:
  noise: {{ resample_percent: 50, min_samples: 10 }}
  redact: ["$..card"]
  corpus: {}
  corpus_per_key: 2
"#,
        primary.url(),
        shadow.url(),
        corpus.path().display()
    ))
    .await;
    let c = client();
    let bookings = 400;
    for i in 0..bookings {
        let res = c
            .get(proxy.url(&format!("/bookings/{i}")))
            .header("authorization", "Bearer very-secret")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    for _ in 0..50 {
        c.get(proxy.url("/partners")).send().await.unwrap();
    }
    let compared =
        |v: &serde_json::Value, route: &str| v["routes"][route]["compared"].as_u64().unwrap_or(0);
    assert!(
        eventually(Duration::from_secs(10), || async {
            let d = proxy.admin_json("/api/v1/diffs").await;
            compared(&d, "/bookings/{id}") == bookings && compared(&d, "/partners") == 50
        })
        .await,
        "{}",
        proxy.admin_json("/api/v1/diffs").await
    );
    let diffs = proxy.admin_json("/api/v1/diffs").await;
    assert_eq!(diffs["noise_reference"]["source"], "resample");
    let route = &diffs["routes"]["/bookings/{id}"];
    let fields = route["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 1, "only the price differs for real: {route}");
    assert_eq!(fields[0]["path"], "$.booking.price.amount");
    assert_eq!(fields[0]["kind"], "value_changed");
    let rate = fields[0]["rate"].as_f64().unwrap();
    assert!((0.09..=0.11).contains(&rate), "rate {rate}");
    let noise = route["noise"].as_array().unwrap();
    assert!(
        noise
            .iter()
            .any(|n| n["path"] == "$.id" && n["suggested_ignore"] == "$..id"),
        "the random id is noise: {route}"
    );
    assert!(route["reference_compared"].as_u64().unwrap() > 100);
    // The other route differs only in its random id: noise, never a difference.
    let partners = &diffs["routes"]["/partners"];
    assert_eq!(
        partners["fields"].as_array().unwrap().len(),
        0,
        "{partners}"
    );

    // Examples hold the request and both answers, secrets redacted.
    let examples = proxy
        .admin_json("/api/v1/diffs/examples?route=/bookings/%7Bid%7D&path=$.booking.price.amount")
        .await;
    let first = &examples["examples"][0];
    assert!(first["request"]["start_line"]
        .as_str()
        .unwrap()
        .starts_with("GET /bookings/"));
    let auth = first["request"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "authorization")
        .unwrap();
    assert_eq!(auth[1], "[redacted]");
    assert!(first["shadow"]["body"].as_str().unwrap().contains("1001"));
    assert!(first["primary"]["body"].as_str().unwrap().contains("1000"));

    // Metrics count real differences by kind.
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains(r#"twinpeak_diff_total{kind="value_changed",route="/bookings/{id}"} "#),
        "{metrics}"
    );

    // The corpus holds a bounded number of diverging requests per field, ready for replay.
    let lines = std::fs::read_to_string(corpus.path().join("diverging.jsonl")).unwrap();
    let price: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["field"] == "$.booking.price.amount")
        .collect();
    assert_eq!(price.len(), 2);
    assert_eq!(price[0]["method"], "GET");
    assert!(price[0]["path"].as_str().unwrap().starts_with("/bookings/"));
    assert_eq!(price[0]["headers"]["authorization"], "[redacted]");

    // The snapshot carries the summary; DELETE starts over.
    let snapshot = proxy.admin_json("/api/v1/snapshot").await;
    assert_eq!(
        snapshot["routes"]["/bookings/{id}"]["diff"]["compared"],
        bookings
    );
    let res = admin_change("DELETE", &proxy.admin_url("/api/v1/diffs"), "{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(proxy.admin_json("/api/v1/diffs").await["routes"]
        .as_object()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn truncated_bodies_are_not_differences_and_status_changes_are() {
    let big_primary = Backend::start(
        Duration::ZERO,
        Arc::new(|req| {
            let status = if req.uri == "/missing" { 404 } else { 200 };
            Response::builder()
                .status(status)
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from(vec![b'a'; 4096])))
                .unwrap()
        }),
    )
    .await;
    let big_shadow = Backend::start(
        Duration::ZERO,
        Arc::new(|_| {
            Response::builder()
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from(vec![b'b'; 4096])))
                .unwrap()
        }),
    )
    .await;
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {} }}\nmirror: {{ percent: 100 }}\ncapture: {{ max_body_bytes: 1KiB }}\n",
        big_primary.url(),
        big_shadow.url()
    ))
    .await;
    let c = client();
    c.get(proxy.url("/big")).send().await.unwrap();
    c.get(proxy.url("/missing")).send().await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.admin_json("/api/v1/diffs").await["routes"]["other"]["compared"] == 2
        })
        .await
    );
    let other = &proxy.admin_json("/api/v1/diffs").await["routes"]["other"];
    assert_eq!(other["truncated"], 2);
    let fields = other["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 1, "{other}");
    assert_eq!(fields[0]["path"], "status");
    assert_eq!(other["identical"], 1);
}

/// The proxy between the two booking backends, and the backends.
struct Bookings {
    proxy: Proxy,
    _backends: [Backend; 2],
}

/// The proxy between the two booking backends, learning noise from `resample_percent` of the
/// requests with `min_samples` reference comparisons; `extra` is appended to the configuration,
/// with `{shadow}` replaced by the shadow's URL.
async fn bookings_proxy(resample_percent: u32, min_samples: u32, extra: &str) -> Bookings {
    let primary = Backend::start(Duration::ZERO, booking_backend(false)).await;
    let shadow = Backend::start(Duration::ZERO, booking_backend(true)).await;
    let config = format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {} }}\nmirror: {{ percent: 100 }}\n\
         routes: [\"/bookings/{{id}}\"]\n\
         diff: {{ noise: {{ resample_percent: {resample_percent}, min_samples: {min_samples} }} }}\n{}",
        primary.url(),
        shadow.url(),
        extra.replace("{shadow}", &shadow.url()),
    );
    Bookings {
        proxy: Proxy::start(&config).await,
        _backends: [primary, shadow],
    }
}

/// Checks that a route's figures agree with its fields: `different` is the number of pairs
/// whose signature holds a real field, and the counts add up.
fn assert_figures_agree(route: &Value) {
    let count = |v: &Value| v.as_u64().unwrap_or(0);
    let key = |f: &Value| {
        (
            f["path"].as_str().unwrap().to_string(),
            f["kind"].as_str().unwrap().to_string(),
        )
    };
    let real: HashSet<(String, String)> = route["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(key)
        .collect();
    let mut different = count(&route["overflow"]["different"]);
    let mut noise_only = count(&route["overflow"]["noise_only"]);
    for signature in route["signatures"].as_array().into_iter().flatten() {
        let is_real = signature["fields"].as_array().unwrap().iter().any(|f| {
            real.contains(&(
                f[0].as_str().unwrap().to_string(),
                f[1].as_str().unwrap().to_string(),
            ))
        });
        if is_real {
            different += count(&signature["pairs"]);
        } else {
            noise_only += count(&signature["pairs"]);
        }
    }
    assert_eq!(count(&route["different"]), different, "{route}");
    assert_eq!(count(&route["noise_only"]), noise_only, "{route}");
    assert_eq!(
        count(&route["compared"]),
        count(&route["identical"]) + different + noise_only,
        "{route}"
    );
    let compared = count(&route["compared"]).max(1) as f64;
    let rate = route["diff_rate"].as_f64().unwrap();
    assert!((rate - different as f64 / compared).abs() < 1e-9, "{route}");
}

#[tokio::test]
async fn figures_agree_with_the_fields_at_every_read_while_the_noise_is_learned() {
    let bookings_run = bookings_proxy(20, 20, "").await;
    let proxy = &bookings_run.proxy;
    let c = client();
    let bookings = 1_500u64;
    let mut learned_at = None;
    for i in 0..bookings {
        let res = c
            .get(proxy.url(&format!("/bookings/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        if i % 50 != 49 {
            continue;
        }
        let diffs = proxy.admin_json("/api/v1/diffs").await;
        let route = &diffs["routes"]["/bookings/{id}"];
        if route.is_null() {
            continue;
        }
        assert_figures_agree(route);
        let noise_learned = route["noise"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["path"] == "$.id");
        if !noise_learned {
            continue;
        }
        learned_at.get_or_insert(route["compared"].as_u64().unwrap());
        // Once the random id is known to be noise, every pair compared before counts again:
        // only the price differs, and the route's rate is the price's.
        let fields = route["fields"].as_array().unwrap();
        assert_eq!(fields.len(), 1, "{route}");
        assert_eq!(fields[0]["path"], "$.booking.price.amount");
        assert_eq!(route["different"], fields[0]["count"], "{route}");
        let rate = route["diff_rate"].as_f64().unwrap();
        assert!(
            (rate - fields[0]["rate"].as_f64().unwrap()).abs() < 1e-9,
            "{route}"
        );
        if route["compared"].as_u64().unwrap() >= 300 {
            assert!((rate - 0.10).abs() <= 0.01, "diff_rate {rate} at {route}");
        }
    }
    let learned_at = learned_at.expect("the random id was never learned as noise");
    assert!(learned_at < 300, "learned only after {learned_at} pairs");

    // Quiet now: the API, the snapshot and the Prometheus counter read the same pairs.
    let compared = |v: &Value| {
        v["routes"]["/bookings/{id}"]["compared"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(
        eventually(Duration::from_secs(10), || async {
            compared(&proxy.admin_json("/api/v1/diffs").await) == bookings
        })
        .await
    );
    let diffs = proxy.admin_json("/api/v1/diffs").await;
    let route = &diffs["routes"]["/bookings/{id}"];
    assert_eq!(route["different"], bookings / 10);
    let snapshot: twinpeak_core::Snapshot =
        serde_json::from_value(proxy.admin_json("/api/v1/snapshot").await).unwrap();
    let summary = snapshot.routes["/bookings/{id}"].diff.clone().unwrap();
    assert_eq!(summary.different, bookings / 10);
    assert_eq!(summary.noise_only, bookings - bookings / 10);
    assert_eq!(summary.diff_rate(), route["diff_rate"].as_f64().unwrap());
    // The snapshot keeps only the counters that are final; how differing pairs came out is
    // in its diff summary.
    let compare = &snapshot.routes["/bookings/{id}"].compare;
    assert!(
        !compare.contains_key("different") && !compare.contains_key("noise"),
        "{compare:?}"
    );
    // The counter counts each pair once, as classified when compared: it never goes down.
    let metrics = proxy.metrics().await;
    let counter = |result: &str| -> u64 {
        let prefix =
            format!("twinpeak_compared_total{{result=\"{result}\",route=\"/bookings/{{id}}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map_or(0, |n| n.trim().parse().unwrap())
    };
    assert_eq!(
        counter("different") + counter("noise") + counter("identical"),
        bookings
    );
    assert!(counter("different") >= bookings / 10, "{metrics}");
}

#[tokio::test]
async fn the_judge_classifies_its_interval_as_the_admin_api_does() {
    // The noise takes about 500 pairs to learn: the first judged interval holds pairs compared
    // before it was known, and must not count them as different.
    let bookings_run = bookings_proxy(
        20,
        100,
        "canary:\n  upstream: \"{shadow}\"\n  weight: 20\n  judge: { interval: 2s, min_requests: 50, \
         max_diff_rate: 50, max_p99_ratio: 1000, latency_effect: 0.99, failures_to_rollback: 1000, \
         max_error_rate: 100, max_error_delta: 100 }\n",
    )
    .await;
    let proxy = &bookings_run.proxy;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (stop, sent, url) = (stop.clone(), sent.clone(), proxy.url("/bookings/"));
            tokio::spawn(async move {
                let c = client();
                while !stop.load(Ordering::Relaxed) {
                    let n = sent.fetch_add(1, Ordering::Relaxed);
                    if n >= 40_000 {
                        return;
                    }
                    c.get(format!("{url}{n}")).send().await.unwrap();
                }
            })
        })
        .collect();
    let started = SystemTime::now();
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut learned: Option<SystemTime> = None;
    let judged_after_learning = |state: &Value, learned: SystemTime| -> Vec<Value> {
        state["history"]
            .as_array()
            .unwrap()
            .iter()
            // Judged at least a second after the noise was learned: an interval is judged a
            // grace of a quarter of it (0.5 s) after it ends, so one judged sooner ended before
            // the noise was known, and its pairs were counted by the noise known then.
            .filter(|d| {
                parse_rfc3339(d["at"].as_str().unwrap()).unwrap() > learned + Duration::from_secs(1)
            })
            .flat_map(|d| d["reasons"].as_array().cloned().unwrap_or_default())
            .filter(|r| {
                r["metric"] == "diff_rate" && !r["detail"].as_str().unwrap().contains("not judged")
            })
            .collect()
    };
    let mut reasons = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if learned.is_none() {
            let diffs = proxy.admin_json("/api/v1/diffs").await;
            let noise = diffs["routes"]["/bookings/{id}"]["noise"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if noise.iter().any(|n| n["path"] == "$.id") {
                learned = Some(SystemTime::now());
            }
            continue;
        }
        reasons =
            judged_after_learning(&proxy.admin_json("/api/v1/canary").await, learned.unwrap());
        if reasons.len() >= 2 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let learned = learned.expect("the random id was never learned as noise");
    let took = learned.duration_since(started).unwrap_or_default();
    assert!(
        reasons.len() >= 2,
        "too few judged intervals after {took:?}: {reasons:?}"
    );
    for reason in &reasons {
        let rate = reason["candidate"].as_f64().unwrap();
        assert!((0.05..=0.15).contains(&rate), "{reason}");
    }
}

/// Every file in `dir`, with its text.
fn files_in(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect();
    files.sort();
    files
}

const SECRETS: [&str; 4] = ["SECRET-Q1", "SECRET-Q2", "SECRET-F1", "SECRET-J1"];

#[tokio::test]
async fn query_and_form_secrets_never_reach_examples_corpus_or_logs_and_replay_skips_a_torn_line() {
    let primary = Backend::json_version(1).await;
    let shadow = Backend::json_version(2).await;
    let corpus = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {} }}\nmirror: {{ percent: 100 }}\n\
         routes: [\"/search\", {{ path: /login, mirror_methods: [POST] }}]\n\
         diff: {{ corpus: {}, redact_params: [booking_ref] }}\n",
        primary.url(),
        shadow.url(),
        corpus.path().join("c").display()
    ))
    .await;
    let c = client();
    let search = "/search?q=shoes&access_token=SECRET-Q1&page=2&booking_ref=SECRET-Q2";
    c.get(proxy.url(search)).send().await.unwrap();
    let form = "application/x-www-form-urlencoded";
    c.post(proxy.url("/login"))
        .header("content-type", form)
        .body("user=ann&password=SECRET-F1")
        .send()
        .await
        .unwrap();
    c.post(proxy.url("/login"))
        .header("content-type", "application/json")
        .body(r#"{"user": "ann", "password": "SECRET-J1""#)
        .send()
        .await
        .unwrap();
    let compared = |v: &Value, route: &str| v["routes"][route]["compared"].as_u64().unwrap_or(0);
    assert!(
        eventually(Duration::from_secs(10), || async {
            let d = proxy.admin_json("/api/v1/diffs").await;
            compared(&d, "/search") == 1 && compared(&d, "/login") == 2
        })
        .await
    );

    // Examples: the secret values are replaced; the unparsable JSON body is withheld.
    let examples_path = |route: &str| {
        let route = route.replace('/', "%2F");
        format!("/api/v1/diffs/examples?route={route}&path=$.v")
    };
    let search_examples = proxy.admin_json(&examples_path("/search")).await;
    let login_examples = proxy.admin_json(&examples_path("/login")).await;
    let start_line = search_examples["examples"][0]["request"]["start_line"]
        .as_str()
        .unwrap();
    assert_eq!(
        start_line,
        "GET /search?q=shoes&access_token=[redacted]&page=2&booking_ref=[redacted]"
    );
    let bodies: BTreeSet<(String, String)> = login_examples["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let body = &e["request"];
            (
                body["body_encoding"].as_str().unwrap().to_string(),
                body["body"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        bodies,
        BTreeSet::from([
            (
                "text".to_string(),
                "user=ann&password=[redacted]".to_string()
            ),
            (
                "withheld".to_string(),
                "[withheld: declared JSON that does not parse; 39 bytes]".to_string()
            ),
        ])
    );
    for text in [search_examples.to_string(), login_examples.to_string()] {
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    // The corpus: private, whole lines, no secrets.
    let dir = corpus.path().join("c");
    let corpus_file = dir.join("diverging.jsonl");
    assert!(
        eventually(Duration::from_secs(5), || async {
            std::fs::read_to_string(&corpus_file).is_ok_and(|t| t.lines().count() == 3)
        })
        .await
    );
    for (path, text) in files_in(&dir) {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} in {}", path.display());
        }
    }
    let lines: Vec<Value> = std::fs::read_to_string(&corpus_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|l| l["body_encoding"] == "withheld"));
    let log = proxy.log_text();
    for secret in SECRETS {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }

    // A torn last line (a crash mid-write) is skipped with a warning naming file and line; the
    // withheld body is not replayed.
    let mut text = std::fs::read_to_string(&corpus_file).unwrap();
    text.push_str(r#"{"method":"GET","path":"/torn","hea"#);
    std::fs::write(&corpus_file, text).unwrap();
    let target = Backend::fixed("ok").await;
    let out = tokio::task::spawn_blocking({
        let (file, target, out) = (corpus_file.clone(), target.url(), corpus.path().join("out"));
        move || {
            Command::new(env!("CARGO_BIN_EXE_twinpeak"))
                .args([
                    "load", "--quiet", "--rps", "10", "--target", &target, "--replay",
                ])
                .arg(&file)
                .arg("--out")
                .arg(&out)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warning = format!("{}:4: skipped a torn last line", corpus_file.display());
    assert!(stderr.contains(&warning), "{stderr}");
    assert!(
        stderr.contains("skipped 1 request(s) whose body was withheld"),
        "{stderr}"
    );
    let received = target.requests();
    assert!(!received.is_empty());
    assert!(received.iter().all(|r| r.uri != "/torn"));
    assert!(received
        .iter()
        .any(|r| r.uri.starts_with("/search?q=shoes&access_token=")));
    assert!(received
        .iter()
        .any(|r| r.body == b"user=ann&password=[redacted]"));
}

#[tokio::test]
async fn the_corpus_rotates_within_its_size_bound() {
    let primary = Backend::json_version(1).await;
    let shadow = Backend::json_version(2).await;
    let corpus = tempfile::tempdir().unwrap();
    let max_bytes = 64 * 1024;
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {} }}\nmirror: {{ percent: 100 }}\n\
         diff: {{ corpus: {}, corpus_per_key: 100000, corpus_max_bytes: 64KiB, corpus_max_files: 2 }}\n",
        primary.url(),
        shadow.url(),
        corpus.path().display()
    ))
    .await;
    let c = client();
    let padding = "p".repeat(4_000);
    let requests = 120;
    for i in 0..requests {
        c.get(proxy.url(&format!("/r/{i}")))
            .header("x-padding", &padding)
            .send()
            .await
            .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            proxy.admin_json("/api/v1/diffs").await["routes"]["other"]["compared"] == requests
        })
        .await
    );
    let files = files_in(corpus.path());
    let names: Vec<String> = files
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["diverging.1.jsonl", "diverging.2.jsonl", "diverging.jsonl"]
    );
    let mut total = 0;
    for (path, text) in &files {
        assert!(
            text.len() <= max_bytes,
            "{}: {} bytes",
            path.display(),
            text.len()
        );
        total += text.len();
        for line in text.lines() {
            serde_json::from_str::<Value>(line).unwrap();
        }
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(total <= 3 * max_bytes);
    // Each line is about 4 KiB: of 120, the three files hold at most 48; the rest was deleted,
    // and the deletions are logged.
    let kept: usize = files.iter().map(|(_, t)| t.lines().count()).sum();
    assert!(kept < 50, "{kept}");
    assert!(files[2].1.contains("\"/r/119\""));
    assert!(
        proxy.log_text().contains("corpus: deleted"),
        "{}",
        proxy.log_text()
    );
}
