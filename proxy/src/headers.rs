//! Header handling shared by the primary and shadow paths: hop-by-hop headers, the request id,
//! the shadow marker and the forwarding headers.

use http::{HeaderMap, HeaderName, HeaderValue};
use pingora_http::RequestHeader;

/// Marks a mirrored copy; a request that arrives with it is never mirrored again.
pub const SHADOW_MARKER: &str = "x-twinpeak-shadow";
/// The request id carried by both sides of a pair.
pub const REQUEST_ID: &str = "x-request-id";

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

/// Removes the hop-by-hop headers from a request about to be forwarded.
pub fn strip_hop_by_hop(request: &mut RequestHeader) {
    for name in hop_by_hop(&request.headers) {
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

/// The value to send as `X-Forwarded-For`: the incoming list with the client's address added.
pub fn forwarded_for(
    headers: &HeaderMap,
    client_ip: Option<std::net::IpAddr>,
) -> Option<HeaderValue> {
    use std::fmt::Write;
    let mut value = String::new();
    for existing in headers.get_all("x-forwarded-for") {
        if let Ok(text) = existing.to_str() {
            if !value.is_empty() {
                value.push_str(", ");
            }
            value.push_str(text);
        }
    }
    if let Some(ip) = client_ip {
        if !value.is_empty() {
            value.push_str(", ");
        }
        let _ = write!(value, "{ip}");
    }
    if value.is_empty() {
        return None;
    }
    HeaderValue::from_str(&value).ok()
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
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-user-id", "transfer-encoding"]);
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
    }
}
