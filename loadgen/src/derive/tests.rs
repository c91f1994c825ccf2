use super::*;
use twinpeak_core::recording::{encode_member, segment_name, RecordedBody, RecordedResponse};

/// `n` exchanges, 100 per second, in a 60/30/10 mix of partner searches, booking reads and
/// booking writes, the last two routes recorded under `other`.
fn recording(dir: &Path, n: u64) {
    let exchanges: Vec<RecordedExchange> = (0..n)
        .map(|i| {
            let (route, method, path, body) = match i % 10 {
                0..=5 => (
                    "/partners",
                    "GET",
                    format!("/partners?city=c{}&page={}", i % 7, i % 3),
                    String::new(),
                ),
                6..=8 => (
                    "other",
                    "GET",
                    format!("/bookings/{}", 1000 + i),
                    String::new(),
                ),
                _ => (
                    "/bookings",
                    "POST",
                    "/bookings".into(),
                    format!(r#"{{"slot":{i}}}"#),
                ),
            };
            RecordedExchange {
                at_us: 1_700_000_000_000_000 + i * 10_000,
                request_id: String::new(),
                route: route.into(),
                method: method.into(),
                path,
                headers: vec![("authorization".into(), "[redacted]".into())],
                body: RecordedBody {
                    data: body,
                    ..RecordedBody::default()
                },
                response: Some(RecordedResponse {
                    status: if method == "POST" { 201 } else { 200 },
                    headers: Vec::new(),
                    body: RecordedBody::default(),
                    latency_us: 5_000,
                }),
            }
        })
        .collect();
    let (first, second) = exchanges.split_at(exchanges.len() / 2);
    for (seq, part) in [first, second].into_iter().enumerate() {
        let mut bytes = encode_member(part).unwrap();
        if seq == 1 {
            // A write torn after the gzip header at the end of the last segment.
            let torn = encode_member(part).unwrap();
            bytes.extend_from_slice(&torn[..12]);
        }
        std::fs::write(dir.join(segment_name(seq as u64, seq as u64)), bytes).unwrap();
    }
}

fn options() -> DeriveOptions {
    DeriveOptions {
        peak: 10.0,
        ramp: Duration::from_secs(60),
        hold: Duration::from_secs(120),
        data_dir: None,
    }
}

#[test]
fn the_mix_rate_shape_and_values_of_a_recording_become_a_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let recorded = dir.path().join("rec");
    std::fs::create_dir(&recorded).unwrap();
    recording(&recorded, 1000);
    let out = dir.path().join("holiday.yaml");
    let derived = derive_scenario(&recorded, &out, &options()).unwrap();
    assert_eq!(derived.torn.len(), 1);
    let scenario = &derived.scenario;
    assert!(
        (scenario.baseline_rps - 100.0).abs() < 0.5,
        "{}",
        scenario.baseline_rps
    );
    let weights: Vec<(&str, u32)> = scenario
        .requests
        .iter()
        .map(|r| (r.name.as_str(), r.weight))
        .collect();
    assert_eq!(weights[0], ("get_partners", 600));
    assert_eq!(weights[1], ("get_bookings_id", 300));
    assert_eq!(weights[2], ("post_bookings", 100));
    assert_eq!(
        scenario.requests[0].path.as_str(),
        "/partners?city={{get_partners_city}}&page={{get_partners_page}}"
    );
    assert_eq!(
        scenario.requests[1].path.as_str(),
        "/bookings/{{get_bookings_id_id}}"
    );
    let post = &scenario.requests[2];
    assert_eq!(post.method, http::Method::POST);
    assert!(post.json.is_some() && post.headers.is_empty());
    assert_eq!(post.expect_status, None);
    // Ten stretches at the recorded rate, then the ramp and the peak.
    let names: Vec<&str> = scenario.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names.len(), 12);
    assert_eq!(
        (names[0], names[10], names[11]),
        ("recorded-1", "ramp", "peak")
    );
    for phase in &scenario.phases[..10] {
        assert!((phase.rps.start - 1.0).abs() < 0.05, "{phase:?}");
    }
    assert_eq!(scenario.phases[11].rps.start, 10.0);
    let csv = std::fs::read_to_string(dir.path().join("holiday-data/get_bookings_id.csv")).unwrap();
    assert!(csv.starts_with("id\n1006\n1007\n1008\n1016\n"), "{csv}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("# Derived from the recording"));
    assert!(
        !text.contains("redacted"),
        "no recorded header is carried over"
    );
}

#[test]
fn a_recording_without_requests_or_with_a_bad_peak_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.yaml");
    let error = derive_scenario(dir.path(), &out, &options()).unwrap_err();
    assert!(error.to_string().contains("holds no request"), "{error}");
    let bad = DeriveOptions {
        peak: 0.0,
        ..options()
    };
    assert!(derive_scenario(dir.path(), &out, &bad).is_err());
    let missing = derive_scenario(&dir.path().join("nope"), &out, &options()).unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");
}

#[test]
fn a_recording_spanning_more_than_a_load_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut far = RecordedExchange {
        at_us: 0,
        request_id: String::new(),
        route: "other".into(),
        method: "GET".into(),
        path: "/".into(),
        headers: Vec::new(),
        body: RecordedBody::default(),
        response: None,
    };
    let mut bytes = encode_member(std::slice::from_ref(&far)).unwrap();
    far.at_us = u64::MAX;
    far.method = "OPTIONS".into();
    bytes.extend(encode_member(std::slice::from_ref(&far)).unwrap());
    far.method = "GET".into();
    bytes.extend(encode_member(&[far]).unwrap());
    let segment = dir.path().join(segment_name(0, 0));
    std::fs::write(&segment, bytes).unwrap();
    let out = dir.path().join("s.yaml");
    let error = derive_scenario(&segment, &out, &options()).unwrap_err();
    assert!(
        error.to_string().contains("longer than a load run"),
        "{error}"
    );
}
