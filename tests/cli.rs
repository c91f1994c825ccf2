//! The `twinpeak` command line: configuration checking and its errors.

use std::process::Command;

fn twinpeak(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_twinpeak"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let out = twinpeak(&[
        "check-config",
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/proxy.yaml"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // Defaults are filled in.
    assert!(text.contains("connect_timeout: 5s"), "{text}");
    assert!(text.contains("max_in_flight: 256"));
    assert!(text.contains("key: header:x-user-id"));
}

#[test]
fn every_shipped_example_is_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = twinpeak(&["check-config", path.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn a_bad_configuration_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("listen: 127.0.0.1:8080\nprimary: { url: http://127.0.0.1:9001 }\nmirror:\n  percentt: 5\n", ":4:", "unknown field `percentt`"),
        ("listen: 127.0.0.1:8080\nprimary:\n  url: 127.0.0.1:9001\n", ":3:", "primary.url"),
        ("listen: 127.0.0.1:8080\nprimary: { url: http://127.0.0.1:9001 }\nshadow: { url: http://127.0.0.1:9002, timeout: soon }\n", ":3:", "shadow.timeout"),
        ("listen: 127.0.0.1:8080\nprimary: { url: http://127.0.0.1:9001 }\nmirror:\n  percent: 10\n", ":4", "no shadow"),
    ];
    for (i, (yaml, line, needle)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        for args in [
            vec!["check-config", path.to_str().unwrap()],
            vec!["proxy", "--config", path.to_str().unwrap()],
        ] {
            let out = twinpeak(&args);
            assert!(!out.status.success());
            let err = String::from_utf8(out.stderr).unwrap();
            assert!(err.contains(&format!("bad{i}.yaml{line}")), "{err}");
            assert!(err.contains(needle), "{err}");
        }
    }
    let out = twinpeak(&["check-config", "/nonexistent/proxy.yaml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("/nonexistent/proxy.yaml: cannot read"));
}

/// Starts `twinpeak proxy` on each configuration, which must stop it before it serves: exit
/// status 2 within 10 s, and on stderr `FILE: ` followed by the expected text (no panic).
fn proxy_refuses(cases: &[(String, String)]) {
    let dir = tempfile::tempdir().unwrap();
    for (i, (yaml, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("refused{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let started = std::time::Instant::now();
        let out = twinpeak(&["proxy", "--config", path.to_str().unwrap()]);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains(&format!("refused{i}.yaml: {expected}")),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn an_upstream_that_does_not_resolve_stops_the_proxy_with_its_key() {
    // A 64-character label is refused by the resolver itself: no lookup leaves the machine.
    let host = format!("{}.test", "a".repeat(64));
    let listeners = "listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.2:0 }\n";
    proxy_refuses(&[
        (
            format!("{listeners}primary: {{ url: http://{host}:9001 }}\n"),
            format!("primary.url: cannot resolve {host}:9001"),
        ),
        (
            format!("{listeners}primary: {{ url: http://127.0.0.1:9 }}\nshadow: {{ url: http://{host}:9002 }}\n"),
            format!("shadow.url: cannot resolve {host}:9002"),
        ),
    ]);
}

#[test]
fn a_taken_listen_address_stops_the_proxy_at_once_with_its_key() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let primary = "primary: { url: http://127.0.0.1:9 }\n";
    proxy_refuses(&[
        (
            format!("listen: {taken}\nadmin: {{ listen: {free} }}\n{primary}"),
            format!("listen: cannot listen on {taken}"),
        ),
        (
            format!("listen: {free}\nadmin: {{ listen: {taken} }}\n{primary}"),
            format!("admin.listen: cannot listen on {taken}"),
        ),
    ]);
}
