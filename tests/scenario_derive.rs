//! `twinpeak scenario from-recording` end to end: a recording with a known route mix becomes
//! a scenario that passes `twinpeak load --check` as written, and whose run against an
//! in-process backend sends the recorded mix.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use common::*;
use twinpeak_core::recording::{
    encode_member, segment_name, RecordedBody, RecordedExchange, RecordedResponse,
};

/// 6,000 requests at 1,000/s: 60% partner searches, 30% booking reads (recorded under
/// `other`), 10% booking writes with a JSON body.
fn write_recording(dir: &Path) {
    let exchanges: Vec<RecordedExchange> = (0..6_000u64)
        .map(|i| {
            let (route, method, path, body) = match i % 10 {
                0..=5 => (
                    "/partners",
                    "GET",
                    format!("/partners?city=city{}", i % 13),
                    "",
                ),
                6..=8 => ("other", "GET", format!("/bookings/{}", 5_000 + i % 97), ""),
                _ => (
                    "/bookings",
                    "POST",
                    "/bookings".to_string(),
                    r#"{"slot":"morning"}"#,
                ),
            };
            RecordedExchange {
                at_us: 1_760_000_000_000_000 + i * 1_000,
                request_id: format!("r{i}"),
                route: route.into(),
                method: method.into(),
                path,
                headers: vec![("cookie".into(), "[redacted]".into())],
                body: RecordedBody {
                    data: body.into(),
                    ..RecordedBody::default()
                },
                response: Some(RecordedResponse {
                    status: 200,
                    headers: Vec::new(),
                    body: RecordedBody::default(),
                    latency_us: 800,
                }),
            }
        })
        .collect();
    for (seq, part) in exchanges.chunks(2_000).enumerate() {
        let name = segment_name(part[0].at_us / 1_000, seq as u64);
        std::fs::write(dir.join(name), encode_member(part).unwrap()).unwrap();
    }
}

fn twinpeak(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twinpeak"))
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_derived_scenario_checks_as_written_and_sends_the_recorded_mix() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("recording");
    std::fs::create_dir(&recording).unwrap();
    write_recording(&recording);
    let scenario = dir.path().join("holiday.yaml");
    let derived = twinpeak(&[
        "scenario",
        "from-recording",
        recording.to_str().unwrap(),
        "--out",
        scenario.to_str().unwrap(),
        "--peak",
        "1x",
        "--ramp",
        "1s",
        "--hold",
        "1s",
    ]);
    assert!(derived.status.success(), "{}", text(&derived));
    assert!(
        text(&derived).contains("60.00%  GET /partners"),
        "{}",
        text(&derived)
    );
    let yaml = std::fs::read_to_string(&scenario).unwrap();
    assert!(
        !yaml.contains("redacted") && !yaml.contains("cookie"),
        "{yaml}"
    );
    assert!(yaml.contains("{{get_bookings_id_id}}"), "{yaml}");

    let check = twinpeak(&["load", scenario.to_str().unwrap(), "--check"]);
    assert!(check.status.success(), "{}", text(&check));

    let backend = Backend::fixed("{}").await;
    let runs = dir.path().join("runs");
    let args = [
        "load".to_string(),
        scenario.display().to_string(),
        "--target".into(),
        backend.url(),
        "--scale".into(),
        "0.6".into(),
        "--seed".into(),
        "7".into(),
        "--late-limit".into(),
        "5s".into(),
        "--out".into(),
        runs.display().to_string(),
        "--quiet".into(),
    ];
    let run = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_twinpeak"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(run.status.success(), "{}", text(&run));

    let received = backend.requests();
    assert!(received.len() > 3_000, "{} requests", received.len());
    let mut mix: BTreeMap<&str, usize> = BTreeMap::new();
    for request in &received {
        let route = match (request.method.as_str(), request.uri.as_str()) {
            ("GET", uri) if uri.starts_with("/partners?city=city") => "partners",
            ("GET", uri) => {
                let id: u64 = uri.strip_prefix("/bookings/").unwrap().parse().unwrap();
                assert!((5_000..5_097).contains(&id), "{uri} was not recorded");
                "booking"
            }
            ("POST", "/bookings") => {
                assert_eq!(request.body, br#"{"slot":"morning"}"#);
                "book"
            }
            other => panic!("unexpected request {other:?}"),
        };
        *mix.entry(route).or_default() += 1;
    }
    for (route, recorded) in [("partners", 60.0), ("booking", 30.0), ("book", 10.0)] {
        let share = mix[route] as f64 * 100.0 / received.len() as f64;
        assert!(
            (share - recorded).abs() <= 2.0,
            "{route}: {share:.2}% sent, {recorded}% recorded ({mix:?})"
        );
    }
}
