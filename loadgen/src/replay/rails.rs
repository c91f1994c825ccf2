//! What a replay refuses without an explicit flag: sending writes, and sending to the primary
//! the traffic was recorded from.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use twinpeak_core::recording::{RecordedExchange, RecordingManifest};

use super::ReplayError;
use crate::runner::Target;

/// The flag that lets a replay send writes.
pub const ALLOW_WRITES: &str = "--allow-writes";

/// The flag that lets a replay aim at the recording's own primary.
pub const AIM_AT_PRIMARY: &str = "--i-know-this-is-the-recorded-primary";

/// Whether `method` only reads (RFC 9110's safe methods).
pub fn is_safe(method: &str) -> bool {
    ["GET", "HEAD", "OPTIONS", "TRACE"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// The writes among `records`, counted by method.
pub fn writes(records: &[RecordedExchange]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for record in records.iter().filter(|r| !is_safe(&r.method)) {
        *counts
            .entry(record.method.to_ascii_uppercase())
            .or_default() += 1;
    }
    counts
}

/// Refuses writes unless `allowed`.
pub fn check_writes(records: &[RecordedExchange], allowed: bool) -> Result<(), ReplayError> {
    let counts = writes(records);
    let total: usize = counts.values().sum();
    if total == 0 || allowed {
        return Ok(());
    }
    let methods: Vec<String> = counts.iter().map(|(m, n)| format!("{m} {n}")).collect();
    Err(ReplayError::Refused(format!(
        "the replay holds {total} write(s) ({}) after filters: pass {ALLOW_WRITES} to send them, \
         or --method GET to leave them out",
        methods.join(", ")
    )))
}

/// Refuses a target that is a recording's own primary unless `confirmed`.
pub fn check_primary(
    manifests: &[(PathBuf, RecordingManifest)],
    targets: &[Target],
    confirmed: bool,
) -> Result<(), ReplayError> {
    if confirmed {
        return Ok(());
    }
    for (dir, manifest) in manifests {
        for target in targets {
            if same_endpoint(&manifest.primary, &target.url) {
                return Err(ReplayError::Refused(format!(
                    "--target {}={} is the primary {} was recorded from ({}): a replay there sends \
                     the recorded traffic to the live system again; pass {AIM_AT_PRIMARY} to do so",
                    target.name,
                    target.url,
                    dir.display(),
                    manifest.primary
                )));
            }
        }
    }
    Ok(())
}

/// Host (lower case, `localhost` as 127.0.0.1) and port of an `http://` URL.
fn endpoint(url: &str) -> Option<(String, u16)> {
    let uri: http::Uri = url.trim().parse().ok()?;
    let host = uri
        .host()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let host = match host.as_str() {
        "localhost" | "::1" => "127.0.0.1".to_owned(),
        _ => host,
    };
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    Some((host, port))
}

/// Whether two URLs name one listener: same host and port, or host names that resolve to a
/// common address on the same port.
pub fn same_endpoint(a: &str, b: &str) -> bool {
    let (Some(a), Some(b)) = (endpoint(a), endpoint(b)) else {
        return false;
    };
    if a == b {
        return true;
    }
    if a.1 != b.1 {
        return false;
    }
    let resolve = |(host, port): &(String, u16)| -> Vec<SocketAddr> {
        (host.as_str(), *port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .unwrap_or_default()
    };
    let theirs = resolve(&b);
    resolve(&a).iter().any(|addr| theirs.contains(addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::recording::tests::exchange;

    #[test]
    fn writes_are_counted_by_method_and_refused_unless_allowed() {
        let records = vec![
            exchange(1, "GET", "/a"),
            exchange(2, "post", "/a"),
            exchange(3, "DELETE", "/a"),
            exchange(4, "POST", "/b"),
            exchange(5, "options", "/b"),
        ];
        let err = check_writes(&records, false).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "the replay holds 3 write(s) (DELETE 1, POST 2) after filters: pass --allow-writes"
            ),
            "{err}"
        );
        assert!(check_writes(&records, true).is_ok());
        assert!(check_writes(&records[..1], false).is_ok());
    }

    #[test]
    fn the_recorded_primary_is_told_apart_after_resolving_localhost() {
        assert!(same_endpoint(
            "http://localhost:8080",
            "http://127.0.0.1:8080/"
        ));
        assert!(same_endpoint("http://LOCALHOST", "http://127.0.0.1:80"));
        assert!(!same_endpoint(
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8081"
        ));
        assert!(!same_endpoint("http://10.0.0.1:80", "http://10.0.0.2:80"));
        let manifest = RecordingManifest {
            schema: twinpeak_core::recording::RECORDING_SCHEMA.into(),
            primary: "http://localhost:9000".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            percent: 100.0,
            answers: false,
        };
        let manifests = vec![(PathBuf::from("rec"), manifest)];
        let targets = vec![Target {
            name: "legacy".into(),
            url: "http://127.0.0.1:9000".into(),
        }];
        let err = check_primary(&manifests, &targets, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("is the primary rec was recorded from"),
            "{err}"
        );
        assert!(err.contains(AIM_AT_PRIMARY), "{err}");
        assert!(check_primary(&manifests, &targets, true).is_ok());
    }
}
