//! What kubelets and Prometheus ask without the admin token: `/ready` (200 once the proxy
//! serves: its listeners accept connections and its state is restored; 503 until then),
//! and the metrics-only listener (`metrics.listen`), which answers `/metrics`, `/health` and
//! `/ready` and nothing else, so scrape annotations and probes work while the admin API stays
//! behind its token.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use super::response::{error_response, respond};
use super::Admin;

/// Whether the proxy is ready for traffic. Cheap to clone; every clone sees the same flags.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    flags: Arc<Flags>,
}

#[derive(Debug, Default)]
struct Flags {
    listening: AtomicBool,
    restored: AtomicBool,
}

impl Readiness {
    /// Not ready: neither listening nor restored yet.
    pub fn new() -> Self {
        Readiness::default()
    }

    /// The proxy's listeners accept connections ([`ListenerProbe`] finds out).
    pub fn set_listening(&self) {
        self.flags.listening.store(true, Ordering::Release);
    }

    /// What the state store holds has been restored (or there is nothing to restore).
    pub fn set_restored(&self) {
        self.flags.restored.store(true, Ordering::Release);
    }

    /// Both hold.
    pub fn is_ready(&self) -> bool {
        self.waiting_for().is_empty()
    }

    /// What is still awaited, in words.
    pub fn waiting_for(&self) -> Vec<&'static str> {
        let mut waiting = Vec::new();
        if !self.flags.listening.load(Ordering::Acquire) {
            waiting.push("the listeners to accept connections");
        }
        if !self.flags.restored.load(Ordering::Acquire) {
            waiting.push("the state to be restored");
        }
        waiting
    }

    /// `/ready`'s answer: 200 `ready`, or 503 saying what is awaited.
    pub fn response(&self) -> Response<Vec<u8>> {
        let waiting = self.waiting_for();
        if waiting.is_empty() {
            respond(StatusCode::OK, "text/plain", b"ready\n".to_vec())
        } else {
            let message = format!("not ready: waiting for {}", waiting.join(" and "));
            error_response(StatusCode::SERVICE_UNAVAILABLE, &message)
        }
    }
}

/// `/health`'s answer: the process answers.
pub fn health_response() -> Response<Vec<u8>> {
    respond(StatusCode::OK, "text/plain", b"ok\n".to_vec())
}

/// The admin API, shared with the metrics listener.
pub struct AdminApp(pub Arc<Admin>);

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        self.0.response(session).await
    }
}

/// The metrics-only listener: `/metrics` (as the admin API renders it), `/health`, `/ready`.
pub struct MetricsListener {
    admin: Arc<Admin>,
}

impl MetricsListener {
    /// Serves `admin`'s metrics and probes.
    pub fn new(admin: Arc<Admin>) -> Self {
        MetricsListener { admin }
    }
}

#[async_trait]
impl ServeHttp for MetricsListener {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path();
        match (method, path) {
            (Method::GET, "/metrics") => self.admin.metrics(),
            (Method::GET, "/health") => health_response(),
            (Method::GET, "/ready") => self.admin.readiness().response(),
            (_, "/metrics" | "/health" | "/ready") => {
                error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
            }
            _ => error_response(
                StatusCode::NOT_FOUND,
                "the metrics listener serves /metrics, /health and /ready only; the admin API \
                 is on admin.listen, behind its token",
            ),
        }
    }
}

/// Finds out when the proxy's listeners accept connections, by connecting to each, and then
/// marks the proxy listening. Pingora binds them as the server starts, after this service is
/// made; an address that never accepts (within `LISTEN_WAIT`) leaves the proxy not ready,
/// and says so in the log.
pub struct ListenerProbe {
    addresses: Vec<SocketAddr>,
    readiness: Readiness,
}

/// Longest wait for the listeners to accept.
const LISTEN_WAIT: Duration = Duration::from_secs(60);

impl ListenerProbe {
    /// Probes `addresses` (wildcard ones through loopback) for `readiness`.
    pub fn new(addresses: &[SocketAddr], readiness: Readiness) -> Self {
        ListenerProbe {
            addresses: addresses.iter().map(|a| reachable(*a)).collect(),
            readiness,
        }
    }
}

/// Where a listener on `address` is reached from this host: a wildcard address through the
/// loopback address of its family.
fn reachable(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, address.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, address.port()).into(),
        _ => address,
    }
}

#[async_trait]
impl BackgroundService for ListenerProbe {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let deadline = Instant::now() + LISTEN_WAIT;
        let mut pending = self.addresses.clone();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for address in pending {
                let connect = tokio::net::TcpStream::connect(address);
                if !matches!(
                    tokio::time::timeout(Duration::from_secs(1), connect).await,
                    Ok(Ok(_))
                ) {
                    still.push(address);
                }
            }
            pending = still;
            if pending.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                log::error!(
                    "not ready: nothing accepts connections on {} after {LISTEN_WAIT:?}",
                    pending
                        .iter()
                        .map(SocketAddr::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = shutdown.changed() => return,
            }
        }
        self.readiness.set_listening();
        log::info!("ready: the listeners accept connections");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_once_listening_and_restored() {
        let readiness = Readiness::new();
        let shared = readiness.clone();
        assert_eq!(
            readiness.response().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        shared.set_listening();
        let body = String::from_utf8(readiness.response().into_body()).unwrap();
        assert!(
            body.contains("waiting for the state to be restored"),
            "{body}"
        );
        shared.set_restored();
        assert!(readiness.is_ready());
        assert_eq!(readiness.response().status(), StatusCode::OK);
    }

    #[test]
    fn wildcard_listeners_are_probed_through_loopback() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(reachable(any), "127.0.0.1:8080".parse().unwrap());
        let any6: SocketAddr = "[::]:8080".parse().unwrap();
        assert_eq!(reachable(any6), "[::1]:8080".parse().unwrap());
        let exact: SocketAddr = "10.1.2.3:80".parse().unwrap();
        assert_eq!(reachable(exact), exact);
    }
}
