//! Secrets out of everything kept or logged: examples, the corpus and log lines never hold
//! credentials, cookies, secret query parameters or form fields, or the body fields named by
//! `diff.redact`. A body that cannot be parsed for redaction is withheld, not kept raw.

mod params;
mod secret_keys;

use std::borrow::Cow;
use std::sync::{Mutex, TryLockError};

use base64::Engine;
use http::HeaderMap;
use serde_json::Value;

use crate::diff::{DiffKind, Finding, JsonPath, PathPattern};

use super::config::DiffConfig;
pub use params::SecretNames;
pub use secret_keys::KeyCache;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// The `body_encoding` of a body that was withheld; its text says why.
pub const WITHHELD: &str = "withheld";

/// Bytes of a body kept in an example; past it the text is cut and marked.
pub const EXAMPLE_BODY_LIMIT: usize = 4096;

/// Headers that always carry secrets.
const SECRET_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Headers whose values are URIs, redacted as such.
const URI_HEADERS: [&str; 3] = ["referer", "location", "content-location"];

/// Replaces secrets in URIs, headers and bodies.
#[derive(Debug)]
pub struct Redactor {
    headers: Vec<String>,
    paths: Vec<PathPattern>,
    names: SecretNames,
    /// Which JSON keys were found secret, for the next body; taken without waiting, and
    /// passed by when another thread holds it.
    keys: Mutex<KeyCache>,
}

impl Clone for Redactor {
    /// The same rules, with a cache of its own.
    fn clone(&self) -> Self {
        Redactor {
            headers: self.headers.clone(),
            paths: self.paths.clone(),
            names: self.names.clone(),
            keys: Mutex::default(),
        }
    }
}

impl Default for Redactor {
    /// The redactor of the default configuration.
    fn default() -> Self {
        Redactor::new(&DiffConfig::default())
    }
}

impl Redactor {
    /// The redactor for a configuration.
    pub fn new(config: &DiffConfig) -> Self {
        let mut headers: Vec<String> = SECRET_HEADERS.iter().map(|h| h.to_string()).collect();
        headers.extend(config.redact_headers.iter().map(|h| h.to_ascii_lowercase()));
        Redactor {
            headers,
            paths: config.redact.clone(),
            names: SecretNames::new(config.redact_params.iter().map(String::as_str)),
            keys: Mutex::default(),
        }
    }

    /// A request target (`/path?query#fragment`, or a whole URL) with the values of secret
    /// query and path parameters (`;jsessionid=...`) replaced: for log lines, examples and the
    /// corpus.
    pub fn uri<'a>(&self, uri: &'a str) -> Cow<'a, str> {
        let (path, rest) = match uri.split_once('?') {
            Some((path, rest)) => (path, Some(rest)),
            None => (uri, None),
        };
        let (query, fragment) = match rest.map(|rest| rest.split_once('#').unwrap_or((rest, ""))) {
            Some((query, fragment)) => (Some(query), fragment),
            None => (None, ""),
        };
        let redacted_path = self.names.path(path);
        let redacted_query = query.map(|query| self.names.query(query));
        let changed =
            matches!(redacted_path, Cow::Owned(_)) || matches!(redacted_query, Some(Cow::Owned(_)));
        if !changed {
            return Cow::Borrowed(uri);
        }
        let mut out = redacted_path.into_owned();
        if let Some(query) = redacted_query {
            out.push('?');
            out.push_str(&query);
            let hash = rest.is_some_and(|rest| rest.contains('#'));
            if hash {
                out.push('#');
                out.push_str(fragment);
            }
        }
        Cow::Owned(out)
    }

    /// Headers as (name, value) pairs, secrets replaced.
    pub fn headers(&self, headers: &HeaderMap) -> Vec<(String, String)> {
        self.header_pairs(headers)
            .map(|(name, value)| (name.to_string(), value.into_owned()))
            .collect()
    }

    /// Headers as (name, value) pairs, secrets replaced, borrowed from `headers` where nothing
    /// was.
    pub fn header_pairs<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> impl Iterator<Item = (&'a str, Cow<'a, str>)> + 'a {
        headers.iter().map(|(name, value)| {
            let text = String::from_utf8_lossy(value.as_bytes());
            let value = if self.is_secret_header(name.as_str()) {
                Cow::Borrowed(REDACTED)
            } else if URI_HEADERS.contains(&name.as_str()) {
                Cow::Owned(self.uri(&text).into_owned())
            } else {
                text
            };
            (name.as_str(), value)
        })
    }

    fn is_secret_header(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// A body as text with its secrets replaced, or as base64 when it is binary; returns the
    /// text and `"text"`, `"base64"` or [`WITHHELD`]. JSON (declared, or sniffed and parsing)
    /// is redacted by path and by secret key; form bodies by secret field. A declared JSON
    /// body that does not parse, or a form body that does not decode, is withheld: the text
    /// says why and how big it was. (Without `diff.redact` paths, a JSON body whose text holds
    /// no secret name's word at all is kept as written without being parsed: nothing in it
    /// could be redacted, whether or not it parses.)
    pub fn body(&self, bytes: &[u8], content_type: Option<&str>) -> (String, &'static str) {
        let (text, encoding) = self.body_text(bytes, content_type);
        (text.into_owned(), encoding)
    }

    /// Like [`Redactor::body`], borrowing the text from `bytes` when it is kept as written.
    pub fn body_text<'a>(
        &self,
        bytes: &'a [u8],
        content_type: Option<&str>,
    ) -> (Cow<'a, str>, &'static str) {
        if bytes.is_empty() {
            return (Cow::Borrowed(""), "text");
        }
        let media = content_type
            .and_then(|c| c.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let declared_json = media.contains("json");
        let sniffed_json = media.is_empty()
            && bytes
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'{' || *b == b'[');
        if declared_json || sniffed_json {
            // Most bodies hold nothing to redact. One pass over the text says so when no
            // secret name's word is in it at all; otherwise a read of their keys alone says so
            // (and that they parse) without building the document.
            let keys = self.paths.is_empty().then(|| {
                if self.names.may_occur_in(bytes) {
                    self.find_secret_keys(bytes)
                } else {
                    Ok(false)
                }
            });
            let parsed = match keys {
                Some(Ok(false)) => return plain(bytes),
                Some(Err(e)) => Err(e),
                Some(Ok(true)) | None => serde_json::from_slice::<Value>(bytes),
            };
            match parsed {
                Ok(mut value) => {
                    if self.redact_value(&mut value, &mut JsonPath::root()) {
                        return (Cow::Owned(value.to_string()), "text");
                    }
                }
                Err(_) if declared_json => {
                    return withheld("declared JSON that does not parse", bytes.len())
                }
                Err(_) => {}
            }
        } else if media == "application/x-www-form-urlencoded" {
            let form = std::str::from_utf8(bytes)
                .map_err(|_| params::Undecodable("not UTF-8"))
                .and_then(|text| self.names.form(text));
            return match form {
                Ok(form) => (form, "text"),
                Err(params::Undecodable(why)) => withheld(
                    &format!("a form body that does not decode ({why})"),
                    bytes.len(),
                ),
            };
        }
        plain(bytes)
    }

    /// Whether a JSON body has a secret key (an error when it does not parse), with the
    /// decisions kept from earlier bodies when no other thread is using them.
    fn find_secret_keys(&self, bytes: &[u8]) -> Result<bool, serde_json::Error> {
        match self.keys.try_lock() {
            Ok(mut cache) => secret_keys::find(&self.names, Some(&mut cache), bytes),
            Err(TryLockError::Poisoned(poisoned)) => {
                secret_keys::find(&self.names, Some(&mut poisoned.into_inner()), bytes)
            }
            Err(TryLockError::WouldBlock) => secret_keys::find(&self.names, None, bytes),
        }
    }

    /// JSON keys whose decision is kept, and lookups of keys past the cache's bounds
    /// ([`KeyCache::MAX_KEYS`] keys of [`KeyCache::MAX_KEY_BYTES`] bytes), decided afresh.
    pub fn cached_keys(&self) -> (usize, u64) {
        let cache = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        (cache.held(), cache.uncached())
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

    /// A finding as an example shows it: its detail (which quotes both values) replaced when
    /// it is about a secret header or a redacted body field.
    pub fn finding(&self, finding: &Finding) -> Finding {
        let secret = match finding.kind {
            DiffKind::Header => finding
                .path
                .strip_prefix("header:")
                .is_some_and(|name| self.is_secret_header(name)),
            DiffKind::Status | DiffKind::Text | DiffKind::Binary => false,
            _ => self.is_secret_path(&finding.path),
        };
        let mut shown = finding.clone();
        if secret {
            shown.detail = REDACTED.to_string();
        }
        shown
    }

    /// Whether a normalised finding path (`$.items[*].card`) is, or is inside, a redacted
    /// field. A path that does not parse is taken as secret.
    fn is_secret_path(&self, path: &str) -> bool {
        let Ok(path) = JsonPath::parse(&path.replace("[*]", "[0]")) else {
            return true;
        };
        let mut prefix = JsonPath::root();
        for segment in path.segments() {
            match segment {
                crate::diff::PathSegment::Key(key) => {
                    if self.names.is_secret(key) {
                        return true;
                    }
                    prefix.push_key(key.as_ref());
                }
                crate::diff::PathSegment::Index(index) => prefix.push_index(*index),
            }
            if self.paths.iter().any(|p| p.matches(&prefix)) {
                return true;
            }
        }
        false
    }

    /// Replaces the values under secret keys and redacted paths; returns whether any was.
    fn redact_value<'a>(&self, value: &'a mut Value, path: &mut JsonPath<'a>) -> bool {
        if !path.is_root() && self.paths.iter().any(|p| p.matches(path)) {
            *value = Value::String(REDACTED.to_string());
            return true;
        }
        let mut changed = false;
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    if self.names.is_secret(key) && !child.is_null() {
                        *child = Value::String(REDACTED.to_string());
                        changed = true;
                        continue;
                    }
                    path.push_key(key.as_str());
                    changed |= self.redact_value(child, path);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter_mut().enumerate() {
                    path.push_index(i);
                    changed |= self.redact_value(child, path);
                    path.pop();
                }
            }
            _ => {}
        }
        changed
    }
}

/// A body kept as it is: as text when it is UTF-8, otherwise as base64.
fn plain(bytes: &[u8]) -> (Cow<'_, str>, &'static str) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (Cow::Borrowed(text), "text"),
        Err(_) => (
            Cow::Owned(base64::engine::general_purpose::STANDARD.encode(bytes)),
            "base64",
        ),
    }
}

/// The text that stands for a withheld body.
fn withheld(why: &str, size: usize) -> (Cow<'static, str>, &'static str) {
    (
        Cow::Owned(format!("[withheld: {why}; {size} bytes]")),
        WITHHELD,
    )
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
            redact_params: vec!["booking_ref".into()],
            ..DiffConfig::default()
        };
        Redactor::new(&config)
    }

    #[test]
    fn secret_headers_are_replaced_and_uris_in_headers_redacted() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        h.insert("cookie", "session=1".parse().unwrap());
        h.insert("x-api-key", "k".parse().unwrap());
        h.insert("accept", "application/json".parse().unwrap());
        h.insert(
            "referer",
            "https://a.example/p?token=t&x=1".parse().unwrap(),
        );
        let out = redactor(&[], &["X-Api-Key"]).headers(&h);
        for (name, value) in out {
            match name.as_str() {
                "accept" => assert_eq!(value, "application/json"),
                "referer" => assert_eq!(value, "https://a.example/p?token=[redacted]&x=1"),
                _ => assert_eq!(value, REDACTED, "{name}"),
            }
        }
    }

    #[test]
    fn uris_lose_secret_query_values_only() {
        let r = redactor(&[], &[]);
        assert!(matches!(r.uri("/bookings/7?page=2"), Cow::Borrowed(_)));
        assert_eq!(
            r.uri("/bookings/7?api_key=k1&page=2&booking_ref=B7#top"),
            "/bookings/7?api_key=[redacted]&page=2&booking_ref=[redacted]#top"
        );
        assert_eq!(r.uri("/a?sig=abc"), "/a?sig=[redacted]");
        assert_eq!(
            r.uri("/cart;jsessionid=S1/items;v=2?page=1"),
            "/cart;jsessionid=[redacted]/items;v=2?page=1"
        );
        assert_eq!(
            r.uri("/a;x=1;token=t/b?sig=s#f"),
            "/a;x=1;token=[redacted]/b?sig=[redacted]#f"
        );
        assert!(matches!(r.uri("/a;v=2/b"), Cow::Borrowed(_)));
        assert_eq!(r.uri("/a/;session=s"), "/a/;session=[redacted]");
    }

    #[test]
    fn json_fields_are_replaced_by_path_and_by_secret_key() {
        let r = redactor(&["$..card_number"], &[]);
        let body = br#"{"password": "p", "payment": {"card_number": "4111", "amount": 5}, "items": [{"card_number": "5500"}], "id": 12345678901234567890123}"#;
        let (text, encoding) = r.body(body, Some("application/json; charset=utf-8"));
        assert_eq!(encoding, "text");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["password"], REDACTED);
        assert_eq!(v["payment"]["card_number"], REDACTED);
        assert_eq!(v["payment"]["amount"], 5);
        assert_eq!(v["items"][0]["card_number"], REDACTED);
        // Nothing to redact: the body is kept as written, big numbers and all.
        let plain = br#"{"id": 12345678901234567890123, "name": "x"}"#;
        assert_eq!(r.body(plain, None).0.as_bytes(), plain);
    }

    #[test]
    fn json_keys_decided_once_are_decided_alike_from_the_cache() {
        let r = redactor(&[], &[]);
        let body = br#"{"id": 1, "items": [{"sku": "a", "accessToken": "t"}]}"#;
        let first = r.body(body, Some("application/json"));
        assert!(!first.0.contains("\"t\""), "{}", first.0);
        assert_eq!(r.cached_keys(), (4, 0));
        assert_eq!(r.body(body, Some("application/json")), first);
        assert_eq!(r.cached_keys(), (4, 0));
        // A clone has the rules and a cache of its own.
        assert_eq!(r.clone().body(body, None), first);
    }

    #[test]
    fn bodies_that_cannot_be_parsed_for_redaction_are_withheld() {
        let r = redactor(&[], &[]);
        let (text, encoding) = r.body(br#"{"password": "hunter2""#, Some("application/json"));
        assert_eq!(encoding, WITHHELD);
        assert_eq!(
            text,
            "[withheld: declared JSON that does not parse; 22 bytes]"
        );
        let form = Some("application/x-www-form-urlencoded");
        let (text, encoding) = r.body(b"user=ann&password=hunter2%", form);
        assert_eq!(encoding, WITHHELD);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("does not decode"), "{text}");
        assert_eq!(
            r.body(b"user=ann&password=hunter2", form),
            ("user=ann&password=[redacted]".to_string(), "text")
        );
        // Undeclared text that merely looks like JSON is text.
        assert_eq!(r.body(b"{not json", None).1, "text");
    }

    #[test]
    fn findings_about_secrets_lose_their_values() {
        let r = redactor(&["$.payment.card"], &[]);
        let finding = |path: &str, kind| Finding {
            path: path.into(),
            kind,
            detail: "\"a\" → \"b\"".into(),
        };
        for path in ["$.session.id", "$.payment.card", "$.payment.card.last4"] {
            let shown = r.finding(&finding(path, DiffKind::ValueChanged));
            assert_eq!(shown.detail, REDACTED, "{path}");
        }
        let shown = r.finding(&finding("$.items[*].price", DiffKind::ValueChanged));
        assert_eq!(shown.detail, "\"a\" → \"b\"");
        let shown = r.finding(&finding("header:set-cookie", DiffKind::Header));
        assert_eq!(shown.detail, REDACTED);
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
