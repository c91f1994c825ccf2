//! `twinpeak demo --quick` end to end: both testbed builds, the proxy, the load, the snapshot and
//! the report, all on loopback, and nothing left running afterwards; and stopped by SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn the_quick_demo_writes_the_report_and_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_twinpeak"))
        .args(["demo", "--quick", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(300),
        "{:?}",
        started.elapsed()
    );

    // The headline table and the report's path are printed.
    assert!(stdout.contains("p99 latency"), "{stdout}");
    assert!(stdout.contains("before (legacy)"), "{stdout}");
    assert!(
        stdout.contains(&format!("report: {}", out.join("report.html").display())),
        "{stdout}"
    );

    // Everything the report says comes from records kept beside it.
    for file in [
        "report.html",
        "report.md",
        "summary.json",
        "run.json",
        "proxy-run.json",
        "snapshot.json",
        "proxy.yaml",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("holiday-peak") && html.contains("<svg"));
    let snapshot: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("snapshot.json")).unwrap()).unwrap();
    assert_eq!(snapshot["schema"], "twinpeak.snapshot/v1");
    let search = &snapshot["routes"]["/partners"];
    assert!(
        search["mirror"]["sent"].as_u64().unwrap_or(0) > 0,
        "searches were mirrored: {search}"
    );
    // Bookings live only in legacy's store: their reads are kept off the mirror.
    assert!(snapshot["routes"]["/bookings/{id}"]["mirror"]
        .get("sent")
        .is_none());
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let targets: Vec<&str> = run["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(targets, vec!["legacy", "rebuilt"]);

    // The proxy it started is gone: its listener no longer accepts.
    let listen = proxy_listener(&out);
    assert!(
        std::net::TcpStream::connect(&listen).is_err(),
        "the proxy still listens on {listen}"
    );
}

/// The demo's proxy listener, from the configuration it wrote.
fn proxy_listener(out: &std::path::Path) -> String {
    let config = std::fs::read_to_string(out.join("proxy.yaml")).unwrap();
    config
        .lines()
        .find_map(|l| l.strip_prefix("listen: "))
        .expect("the demo's proxy configuration names its listener")
        .trim()
        .to_owned()
}

#[test]
fn sigterm_stops_the_demo_as_it_stops_a_load_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let mut child = Command::new(env!("CARGO_BIN_EXE_twinpeak"))
        .args(["demo", "--quick", "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, seen) = mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut printed = Vec::new();
    while Instant::now() < deadline {
        match seen.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                let loading = line.starts_with("==> holiday peak through the proxy");
                printed.push(line);
                if loading {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    assert!(
        printed
            .last()
            .is_some_and(|l| l.contains("through the proxy")),
        "the demo never got to the load: {printed:?}"
    );
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let stopped = Instant::now();
    while child.try_wait().unwrap().is_none() && stopped.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    assert_eq!(
        status.code(),
        Some(143),
        "SIGTERM exits 128 + 15: {printed:?}"
    );
    assert!(
        stopped.elapsed() < Duration::from_secs(15),
        "it stops promptly"
    );
    // The load measured until the signal is kept, and names it.
    let record = twinpeak_core::RunRecord::read(out.join("proxy-run.json")).unwrap();
    assert_eq!(record.interrupted.as_deref(), Some("SIGTERM"));
    let listen = proxy_listener(&out);
    assert!(
        std::net::TcpStream::connect(&listen).is_err(),
        "the proxy still listens on {listen}"
    );
}
