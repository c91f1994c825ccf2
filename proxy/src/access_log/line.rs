//! One access log line: a record's fields, the target's query redacted and every value a
//! client controls cut to a bound, written as one JSON object (serde_json escapes quotes,
//! control characters and anything else JSON needs escaped, so a line is always one line).

use std::borrow::Cow;
use std::net::IpAddr;

use http::HeaderValue;
use pingora_error::ErrorSource;
use serde::Serialize;
use twinpeak_core::timestamp::rfc3339;

use super::AccessRecord;
use crate::comparison::redact::Redactor;
use crate::labels::Side;

/// Longest `path` kept, in bytes (after redaction); past it the text is cut and marked.
pub const MAX_PATH_BYTES: usize = 2048;
/// Longest `method` kept (extension methods are tokens of any length).
const MAX_METHOD_BYTES: usize = 32;
/// Longest `user_agent` kept.
const MAX_USER_AGENT_BYTES: usize = 512;
/// Longest `referer` kept (after redaction).
const MAX_REFERER_BYTES: usize = 1024;
/// Longest `request_id` kept.
const MAX_REQUEST_ID_BYTES: usize = 200;
/// What ends a value that was cut.
pub const CUT_MARK: &str = "…";

/// A record as its line shows it.
#[derive(Debug, Serialize)]
pub struct AccessLine<'a> {
    /// When the request ended, RFC 3339 UTC with milliseconds.
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<Cow<'a, str>>,
    route: &'a str,
    method: Cow<'a, str>,
    /// The request target, secret query values replaced, cut at [`MAX_PATH_BYTES`].
    path: Cow<'a, str>,
    /// The whole target's length in bytes, when `path` was cut.
    #[serde(skip_serializing_if = "Option::is_none")]
    path_bytes: Option<usize>,
    http: &'static str,
    /// 0 when no answer was sent (the client went away first).
    status: u16,
    bytes_sent: u64,
    bytes_received: u64,
    /// From the request's header read to the end of the request.
    duration_us: u64,
    side: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidate_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mirror: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    referer: Option<Cow<'a, str>>,
    /// What failed: the serving side's error kind (`connect`, `timeout`, `read`, `tls`,
    /// `other`), `client` or `internal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    /// Pingora's name for the error (`ConnectRefused`, `ReadTimedout`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    error_type: Option<&'static str>,
}

impl<'a> AccessLine<'a> {
    /// The line of `record`, its target and referer redacted by `redactor`; `route_names` are
    /// the route table's names by id.
    pub fn of(redactor: &Redactor, route_names: &'a [String], record: &'a AccessRecord) -> Self {
        let facts = &record.facts;
        let target = record
            .target
            .path_and_query()
            .map_or_else(|| record.target.path(), |p| p.as_str());
        let redacted = redactor.uri(target);
        let path_bytes = (redacted.len() > MAX_PATH_BYTES).then_some(target.len());
        let upstream_us = facts.upstream.map(|d| d.as_micros() as u64);
        let error = match (facts.upstream_error, &record.error) {
            (Some(kind), _) => Some(kind.as_str()),
            (None, Some((ErrorSource::Downstream, _))) => Some("client"),
            (None, Some(_)) => Some("internal"),
            (None, None) => None,
        };
        AccessLine {
            time: rfc3339(record.end),
            request_id: record
                .request_id
                .as_ref()
                .map(|v| header_text(v, MAX_REQUEST_ID_BYTES)),
            route: route_names.get(facts.route).map_or("other", String::as_str),
            method: cut(Cow::Borrowed(record.method.as_str()), MAX_METHOD_BYTES),
            path: cut(redacted, MAX_PATH_BYTES),
            path_bytes,
            http: http_version(record.version),
            status: record.status,
            bytes_sent: record.bytes_sent,
            bytes_received: record.bytes_received,
            duration_us: record.duration.as_micros() as u64,
            side: facts.side.as_str(),
            primary_us: upstream_us.filter(|_| facts.side == Side::Primary),
            candidate_us: upstream_us.filter(|_| facts.side == Side::Candidate),
            mirror: facts.mirror.as_str(),
            tls: record.tls.as_deref(),
            client: record.client.map(|a| a.ip()),
            user_agent: record
                .user_agent
                .as_ref()
                .map(|v| header_text(v, MAX_USER_AGENT_BYTES)),
            referer: record.referer.as_ref().map(|v| {
                let text = String::from_utf8_lossy(v.as_bytes());
                let redacted = match redactor.uri(&text) {
                    Cow::Borrowed(_) => text,
                    Cow::Owned(changed) => Cow::Owned(changed),
                };
                cut(redacted, MAX_REFERER_BYTES)
            }),
            error,
            error_type: record.error.as_ref().map(|(_, name)| *name),
        }
    }

    /// Appends the line, and its newline, to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(&mut *out, self).expect("a line always serializes");
        out.push(b'\n');
    }
}

/// A header's value as text (bytes that are not UTF-8 replaced), cut to `limit` bytes.
fn header_text(value: &HeaderValue, limit: usize) -> Cow<'_, str> {
    cut(String::from_utf8_lossy(value.as_bytes()), limit)
}

/// `text` cut to at most `limit` bytes at a character boundary, followed by [`CUT_MARK`],
/// when it is longer.
fn cut(text: Cow<'_, str>, limit: usize) -> Cow<'_, str> {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{CUT_MARK}", &text[..end]))
}

/// The protocol as Envoy's access log names it.
fn http_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant, UNIX_EPOCH};

    use serde_json::Value;

    use super::*;
    use crate::access_log::{MirrorDecision, RequestFacts};
    use crate::budget::Reservation;
    use crate::labels::MirrorOutcome;
    use crate::metrics::UpstreamErrorKind;

    fn record(target: &str) -> AccessRecord {
        AccessRecord {
            end: UNIX_EPOCH + Duration::from_millis(1_764_612_000_123),
            duration: Duration::from_micros(1500),
            facts: RequestFacts {
                arrival: Instant::now(),
                route: 0,
                side: Side::Primary,
                upstream: Some(Duration::from_micros(1200)),
                upstream_error: None,
                mirror: MirrorDecision::Mirrored,
            },
            request_id: Some(HeaderValue::from_static("req-1")),
            method: http::Method::GET,
            target: target.parse().unwrap(),
            version: http::Version::HTTP_11,
            status: 200,
            bytes_sent: 42,
            bytes_received: 0,
            tls: None,
            client: Some("127.0.0.1:40000".parse().unwrap()),
            user_agent: Some(HeaderValue::from_static("curl/8")),
            referer: None,
            error: None,
            _reservation: Reservation::default(),
        }
    }

    fn line(record: &AccessRecord) -> (String, Value) {
        let names = vec!["/bookings/{id}".to_string(), "other".to_string()];
        let mut out = Vec::new();
        AccessLine::of(&Redactor::default(), &names, record).write_to(&mut out);
        let text = String::from_utf8(out).unwrap();
        let value = serde_json::from_str(&text).unwrap();
        (text, value)
    }

    #[test]
    fn a_served_request_shows_every_field_it_has() {
        let (text, v) = line(&record("/bookings/7?x=1"));
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.ends_with("}\n"), "{text}");
        assert_eq!(v["time"], "2025-12-01T18:00:00.123Z");
        assert_eq!(v["request_id"], "req-1");
        assert_eq!(v["route"], "/bookings/{id}");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/bookings/7?x=1");
        assert_eq!(v["http"], "HTTP/1.1");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes_sent"], 42);
        assert_eq!(v["duration_us"], 1500);
        assert_eq!(v["side"], "primary");
        assert_eq!(v["primary_us"], 1200);
        assert_eq!(v["mirror"], "mirrored");
        assert_eq!(v["client"], "127.0.0.1");
        assert_eq!(v["user_agent"], "curl/8");
        for absent in [
            "candidate_us",
            "tls",
            "referer",
            "error",
            "error_type",
            "path_bytes",
        ] {
            assert!(v.get(absent).is_none(), "{absent}: {text}");
        }
    }

    #[test]
    fn a_candidate_answer_and_a_failed_primary_say_so() {
        let mut served = record("/bookings/7");
        served.facts.side = Side::Candidate;
        served.facts.mirror = MirrorDecision::Skipped(MirrorOutcome::NotSampled);
        served.tls = Some(Cow::Borrowed("TLSv1_3"));
        served.version = http::Version::HTTP_2;
        let (_, v) = line(&served);
        assert_eq!(v["side"], "candidate");
        assert_eq!(v["candidate_us"], 1200);
        assert!(v.get("primary_us").is_none());
        assert_eq!(v["mirror"], "not_sampled");
        assert_eq!(
            (v["tls"].as_str(), v["http"].as_str()),
            (Some("TLSv1_3"), Some("HTTP/2"))
        );

        let mut failed = record("/bookings/7");
        failed.status = 502;
        failed.facts.upstream = None;
        failed.facts.upstream_error = Some(UpstreamErrorKind::Connect);
        failed.facts.mirror = MirrorDecision::Undecided;
        failed.error = Some((ErrorSource::Upstream, "ConnectRefused"));
        let (_, v) = line(&failed);
        assert_eq!(v["status"], 502);
        assert_eq!(v["error"], "connect");
        assert_eq!(v["error_type"], "ConnectRefused");
        assert!(v.get("primary_us").is_none() && v.get("mirror").is_none());

        let mut gone = record("/bookings/7");
        gone.status = 0;
        gone.error = Some((ErrorSource::Downstream, "ConnectionClosed"));
        assert_eq!(line(&gone).1["error"], "client");
    }

    #[test]
    fn secret_query_values_and_referers_are_redacted() {
        let mut r = record("/bookings/7?api_key=s3cr3t&page=2");
        r.referer = Some(HeaderValue::from_static(
            "https://shop.test/cart?token=abc123&x=1",
        ));
        let (text, v) = line(&r);
        assert!(
            !text.contains("s3cr3t") && !text.contains("abc123"),
            "{text}"
        );
        assert!(v["path"].as_str().unwrap().contains("page=2"), "{text}");
        assert!(v["referer"].as_str().unwrap().contains("x=1"), "{text}");
    }

    #[test]
    fn hostile_values_stay_one_bounded_line() {
        let long = format!("/a%22b%0A%0D{}?q=\"x\"", "y".repeat(10_000));
        let mut r = record("/");
        // What a client could put in the target that `Uri` lets through: quotes, percent
        // escapes of control characters, and length.
        r.target = http::Uri::from_maybe_shared(long.clone().into_bytes()).unwrap_or_else(|_| {
            format!("/a%22b%0A%0D{}", "y".repeat(10_000))
                .parse()
                .unwrap()
        });
        r.user_agent = Some(HeaderValue::from_bytes(b"ua \"quoted\" \\ \t\xff end").unwrap());
        r.method = http::Method::from_bytes(&[b'M'; 100]).unwrap();
        let (text, v) = line(&r);
        assert_eq!(text.matches('\n').count(), 1);
        assert!(text.len() < MAX_PATH_BYTES + 2048, "{}", text.len());
        let path = v["path"].as_str().unwrap();
        assert!(path.ends_with(CUT_MARK), "{path}");
        assert!(path.len() <= MAX_PATH_BYTES + CUT_MARK.len());
        assert!(path.starts_with("/a%22b%0A%0D"), "{path}");
        assert!(v["path_bytes"].as_u64().unwrap() > 10_000);
        assert!(v["user_agent"].as_str().unwrap().contains("\"quoted\" \\"));
        assert_eq!(v["method"].as_str().unwrap().len(), 32 + CUT_MARK.len());
    }

    #[test]
    fn cutting_keeps_whole_characters() {
        assert_eq!(cut(Cow::Borrowed("short"), 10), "short");
        assert_eq!(cut(Cow::Borrowed("ééé"), 3), format!("é{CUT_MARK}"));
        assert_eq!(http_version(http::Version::HTTP_10), "HTTP/1.0");
    }
}
