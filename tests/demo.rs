//! `twinpeak demo --quick` end to end: both testbed builds, the proxy, the load, the snapshot and
//! the report, all on loopback, and nothing left running afterwards.

use std::process::Command;
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
    let config = std::fs::read_to_string(out.join("proxy.yaml")).unwrap();
    let listen = config
        .lines()
        .find_map(|l| l.strip_prefix("listen: "))
        .expect("the demo's proxy configuration names its listener");
    assert!(
        std::net::TcpStream::connect(listen.trim()).is_err(),
        "the proxy still listens on {listen}"
    );
}
