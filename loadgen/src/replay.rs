//! Replaying recorded requests: the proxy's diff corpus, or any JSON Lines of
//! `{method, path, headers, body}`, sent in order at a fixed rate.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::data::Data;
use crate::scenario::{LoadedScenario, Phase, RateSpec, RequestSpec, Scenario, Slo};
use crate::template::Template;

/// One recorded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayEntry {
    /// Method.
    pub method: http::Method,
    /// Path and query.
    pub path: String,
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

#[derive(Deserialize)]
struct Line {
    #[serde(default = "get")]
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: String,
    #[serde(default)]
    body_encoding: Option<String>,
}

fn get() -> String {
    "GET".into()
}

/// Headers that describe the recorded connection, not the request, and are not replayed.
const NOT_REPLAYED: [&str; 6] = [
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "x-twinpeak-shadow",
    "x-request-id",
];

/// Reads a JSON Lines file of requests; an unreadable line is an error naming file and line.
pub fn read(path: &Path) -> Result<Vec<ReplayEntry>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let mut entries = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |what: String| format!("{}:{}: {what}", path.display(), number + 1);
        let line: Line = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
        let method = http::Method::from_bytes(line.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| at(format!("bad method {:?}", line.method)))?;
        if !line.path.starts_with('/') {
            return Err(at(format!("path {:?} must start with /", line.path)));
        }
        let body = match line.body_encoding.as_deref() {
            None | Some("text") => line.body.into_bytes(),
            Some("base64") => base64::engine::general_purpose::STANDARD
                .decode(line.body.as_bytes())
                .map_err(|e| at(format!("body is not base64: {e}")))?,
            Some(other) => return Err(at(format!("unknown body_encoding {other:?}"))),
        };
        let headers = line
            .headers
            .into_iter()
            .filter(|(k, v)| {
                !NOT_REPLAYED.contains(&k.to_ascii_lowercase().as_str()) && v != "[redacted]"
            })
            .collect();
        entries.push(ReplayEntry {
            method,
            path: line.path,
            headers,
            body,
        });
    }
    if entries.is_empty() {
        return Err(format!("{}: holds no request", path.display()));
    }
    Ok(entries)
}

/// A one-phase scenario that sends `count` recorded requests at `rps`.
pub fn scenario(
    file: &Path,
    count: usize,
    rps: f64,
    max_users: usize,
) -> Result<LoadedScenario, String> {
    if !(rps > 0.0 && rps.is_finite()) {
        return Err(format!("--rps must be above 0, got {rps}"));
    }
    let seconds = (count as f64 / rps).max(1.0);
    let scenario = Scenario {
        name: format!("replay of {}", file.display()),
        baseline_rps: rps,
        max_users,
        timeout: Duration::from_secs(30),
        phases: vec![Phase {
            name: "replay".into(),
            duration: Duration::from_secs_f64(seconds),
            rps: RateSpec::constant(1.0),
            slo: None,
        }],
        requests: vec![RequestSpec {
            name: "replay".into(),
            weight: 1,
            method: http::Method::GET,
            path: Template::parse("/").map_err(|e| e.to_string())?,
            headers: BTreeMap::new(),
            json: None,
            body: None,
            extract: BTreeMap::new(),
            after: None,
            expect_status: None,
        }],
        data: BTreeMap::new(),
        slo: Slo::default(),
    };
    let bytes = std::fs::read(file).unwrap_or_default();
    let sha256 = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(LoadedScenario {
        scenario,
        data: Data::default(),
        path: file.to_path_buf(),
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_corpus_lines_and_drops_connection_headers() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("corpus.jsonl");
        std::fs::write(
            &file,
            concat!(
                r#"{"method":"GET","path":"/bookings/7","headers":{"accept":"application/json","host":"x","authorization":"[redacted]"},"body":"","body_encoding":"text","field":"$.price"}"#,
                "\n\n",
                r#"{"method":"post","path":"/bookings","body":"AAE=","body_encoding":"base64"}"#,
                "\n"
            ),
        )
        .unwrap();
        let entries = read(&file).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].headers,
            vec![("accept".to_string(), "application/json".to_string())]
        );
        assert_eq!(entries[1].method, http::Method::POST);
        assert_eq!(entries[1].body, vec![0, 1]);
    }

    #[test]
    fn a_bad_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.jsonl");
        std::fs::write(&file, "{\"path\":\"/a\"}\n{\"path\": 3}\n").unwrap();
        let err = read(&file).unwrap_err();
        assert!(err.contains("bad.jsonl:2:"), "{err}");
    }

    #[test]
    fn the_replay_lasts_count_over_rate() {
        let s = scenario(Path::new("c.jsonl"), 500, 100.0, 50).unwrap();
        assert_eq!(s.scenario.phases[0].duration, Duration::from_secs(5));
        assert!(scenario(Path::new("c.jsonl"), 5, 0.0, 50).is_err());
    }
}
