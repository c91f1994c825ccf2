//! The access log end to end: real backends on loopback, the real binary in between, and the
//! lines it writes read back as JSON.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Every line of the access log at `path` and its rotated files (oldest first), each parsed
/// as one JSON object; panics on a line that is not one.
fn lines(path: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = (1..=10)
        .rev()
        .map(|n| PathBuf::from(format!("{}.{n}", path.display())))
        .collect();
    files.push(path.to_path_buf());
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .map(|line| {
                    serde_json::from_str::<Value>(line)
                        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line:?}"))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Waits until the access log at `path` holds at least `n` lines, and returns them.
async fn logged(proxy: &Proxy, path: &Path, n: usize) -> Vec<Value> {
    let done = eventually(Duration::from_secs(10), || async { lines(path).len() >= n }).await;
    assert!(
        done,
        "not {n} lines in {}:\n{}",
        path.display(),
        proxy.log_text()
    );
    lines(path)
}

/// The line whose `path` starts with `prefix`.
fn line_for<'a>(lines: &'a [Value], prefix: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["path"].as_str().is_some_and(|p| p.starts_with(prefix)))
        .unwrap_or_else(|| panic!("no line for {prefix}: {lines:#?}"))
}

/// A counter of `twinpeak_access_log_total{result}`.
async fn counted(proxy: &Proxy, result: &str) -> u64 {
    let name = format!("twinpeak_access_log_total{{result=\"{result}\"}}");
    proxy
        .metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(name.as_str())?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test]
async fn each_request_gets_one_line_with_its_route_mirror_decision_and_redacted_query() {
    let primary = Backend::fixed("ok").await;
    let shadow = Backend::fixed("ok").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {} }}\nmirror: {{ percent: 100 }}\n\
         routes: [\"/bookings/{{id}}\", \"/bookings\"]\nstate: {{off: true}}\n\
         access_log: {{ path: {} }}\n",
        primary.url(),
        shadow.url(),
        log.display()
    ))
    .await;
    let c = client();
    let res = c
        .get(proxy.url("/bookings/7?api_key=s3cr3t-value&page=2"))
        .header("x-request-id", "req-access-1")
        .header("user-agent", "access-test/1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok");
    let body = "{\"partner_id\": 7}";
    let res = c
        .post(proxy.url("/bookings"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A hostile target: percent-encoded quotes and line breaks, a literal quote, 10 KB long.
    let hostile = format!(
        "/hostile/%22q%22%0A%0D{}\"end?token=t0psecret",
        "a".repeat(10_000)
    );
    let answer = raw_get(proxy.addr, &hostile).await;
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");

    let all = logged(&proxy, &log, 3).await;
    assert_eq!(all.len(), 3, "{all:#?}");
    let get = line_for(&all, "/bookings/7");
    assert_eq!(get["route"], "/bookings/{id}");
    assert_eq!(get["method"], "GET");
    assert_eq!(get["status"], 200);
    assert_eq!(get["bytes_sent"], 2);
    assert_eq!(get["request_id"], "req-access-1");
    assert_eq!(get["mirror"], "mirrored");
    assert_eq!(get["side"], "primary");
    assert_eq!(get["http"], "HTTP/1.1");
    assert_eq!(get["client"], "127.0.0.1");
    assert_eq!(get["user_agent"], "access-test/1");
    assert!(get["primary_us"].as_u64().unwrap() > 0, "{get}");
    assert!(get["duration_us"].as_u64().unwrap() >= get["primary_us"].as_u64().unwrap());
    assert!(get["time"].as_str().unwrap().ends_with('Z'), "{get}");
    let path = get["path"].as_str().unwrap();
    assert!(
        !path.contains("s3cr3t-value") && path.contains("page=2"),
        "{path}"
    );
    assert!(
        get.get("tls").is_none() && get.get("error").is_none(),
        "{get}"
    );

    let post = all
        .iter()
        .find(|l| l["method"] == "POST")
        .expect("a POST line");
    assert_eq!(post["path"], "/bookings");
    assert_eq!(post["route"], "/bookings");
    assert_eq!(post["mirror"], "method");
    assert_eq!(post["bytes_received"], body.len());

    let hostile_line = line_for(&all, "/hostile/");
    let logged_path = hostile_line["path"].as_str().unwrap();
    assert!(logged_path.len() <= 2048 + 3, "{}", logged_path.len());
    assert!(logged_path.ends_with('…'), "{logged_path}");
    assert!(
        logged_path.starts_with("/hostile/%22q%22%0A%0D"),
        "{logged_path}"
    );
    assert!(hostile_line["path_bytes"].as_u64().unwrap() > 10_000);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(!text.contains("s3cr3t-value") && !text.contains("t0psecret"));
    assert_eq!(counted(&proxy, "written").await, 3);
}

#[tokio::test]
async fn a_request_the_canary_candidate_served_names_its_side() {
    let primary = Backend::fixed("primary").await;
    let candidate = Backend::fixed("candidate").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\ncanary: {{ upstream: {}, weight: 100, judge: {{ interval: 1h }} }}\n\
         state: {{off: true}}\naccess_log: {{ path: {} }}\n",
        primary.url(),
        candidate.url(),
        log.display()
    ))
    .await;
    assert_eq!(get_text(&proxy.url("/partners")).await, "candidate");
    let all = logged(&proxy, &log, 1).await;
    let line = line_for(&all, "/partners");
    assert_eq!(line["side"], "candidate");
    assert_eq!(line["mirror"], "not_sampled");
    assert!(line["candidate_us"].as_u64().is_some(), "{line}");
    assert!(line.get("primary_us").is_none(), "{line}");
}

#[tokio::test]
async fn rotation_keeps_the_directory_within_keep_files_of_whole_lines() {
    let primary = Backend::fixed("ok").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nstate: {{off: true}}\n\
         access_log: {{ path: {}, max_file_bytes: 64KiB, keep: 2 }}\n",
        primary.url(),
        log.display()
    ))
    .await;
    let c = client();
    // About 1.6 KB a line: 300 lines are about 480 KB, more than seven files' worth.
    let long = "p".repeat(1500);
    for i in 0..300 {
        let res = c
            .get(proxy.url(&format!("/r/{i}/{long}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let written = eventually(Duration::from_secs(10), || async {
        counted(&proxy, "written").await == 300
    })
    .await;
    assert!(written, "{}", proxy.metrics().await);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["access.log", "access.log.1", "access.log.2"]);
    for name in &names {
        let size = std::fs::metadata(dir.path().join(name)).unwrap().len();
        assert!(size <= 64 << 10, "{name}: {size} bytes");
    }
    // Whole lines only, the newest kept: the last request is in the current file.
    let kept = lines(&log);
    assert!(kept.len() < 300 && kept.len() > 60, "{}", kept.len());
    assert!(kept.last().unwrap()["path"]
        .as_str()
        .unwrap()
        .starts_with("/r/299/"));
    assert_eq!(counted(&proxy, "dropped_queue").await, 0);
}

#[tokio::test]
async fn a_502_from_an_unreachable_primary_goes_to_stdout_and_is_written_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, admin) = (free_port(), free_port());
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: {addr}\nadmin: {{ listen: {admin} }}\nthreads: 2\n\
             primary: {{ url: http://{} }}\nstate: {{off: true}}\naccess_log: {{ path: \"-\" }}\n",
            refused_addr()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_twinpeak"))
        .args(["proxy", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "the proxy did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let res = client()
        .get(format!("http://{addr}/down?password=hunter2"))
        .header("x-request-id", "req-502")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    // SIGTERM at once: the line is written as the proxy exits, if not before.
    let sent = Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = tokio::task::spawn_blocking(move || {
        let mut stdout = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
        let _ = child.wait();
        stdout
    });
    let stdout = tokio::time::timeout(Duration::from_secs(15), output)
        .await
        .expect("the proxy exits after SIGTERM")
        .unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let line = &lines[0];
    assert_eq!(line["status"], 502);
    assert_eq!(line["error"], "connect");
    assert_eq!(line["error_type"], "ConnectRefused");
    assert_eq!(line["request_id"], "req-502");
    assert_eq!(line["route"], "other");
    assert!(line.get("primary_us").is_none(), "{line}");
    assert!(line["bytes_sent"].as_u64().unwrap() > 0, "{line}");
    assert!(!stdout.contains("hunter2"), "{stdout}");
}

#[test]
fn an_unopenable_file_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: {}\nadmin: {{ listen: {} }}\nprimary: {{ url: http://127.0.0.1:9 }}\n\
             state: {{off: true}}\naccess_log: {{ path: {}/missing/access.log }}\n",
            free_port(),
            free_port(),
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_twinpeak"))
        .args(["proxy", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("access_log.path"), "{stderr}");
    assert!(stderr.contains("missing/access.log"), "{stderr}");
}
