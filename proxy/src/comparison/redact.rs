//! Secrets out of everything kept: examples and the corpus never hold credentials, cookies or
//! the body fields named by `diff.redact`.

use base64::Engine;
use http::HeaderMap;
use serde_json::Value;

use crate::diff::{JsonPath, PathPattern};

use super::config::DiffConfig;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// Bytes of a body kept in an example; past it the text is cut and marked.
pub const EXAMPLE_BODY_LIMIT: usize = 4096;

/// Headers that always carry secrets.
const SECRET_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Replaces secrets in headers and bodies.
#[derive(Debug, Clone)]
pub struct Redactor {
    headers: Vec<String>,
    paths: Vec<PathPattern>,
}

impl Redactor {
    /// The redactor for a configuration.
    pub fn new(config: &DiffConfig) -> Self {
        let mut headers: Vec<String> = SECRET_HEADERS.iter().map(|h| h.to_string()).collect();
        headers.extend(config.redact_headers.iter().map(|h| h.to_ascii_lowercase()));
        Redactor {
            headers,
            paths: config.redact.clone(),
        }
    }

    /// Headers as (name, value) pairs, secrets replaced.
    pub fn headers(&self, headers: &HeaderMap) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(name, value)| {
                let value = if self.headers.iter().any(|h| h == name.as_str()) {
                    REDACTED.to_string()
                } else {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                };
                (name.as_str().to_string(), value)
            })
            .collect()
    }

    /// A body as text with its secret fields replaced, or as base64 when it is not UTF-8;
    /// returns the text and `"text"` or `"base64"`. JSON bodies are redacted by path; other
    /// text is kept as it is.
    pub fn body(&self, bytes: &[u8], content_type: Option<&str>) -> (String, &'static str) {
        if bytes.is_empty() {
            return (String::new(), "text");
        }
        let looks_json = content_type.is_some_and(|c| c.contains("json"))
            || bytes
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'{' || *b == b'[');
        if !self.paths.is_empty() && looks_json {
            if let Ok(mut value) = serde_json::from_slice::<Value>(bytes) {
                self.redact_value(&mut value, &mut JsonPath::root());
                return (value.to_string(), "text");
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => (text.to_string(), "text"),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(bytes),
                "base64",
            ),
        }
    }

    /// Like [`Redactor::body`], cut to [`EXAMPLE_BODY_LIMIT`] for keeping in memory.
    pub fn example_body(&self, bytes: &[u8], content_type: Option<&str>) -> (String, &'static str) {
        let (mut text, encoding) = self.body(bytes, content_type);
        if text.len() > EXAMPLE_BODY_LIMIT {
            let mut end = EXAMPLE_BODY_LIMIT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str("…(cut)");
        }
        (text, encoding)
    }

    fn redact_value<'a>(&self, value: &'a mut Value, path: &mut JsonPath<'a>) {
        if !path.is_root() && self.paths.iter().any(|p| p.matches(path)) {
            *value = Value::String(REDACTED.to_string());
            return;
        }
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    path.push_key(key.as_str());
                    self.redact_value(child, path);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter_mut().enumerate() {
                    path.push_index(i);
                    self.redact_value(child, path);
                    path.pop();
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(paths: &[&str], headers: &[&str]) -> Redactor {
        let config = DiffConfig {
            redact: paths
                .iter()
                .map(|p| PathPattern::parse(p).unwrap())
                .collect(),
            redact_headers: headers.iter().map(|h| h.to_string()).collect(),
            ..DiffConfig::default()
        };
        Redactor::new(&config)
    }

    #[test]
    fn secret_headers_are_replaced() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        h.insert("cookie", "session=1".parse().unwrap());
        h.insert("x-api-key", "k".parse().unwrap());
        h.insert("accept", "application/json".parse().unwrap());
        let out = redactor(&[], &["X-Api-Key"]).headers(&h);
        for (name, value) in out {
            if name == "accept" {
                assert_eq!(value, "application/json");
            } else {
                assert_eq!(value, REDACTED, "{name}");
            }
        }
    }

    #[test]
    fn json_fields_are_replaced_at_any_depth() {
        let r = redactor(&["$..card_number", "$.token"], &[]);
        let body = br#"{"token": "t", "payment": {"card_number": "4111", "amount": 5}, "items": [{"card_number": "5500"}]}"#;
        let (text, encoding) = r.body(body, Some("application/json"));
        assert_eq!(encoding, "text");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["token"], REDACTED);
        assert_eq!(v["payment"]["card_number"], REDACTED);
        assert_eq!(v["payment"]["amount"], 5);
        assert_eq!(v["items"][0]["card_number"], REDACTED);
    }

    #[test]
    fn binary_bodies_are_base64_and_examples_are_cut() {
        let r = redactor(&[], &[]);
        assert_eq!(r.body(&[0xff, 0x00], None), ("/wA=".to_string(), "base64"));
        let long = "é".repeat(EXAMPLE_BODY_LIMIT);
        let (text, _) = r.example_body(long.as_bytes(), Some("text/plain"));
        assert!(text.len() <= EXAMPLE_BODY_LIMIT + "…(cut)".len());
        assert!(text.ends_with("…(cut)"));
    }
}
