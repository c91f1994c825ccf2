//! `twinpeak load` end to end against in-process backends on loopback.

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::Response;
use serde_json::Value;

/// Runs `twinpeak load` off the async runtime's threads.
async fn load(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_twinpeak"))
            .arg("load")
            .args(&args)
            .arg("--quiet")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// Starts `twinpeak load` in the background, its output kept in memory.
fn spawn_load(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_twinpeak"))
        .arg("load")
        .args(args)
        .arg("--quiet")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` to exit, for at most `limit`, then kills it; its output either way.
async fn finish(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = child.kill();
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

/// The run record under `dir`'s `out`, if it is there and whole.
fn record_if_any(dir: &tempfile::TempDir) -> Option<twinpeak_core::RunRecord> {
    twinpeak_core::RunRecord::read(dir.path().join("out/run.json")).ok()
}

fn write_scenario(dir: &tempfile::TempDir, yaml: &str) -> String {
    let path = dir.path().join("scenario.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.display().to_string()
}

fn record(dir: &tempfile::TempDir) -> Value {
    let text = std::fs::read_to_string(dir.path().join("out/run.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn args(scenario: &str, dir: &tempfile::TempDir, targets: &[String]) -> Vec<String> {
    let mut a = vec![
        scenario.to_string(),
        "--out".into(),
        dir.path().join("out").display().to_string(),
        "--seed".into(),
        "42".into(),
    ];
    for t in targets {
        a.push("--target".into());
        a.push(t.clone());
    }
    a
}

fn output_text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn the_achieved_rate_follows_the_schedule() {
    let backend = Backend::fixed("ok").await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        &dir,
        "name: pacing\nbaseline_rps: 200\nmax_users: 64\nphases:\n  - {name: flat, duration: 3s, rps: 1x}\n  - {name: ramp, duration: 3s, rps: 1x..2x}\nrequests:\n  - {name: get, path: /x}\n",
    );
    let out = load(args(&scenario, &dir, &[backend.url()])).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let record = record(&dir);
    for (phase, intended) in [(0, 200.0), (1, 300.0)] {
        let p = &record["phases"][phase];
        let achieved = p["achieved_rps"].as_f64().unwrap();
        assert!(
            (p["intended_rps"].as_f64().unwrap() - intended).abs() < 1.0,
            "{p}"
        );
        assert!(
            (achieved - intended).abs() <= intended * 0.02,
            "phase {phase}: {achieved} vs {intended}"
        );
        assert_eq!(p["dropped"], 0);
    }
    // 600 + 900 arrivals, each sent once.
    assert_eq!(backend.count(), 1500);
    assert_eq!(record["schema"], "twinpeak.run/v1");
    assert_eq!(record["seed"], 42);
}

#[tokio::test]
async fn a_stalled_backend_shows_in_corrected_latency_not_only_raw() {
    // One request, about a second in, stalls for a second; with a single user every arrival
    // behind it waits, which only the corrected latency (from the intended time) shows.
    let started = Instant::now();
    let stalled = Arc::new(AtomicU64::new(0));
    let backend = Backend::start_with_delays(
        Arc::new(move |_| {
            if started.elapsed() > Duration::from_millis(1500)
                && stalled.fetch_add(1, Ordering::Relaxed) == 0
            {
                Duration::from_secs(1)
            } else {
                Duration::ZERO
            }
        }),
        Arc::new(|_| text_response("ok")),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        &dir,
        "name: stall\nbaseline_rps: 50\nmax_users: 1\nphases:\n  - {name: steady, duration: 4s, rps: 1x}\nrequests:\n  - {name: get, path: /x}\n",
    );
    let mut a = args(&scenario, &dir, &[backend.url()]);
    a.extend(["--late-limit".into(), "5s".into()]);
    let out = load(a).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let record: twinpeak_core::RunRecord = serde_json::from_value(record(&dir)).unwrap();
    let totals = record.phases[0].totals().unwrap();
    let corrected = twinpeak_core::LatencySummary::from_histogram(&totals.corrected_us.0);
    let raw = twinpeak_core::LatencySummary::from_histogram(&totals.raw_us.0);
    assert!(
        corrected.max_us >= 950_000,
        "corrected max {}",
        corrected.max_us
    );
    assert!(
        corrected.p90_us >= 200_000,
        "corrected p90 {}",
        corrected.p90_us
    );
    assert!(raw.p90_us < 50_000, "raw p90 {}", raw.p90_us);
    assert!(raw.max_us >= 950_000, "the stall itself is in raw too");
}

fn text_response(body: &'static str) -> Response<Full<Bytes>> {
    text(200, body)
}

#[tokio::test]
async fn extracted_values_chain_requests_with_after() {
    let next_id = Arc::new(AtomicU64::new(1));
    let backend = Backend::start(
        Duration::ZERO,
        Arc::new(move |req| {
            if req.method == "POST" && req.uri == "/bookings" {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let answer =
                    serde_json::json!({"id": format!("b-{id}"), "partner_id": body["partner_id"]});
                return Response::builder()
                    .status(201)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(answer.to_string())))
                    .unwrap();
            }
            text(200, "ok")
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        &dir,
        r#"name: chain
baseline_rps: 40
max_users: 8
phases: [{name: only, duration: 3s, rps: 1x}]
requests:
  - {name: book, weight: 1, method: POST, path: /bookings, json: {partner_id: "{{int 1 500}}"}, extract: {booking_id: "$.id"}}
  - {name: status, weight: 2, path: "/bookings/{{booking_id}}", after: book}
"#,
    );
    let out = load(args(&scenario, &dir, &[backend.url()])).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let requests = backend.requests();
    let posts: Vec<_> = requests.iter().filter(|r| r.method == "POST").collect();
    let gets: Vec<_> = requests.iter().filter(|r| r.method == "GET").collect();
    assert!(!posts.is_empty() && !gets.is_empty());
    for post in &posts {
        let body: Value = serde_json::from_slice(&post.body).unwrap();
        let partner = body["partner_id"]
            .as_u64()
            .expect("an {{int}} template renders a JSON number");
        assert!((1..=500).contains(&partner));
        assert_eq!(post.header("content-type"), Some("application/json"));
    }
    let issued = posts.len() as u64;
    for get in &gets {
        let id: u64 = get
            .uri
            .strip_prefix("/bookings/b-")
            .expect("a GET of an issued id")
            .parse()
            .unwrap();
        assert!((1..=issued).contains(&id), "{}", get.uri);
    }
    let record = record(&dir);
    let status = &record["phases"][0]["requests"]["status"];
    assert_eq!(status["sent"].as_u64().unwrap(), gets.len() as u64);
    assert!(
        status["errors"].as_object().is_none_or(|e| e.is_empty()),
        "{status}"
    );
}

#[tokio::test]
async fn a_failed_slo_exits_non_zero_and_says_by_how_much() {
    let backend = Backend::start(Duration::from_millis(60), Arc::new(|_| text(200, "slow"))).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        &dir,
        "name: slo\nbaseline_rps: 20\nmax_users: 16\nphases: [{name: only, duration: 2s, rps: 1x}]\nrequests: [{name: get, path: /x}]\nslo: {p99: 20ms, error_rate: 1%}\n",
    );
    let out = load(args(&scenario, &dir, &[backend.url()])).await;
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FAIL run (target): p99"), "{err}");
    assert!(err.contains("> 20.0 ms"), "{err}");
    assert!(!err.contains("error_rate"), "the error rate passed: {err}");
    let record = record(&dir);
    assert!(record["slo"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["metric"] == "p99" && v["pass"] == false));
}

#[tokio::test]
async fn bad_scenarios_and_unreachable_targets_fail_before_any_traffic() {
    let backend = Backend::fixed("ok").await;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("name: x\nbaseline_rps: 10\nmax_users: 1\nphases: [{name: a, duration: 1s, rps: 1x}]\nrequests: [{name: g, path: /x, colour: red}]\n", ":5:", "colour"),
        ("name: x\nbaseline_rps: 10\nmax_users: 1\nphases:\n  - {name: a, duration: soon, rps: 1x}\nrequests: [{name: g, path: /x}]\n", ":5:", "duration"),
        ("name: x\nbaseline_rps: 10\nmax_users: 1\nphases: [{name: a, duration: 1s, rps: 1x}]\nrequests:\n  - {name: g, path: \"/x/{{nobody}}\"}\n", ":6:", "nobody"),
        ("name: x\nbaseline_rps: 10\nmax_users: 1\nphases: [{name: a, duration: 1s, rps: 1x}]\nrequests: [{name: g, path: \"/x/{{s}}\"}]\ndata:\n  s: missing.csv\n", ":7:", "missing.csv"),
    ];
    for (yaml, line, needle) in cases {
        let scenario = write_scenario(&dir, yaml);
        let out = load(args(&scenario, &dir, &[backend.url()])).await;
        assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("scenario.yaml{line}")),
            "{yaml}\n{err}"
        );
        assert!(err.contains(needle), "{err}");
    }
    assert_eq!(backend.count(), 0);

    let scenario = write_scenario(&dir, "name: x\nbaseline_rps: 10\nmax_users: 1\nphases: [{name: a, duration: 1s, rps: 1x}]\nrequests: [{name: g, path: /x}]\n");
    let dead = refused_addr();
    let started = Instant::now();
    let out = load(args(&scenario, &dir, &[format!("http://{dead}")])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach target at http://127.0.0.1:")
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn two_systems_get_the_same_seeded_schedule_interleaved() {
    let legacy = Backend::fixed("legacy").await;
    let rebuilt = Backend::fixed("rebuilt").await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        &dir,
        r#"name: twins
baseline_rps: 30
max_users: 8
phases:
  - {name: one, duration: 1s, rps: 1x}
  - {name: two, duration: 1s, rps: 2x}
requests:
  - {name: search, weight: 3, path: "/partners?city={{city}}&n={{int 1 1000000}}"}
  - {name: other, weight: 1, path: "/other/{{uuid}}"}
data: {city: [mumbai, delhi, pune]}
"#,
    );
    let mut a = args(
        &scenario,
        &dir,
        &[
            format!("legacy={}", legacy.url()),
            format!("rebuilt={}", rebuilt.url()),
        ],
    );
    a.push("--interleave".into());
    let out = load(a).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let sorted = |b: &Backend| {
        let mut u: Vec<String> = b.requests().into_iter().map(|r| r.uri).collect();
        u.sort();
        u
    };
    assert_eq!(legacy.count(), 90);
    assert_eq!(
        sorted(&legacy),
        sorted(&rebuilt),
        "the same requests, the same values"
    );
    let record = record(&dir);
    let order: Vec<String> = record["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p["name"].as_str().unwrap(),
                p["target"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        order,
        vec!["one/legacy", "one/rebuilt", "two/legacy", "two/rebuilt"]
    );
}

#[tokio::test]
async fn a_corpus_replays_its_requests() {
    let backend = Backend::fixed("ok").await;
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("diverging.jsonl");
    std::fs::write(
        &corpus,
        concat!(
            r#"{"method":"GET","path":"/bookings/7","headers":{"accept":"application/json","authorization":"[redacted]"},"body":"","body_encoding":"text","route":"/bookings/{id}","field":"$.price","kind":"value_changed"}"#,
            "\n",
            r#"{"method":"POST","path":"/bookings","headers":{"content-type":"application/json"},"body":"{\"partner_id\":3}"}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = load(vec![
        "--replay".into(),
        corpus.display().to_string(),
        "--rps".into(),
        "20".into(),
        "--target".into(),
        backend.url(),
        "--out".into(),
        dir.path().join("out").display().to_string(),
    ])
    .await;
    assert!(out.status.success(), "{}", output_text(&out));
    let requests = backend.requests();
    // One second at 20 requests a second, cycling through the two recorded requests.
    assert_eq!(requests.len(), 20);
    assert!(requests.iter().any(|r| r.method == "GET"
        && r.uri == "/bookings/7"
        && r.header("accept") == Some("application/json")
        && r.header("authorization").is_none()));
    assert!(requests
        .iter()
        .any(|r| r.method == "POST" && r.body == br#"{"partner_id":3}"#));
}

#[tokio::test]
async fn a_saturated_target_fails_its_slos_and_is_named() {
    // 4 users and 50 ms answers take at most 80 arrivals a second; 400 a second are offered.
    let backend = Backend::start(Duration::from_millis(50), Arc::new(|_| text(200, "ok"))).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        &dir,
        "name: saturate\nbaseline_rps: 400\nmax_users: 4\nphases: [{name: flat, duration: 2s, rps: 1x}]\nrequests: [{name: get, path: /x}]\nslo: {p99: 200ms, error_rate: 1%}\n",
    );
    let out = load(args(&scenario, &dir, &[backend.url()])).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("target/flat: SATURATED:"), "{text}");
    assert!(
        text.contains("all 4 users were busy waiting for target"),
        "{text}"
    );
    assert!(
        text.contains("FAIL run (target): p99 > ") && text.contains("could not take"),
        "{text}"
    );
    assert!(text.contains("FAIL run (target): error_rate"), "{text}");
    let record: twinpeak_core::RunRecord = serde_json::from_value(record(&dir)).unwrap();
    let phase = &record.phases[0];
    assert!(phase.dropped_by_target() > 400, "{} dropped", phase.dropped);
    assert_eq!(phase.dropped_by_generator, 0, "every user was busy");
    assert_eq!(phase.users, 4);
    let by_second: u64 = phase.timeline.iter().map(|p| p.dropped).sum();
    assert_eq!(
        by_second,
        phase.dropped_by_target(),
        "drops by the second they were due"
    );
    let sent = phase.totals().unwrap().sent;
    assert_eq!(sent + phase.dropped, 800, "every arrival is accounted for");
    assert_eq!(backend.count() as u64, sent);
    let p99 = record.slo.iter().find(|v| v.metric == "p99").unwrap();
    assert!(p99.lower_bound && !p99.pass, "{p99:?}");
    let errors = record
        .slo
        .iter()
        .find(|v| v.metric == "error_rate")
        .unwrap();
    assert!(
        errors.actual > 40.0,
        "arrivals not taken count as errors: {errors:?}"
    );
    // The table's p99 column shows the bound.
    let row = text
        .lines()
        .find(|l| l.starts_with("target     flat"))
        .unwrap();
    assert!(
        row.split_whitespace().nth(7).unwrap().starts_with('>'),
        "{row}"
    );
}

#[tokio::test]
async fn failed_latencies_are_kept_apart_and_do_not_flatter_percentiles() {
    // About half the requests fail at once with a 503; the others succeed after 40 ms.
    let backend = Backend::start_with_delays(
        Arc::new(|r| {
            if r.uri == "/fast-fail" {
                Duration::ZERO
            } else {
                Duration::from_millis(40)
            }
        }),
        Arc::new(|r| {
            if r.uri == "/fast-fail" {
                text(503, "busy")
            } else {
                text(200, "ok")
            }
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        &dir,
        "name: failing\nbaseline_rps: 40\nmax_users: 16\nphases: [{name: flat, duration: 2s, rps: 1x}]\nrequests:\n  - {name: ok, path: /slow-ok}\n  - {name: fail, path: /fast-fail}\nslo: {p50: 20ms}\n",
    );
    let out = load(args(&scenario, &dir, &[backend.url()])).await;
    let text = output_text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "p50 of the successes is 40 ms: {text}"
    );
    let record: twinpeak_core::RunRecord = serde_json::from_value(record(&dir)).unwrap();
    let requests = &record.phases[0].requests;
    let (ok, fail) = (&requests["ok"], &requests["fail"]);
    assert_eq!(ok.corrected_us.len(), ok.sent);
    assert!(ok.failed_us.is_empty());
    assert_eq!(fail.failed_us.len(), fail.sent);
    assert_eq!(fail.failed_raw_us.len(), fail.sent);
    assert!(
        fail.corrected_us.is_empty(),
        "failures stay out of the latency SLOs"
    );
    assert_eq!(fail.errors["status"], fail.sent);
    assert!(
        ok.sent > 10 && fail.sent > 10,
        "{} and {}",
        ok.sent,
        fail.sent
    );
    let fast = twinpeak_core::LatencySummary::from_histogram(&fail.failed_us);
    let slow = twinpeak_core::LatencySummary::from_histogram(&ok.corrected_us);
    assert!(fast.p50_us < slow.p50_us, "{fast:?} vs {slow:?}");
    assert!(slow.p50_us >= 40_000, "{slow:?}");
}

/// A backend whose answers depend on the request alone: a search answers an id made from its
/// query, a booking the partner it was for.
async fn booking_backend() -> Backend {
    Backend::start(
        Duration::ZERO,
        Arc::new(|req| {
            let json = |body: String| {
                Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap()
            };
            if let Some(query) = req.uri.strip_prefix("/partners?n=") {
                return json(format!(r#"{{"id": "p{query}"}}"#));
            }
            if req.method == "POST" {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                let partner = body["partner"].as_str().unwrap_or("none");
                return json(format!(r#"{{"booking": "b-{partner}"}}"#));
            }
            text(200, "ok")
        }),
    )
    .await
}

#[tokio::test]
async fn the_same_seed_sends_the_same_requests_to_each_target_even_with_chains() {
    let legacy = booking_backend().await;
    let rebuilt = booking_backend().await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        &dir,
        r#"name: chains
baseline_rps: 60
max_users: 5
phases: [{name: only, duration: 2s, rps: 1x}]
requests:
  - {name: search, weight: 2, path: "/partners?n={{int 1 1000000}}", headers: {x-name: search}, extract: {partner: "$.id"}}
  - {name: book, weight: 1, method: POST, path: /bookings, headers: {x-name: book}, json: {partner: "{{partner}}", seats: "{{int 1 9}}"}, extract: {booking: "$.booking"}, after: search}
  - {name: status, weight: 1, path: "/bookings/{{booking}}", headers: {x-name: status}, after: book}
"#,
    );
    let out = load(args(
        &scenario,
        &dir,
        &[
            format!("legacy={}", legacy.url()),
            format!("rebuilt={}", rebuilt.url()),
        ],
    ))
    .await;
    assert!(out.status.success(), "{}", output_text(&out));
    let sent = |b: &Backend| {
        let mut all: Vec<(String, String, Vec<u8>)> = b
            .requests()
            .into_iter()
            .map(|r| (r.header("x-name").unwrap_or("").to_owned(), r.uri, r.body))
            .collect();
        all.sort();
        all
    };
    let (a, b) = (sent(&legacy), sent(&rebuilt));
    assert_eq!(a, b, "the same requests, names, paths and bodies, to both");
    let count = |name: &str| a.iter().filter(|(n, _, _)| n == name).count();
    // 120 arrivals: each sends a search; a book also sends its search, a status both before it.
    assert_eq!(count("search"), 120);
    assert_eq!(count("book"), a.len() - 120 - count("status"));
    assert!(
        count("status") > 10 && count("book") > count("status"),
        "{a:?}"
    );
    for (name, uri, _) in &a {
        if name == "status" {
            let partner = uri.strip_prefix("/bookings/b-p").expect("a booked partner");
            assert!(partner.parse::<u64>().is_ok(), "{uri}");
        }
    }
}

#[tokio::test]
async fn sigterm_stops_a_run_and_keeps_its_record() {
    let backend = Backend::fixed("ok").await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        &dir,
        "name: long\nbaseline_rps: 50\nmax_users: 4\nphases: [{name: flat, duration: 60s, rps: 1x}]\nrequests: [{name: get, path: /x}]\n",
    );
    let child = spawn_load(&args(&scenario, &dir, &[backend.url()]));
    let pid = child.id().to_string();
    assert!(
        eventually(Duration::from_secs(20), || async { backend.count() >= 20 }).await,
        "the run never got going"
    );
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let out = finish(child, Duration::from_secs(20)).await;
    assert_eq!(out.status.code(), Some(143), "{}", output_text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it stops promptly"
    );
    assert!(
        output_text(&out).contains("SIGTERM"),
        "{}",
        output_text(&out)
    );
    let record = record_if_any(&dir).expect("the record is kept");
    assert_eq!(record.interrupted.as_deref(), Some("SIGTERM"));
    assert!(!record.partial, "the final record, not a checkpoint");
    let sent = record.phases[0].totals().unwrap().sent;
    assert!(sent >= 20 && sent as usize <= backend.count(), "{sent}");
}

#[tokio::test]
async fn a_run_checkpoints_its_record_while_it_goes() {
    let backend = Backend::fixed("ok").await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        &dir,
        "name: long\nbaseline_rps: 50\nmax_users: 4\nphases: [{name: flat, duration: 60s, rps: 1x}]\nrequests: [{name: get, path: /x}]\n",
    );
    let mut a = args(&scenario, &dir, &[backend.url()]);
    a.extend(["--checkpoint-every".into(), "300ms".into()]);
    let child = spawn_load(&a);
    let checkpointed = eventually(Duration::from_secs(20), || async {
        record_if_any(&dir).is_some_and(|r| {
            r.partial
                && r.phases
                    .first()
                    .and_then(|p| p.totals().ok())
                    .is_some_and(|t| t.sent >= 20)
        })
    })
    .await;
    // Killed outright: no chance to write a final record.
    let out = finish(child, Duration::ZERO).await;
    assert!(
        checkpointed,
        "no checkpoint with traffic: {}",
        output_text(&out)
    );
    let record = record_if_any(&dir).expect("the last checkpoint is whole");
    assert!(record.partial && record.slo.is_empty());
    assert_eq!(record.phases[0].name, "flat");
}

#[tokio::test]
async fn an_unwritable_out_is_refused_before_any_traffic() {
    let backend = Backend::fixed("ok").await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        &dir,
        "name: x\nbaseline_rps: 10\nmax_users: 1\nphases: [{name: a, duration: 1s, rps: 1x}]\nrequests: [{name: g, path: /x}]\n",
    );
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let out = load(vec![
        scenario,
        "--target".into(),
        backend.url(),
        "--out".into(),
        file.join("out").display().to_string(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--out") && err.contains("not writable"),
        "{err}"
    );
    assert_eq!(backend.count(), 0, "no traffic");
}
