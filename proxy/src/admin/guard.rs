//! Who may use the admin API, and how a change is read.
//!
//! - With `admin.token` set, every endpoint but `/health` needs `Authorization: Bearer TOKEN`
//!   (the proxy refuses to start with a non-loopback admin address and no token).
//! - A change (PUT, POST, DELETE) needs `Content-Type: application/json` and a `Host` that is
//!   a loopback name, the listen address, or one of `admin.hosts`. A web page cannot send
//!   either without the browser asking first (CORS preflight) or resolving the name itself, so
//!   a page open in a browser on the same host cannot forge a change.
//! - A change's body is a JSON object: its settings, plus optional `by` and `reason`, which
//!   the audit trail records beside how the caller was let in and its address.

use std::net::{IpAddr, SocketAddr};

use http::{Response, StatusCode};
use pingora_core::protocols::http::ServerSession;
use serde::de::DeserializeOwned;

use super::response::error_response;
use crate::config::AdminConfig;
use crate::secret::Secret;

/// Largest request body the admin API reads.
const MAX_BODY: usize = 64 << 10;

/// Longest `by` or `reason` kept in the audit trail, in characters.
const MAX_NOTE_CHARS: usize = 200;

/// The admin API's door.
pub struct Guard {
    token: Option<Secret>,
    listen: SocketAddr,
    hosts: Vec<String>,
}

/// Why the guard turned a request away; answered as a JSON error.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
        }
    }

    /// The answer: the status and message, with the bearer challenge on a 401.
    pub fn into_response(self) -> Response<Vec<u8>> {
        let mut response = error_response(self.status, &self.message);
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"twinpeak admin\""),
            );
        }
        response
    }
}

/// How a caller was let in.
#[derive(Debug, Clone)]
pub struct Caller {
    /// With the bearer token (otherwise: no token is configured, so the listener is loopback).
    token: bool,
    addr: Option<String>,
}

/// A change request that passed the guard: who asked, why, and its settings.
#[derive(Debug)]
pub struct Change {
    caller: Caller,
    by: Option<String>,
    reason: Option<String>,
    settings: serde_json::Map<String, serde_json::Value>,
}

impl Guard {
    /// The guard of an admin configuration (its token already read).
    pub fn new(config: &AdminConfig) -> Self {
        Guard {
            token: config.token.secret().cloned(),
            listen: config.listen,
            hosts: config
                .hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        }
    }

    /// Lets a request in, or answers why not (401 without the right token).
    pub fn admit(&self, session: &ServerSession) -> Result<Caller, Refusal> {
        let addr = session.client_addr().map(|a| a.to_string());
        let Some(token) = &self.token else {
            return Ok(Caller { token: false, addr });
        };
        let presented = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, value) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| value.trim())
            });
        match presented {
            Some(value) if token.matches(value.as_bytes()) => Ok(Caller { token: true, addr }),
            _ => Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "this endpoint needs Authorization: Bearer <admin.token>",
            )),
        }
    }

    /// Reads a change: refuses it (415, 403, 400) unless it is JSON sent to an allowed `Host`.
    pub async fn change(
        &self,
        session: &mut ServerSession,
        caller: Caller,
    ) -> Result<Change, Refusal> {
        let headers = &session.req_header().headers;
        let json = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a change needs Content-Type: application/json",
            ));
        }
        let host = headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok());
        if !host.is_some_and(|h| self.host_allowed(h)) {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                format!(
                    "a change needs a Host that is a loopback name, {} or one of admin.hosts; got {}",
                    self.listen,
                    host.map_or("none".to_string(), |h| format!("{h:?}"))
                ),
            ));
        }
        let bad = |message| Refusal::new(StatusCode::BAD_REQUEST, message);
        let body = read_body(session).await.map_err(bad)?;
        Change::parse(caller, &body).map_err(bad)
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        if self.hosts.contains(&host) {
            return true;
        }
        let name = host_name(&host);
        if self.hosts.iter().any(|h| h == name) || name == "localhost" {
            return true;
        }
        match name.parse::<IpAddr>() {
            Ok(ip) => {
                ip.is_loopback() || (ip == self.listen.ip() && !self.listen.ip().is_unspecified())
            }
            Err(_) => false,
        }
    }
}

/// The name in a `Host` value, without its port or IPv6 brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

impl Change {
    /// A change from its body: empty, or a JSON object.
    fn parse(caller: Caller, body: &[u8]) -> Result<Change, String> {
        let mut settings = if body.iter().all(u8::is_ascii_whitespace) {
            serde_json::Map::new()
        } else {
            match serde_json::from_slice(body) {
                Ok(serde_json::Value::Object(map)) => map,
                Ok(_) => return Err("the body must be a JSON object".into()),
                Err(e) => return Err(format!("the body is not JSON: {e}")),
            }
        };
        let mut note = |key: &str| -> Result<Option<String>, String> {
            match settings.remove(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(text)) => Ok(Some(
                    text.chars()
                        .filter(|c| !c.is_control())
                        .take(MAX_NOTE_CHARS)
                        .collect(),
                )),
                Some(_) => Err(format!("{key:?} must be a string")),
            }
        };
        let by = note("by")?;
        let reason = note("reason")?;
        Ok(Change {
            caller,
            by,
            reason,
            settings,
        })
    }

    /// The settings the change carries, read as `T`.
    pub fn settings<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(serde_json::Value::Object(self.settings.clone()))
    }

    /// Who made the change, for the log and the audit trail:
    /// `alice (token, 10.0.0.7:51234): rollout paused for the sale`.
    pub fn who(&self) -> String {
        let mut who = format!(
            "{} ({}{}{})",
            self.by.as_deref().unwrap_or("admin"),
            if self.caller.token { "token" } else { "local" },
            if self.caller.addr.is_some() { ", " } else { "" },
            self.caller.addr.as_deref().unwrap_or("")
        );
        if let Some(reason) = &self.reason {
            who.push_str(" because ");
            who.push_str(reason);
        }
        who
    }
}

async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(format!("body larger than {MAX_BODY} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(format!("could not read the body: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(listen: &str, hosts: &[&str]) -> Guard {
        Guard {
            token: None,
            listen: listen.parse().unwrap(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
        }
    }

    #[test]
    fn only_loopback_own_and_configured_hosts_may_change() {
        let g = guard(
            "127.0.0.1:9901",
            &["twinpeak-admin.prod:9901", "ops.internal"],
        );
        for ok in [
            "127.0.0.1:9901",
            "localhost:9901",
            "LOCALHOST",
            "[::1]:9901",
            "127.0.0.2",
            "twinpeak-admin.prod:9901",
            "ops.internal:80",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for refused in [
            "evil.example:9901",
            "127.0.0.1.evil.example",
            "twinpeak-admin.prod:9902",
            "10.0.0.5:9901",
            "",
        ] {
            assert!(!g.host_allowed(refused), "{refused}");
        }
        let own = guard("10.0.0.5:9901", &[]);
        assert!(own.host_allowed("10.0.0.5:9901"));
        let any = guard("0.0.0.0:9901", &[]);
        assert!(!any.host_allowed("0.0.0.0:9901"));
    }

    #[test]
    fn a_change_names_who_and_why_and_keeps_its_settings() {
        let caller = Caller {
            token: true,
            addr: Some("10.0.0.7:51234".into()),
        };
        let change = Change::parse(
            caller.clone(),
            br#"{"weight": 5, "by": "alice", "reason": "sale\nstarts"}"#,
        )
        .unwrap();
        assert_eq!(
            change.who(),
            "alice (token, 10.0.0.7:51234) because salestarts"
        );
        #[derive(serde::Deserialize)]
        struct W {
            weight: f64,
        }
        assert_eq!(change.settings::<W>().unwrap().weight, 5.0);
        let empty = Change::parse(caller.clone(), b"").unwrap();
        assert_eq!(empty.who(), "admin (token, 10.0.0.7:51234)");
        assert!(Change::parse(caller.clone(), b"[1]").is_err());
        assert!(Change::parse(caller.clone(), b"x=1").is_err());
        assert!(Change::parse(caller, br#"{"by": 7}"#).is_err());
    }
}
