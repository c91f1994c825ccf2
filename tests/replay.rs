//! `twinpeak load --replay` of recordings end to end: recordings written in the proxy's format,
//! replayed by the real binary against in-process backends on loopback that note when each
//! request arrived.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use twinpeak_core::recording::{
    encode_member, segment_name, RecordedBody, RecordedExchange, RecordingManifest, MANIFEST_FILE,
    RECORDING_SCHEMA,
};

/// When the recordings start: 2026-01-01T00:00:00Z, in microseconds.
const START_US: u64 = 1_767_225_600_000_000;

/// A backend that notes each request's arrival instant beside what it received.
struct TimedBackend {
    backend: Backend,
    arrivals: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl TimedBackend {
    async fn start() -> TimedBackend {
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let log = arrivals.clone();
        let backend = Backend::start(
            Duration::ZERO,
            Arc::new(move |r: &Received| {
                log.lock()
                    .unwrap()
                    .push((Instant::now(), format!("{} {}", r.method, r.uri)));
                if r.uri == "/login" {
                    return text(200, r#"{"token":"fresh-token-1"}"#);
                }
                text(200, "ok")
            }),
        )
        .await;
        TimedBackend { backend, arrivals }
    }

    fn url(&self) -> String {
        self.backend.url()
    }

    /// `METHOD URI` of each request received, with its arrival instant, in arrival order.
    fn arrivals(&self) -> Vec<(Instant, String)> {
        let mut arrivals = self.arrivals.lock().unwrap().clone();
        arrivals.sort_by_key(|(at, _)| *at);
        arrivals
    }
}

fn exchange(at_us: u64, method: &str, route: &str, path: &str) -> RecordedExchange {
    RecordedExchange {
        at_us,
        request_id: String::new(),
        route: route.to_owned(),
        method: method.to_owned(),
        path: path.to_owned(),
        headers: vec![("accept".to_owned(), "application/json".to_owned())],
        body: RecordedBody::default(),
        response: None,
    }
}

/// `count` GETs of distinct paths whose gaps vary from 4 to 28 ms (16 ms on average).
fn varied_gets(count: u64) -> Vec<RecordedExchange> {
    let mut at = START_US;
    (0..count)
        .map(|i| {
            let record = exchange(at, "GET", "/bookings/{id}", &format!("/bookings/{i}"));
            at += 4_000 + (i * 7_919 % 13) * 2_000;
            record
        })
        .collect()
}

/// Writes `records` into `dir` as segments of `per_segment` records, each of members of ten
/// records, with a manifest naming `primary` when one is given.
fn write_recording(
    dir: &Path,
    records: &[RecordedExchange],
    per_segment: usize,
    primary: Option<&str>,
) {
    std::fs::create_dir_all(dir).unwrap();
    for (seq, segment) in records.chunks(per_segment).enumerate() {
        let mut bytes = Vec::new();
        for member in segment.chunks(10) {
            bytes.extend(encode_member(member).unwrap());
        }
        let name = segment_name(segment[0].at_us / 1_000, seq as u64);
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    if let Some(primary) = primary {
        let manifest = RecordingManifest {
            schema: RECORDING_SCHEMA.to_owned(),
            primary: primary.to_owned(),
            started_at: "2026-01-01T00:00:00Z".to_owned(),
            percent: 100.0,
            answers: false,
        };
        std::fs::write(
            dir.join(MANIFEST_FILE),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
    }
}

/// Runs `twinpeak load --quiet ARGS` off the async runtime's threads.
async fn load(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_twinpeak"))
            .arg("load")
            .arg("--quiet")
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// `--replay DIR --target URL --out DIR/out-NAME --late-limit 5s` and `more`: what is sent is
/// checked here, so a machine that stalls now and then sends late rather than drops.
fn replay_args(recording: &Path, target: &str, name: &str, more: &[&str]) -> Vec<String> {
    let out = recording.parent().unwrap().join(format!("out-{name}"));
    let mut args: Vec<String> = vec![
        "--replay".into(),
        recording.display().to_string(),
        "--target".into(),
        target.to_owned(),
        "--out".into(),
        out.display().to_string(),
        "--late-limit".into(),
        "5s".into(),
    ];
    args.extend(more.iter().map(|s| (*s).to_owned()));
    args
}

fn output_text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The multiset of `METHOD PATH` of `records`.
fn multiset<'a>(requests: impl Iterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for request in requests {
        *counts.entry(request.to_owned()).or_default() += 1;
    }
    counts
}

fn recorded_multiset(records: &[RecordedExchange]) -> BTreeMap<String, usize> {
    let lines: Vec<String> = records
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    multiset(lines.iter().map(String::as_str))
}

/// When the backend saw each of `records`, by its unique `METHOD PATH`.
fn seen_at(records: &[RecordedExchange], arrivals: &[(Instant, String)]) -> Vec<Instant> {
    let at: BTreeMap<&str, Instant> = arrivals.iter().map(|(t, r)| (r.as_str(), *t)).collect();
    records
        .iter()
        .map(|r| at[format!("{} {}", r.method, r.path).as_str()])
        .collect()
}

/// How far each recorded gap between consecutive requests is from the gap the backend saw,
/// in µs, sorted.
fn gap_errors_us(records: &[RecordedExchange], arrivals: &[(Instant, String)]) -> Vec<u64> {
    let seen = seen_at(records, arrivals);
    let mut errors: Vec<u64> = (1..records.len())
        .map(|k| {
            let recorded = (records[k].at_us - records[k - 1].at_us) as i64;
            let gap = seen[k].saturating_duration_since(seen[k - 1]).as_micros() as i64;
            (gap - recorded).unsigned_abs()
        })
        .collect();
    errors.sort_unstable();
    errors
}

/// The replay's pace against the recording's: the median slope of recorded time over the
/// time the backend saw, taken over every pair of requests (Theil–Sen; 10 for ten times as
/// fast). Neither one late request nor a run of them delayed by a busy machine moves it much,
/// as they would a least-squares fit.
fn pace(records: &[RecordedExchange], arrivals: &[(Instant, String)]) -> f64 {
    let seen = seen_at(records, arrivals);
    let x: Vec<f64> = seen
        .iter()
        .map(|t| t.saturating_duration_since(seen[0]).as_secs_f64())
        .collect();
    let y: Vec<f64> = records
        .iter()
        .map(|r| (r.at_us - records[0].at_us) as f64 / 1e6)
        .collect();
    let mut slopes = Vec::with_capacity(x.len() * x.len() / 2);
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            if x[j] != x[i] {
                slopes.push((y[j] - y[i]) / (x[j] - x[i]));
            }
        }
    }
    slopes.sort_by(f64::total_cmp);
    slopes[slopes.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_replays_its_requests_and_gaps_at_1x_and_ten_times_faster_at_10x() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("rec");
    let records = varied_gets(300);
    write_recording(&recording, &records, 120, None);
    let target = TimedBackend::start().await;

    let out = load(replay_args(&recording, &target.url(), "1x", &[])).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let arrivals = target.arrivals();
    assert_eq!(
        multiset(arrivals.iter().map(|(_, r)| r.as_str())),
        recorded_multiset(&records)
    );
    // Timing is asserted with a margin here (a busy machine delays a thread by a time slice
    // now and then); the README quotes the figures measured on a quiet one.
    let errors_us = gap_errors_us(&records, &arrivals);
    let (p50, p99) = (
        errors_us[errors_us.len() / 2],
        errors_us[errors_us.len() * 99 / 100],
    );
    eprintln!("1x replay: gap error p50 {p50} µs, p99 {p99} µs");
    assert!(
        p50 <= 2_000 && p99 <= 25_000,
        "gap error p50 {p50} µs, p99 {p99} µs"
    );
    let slow = pace(&records, &arrivals);
    assert!((slow - 1.0).abs() <= 0.01, "1x replay at {slow:.4}x");

    let before = target.arrivals().len();
    let out = load(replay_args(
        &recording,
        &target.url(),
        "10x",
        &["--speed", "10x"],
    ))
    .await;
    assert!(out.status.success(), "{}", output_text(&out));
    let fast = &target.arrivals()[before..];
    assert_eq!(fast.len(), records.len());
    let fast = pace(&records, fast);
    eprintln!("10x replay: {fast:.4}x the recorded rate");
    assert!(
        (fast - 10.0).abs() <= 10.0 * 0.02,
        "10x replay at {fast:.3}x the recorded rate"
    );
    let record = twinpeak_core::RunRecord::read(dir.path().join("out-10x/run.json")).unwrap();
    assert_eq!(record.phases[0].name, "replay");
    assert_eq!(record.phases[0].dropped, 0);
}

#[tokio::test]
async fn a_torn_last_segment_is_replayed_up_to_its_last_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("rec");
    let records = varied_gets(60);
    write_recording(&recording, &records[..40], 20, None);
    // The last segment: a whole member of 10, then a member cut short by a crash.
    let mut last = encode_member(&records[40..50]).unwrap();
    let torn = encode_member(&records[50..]).unwrap();
    last.extend_from_slice(&torn[..torn.len() / 2]);
    let name = segment_name(records[40].at_us / 1_000, 2);
    std::fs::write(recording.join(name), last).unwrap();
    let target = TimedBackend::start().await;
    let out = load(replay_args(
        &recording,
        &target.url(),
        "torn",
        &["--speed", "20x"],
    ))
    .await;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("torn write") && text.contains("read up to the last whole record"),
        "{text}"
    );
    let arrivals = target.arrivals();
    assert_eq!(
        multiset(arrivals.iter().map(|(_, r)| r.as_str())),
        recorded_multiset(&records[..50])
    );
}

#[tokio::test]
async fn filters_pick_and_rewrites_change_what_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("rec");
    let mut records = Vec::new();
    for i in 0..30u64 {
        let at = START_US + i * 10_000;
        let mut r = match i % 3 {
            0 => exchange(at, "GET", "/v1/bookings/{id}", &format!("/v1/bookings/{i}")),
            1 => exchange(at, "GET", "/v1/search", "/v1/search?q=x"),
            _ => exchange(
                at,
                "HEAD",
                "/v1/bookings/{id}",
                &format!("/v1/bookings/{i}"),
            ),
        };
        r.headers.push(("x-debug".into(), "1".into()));
        r.headers.push(("x-env".into(), "prod".into()));
        r.headers.push(("host".into(), "prod.example".into()));
        records.push(r);
    }
    write_recording(&recording, &records, 100, None);
    let target = TimedBackend::start().await;
    let out = load(replay_args(
        &recording,
        &target.url(),
        "filters",
        &[
            "--speed",
            "5x",
            "--route",
            "/v1/bookings/{id}",
            "--method",
            "get",
            "--until",
            "+200ms",
            "--host",
            "staging.example",
            "--set-header",
            "X-Env: staging",
            "--remove-header",
            "x-debug",
            "--rewrite-path",
            r"^/v1/bookings/(\d+)=>/api/v2/bookings/$1",
        ],
    ))
    .await;
    assert!(out.status.success(), "{}", output_text(&out));
    let received = target.backend.requests();
    let uris: Vec<&str> = received.iter().map(|r| r.uri.as_str()).collect();
    // GETs of bookings recorded in the first 200 ms: 0, 3, ..., 18.
    let mut sorted = uris.clone();
    sorted.sort_by_key(|u| u.rsplit('/').next().unwrap().parse::<u32>().unwrap());
    assert_eq!(
        sorted,
        (0..=18)
            .step_by(3)
            .map(|i| format!("/api/v2/bookings/{i}"))
            .collect::<Vec<_>>()
    );
    for r in &received {
        assert_eq!(r.method, "GET");
        assert_eq!(r.header("host"), Some("staging.example"));
        assert_eq!(r.header("x-env"), Some("staging"));
        assert_eq!(r.header("x-debug"), None);
        assert_eq!(r.header("accept"), Some("application/json"));
    }
}

#[tokio::test]
async fn recorded_credentials_are_never_sent_and_auth_supplies_fresh_ones() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("rec");
    let records: Vec<RecordedExchange> = (0..20u64)
        .map(|i| {
            let mut r = exchange(START_US + i * 5_000, "GET", "/me", "/me");
            r.headers
                .push(("Authorization".into(), "[redacted]".into()));
            r.headers
                .push(("Cookie".into(), "session=recorded-cookie".into()));
            r.headers
                .push(("Proxy-Authorization".into(), "Basic cmVjb3JkZWQ=".into()));
            r
        })
        .collect();
    write_recording(&recording, &records, 100, None);
    let target = TimedBackend::start().await;

    let out = load(replay_args(
        &recording,
        &target.url(),
        "none",
        &["--speed", "5x"],
    ))
    .await;
    assert!(out.status.success(), "{}", output_text(&out));
    let received = target.backend.requests();
    assert_eq!(received.len(), 20);
    for r in &received {
        for name in ["authorization", "cookie", "proxy-authorization"] {
            assert_eq!(r.header(name), None, "{name} sent as recorded");
        }
    }

    let header_file = dir.path().join("auth.txt");
    std::fs::write(&header_file, "Authorization: Bearer from-the-file\n").unwrap();
    let auth = format!("header-file:{}", header_file.display());
    let out = load(replay_args(
        &recording,
        &target.url(),
        "file",
        &["--speed", "5x", "--auth", &auth],
    ))
    .await;
    assert!(out.status.success(), "{}", output_text(&out));
    let received = target.backend.requests();
    assert_eq!(received.len(), 40);
    for r in &received[20..] {
        assert_eq!(r.header("authorization"), Some("Bearer from-the-file"));
        assert_eq!(r.header("cookie"), None);
    }

    let spec = dir.path().join("login.yaml");
    std::fs::write(
        &spec,
        "method: POST\npath: /login\njson: {user: load, password: load}\nextract: $.token\nheader: \"Authorization: Bearer {{token}}\"\n",
    )
    .unwrap();
    let auth = format!("login:{}", spec.display());
    let out = load(replay_args(
        &recording,
        &target.url(),
        "login",
        &["--speed", "5x", "--auth", &auth],
    ))
    .await;
    assert!(out.status.success(), "{}", output_text(&out));
    let received = target.backend.requests();
    let (logins, replayed): (Vec<_>, Vec<_>) =
        received[40..].iter().partition(|r| r.uri == "/login");
    assert!(!logins.is_empty());
    let login_body = serde_json::json!({"user": "load", "password": "load"});
    assert!(logins.iter().all(|l| l.method == "POST"
        && serde_json::from_slice::<serde_json::Value>(&l.body).unwrap() == login_body));
    assert_eq!(replayed.len(), 20);
    for r in replayed {
        assert_eq!(r.header("authorization"), Some("Bearer fresh-token-1"));
    }
}

#[tokio::test]
async fn writes_and_the_recorded_primary_are_refused_without_their_flags() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("rec");
    let target = TimedBackend::start().await;
    let port = target.backend.addr.port();
    let mut records = varied_gets(10);
    records[4].method = "POST".into();
    records[4].body = RecordedBody {
        data: r#"{"partner_id":3}"#.into(),
        ..RecordedBody::default()
    };
    records[7].method = "DELETE".into();
    write_recording(
        &recording,
        &records,
        100,
        Some(&format!("http://localhost:{port}")),
    );
    let url = target.url();

    let out = load(replay_args(&recording, &url, "writes", &[])).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("the replay holds 2 write(s) (DELETE 1, POST 1)")
            && text.contains("--allow-writes"),
        "{text}"
    );
    let out = load(replay_args(
        &recording,
        &url,
        "primary",
        &["--allow-writes"],
    ))
    .await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("is the primary") && text.contains("--i-know-this-is-the-recorded-primary"),
        "{text}"
    );
    // Reads only, still aimed at the primary: refused as well.
    let out = load(replay_args(&recording, &url, "reads", &["--method", "GET"])).await;
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert_eq!(target.backend.count(), 0, "nothing is sent when refused");

    let out = load(replay_args(
        &recording,
        &url,
        "both",
        &[
            "--allow-writes",
            "--i-know-this-is-the-recorded-primary",
            "--speed",
            "4x",
        ],
    ))
    .await;
    assert!(out.status.success(), "{}", output_text(&out));
    let received = target.backend.requests();
    assert_eq!(received.len(), 10);
    assert!(received
        .iter()
        .any(|r| r.method == "POST" && r.body == br#"{"partner_id":3}"#));
    assert!(received.iter().any(|r| r.method == "DELETE"));
}

#[tokio::test]
async fn a_looped_replay_starts_over_until_its_duration() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("rec");
    // 20 requests 10 ms apart: a period of 200 ms, ten periods in 2 s.
    let records: Vec<RecordedExchange> = (0..20u64)
        .map(|i| exchange(START_US + i * 10_000, "GET", "/x/{n}", &format!("/x/{i}")))
        .collect();
    write_recording(&recording, &records, 100, None);
    let target = TimedBackend::start().await;
    let out = load(replay_args(
        &recording,
        &target.url(),
        "loop",
        &["--loop", "--duration", "2s"],
    ))
    .await;
    assert!(out.status.success(), "{}", output_text(&out));
    let arrivals = target.arrivals();
    let counts = multiset(arrivals.iter().map(|(_, r)| r.as_str()));
    assert_eq!(arrivals.len(), 200, "{counts:?}");
    assert!(counts.values().all(|&n| n == 10), "{counts:?}");
    let out = load(replay_args(
        &recording,
        &target.url(),
        "noloop",
        &["--loop"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(2), "--loop needs --duration");
}

#[tokio::test]
async fn workers_split_a_replay_and_send_the_recording_once() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("rec");
    let records = varied_gets(90);
    write_recording(&recording, &records, 40, None);
    let target = TimedBackend::start().await;
    let mut runs = Vec::new();
    for k in 0..3 {
        let worker = format!("{k}/3");
        let name = format!("worker-{k}");
        let args = replay_args(
            &recording,
            &target.url(),
            &name,
            &["--speed", "4x", "--worker", &worker, "--seed", "7"],
        );
        runs.push(tokio::spawn(load(args)));
    }
    for run in runs {
        let out = run.await.unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
    }
    // Each worker first asks the target's clock (`HEAD /`) to note its offset.
    let arrivals = target.arrivals();
    assert_eq!(
        multiset(
            arrivals
                .iter()
                .map(|(_, r)| r.as_str())
                .filter(|r| *r != "HEAD /")
        ),
        recorded_multiset(&records)
    );
    let check = load(replay_args(
        &recording,
        &target.url(),
        "check",
        &["--check", "--worker", "1/3", "--method", "GET"],
    ))
    .await;
    let text = output_text(&check);
    assert!(check.status.success(), "{text}");
    assert!(
        text.contains("replay: 90 of 90 recorded request(s) from 3 segment(s) kept (filters: method GET), 0 write(s)"),
        "{text}"
    );
    assert!(text.contains("30 of those arrivals"), "{text}");
}

#[tokio::test]
async fn a_recorded_path_naming_another_host_is_never_sent_there() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("rec");
    let elsewhere = TimedBackend::start().await;
    let host = elsewhere.url().trim_start_matches("http://").to_owned();
    let paths = [
        "/ok".to_owned(),
        format!("//{host}/stolen"),
        format!("/\\{host}/stolen"),
    ];
    let records: Vec<RecordedExchange> = (0..30u64)
        .map(|i| {
            let path = &paths[i as usize % paths.len()];
            exchange(START_US + i * 5_000, "GET", "/ok", path)
        })
        .collect();
    write_recording(&recording, &records, 100, None);
    let target = TimedBackend::start().await;
    let header_file = dir.path().join("auth.txt");
    std::fs::write(&header_file, "Authorization: Bearer for-the-target\n").unwrap();
    let auth = format!("header-file:{}", header_file.display());

    let out = load(replay_args(
        &recording,
        &target.url(),
        "elsewhere",
        &["--speed", "5x", "--auth", &auth],
    ))
    .await;
    assert_eq!(
        elsewhere.backend.count(),
        0,
        "a request (and its credential) left the target: {}",
        output_text(&out)
    );
    let received = target.backend.requests();
    assert_eq!(received.len(), 10, "{}", output_text(&out));
    assert!(received.iter().all(|r| r.uri == "/ok"));
}
