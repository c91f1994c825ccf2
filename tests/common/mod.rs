//! Test harness: in-process backends that record what they receive, and the `twinpeak` binary
//! started on free loopback ports. Every wait here is bounded.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A request as a backend received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a backend answers.
pub type Handler = Arc<dyn Fn(&Received) -> Response<Full<Bytes>> + Send + Sync>;

/// How long a backend waits before answering a request.
pub type Delay = Arc<dyn Fn(&Received) -> Duration + Send + Sync>;

/// A backend that answers every request with `handler` after `delay`, recording each request.
pub struct Backend {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Backend {
    /// Starts a backend on a free loopback port.
    pub async fn start(delay: Duration, handler: Handler) -> Backend {
        Backend::start_with_delays(Arc::new(move |_| delay), handler).await
    }

    /// Starts a backend that waits `delay(request)` before each answer.
    pub async fn start_with_delays(delay: Delay, handler: Handler) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                let handler = handler.clone();
                let delay = delay.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let log = log.clone();
                        let handler = handler.clone();
                        let delay = delay.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let rec = Received {
                                method: parts.method.to_string(),
                                uri: parts.uri.to_string(),
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.to_string(), v.to_str().unwrap_or("").to_string())
                                    })
                                    .collect(),
                                body: body.to_vec(),
                            };
                            log.lock().unwrap().push(rec.clone());
                            let delay = delay(&rec);
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            Ok::<_, Infallible>(handler(&rec))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Backend { addr, received }
    }

    /// A backend answering 200 with a fixed body.
    pub async fn fixed(body: &'static str) -> Backend {
        Backend::start(Duration::ZERO, Arc::new(move |_| text(200, body))).await
    }

    /// A backend answering JSON whose `$.v` is `version` (`{"v": VERSION, "ok": true}`), so
    /// that two of other versions differ on `$.v` alone.
    pub async fn json_version(version: u64) -> Backend {
        Backend::start(
            Duration::ZERO,
            Arc::new(move |_| {
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(format!(
                        r#"{{"v": {version}, "ok": true}}"#
                    ))))
                    .unwrap()
            }),
        )
        .await
    }

    /// `http://addr`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Number of requests received so far.
    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

/// A plain-text answer.
pub fn text(status: u16, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// How a misbehaving shadow fails.
#[derive(Debug, Clone, Copy)]
pub enum Misbehaviour {
    /// Reads the request and never answers (holds the connection).
    Hang,
    /// Starts an answer, then resets the connection.
    ResetMidAnswer,
    /// Answers bytes that are not HTTP.
    Garbage,
}

/// A raw TCP backend that misbehaves; returns its address and a counter of connections.
pub async fn misbehaving(kind: Misbehaviour) -> (SocketAddr, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(Mutex::new(0usize));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            *counter.lock().unwrap() += 1;
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
                match kind {
                    Misbehaviour::Hang => tokio::time::sleep(Duration::from_secs(20)).await,
                    Misbehaviour::ResetMidAnswer => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
                            .await;
                        let _ = stream.set_zero_linger();
                    }
                    Misbehaviour::Garbage => {
                        let _ = stream.write_all(b"THIS IS NOT HTTP\r\n\r\n").await;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// A raw TCP backend that answers every request it reads on a connection (requests without
/// a body) with exactly `answer`, keeping the connection open unless `close`; for answers no
/// HTTP library would write (interim 1xx, trailers, close-delimited bodies). Returns its
/// address and a counter of requests answered.
pub async fn raw_backend(answer: &'static [u8], close: bool) -> (SocketAddr, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answered = Arc::new(Mutex::new(0usize));
    let counter = answered.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                        *counter.lock().unwrap() += 1;
                        if close {
                            return;
                        }
                    }
                    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf));
                    match read.await {
                        Ok(Ok(n)) if n > 0 => pending.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
            });
        }
    });
    (addr, answered)
}

/// Sends `GET path` exactly as written (no client tidies it) and returns the whole answer.
pub async fn raw_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer));
    read.await.unwrap().unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// A loopback address nothing listens on.
pub fn refused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A running `twinpeak proxy`.
pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    _dir: tempfile::TempDir,
    pub log: PathBuf,
    /// The configuration file it runs.
    pub config: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address with a port free now.
pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

impl Proxy {
    /// Starts the proxy with `body` (YAML without listen/admin, which are filled in).
    pub async fn start(body: &str) -> Proxy {
        Proxy::start_with_admin("", body).await
    }

    /// Starts the proxy with `body`, and `admin` (more keys of the admin section, such as
    /// `token: {file: ...}`) beside the admin address filled in.
    pub async fn start_with_admin(admin_keys: &str, body: &str) -> Proxy {
        Proxy::start_listening(&|addr| addr.to_string(), admin_keys, body).await
    }

    /// Starts the proxy with `body`, its `listen:` value made by `listen` from the address
    /// chosen for it (the one waited for, and [`Proxy::addr`]), such as
    /// `{address: ADDR, tls: {...}}`.
    pub async fn start_listening(
        listen: &dyn Fn(SocketAddr) -> String,
        admin_keys: &str,
        body: &str,
    ) -> Proxy {
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let addr = free_port();
            let admin = free_port();
            let admin_keys = if admin_keys.is_empty() {
                String::new()
            } else {
                format!(", {admin_keys}")
            };
            let config = format!(
                "listen: {}\nadmin: {{ listen: {admin}{admin_keys} }}\nthreads: 2\n{body}",
                listen(addr)
            );
            let path = dir.path().join("proxy.yaml");
            std::fs::write(&path, config).unwrap();
            let log = dir.path().join("proxy.log");
            let child = Command::new(env!("CARGO_BIN_EXE_twinpeak"))
                .args(["proxy", "--config"])
                .arg(&path)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let mut proxy = Proxy {
                child,
                addr,
                admin,
                _dir: dir,
                log,
                config: path,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = proxy.child.try_wait() {
                    break;
                }
                let ready = tokio::net::TcpStream::connect(addr).await.is_ok()
                    && tokio::net::TcpStream::connect(admin).await.is_ok();
                if ready {
                    return proxy;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            last_log = std::fs::read_to_string(&proxy.log).unwrap_or_default();
        }
        panic!("the proxy did not start; its log:\n{last_log}");
    }

    /// The proxy's resident memory now, in bytes (from /proc).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }

    /// The proxy's process id, to send it a signal.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the proxy `signal` (`TERM`, `INT`, `HUP`, as `kill -s` names them).
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -s {signal}");
    }

    /// Waits at most `limit` for the proxy to exit; its exit status, or `None` if it still runs.
    pub async fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// `http://addr` + path
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://admin` + path
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// GET an admin JSON endpoint.
    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        get_json(&self.admin_url(path)).await
    }

    /// The Prometheus text.
    pub async fn metrics(&self) -> String {
        get_text(&self.admin_url("/metrics")).await
    }

    /// A mirror outcome counter from /api/v1/status.
    pub async fn mirror_count(&self, outcome: &str) -> u64 {
        self.admin_json("/api/v1/status").await["counters"]["mirror"][outcome]
            .as_u64()
            .unwrap()
    }

    /// The proxy's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// An admin change: `method` to `url` with a JSON body, as operators send it.
pub fn admin_change(method: &str, url: &str, body: &'static str) -> reqwest::RequestBuilder {
    client()
        .request(method.parse().unwrap(), url)
        .header("content-type", "application/json")
        .body(body)
}

/// A client with keepalive and a generous timeout that shows bodies as they were sent (no
/// decompression).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_gzip()
        .build()
        .unwrap()
}

/// The body of a GET of `url`, as text.
pub async fn get_text(url: &str) -> String {
    let res = client().get(url).send().await.unwrap();
    res.text().await.unwrap()
}

/// The body of a GET of `url`, as JSON (a panic shows the body when it is not).
pub async fn get_json(url: &str) -> serde_json::Value {
    let body = get_text(url).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

/// Waits until `check` holds, for at most `limit`; returns whether it did.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs `twinpeak ARGS...` to the end off the async runtime's threads.
pub async fn twinpeak(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_twinpeak"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// `twinpeak check-config` on a configuration file holding `yaml`.
pub fn check_config(yaml: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.yaml");
    std::fs::write(&path, yaml).unwrap();
    Command::new(env!("CARGO_BIN_EXE_twinpeak"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap()
}
