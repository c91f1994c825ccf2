//! Header handling shared by the primary and shadow paths: hop-by-hop headers, the request id,
//! the shadow marker and the forwarding headers.

use http::{HeaderMap, HeaderName, HeaderValue};
use pingora_http::RequestHeader;

/// Marks a mirrored copy; a request that arrives with it is never mirrored again.
pub const SHADOW_MARKER: HeaderName = HeaderName::from_static("x-twinpeak-shadow");
/// The request id carried by both sides of a pair.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The client addresses a request has passed through, the latest last.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static(X_FORWARDED_FOR_TEXT);
/// The scheme the client used.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static(X_FORWARDED_PROTO_TEXT);

// Pingora keeps the case a header is inserted with; a `&'static str` costs no copy.
const X_FORWARDED_FOR_TEXT: &str = "x-forwarded-for";
const X_FORWARDED_PROTO_TEXT: &str = "x-forwarded-proto";

/// Headers that describe one connection, not the request (RFC 9110 §7.6.1), and must not be
/// forwarded as they are.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// The hop-by-hop headers present, including every header the `Connection` header names.
/// `Transfer-Encoding` is not among them: the connector that writes the request owns framing.
pub fn hop_by_hop(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| headers.contains_key(name))
        .collect();
    names.extend(
        HOP_BY_HOP
            .iter()
            .filter(|name| headers.contains_key(**name))
            .map(|name| HeaderName::from_static(name)),
    );
    names
}

/// Headers of twinpeak's own start with this; a client's are never passed upstream (but for
/// the loop marker, [`SHADOW_MARKER`]).
const OWN_PREFIX: &[u8] = b"x-twinpeak-";

/// Whether a header steers twinpeak itself: an `x-twinpeak-*` header but the loop marker, or
/// one of `also` (a force header under another name).
fn is_control(name: &HeaderName, also: &[HeaderName]) -> bool {
    (name.as_str().as_bytes().starts_with(OWN_PREFIX) && *name != SHADOW_MARKER)
        || also.contains(name)
}

/// Removes from a request about to be forwarded the headers that steer twinpeak itself: every
/// `x-twinpeak-*` header but the loop marker, and `also` (a force header under another name).
/// Allocates only when there is something to remove.
pub fn strip_controls(request: &mut RequestHeader, also: &[HeaderName]) {
    if !request.headers.keys().any(|n| is_control(n, also)) {
        return;
    }
    let names: Vec<HeaderName> = request
        .headers
        .keys()
        .filter(|n| is_control(n, also))
        .cloned()
        .collect();
    for name in names {
        request.remove_header(&name);
    }
}

/// The request's id: its own `x-request-id` when it has a usable one, otherwise a new UUID.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Sets `X-Forwarded-For` (the client appended) and, unless the client sent one,
/// `X-Forwarded-Proto` on a request about to be forwarded.
pub fn set_forwarding(
    request: &mut RequestHeader,
    client_ip: Option<std::net::IpAddr>,
) -> pingora_error::Result<()> {
    if let Some(list) = forwarded_for(&request.headers, client_ip) {
        request.insert_header(X_FORWARDED_FOR_TEXT, list)?;
    }
    if !request.headers.contains_key(&X_FORWARDED_PROTO) {
        request.insert_header(X_FORWARDED_PROTO_TEXT, HeaderValue::from_static("http"))?;
    }
    Ok(())
}

/// The value to send as `X-Forwarded-For`: the incoming list with the client's address added.
pub fn forwarded_for(
    headers: &HeaderMap,
    client_ip: Option<std::net::IpAddr>,
) -> Option<HeaderValue> {
    let client = client_ip.map(IpText::new);
    let parts = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .map(HeaderValue::as_bytes)
        .chain(client.as_ref().map(IpText::as_bytes));
    let mut value = Vec::new();
    for part in parts {
        if !value.is_empty() {
            value.extend_from_slice(b", ");
        }
        value.extend_from_slice(part);
    }
    if value.is_empty() {
        return None;
    }
    HeaderValue::from_bytes(&value).ok()
}

/// The header a mirrored copy goes out with: the client's (with the request id the primary
/// gets), hop-by-hop headers and twinpeak's own (and `controls`) removed, the same forwarding
/// headers as the primary, and the shadow marker. A copy with a body but no framing is sent
/// chunked. `None` when a header cannot be set.
///
/// The copy is built in one pass into a map sized for it, not cloned and then edited: it keeps
/// no record of the client's header-name case (names go out in their usual capitalisation),
/// which spares every header added a second map's insert and the maps their growth.
pub fn shadow_copy(
    original: &RequestHeader,
    client_ip: Option<std::net::IpAddr>,
    controls: &[HeaderName],
    has_body: bool,
) -> Option<RequestHeader> {
    let hop = hop_by_hop(&original.headers);
    let mut headers = HeaderMap::with_capacity(original.headers.len() + 5);
    for (name, value) in &original.headers {
        if !hop.contains(name) && !is_control(name, controls) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(list) = forwarded_for(&original.headers, client_ip) {
        headers.insert(X_FORWARDED_FOR, list);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    headers.insert(SHADOW_MARKER, HeaderValue::from_static("1"));
    if !headers.contains_key(http::header::HOST) {
        let authority = original.uri.authority()?;
        let host = HeaderValue::from_str(authority.as_str()).ok()?;
        headers.insert(http::header::HOST, host);
    }
    let framed = headers.contains_key(http::header::CONTENT_LENGTH)
        || headers.contains_key(http::header::TRANSFER_ENCODING);
    if has_body && !framed {
        headers.insert(
            http::header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = original.method.clone();
    parts.uri = original.uri.clone();
    parts.version = http::Version::HTTP_11;
    parts.headers = headers;
    let mut header = RequestHeader::from(parts);
    // The target goes out as the client sent it, even where it does not round-trip through
    // the URI.
    let from_uri = original.uri.path_and_query().map(|p| p.as_str().as_bytes());
    if from_uri != Some(original.raw_path()) {
        header.set_raw_path(original.raw_path()).ok()?;
    }
    Some(header)
}

/// An IP address as text, written without the formatting machinery (it runs for every
/// request).
struct IpText {
    buf: [u8; 45],
    len: usize,
}

impl IpText {
    fn new(ip: std::net::IpAddr) -> Self {
        let mut text = IpText {
            buf: [0; 45],
            len: 0,
        };
        match ip {
            std::net::IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push(b'.');
                    }
                    if octet >= 100 {
                        text.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        text.push(b'0' + octet / 10 % 10);
                    }
                    text.push(b'0' + octet % 10);
                }
            }
            std::net::IpAddr::V6(v6) => {
                use std::io::Write;
                let mut cursor = std::io::Cursor::new(&mut text.buf[..]);
                // 45 bytes hold the longest form (an IPv4-mapped address in full).
                let _ = write!(cursor, "{v6}");
                text.len = cursor.position() as usize;
            }
        }
        text
    }

    fn push(&mut self, byte: u8) {
        self.buf[self.len] = byte;
        self.len += 1;
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = RequestHeader::build("GET", b"/", None).unwrap();
        h.insert_header("connection", "keep-alive, x-secret-hop")
            .unwrap();
        h.insert_header("keep-alive", "timeout=5").unwrap();
        h.insert_header("x-secret-hop", "1").unwrap();
        h.insert_header("te", "trailers").unwrap();
        h.insert_header("x-user-id", "7").unwrap();
        h.insert_header("transfer-encoding", "chunked").unwrap();
        let hop = hop_by_hop(&h.headers);
        let names: Vec<&str> = h
            .headers
            .keys()
            .filter(|k| !hop.contains(k))
            .map(|k| k.as_str())
            .collect();
        assert_eq!(names, vec!["x-user-id", "transfer-encoding"]);
    }

    #[test]
    fn client_sent_controls_go_but_the_loop_marker_stays() {
        let mut h = RequestHeader::build("GET", b"/", None).unwrap();
        h.insert_header("x-twinpeak-canary", "always").unwrap();
        h.insert_header("x-twinpeak-canary-secret", "guess")
            .unwrap();
        h.insert_header("x-twinpeak-shadow", "1").unwrap();
        h.insert_header("x-tester-pick", "always").unwrap();
        h.insert_header("x-user-id", "7").unwrap();
        strip_controls(&mut h, &[HeaderName::from_static("x-tester-pick")]);
        let mut names: Vec<&str> = h.headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["x-twinpeak-shadow", "x-user-id"]);
        let mut plain = RequestHeader::build("GET", b"/", None).unwrap();
        plain.insert_header("x-user-id", "7").unwrap();
        strip_controls(&mut plain, &[]);
        assert_eq!(plain.headers.len(), 1);
    }

    #[test]
    fn a_shadow_copy_keeps_the_request_but_what_is_not_forwarded() {
        let mut h = RequestHeader::build("POST", b"/cart/%7e7?x=1", None).unwrap();
        h.insert_header("Host", "shop.example").unwrap();
        h.insert_header("Connection", "keep-alive, x-hop").unwrap();
        h.insert_header("x-hop", "1").unwrap();
        h.insert_header("x-twinpeak-canary", "always").unwrap();
        h.insert_header("x-tester-pick", "always").unwrap();
        h.append_header("Accept", "a/b").unwrap();
        h.append_header("Accept", "c/d").unwrap();
        h.insert_header("x-forwarded-for", "10.0.0.1").unwrap();
        let ip = "192.168.1.20".parse().ok();
        let controls = [HeaderName::from_static("x-tester-pick")];
        let copy = shadow_copy(&h, ip, &controls, true).unwrap();
        let mut names: Vec<&str> = copy.headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        let expected = [
            "accept",
            "host",
            "transfer-encoding",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-twinpeak-shadow",
        ];
        assert_eq!(names, expected);
        let values = |name: &str| -> Vec<&str> {
            let all = copy.headers.get_all(name).iter();
            all.map(|v| v.to_str().unwrap()).collect()
        };
        assert_eq!(values("accept"), ["a/b", "c/d"]);
        assert_eq!(values("x-forwarded-for"), ["10.0.0.1, 192.168.1.20"]);
        assert_eq!(values("transfer-encoding"), ["chunked"]);
        assert_eq!(copy.method, http::Method::POST);
        assert_eq!(copy.version, http::Version::HTTP_11);
        assert_eq!(copy.raw_path(), b"/cart/%7e7?x=1");
        let mut wire = Vec::new();
        copy.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        assert!(wire.contains("Host: shop.example\r\n"), "{wire}");
    }

    #[test]
    fn a_shadow_copy_of_a_framed_request_is_not_made_chunked() {
        let mut h = RequestHeader::build("PUT", b"/x", None).unwrap();
        h.insert_header("host", "a").unwrap();
        h.insert_header("content-length", "3").unwrap();
        let copy = shadow_copy(&h, None, &[], true).unwrap();
        assert!(!copy.headers.contains_key("transfer-encoding"));
        assert!(!copy.headers.contains_key("x-forwarded-for"));
        assert_eq!(copy.headers["content-length"], "3");
    }

    #[test]
    fn request_id_is_kept_or_created() {
        let mut h = HeaderMap::new();
        let fresh = request_id(&h);
        assert_eq!(fresh.len(), 36);
        assert_ne!(fresh, request_id(&h));
        h.insert(REQUEST_ID, "abc-1".parse().unwrap());
        assert_eq!(request_id(&h), "abc-1");
    }

    #[test]
    fn forwarded_for_appends_the_client() {
        let ip = Some("10.1.2.3".parse().unwrap());
        let mut h = HeaderMap::new();
        assert_eq!(forwarded_for(&h, ip).unwrap(), "10.1.2.3");
        h.append("x-forwarded-for", "1.1.1.1".parse().unwrap());
        h.append("x-forwarded-for", "2.2.2.2".parse().unwrap());
        assert_eq!(forwarded_for(&h, ip).unwrap(), "1.1.1.1, 2.2.2.2, 10.1.2.3");
        assert_eq!(forwarded_for(&HeaderMap::new(), None), None);
        let mut one = HeaderMap::new();
        one.append("x-forwarded-for", "1.1.1.1".parse().unwrap());
        assert_eq!(forwarded_for(&one, None).unwrap(), "1.1.1.1");
        assert_eq!(forwarded_for(&one, ip).unwrap(), "1.1.1.1, 10.1.2.3");
    }

    #[test]
    fn ip_text_matches_display() {
        let addresses = [
            "0.0.0.0",
            "127.0.0.1",
            "9.10.99.100",
            "255.255.255.255",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:192.168.100.200",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ];
        for text in addresses {
            let ip: std::net::IpAddr = text.parse().unwrap();
            assert_eq!(
                IpText::new(ip).as_bytes(),
                ip.to_string().as_bytes(),
                "{text}"
            );
        }
    }
}
