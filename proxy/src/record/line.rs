//! A record as one JSON line of `twinpeak.recording/v1`, written straight from what the request
//! path copied: redacted as it is written, borrowing every header and body kept as written, into
//! the writer's buffer. The line is exactly what serializing a
//! [`twinpeak_core::recording::RecordedExchange`] gives (fields, order, escapes), written by hand
//! because escaping bodies' text a byte at a time was the writer's largest cost.

use std::borrow::Cow;
use std::io::Write;

use http::HeaderMap;

use super::PendingRecord;
use crate::capture::CapturedBody;
use crate::comparison::redact::Redactor;
use crate::headers::REQUEST_ID;

/// A recorded exchange as written, borrowed from the record.
pub(super) struct ExchangeLine<'a> {
    at_us: u64,
    request_id: &'a str,
    route: &'a str,
    method: &'a str,
    path: Cow<'a, str>,
    headers: HeaderPairs<'a>,
    body: BodyLine<'a>,
    response: Option<ResponseLine<'a>>,
}

/// The primary's answer as written.
struct ResponseLine<'a> {
    status: u16,
    headers: HeaderPairs<'a>,
    body: BodyLine<'a>,
    latency_us: u64,
}

/// A body as written: redacted, or withheld when it cannot be.
struct BodyLine<'a> {
    data: Cow<'a, str>,
    encoding: &'static str,
    truncated_from: Option<u64>,
}

/// Headers written as `[name, value]` pairs, secrets redacted as they are written.
struct HeaderPairs<'a>(&'a Redactor, &'a HeaderMap);

impl<'a> ExchangeLine<'a> {
    /// The line of `record`, redacted by `redactor`.
    pub(super) fn of(
        redactor: &'a Redactor,
        route_names: &'a [String],
        record: &'a PendingRecord,
    ) -> Self {
        ExchangeLine {
            at_us: record.at_us,
            request_id: record
                .headers
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
            route: route_names.get(record.route).map_or("", String::as_str),
            method: record.method.as_str(),
            path: redactor.uri(&record.uri),
            headers: HeaderPairs(redactor, &record.headers),
            body: BodyLine::of(redactor, &record.body, record.body_len, &record.headers),
            response: record.answer.as_ref().map(|answer| ResponseLine {
                status: answer.status,
                headers: HeaderPairs(redactor, &answer.headers),
                body: BodyLine::of(redactor, &answer.body, answer.body_len, &answer.headers),
                latency_us: answer.latency.as_micros() as u64,
            }),
        }
    }

    /// Appends the line's JSON (without its newline) to `out`.
    pub(super) fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"at_us\":");
        number(out, self.at_us);
        if !self.request_id.is_empty() {
            out.extend_from_slice(b",\"request_id\":");
            string(out, self.request_id);
        }
        out.extend_from_slice(b",\"route\":");
        string(out, self.route);
        out.extend_from_slice(b",\"method\":");
        string(out, self.method);
        out.extend_from_slice(b",\"path\":");
        string(out, &self.path);
        out.extend_from_slice(b",\"headers\":");
        self.headers.write_to(out);
        out.extend_from_slice(b",\"body\":");
        self.body.write_to(out);
        if let Some(response) = &self.response {
            out.extend_from_slice(b",\"response\":{\"status\":");
            number(out, u64::from(response.status));
            out.extend_from_slice(b",\"headers\":");
            response.headers.write_to(out);
            out.extend_from_slice(b",\"body\":");
            response.body.write_to(out);
            out.extend_from_slice(b",\"latency_us\":");
            number(out, response.latency_us);
            out.push(b'}');
        }
        out.push(b'}');
    }
}

impl<'a> BodyLine<'a> {
    fn of(redactor: &Redactor, body: &'a CapturedBody, whole: u64, headers: &HeaderMap) -> Self {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let (data, encoding) = redactor.body_text(&body.bytes, content_type);
        BodyLine {
            data,
            encoding,
            truncated_from: (whole > body.bytes.len() as u64).then_some(whole),
        }
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        if !self.data.is_empty() {
            out.extend_from_slice(b"\"data\":");
            string(out, &self.data);
            out.push(b',');
        }
        out.extend_from_slice(b"\"encoding\":");
        string(out, self.encoding);
        if let Some(whole) = self.truncated_from {
            out.extend_from_slice(b",\"truncated_from\":");
            number(out, whole);
        }
        out.push(b'}');
    }
}

impl HeaderPairs<'_> {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, (name, value)) in self.0.header_pairs(self.1).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            string(out, name);
            out.push(b',');
            string(out, &value);
            out.push(b']');
        }
        out.push(b']');
    }
}

fn number(out: &mut Vec<u8>, n: u64) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{n}");
}

/// What follows a backslash for each byte that JSON requires escaped (`u` for `\u00XX`), or 0.
const ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends `text` as a JSON string, escaped as serde_json escapes it. The text is taken eight
/// bytes at a time: a word with nothing to escape is copied whole, and one with something is
/// copied whole too, then cut back to the bytes before its first escape (fixed-size copies cost
/// less than a copy of each run between quotes, which in JSON text are a few bytes apart).
fn string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word: [u8; 8] = chunk.try_into().unwrap_or_default();
        let found = escape_mask(u64::from_le_bytes(word));
        out.extend_from_slice(&word);
        if found == 0 {
            at += 8;
            continue;
        }
        let clean = (found.trailing_zeros() / 8) as usize;
        out.truncate(out.len() - 8 + clean);
        escape(out, word[clean], HEX);
        at += clean + 1;
    }
    for &byte in &bytes[at..] {
        if ESCAPES[usize::from(byte)] == 0 {
            out.push(byte);
        } else {
            escape(out, byte, HEX);
        }
    }
    out.push(b'"');
}

/// Appends the escape of a byte that needs one.
#[inline(always)]
fn escape(out: &mut Vec<u8>, byte: u8, hex: &[u8; 16]) {
    let escape = ESCAPES[usize::from(byte)];
    if escape == b'u' {
        let (high, low) = (hex[usize::from(byte >> 4)], hex[usize::from(byte & 0xf)]);
        out.extend_from_slice(&[b'\\', b'u', b'0', b'0', high, low]);
    } else {
        out.extend_from_slice(&[b'\\', escape]);
    }
}

/// The high bit of each byte of a word (read little-endian) that is below 0x20, a quote or a
/// backslash. Bytes after the first marked one may be marked wrongly (a borrow carries into
/// them); the first is always right.
fn escape_mask(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |n: u8, w: u64| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    below(0x20, word) | below(1, quote) | below(1, backslash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::BodyCapture;
    use twinpeak_core::recording::{RecordedBody, RecordedExchange, RecordedResponse};

    #[test]
    fn a_line_reads_back_as_the_exchange_it_was_written_from() {
        let redactor = Redactor::default();
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, "r-1".parse().unwrap());
        headers.insert("authorization", "Bearer s3cret".parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        let mut body = BodyCapture::unbudgeted(8);
        body.push(br#"{"a":"\u00e9"}"#);
        let body = body.finish();
        let answer = {
            let mut capture = BodyCapture::unbudgeted(64);
            capture.push(&[0xff, 0x00]);
            capture.finish()
        };
        let answer_headers = HeaderMap::new();
        let line = ExchangeLine {
            at_us: 7,
            request_id: "r-1",
            route: "/bookings/{id}",
            method: "POST",
            path: redactor.uri("/bookings/1?token=t&page=2"),
            headers: HeaderPairs(&redactor, &headers),
            body: BodyLine {
                data: redactor.body_text(&body.bytes, Some("text/plain")).0,
                encoding: "text",
                truncated_from: Some(14),
            },
            response: Some(ResponseLine {
                status: 201,
                headers: HeaderPairs(&redactor, &answer_headers),
                body: BodyLine {
                    data: redactor.body_text(&answer.bytes, None).0,
                    encoding: "base64",
                    truncated_from: None,
                },
                latency_us: 1500,
            }),
        };
        let mut written = Vec::new();
        line.write_to(&mut written);
        let written = String::from_utf8(written).unwrap();
        let read: RecordedExchange = serde_json::from_str(&written).unwrap();
        let expected = RecordedExchange {
            at_us: 7,
            request_id: "r-1".into(),
            route: "/bookings/{id}".into(),
            method: "POST".into(),
            path: "/bookings/1?token=[redacted]&page=2".into(),
            headers: redactor.headers(&headers),
            body: RecordedBody {
                data: r#"{"a":"\u"#.into(),
                encoding: "text".into(),
                truncated_from: Some(14),
            },
            response: Some(RecordedResponse {
                status: 201,
                headers: Vec::new(),
                body: RecordedBody {
                    data: "/wA=".into(),
                    encoding: "base64".into(),
                    truncated_from: None,
                },
                latency_us: 1500,
            }),
        };
        assert_eq!(read, expected);
        assert!(!written.contains("s3cret"), "{written}");
        // Written the same, byte for byte, as the exchange itself.
        assert_eq!(written, serde_json::to_string(&expected).unwrap());
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let every_ascii: String = (0u8..128).map(char::from).collect();
        let texts = [
            String::new(),
            every_ascii.clone(),
            every_ascii.repeat(3)[5..].to_string(),
            r#"{"id":42,"note":"a \"quoted\" \\ word"}"#.repeat(9),
            "é ü 中文 🙂 plain text long enough for words\u{7f}\u{1f}".into(),
            "12345678\n12345678".into(),
            "\u{1}a\"\\\u{1f}\"".repeat(5),
        ];
        for text in texts {
            let mut out = Vec::new();
            string(&mut out, &text);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&text).unwrap(),
                "{text:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_escaped_as_serde_json_escapes_it(text in "(?s).{0,64}") {
            let mut out = Vec::new();
            string(&mut out, &text);
            proptest::prop_assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&text).unwrap()
            );
        }
    }
}
