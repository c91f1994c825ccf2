//! `twinpeak load --replay --compare` end to end: answers recorded from one backend, replayed
//! against another that changes one field in a quarter of its answers, are compared by the
//! proxy's diff engine; the run record and the report name that field at that rate, and a
//! replay against the recorded backend itself finds nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::Response;
use twinpeak_core::recording::{
    encode_member, segment_name, RecordedBody, RecordedExchange, RecordedResponse,
};
use twinpeak_core::RunRecord;

/// Requests recorded.
const RECORDED: u64 = 400;

/// A booking API whose answer to `/bookings/N` is N's booking; with `changed`, the price of
/// every fourth booking differs.
async fn bookings(changed: bool) -> Backend {
    Backend::start(
        Duration::ZERO,
        Arc::new(move |r: &Received| {
            let id: u64 = r
                .uri
                .strip_prefix("/bookings/")
                .and_then(|id| id.parse().ok())
                .unwrap_or(0);
            let price = if changed && id.is_multiple_of(4) {
                11
            } else {
                10
            };
            let body = format!(r#"{{"id":{id},"price":{price},"status":"confirmed"}}"#);
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        }),
    )
    .await
}

/// Asks `legacy` for every booking and records each request with its answer, 5 ms apart.
async fn record(legacy: &Backend, dir: &Path) {
    let client = client();
    let mut exchanges = Vec::new();
    for i in 0..RECORDED {
        let path = format!("/bookings/{i}");
        let answer = client
            .get(format!("{}{path}", legacy.url()))
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let headers = answer
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let body = answer.text().await.unwrap();
        exchanges.push(RecordedExchange {
            at_us: 1_767_225_600_000_000 + i * 5_000,
            request_id: format!("r{i}"),
            route: "/bookings/{id}".into(),
            method: "GET".into(),
            path,
            headers: vec![("accept".into(), "application/json".into())],
            body: RecordedBody::default(),
            response: Some(RecordedResponse {
                status,
                headers,
                body: RecordedBody {
                    data: body,
                    ..RecordedBody::default()
                },
                latency_us: 500,
            }),
        });
    }
    std::fs::create_dir_all(dir).unwrap();
    let mut bytes = Vec::new();
    for member in exchanges.chunks(50) {
        bytes.extend(encode_member(member).unwrap());
    }
    std::fs::write(dir.join(segment_name(1_767_225_600_000, 0)), bytes).unwrap();
}

fn output_text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Replays `recording` against `target` as `rebuilt` with `--compare`; the run record.
async fn replay_compare(recording: &Path, target: &Backend, out: &Path) -> RunRecord {
    let args = vec![
        "load".to_string(),
        "--quiet".into(),
        "--replay".into(),
        recording.display().to_string(),
        "--target".into(),
        format!("rebuilt={}", target.url()),
        "--speed".into(),
        "4x".into(),
        // Every arrival is sent, however busy the machine: each one is compared.
        "--late-limit".into(),
        "10s".into(),
        "--compare".into(),
        "--out".into(),
        out.display().to_string(),
    ];
    let run = twinpeak(args).await;
    assert!(run.status.success(), "{}", output_text(&run));
    RunRecord::read(out.join("run.json")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_field_is_reported_at_its_rate_and_identical_answers_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("recording");
    let legacy = bookings(false).await;
    record(&legacy, &recording).await;
    let rebuilt = bookings(true).await;

    let out = dir.path().join("changed");
    let record = replay_compare(&recording, &rebuilt, &out).await;
    let route = &record.targets[0].comparison["/bookings/{id}"];
    assert_eq!(route.compared, RECORDED, "{route:?}");
    let price = route.fields.iter().find(|f| f.path == "$.price").unwrap();
    assert_eq!(price.count, RECORDED / 4, "{price:?}");
    assert_eq!(route.fields.len(), 1, "only the price differs: {route:?}");
    assert_eq!(route.different, price.count);

    let report_dir = dir.path().join("report");
    let report = twinpeak(vec![
        "report".into(),
        out.join("run.json").display().to_string(),
        "--out".into(),
        report_dir.display().to_string(),
    ])
    .await;
    assert!(report.status.success(), "{}", output_text(&report));
    let markdown = std::fs::read_to_string(report_dir.join("report.md")).unwrap();
    let section = markdown
        .split("## Replayed traffic against the recorded answers: rebuilt")
        .nth(1)
        .unwrap_or_else(|| panic!("no replay section in\n{markdown}"));
    let price_row = section
        .lines()
        .find(|l| l.contains("`$.price`"))
        .unwrap_or_else(|| panic!("no $.price row in\n{section}"));
    let shown: f64 = price_row
        .trim_end_matches(['|', ' '])
        .rsplit('|')
        .next()
        .and_then(|cell| cell.trim().strip_suffix('%'))
        .and_then(|rate| rate.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {price_row}"));
    assert!((shown - 25.0).abs() < 3.0, "{price_row}");

    let same = replay_compare(&recording, &legacy, &dir.path().join("same")).await;
    let route = &same.targets[0].comparison["/bookings/{id}"];
    assert_eq!(route.compared, RECORDED, "{route:?}");
    assert_eq!((route.identical, route.different), (route.compared, 0));
    assert!(route.fields.is_empty(), "{route:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comparison_configuration_that_does_not_load_stops_before_any_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("recording");
    let legacy = bookings(false).await;
    record(&legacy, &recording).await;
    let before = legacy.count();
    let config: PathBuf = dir.path().join("proxy.yaml");
    std::fs::write(&config, "listen: [nope\n").unwrap();
    let run = twinpeak(vec![
        "load".into(),
        "--quiet".into(),
        "--replay".into(),
        recording.display().to_string(),
        "--target".into(),
        legacy.url(),
        "--compare".into(),
        "--config".into(),
        config.display().to_string(),
    ])
    .await;
    assert_eq!(run.status.code(), Some(2), "{}", output_text(&run));
    assert!(
        output_text(&run).contains("proxy.yaml"),
        "{}",
        output_text(&run)
    );
    assert_eq!(legacy.count(), before);
}
