//! The proxy's diff corpus, or any JSON Lines of `{method, path, headers, body}`: requests
//! without timing, replayed in order at a fixed `--rps`.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use serde::Deserialize;

use super::{kept_header, ReplayEntry, ReplayError};

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
    #[serde(default)]
    route: String,
}

fn get() -> String {
    "GET".into()
}

/// Reads a JSON Lines file of requests; an unreadable line is an error naming file and line.
/// A torn last line (no newline at the end, and not JSON: a write cut short by a crash) and
/// requests whose body was withheld when recorded are skipped, with a warning on stderr.
pub fn read(path: &Path) -> Result<Vec<ReplayEntry>, ReplayError> {
    let bytes = std::fs::read(path).map_err(|source| ReplayError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let (entries, warnings) = parse(path, &bytes)?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    Ok(entries)
}

/// Line numbers listed in the warning about requests skipped for a withheld body.
const SHOWN_LINES: usize = 5;

/// The entries of a file's bytes, and the warnings about what was skipped.
fn parse(path: &Path, bytes: &[u8]) -> Result<(Vec<ReplayEntry>, Vec<String>), ReplayError> {
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    let mut withheld = Vec::new();
    let unterminated = !bytes.is_empty() && !bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes
        .strip_suffix(b"\n")
        .unwrap_or(bytes)
        .split(|b| *b == b'\n')
        .collect();
    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        if line.trim_ascii().is_empty() {
            continue;
        }
        let at = |what: String| format!("{}:{number}: {what}", path.display());
        let bad_line = |message: String| ReplayError::Line {
            path: path.to_path_buf(),
            line: number,
            message,
        };
        let line: Line = match serde_json::from_slice(line) {
            Ok(line) => line,
            Err(e) if unterminated && number == lines.len() => {
                warnings.push(at(format!(
                    "skipped a torn last line ({} bytes, no newline at the end: {e})",
                    line.len()
                )));
                continue;
            }
            Err(e) => return Err(bad_line(e.to_string())),
        };
        if line.body_encoding.as_deref() == Some(WITHHELD) {
            withheld.push(number);
            continue;
        }
        entries.push(entry(line).map_err(bad_line)?);
    }
    if !withheld.is_empty() {
        let shown: Vec<String> = withheld
            .iter()
            .take(SHOWN_LINES)
            .map(|n| n.to_string())
            .collect();
        let more = if withheld.len() > SHOWN_LINES {
            ", ..."
        } else {
            ""
        };
        warnings.push(format!(
            "{}: skipped {} request(s) whose body was withheld when recorded (line {}{more})",
            path.display(),
            withheld.len(),
            shown.join(", ")
        ));
    }
    if entries.is_empty() {
        return Err(ReplayError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok((entries, warnings))
}

/// The `body_encoding` of a body the proxy withheld because it could not redact it.
const WITHHELD: &str = "withheld";

/// One line as a request to send.
fn entry(line: Line) -> Result<ReplayEntry, String> {
    let method = http::Method::from_bytes(line.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("bad method {:?}", line.method))?;
    if !line.path.starts_with('/') {
        return Err(format!("path {:?} must start with /", line.path));
    }
    let body = match line.body_encoding.as_deref() {
        None | Some("text") => line.body.into_bytes(),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(line.body.as_bytes())
            .map_err(|e| format!("body is not base64: {e}"))?,
        Some(other) => return Err(format!("unknown body_encoding {other:?}")),
    };
    let headers = line
        .headers
        .into_iter()
        .filter(|(k, v)| kept_header(k, v))
        .collect();
    Ok(ReplayEntry {
        method,
        path: line.path,
        headers,
        body,
        route: line.route,
        recorded: None,
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
        assert!(err.to_string().contains("bad.jsonl:2:"), "{err}");
    }

    #[test]
    fn a_torn_last_line_is_skipped_with_a_warning() {
        let file = Path::new("runs/diverging.jsonl");
        let text = b"{\"path\":\"/a\"}\n{\"path\":\"/b\"}\n{\"path\":\"/c\",\"hea";
        let (entries, warnings) = parse(file, text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("runs/diverging.jsonl:3: skipped a torn last line"),
            "{warnings:?}"
        );
        // A last line without a newline that is whole is read; a bad line with one is not torn.
        let (entries, warnings) = parse(file, b"{\"path\":\"/a\"}\n{\"path\":\"/b\"}").unwrap();
        assert_eq!((entries.len(), warnings.len()), (2, 0));
        let err = parse(file, b"{\"path\":\"/a\"}\n{\"path\":\"/b\"\n").unwrap_err();
        assert!(
            err.to_string().starts_with("runs/diverging.jsonl:2:"),
            "{err}"
        );
        // A torn line in the middle is malformed, not torn.
        let err = parse(file, b"{\"path\":\"/a\"\n{\"path\":\"/b\"}\n").unwrap_err();
        assert!(
            err.to_string().starts_with("runs/diverging.jsonl:1:"),
            "{err}"
        );
    }

    #[test]
    fn requests_whose_body_was_withheld_are_skipped_with_a_warning() {
        let file = Path::new("c.jsonl");
        let text = concat!(
            r#"{"method":"POST","path":"/login","body":"[withheld: declared JSON that does not parse; 9 bytes]","body_encoding":"withheld"}"#,
            "\n",
            r#"{"path":"/a"}"#,
            "\n"
        );
        let (entries, warnings) = parse(file, text.as_bytes()).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            warnings,
            ["c.jsonl: skipped 1 request(s) whose body was withheld when recorded (line 1)"]
        );
    }
}
