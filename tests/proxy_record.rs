//! Recording live traffic end to end: real backends on loopback, the real binary in between,
//! and the segments it writes read back as `twinpeak.recording/v1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use twinpeak_core::recording::{list_segments, read_segment, RecordedExchange, RecordingManifest};

/// Every record in a recording directory, in arrival order.
fn records(dir: &Path) -> Vec<RecordedExchange> {
    let mut all = Vec::new();
    for segment in list_segments(dir).unwrap() {
        let contents = read_segment(&segment).unwrap();
        assert!(contents.torn.is_none(), "{:?}", contents.torn);
        all.extend(contents.records);
    }
    all.sort_by_key(|r| r.at_us);
    all
}

/// A counter of `twinpeak_record_total{result}` from the metrics text.
async fn recorded(proxy: &Proxy, result: &str) -> u64 {
    metric(
        proxy,
        &format!("twinpeak_record_total{{result=\"{result}\"}}"),
    )
    .await
}

/// A metric's value from the metrics text (0 when absent).
async fn metric(proxy: &Proxy, name: &str) -> u64 {
    let text = proxy.metrics().await;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Waits until `n` records are written; panics with the metrics otherwise.
async fn written(proxy: &Proxy, n: u64) {
    let done = eventually(Duration::from_secs(10), || async {
        recorded(proxy, "written").await >= n
    })
    .await;
    let text = proxy.metrics().await;
    let counts: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("twinpeak_record"))
        .collect();
    assert!(done, "not {n} written: {counts:#?}\n{}", proxy.log_text());
}

/// Stops the proxy with SIGINT and waits (bounded) until it has exited.
fn interrupt(proxy: &Proxy) {
    let pid = proxy.pid().to_string();
    let status = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting to be reaped: it has exited.
        if stat.split(") ").nth(1).is_none_or(|s| s.starts_with('Z')) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the proxy did not exit after SIGINT");
}

fn recording_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rec");
    (tmp, dir)
}

#[tokio::test]
async fn every_request_is_recorded_with_its_arrival_gaps_and_written_at_exit() {
    // When each request reached the primary: the arrivals the recording's gaps are held to.
    // The primary takes 0, 15 or 30 ms in turn, so that gaps between answers are not gaps
    // between arrivals.
    let reached = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = reached.clone();
    let primary = Backend::start_with_delays(
        Arc::new(move |_| {
            let mut reached = log.lock().unwrap();
            reached.push(Instant::now());
            answer_delay(reached.len() - 1)
        }),
        Arc::new(|r| {
            let body = if r.method == "POST" { "created" } else { "ok" };
            text(200, body)
        }),
    )
    .await;
    let (_tmp, dir) = recording_dir();
    let proxy = Proxy::start(&format!(
        "primary: {{url: {}}}\nroutes: [\"/bookings/{{id}}\"]\nrecord: {{dir: {}, percent: 100}}\n",
        primary.url(),
        dir.display()
    ))
    .await;
    let c = client();
    let mut sent = Vec::new();
    for i in 0..40u32 {
        let res = if i % 5 == 4 {
            let body = format!("{{\"partner_id\": {i}, \"slot\": \"10:00\"}}");
            sent.push((
                "POST".to_string(),
                "/bookings".to_string(),
                Some(body.clone()),
            ));
            c.post(proxy.url("/bookings"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        } else {
            let path = format!("/bookings/{i}?view=full");
            sent.push(("GET".to_string(), path.clone(), None));
            c.get(proxy.url(&path)).send().await.unwrap()
        };
        assert_eq!(res.status(), 200);
        res.bytes().await.unwrap();
        // Uneven gaps, so that matching them means something.
        tokio::time::sleep(Duration::from_millis(5 + u64::from(i % 4) * 10)).await;
    }
    // The proxy writes what it holds as it exits.
    interrupt(&proxy);
    let manifest = RecordingManifest::read(&dir).unwrap().unwrap();
    assert_eq!(manifest.primary, primary.url());
    assert_eq!((manifest.percent, manifest.answers), (100.0, true));
    let got = records(&dir);
    let mut expected: Vec<_> = sent
        .iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();
    let mut seen: Vec<_> = got
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(seen, expected, "in arrival order");
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected);
    for (i, record) in got.iter().enumerate() {
        let (method, _, body) = &sent[i];
        assert_eq!(&record.method, method);
        assert_eq!(
            record.route,
            if method == "GET" {
                "/bookings/{id}"
            } else {
                "other"
            }
        );
        if let Some(body) = body {
            assert_eq!(record.body.bytes().unwrap(), body.as_bytes(), "{record:?}");
        }
        let answer = record.response.as_ref().expect("answers are recorded");
        assert_eq!(answer.status, 200);
        let answered = if method == "POST" { "created" } else { "ok" };
        assert_eq!(answer.body.bytes().unwrap(), answered.as_bytes());
        // From arrival to the end of the answer, the primary's time included.
        assert!(
            answer.latency_us >= answer_delay(i).as_micros() as u64,
            "{answer:?}"
        );
        assert!(record.headers.iter().any(|(k, _)| k == "host"));
    }
    // The gaps between recorded arrivals are the gaps between the requests reaching the
    // primary (the proxy forwards each request right after taking its arrival time): the
    // median within 2 ms on a machine busy with other tests, where two gaps in three between
    // answers would be off by 15 or 30 ms.
    let reached = reached.lock().unwrap().clone();
    assert_eq!(reached.len(), got.len());
    let errors: Vec<u64> = (1..got.len())
        .map(|i| {
            let recorded = got[i].at_us - got[i - 1].at_us;
            let primary = (reached[i] - reached[i - 1]).as_micros() as u64;
            recorded.abs_diff(primary)
        })
        .collect();
    let mut sorted = errors.clone();
    sorted.sort_unstable();
    assert!(sorted[sorted.len() / 2] <= 2_000, "{errors:?} µs");
}

/// How long the primary takes to answer the `n`th request.
fn answer_delay(n: usize) -> Duration {
    Duration::from_millis(15 * (n as u64 % 3))
}

#[tokio::test]
async fn secrets_never_reach_the_recording() {
    let primary = Backend::start(
        Duration::ZERO,
        Arc::new(|_| {
            hyper::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("set-cookie", "session=answer-cookie-s3cret")
                .body(http_body_util::Full::new(bytes::Bytes::from_static(
                    br#"{"id": 7, "access_token": "answer-token-s3cret"}"#,
                )))
                .unwrap()
        }),
    )
    .await;
    let (_tmp, dir) = recording_dir();
    let proxy = Proxy::start(&format!(
        "primary: {{url: {}}}\nrecord: {{dir: {}}}\ndiff: {{redact_headers: [x-api-key]}}\n",
        primary.url(),
        dir.display()
    ))
    .await;
    let c = client();
    let res = c
        .post(proxy.url("/login?token=query-s3cret&lang=en"))
        .header("authorization", "Bearer header-s3cret")
        .header("cookie", "sid=cookie-s3cret")
        .header("x-api-key", "key-s3cret")
        .header("content-type", "application/json")
        .body(r#"{"user": "ann", "password": "body-s3cret"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = c
        .post(proxy.url("/broken"))
        .header("content-type", "application/json")
        .body(r#"{"password": "unparsed-s3cret""#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    written(&proxy, 2).await;
    let got = records(&dir);
    assert_eq!(got.len(), 2);
    let login = &got[0];
    assert_eq!(login.path, "/login?token=[redacted]&lang=en");
    for name in ["authorization", "cookie", "x-api-key"] {
        let value = login
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v);
        assert_eq!(value.map(String::as_str), Some("[redacted]"), "{name}");
    }
    let body: serde_json::Value = serde_json::from_str(&login.body.data).unwrap();
    assert_eq!(body["password"], "[redacted]");
    assert_eq!(body["user"], "ann");
    // A body that cannot be parsed for redaction is withheld, not kept raw.
    assert_eq!(got[1].body.encoding, "withheld");
    for segment in list_segments(&dir).unwrap() {
        let raw = std::fs::read(&segment).unwrap();
        let unzipped = Command::new("gzip")
            .arg("-dc")
            .arg(&segment)
            .output()
            .unwrap();
        assert!(unzipped.status.success());
        let text = String::from_utf8(unzipped.stdout).unwrap();
        assert!(
            text.contains("\"/login?token=[redacted]&lang=en\""),
            "{text}"
        );
        for bytes in [&raw[..], text.as_bytes()] {
            assert!(
                !contains(bytes, b"s3cret"),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Bytes that do not compress, so the segments grow as fast as the traffic.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[tokio::test]
async fn the_directory_stays_within_its_bound_and_deleted_segments_are_counted() {
    let primary = Backend::fixed("ok").await;
    let (_tmp, dir) = recording_dir();
    let max_total: u64 = 128 << 10;
    let proxy = Proxy::start(&format!(
        "primary: {{url: {}}}\nrecord: {{dir: {}, max_file_bytes: 64KiB, max_total_bytes: 128KiB}}\n",
        primary.url(),
        dir.display()
    ))
    .await;
    let c = client();
    let mut largest = 0;
    // 260 bodies of 40 KB that do not compress (base64 in the record): about 105 times the
    // bound.
    for i in 0..260u64 {
        let res = c
            .post(proxy.url("/upload"))
            .header("content-type", "application/octet-stream")
            .body(noise(i, 40_000))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        if i % 20 == 0 {
            largest = largest.max(segments_bytes(&dir));
        }
    }
    written(&proxy, 260).await;
    largest = largest.max(segments_bytes(&dir));
    assert!(largest <= max_total, "{largest} bytes > {max_total}");
    let bytes = metric(&proxy, "twinpeak_record_bytes_total").await;
    assert!(bytes >= 100 * max_total, "{bytes} bytes written");
    let deleted = metric(&proxy, "twinpeak_record_segments_deleted_total").await;
    let kept = list_segments(&dir).unwrap();
    // Segments are numbered from 0 in writing order: those not kept were deleted.
    let name = kept.last().unwrap().file_name().unwrap().to_str().unwrap();
    let last: u64 = name.rsplit('-').next().unwrap()[..6].parse().unwrap();
    assert_eq!(deleted, last + 1 - kept.len() as u64);
    assert!(deleted > 100, "{deleted}");
    let deleted_bytes = metric(&proxy, "twinpeak_record_deleted_bytes_total").await;
    assert_eq!(deleted_bytes, bytes - segments_bytes(&dir));
    // What is kept is the newest, and reads whole.
    let got = records(&dir);
    assert!(!got.is_empty() && got.len() < 10, "{}", got.len());
    assert!(got.iter().all(|r| r.body.encoding == "base64"));
    let view = proxy.admin_json("/api/v1/record").await;
    assert_eq!(view["segments_deleted"], deleted);
    assert_eq!(view["counts"]["written"], 260);
}

fn segments_bytes(dir: &Path) -> u64 {
    list_segments(dir)
        .unwrap()
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

#[tokio::test]
async fn recording_is_switched_off_and_on_live() {
    let primary = Backend::fixed("ok").await;
    let (_tmp, dir) = recording_dir();
    let proxy = Proxy::start(&format!(
        "primary: {{url: {}}}\nrecord: {{dir: {}}}\n",
        primary.url(),
        dir.display()
    ))
    .await;
    let c = client();
    let send = |phase: &'static str| {
        let c = c.clone();
        let url = proxy.url("");
        async move {
            for i in 0..5 {
                let res = c.get(format!("{url}/{phase}/{i}")).send().await.unwrap();
                assert_eq!(res.status(), 200);
            }
        }
    };
    send("before").await;
    let off = admin_change(
        "PUT",
        &proxy.admin_url("/api/v1/record"),
        r#"{"enabled": false, "by": "ops", "reason": "quiet"}"#,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(off.status(), 200);
    let view: serde_json::Value = off.json().await.unwrap();
    assert_eq!(view["enabled"], false);
    assert!(proxy.metrics().await.contains("twinpeak_record_enabled 0"));
    send("off").await;
    let on = admin_change(
        "PUT",
        &proxy.admin_url("/api/v1/record"),
        r#"{"enabled": true, "percent": 100}"#,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(on.status(), 200);
    send("after").await;
    written(&proxy, 10).await;
    let view = proxy.admin_json("/api/v1/record").await;
    assert_eq!(view["enabled"], true);
    assert_eq!(view["percent"], 100.0);
    assert_eq!(view["counts"]["written"], 10);
    let paths: Vec<String> = records(&dir).into_iter().map(|r| r.path).collect();
    assert_eq!(paths.len(), 10, "{paths:?}");
    assert!(paths.iter().all(|p| !p.starts_with("/off/")), "{paths:?}");
    assert!(
        proxy.log_text().contains("ops"),
        "the change is logged with who made it"
    );
    let bad = admin_change(
        "PUT",
        &proxy.admin_url("/api/v1/record"),
        r#"{"percent": 120}"#,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(bad.status(), 400);
    // The manifest says what is recorded now.
    let manifest = RecordingManifest::read(&dir).unwrap().unwrap();
    assert_eq!(manifest.percent, 100.0);
    // A proxy that records nothing says so.
    let plain = Proxy::start(&format!("primary: {{url: {}}}\n", primary.url())).await;
    let res = client()
        .get(plain.admin_url("/api/v1/record"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("record: {dir"));
}

#[tokio::test]
async fn a_stalled_writer_drops_records_counted_and_never_slows_the_client() {
    let primary = Backend::fixed("ok").await;
    let (_tmp, dir) = recording_dir();
    let proxy = Proxy::start(&format!(
        "primary: {{url: {}}}\nrecord: {{dir: {}, queue: 4}}\n",
        primary.url(),
        dir.display()
    ))
    .await;
    // The manifest's next rewrite opens a pipe nobody reads: the writer hangs there, as on a
    // stalled disk.
    let fifo = dir.join(format!("recording.json.{}.tmp", proxy.pid()));
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let change = admin_change(
        "PUT",
        &proxy.admin_url("/api/v1/record"),
        r#"{"percent": 100}"#,
    );
    assert_eq!(change.send().await.unwrap().status(), 200);
    let c = client();
    let mut slowest = Duration::ZERO;
    for i in 0..50 {
        let started = Instant::now();
        let res = c.get(proxy.url(&format!("/a/{i}"))).send().await.unwrap();
        assert_eq!(res.status(), 200);
        slowest = slowest.max(started.elapsed());
    }
    assert!(slowest < Duration::from_millis(500), "{slowest:?}");
    // At most one record reached the writer before it stalled; four wait in the queue.
    let full = eventually(Duration::from_secs(5), || async {
        recorded(&proxy, "dropped_queue").await >= 45
    });
    assert!(full.await);
    let dropped = recorded(&proxy, "dropped_queue").await;
    assert!((45..=46).contains(&dropped), "{dropped}");
    assert_eq!(metric(&proxy, "twinpeak_record_queue").await, 4);
    // The pipe is read: the writer carries on with what it holds.
    let reader = std::thread::spawn(move || std::fs::read(fifo).unwrap());
    written(&proxy, 50 - dropped).await;
    assert!(!reader.join().unwrap().is_empty());
    assert_eq!(records(&dir).len() as u64, 50 - dropped);
}

#[test]
fn record_errors_name_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("proxy.yaml");
    std::fs::write(
        &path,
        "listen: 127.0.0.1:8080\nprimary: {url: http://127.0.0.1:9001}\nrecord:\n  dir: /tmp/rec\n  max_body_bytes: lots\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_twinpeak"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}:5:", path.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("record.max_body_bytes"), "{stderr}");
    // A good section is printed with its defaults.
    std::fs::write(
        &path,
        "listen: 127.0.0.1:8080\nprimary: {url: http://127.0.0.1:9001}\nrecord: {dir: /tmp/rec, percent: 5}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_twinpeak"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for key in [
        "max_total_bytes: 1.0 GiB",
        "queue: 4096",
        "answers: true",
        "percent: 5",
    ] {
        assert!(stdout.contains(key), "{key}: {stdout}");
    }
}

#[tokio::test]
async fn a_killed_proxy_leaves_whole_segments_and_a_restart_begins_a_new_one() {
    let primary = Backend::fixed("ok").await;
    let (_tmp, dir) = recording_dir();
    let config = format!(
        "primary: {{url: {}}}\nrecord: {{dir: {}}}\n",
        primary.url(),
        dir.display()
    );
    let c = client();
    for run in 0..2 {
        let proxy = Proxy::start(&config).await;
        for i in 0..10 {
            let res = c
                .get(proxy.url(&format!("/run{run}/{i}")))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }
        written(&proxy, 10).await;
        // Dropped: SIGKILL, no chance to write anything more.
        drop(proxy);
    }
    let segments = list_segments(&dir).unwrap();
    assert_eq!(segments.len(), 2, "{segments:?}");
    let got = records(&dir);
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths.len(), 20, "{paths:?}");
    assert!(
        paths[..10].iter().all(|p| p.starts_with("/run0/")),
        "{paths:?}"
    );
    assert!(
        paths[10..].iter().all(|p| p.starts_with("/run1/")),
        "{paths:?}"
    );
}

#[tokio::test]
async fn sighup_changes_what_is_recorded_and_names_the_files_bounds_for_a_restart() {
    let primary = Backend::fixed("legacy").await;
    let (_tmp, dir) = recording_dir();
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nstate: {{ off: true }}\n\
         routes:\n  - \"/bookings/{{id}}\"\n  - \"/partners/{{id}}\"\n\
         record: {{ dir: {}, routes: [\"/bookings/{{id}}\"], max_body_bytes: 4 }}\n",
        primary.url(),
        dir.display()
    ))
    .await;
    let client = client();
    let post = |path: &str| client.post(proxy.url(path)).body("0123456789").send();
    assert_eq!(post("/bookings/1").await.unwrap().status(), 200);
    assert_eq!(post("/partners/1").await.unwrap().status(), 200);
    written(&proxy, 1).await;

    let original = std::fs::read_to_string(&proxy.config).unwrap();
    let changed = original
        .replace(
            "routes: [\"/bookings/{id}\"]",
            "routes: [\"/partners/{id}\"]",
        )
        .replace(
            "max_body_bytes: 4",
            "max_body_bytes: 8, max_file_bytes: 1MiB",
        );
    assert_ne!(changed, original);
    std::fs::write(&proxy.config, &changed).unwrap();
    proxy.signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.log_text().contains("applied: record")
        })
        .await,
        "{}",
        proxy.log_text()
    );
    assert!(
        proxy
            .log_text()
            .contains("need a restart: record.max_file_bytes"),
        "{}",
        proxy.log_text()
    );
    assert_eq!(post("/bookings/2").await.unwrap().status(), 200);
    assert_eq!(post("/partners/2").await.unwrap().status(), 200);
    written(&proxy, 2).await;
    interrupt(&proxy);

    let kept: Vec<(String, String)> = records(&dir)
        .into_iter()
        .map(|r| (r.path, r.body.data))
        .collect();
    assert_eq!(
        kept,
        [
            ("/bookings/1".to_owned(), "0123".to_owned()),
            ("/partners/2".to_owned(), "01234567".to_owned())
        ]
    );
}
