//! The front door end to end: TLS listeners with certificates chosen by SNI and reloaded from
//! disk, HTTP/2 from clients (ALPN h2 over TLS, h2c with prior knowledge), and TLS and HTTP/2
//! to upstreams, against the real `twinpeak` binary. Certificates are made in the test.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use common::{free_port, Proxy};

/// A self-signed certificate and its key, in memory and as PEM files.
struct Cert {
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
    cert: PathBuf,
    key: PathBuf,
}

/// A certificate for `names` (an address among them is an IP name), written to
/// `dir/stem.pem` and `dir/stem.key`.
fn make_cert(dir: &Path, stem: &str, names: &[&str]) -> Cert {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let rcgen::CertifiedKey { cert, key_pair } = rcgen::generate_simple_self_signed(names).unwrap();
    let (cert_path, key_path) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key_pair.serialize_pem()).unwrap();
    Cert {
        der: cert.der().clone(),
        key_der: key_pair.serialize_der(),
        cert: cert_path,
        key: key_path,
    }
}

/// Puts `from`'s files in place of `to`'s the way deploy tools do: written beside, renamed over.
fn replace_files(from: &Cert, to: &Cert) {
    for (src, dst) in [(&from.key, &to.key), (&from.cert, &to.cert)] {
        let staged = dst.with_extension("new");
        std::fs::copy(src, &staged).unwrap();
        std::fs::rename(&staged, dst).unwrap();
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration trusting `roots`, offering `alpn`.
fn client_config(roots: &[&Cert], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.der.clone()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// A TLS connection to `addr` asking for `name` (an address sends no SNI).
async fn connect_tls(addr: SocketAddr, config: Arc<rustls::ClientConfig>, name: &str) -> Tls {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(name.to_string()).unwrap();
    TlsConnector::from(config).connect(name, tcp).await.unwrap()
}

/// The leaf certificate the server presented.
fn served(stream: &Tls) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// An HTTP/1.1 client on an open connection.
async fn http1<S>(io: S) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// GET `path` on `sender`: status and body.
async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    host: &str,
    path: &str,
) -> (u16, String) {
    let req = Request::get(path)
        .header("host", host)
        .body(Empty::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// What a test backend saw of a request.
#[derive(Debug, Clone)]
struct Seen {
    version: Version,
    method: String,
    shadow_marked: bool,
    body: Vec<u8>,
}

/// A backend speaking HTTP/1.1 or, with `http2_only`, HTTP/2 alone, over TLS when given a
/// certificate; it answers `answer` with a `grpc-status: 0` trailer and records each request.
struct TestBackend {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestBackend {
    async fn start(tls: Option<&Cert>, http2_only: bool, answer: &'static str) -> TestBackend {
        TestBackend::start_verifying(tls, None, http2_only, answer).await
    }

    /// A TLS backend that also requires a client certificate issued by (here: being)
    /// `client_ca`, when given.
    async fn start_verifying(
        tls: Option<&Cert>,
        client_ca: Option<&Cert>,
        http2_only: bool,
        answer: &'static str,
    ) -> TestBackend {
        let acceptor = tls.map(|cert| {
            let builder = rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap();
            let builder = match client_ca {
                Some(ca) => {
                    let mut roots = rustls::RootCertStore::empty();
                    roots.add(ca.der.clone()).unwrap();
                    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                        Arc::new(roots),
                        provider(),
                    )
                    .build()
                    .unwrap();
                    builder.with_client_cert_verifier(verifier)
                }
                None => builder.with_no_client_auth(),
            };
            let mut config = builder
                .with_single_cert(
                    vec![cert.der.clone()],
                    PrivateKeyDer::try_from(cert.key_der.clone()).unwrap(),
                )
                .unwrap();
            config.alpn_protocols = vec![if http2_only {
                b"h2".to_vec()
            } else {
                b"http/1.1".to_vec()
            }];
            TlsAcceptor::from(Arc::new(config))
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, log) = (acceptor.clone(), log.clone());
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            // A client that refuses the certificate ends the handshake here.
                            if let Ok(tls) = acceptor.accept(tcp).await {
                                serve(tls, http2_only, answer, log).await;
                            }
                        }
                        None => serve(tcp, http2_only, answer, log).await,
                    }
                });
            }
        });
        TestBackend { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve<S>(io: S, http2_only: bool, answer: &'static str, log: Arc<Mutex<Vec<Seen>>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes().to_vec());
            log.lock().unwrap().push(Seen {
                version: parts.version,
                method: parts.method.to_string(),
                shadow_marked: parts.headers.contains_key("x-twinpeak-shadow"),
                body: body.unwrap_or_default(),
            });
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().unwrap());
            let body: BoxBody<Bytes, Infallible> = Full::new(Bytes::from_static(answer.as_bytes()))
                .with_trailers(async move { Some(Ok(trailers)) })
                .boxed();
            Ok::<_, Infallible>(Response::new(body))
        }
    });
    let io = TokioIo::new(io);
    if http2_only {
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await;
    } else {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .await;
    }
}

/// The value of the first sample of `name` whose labels include every one of `labels`.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits (at most `within`) for `check` to hold, looking every 100 ms.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// `listen:` for one TLS listener on `addr` with `certs` (several: chosen by SNI).
fn tls_listen(addr: SocketAddr, certs: &[&Cert]) -> String {
    let pairs: Vec<String> = certs
        .iter()
        .map(|c| format!("{{cert: {}, key: {}}}", c.cert.display(), c.key.display()))
        .collect();
    format!(
        "[{{address: {addr}, tls: {{certificates: [{}]}}}}]",
        pairs.join(", ")
    )
}

/// curl's status line for `args` (curl prints the headers of the answer with -D -).
async fn curl_status(args: &[&str]) -> String {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-m", "10", "-o", "/dev/null", "-D", "-"])
        .args(args)
        .output()
        .await
        .expect("curl is installed (Debian package curl)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[tokio::test]
async fn two_sni_names_each_get_their_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_cert(dir.path(), "a", &["a.test", "127.0.0.1"]);
    let b = make_cert(dir.path(), "b", &["b.test"]);
    let primary = TestBackend::start(None, false, "legacy").await;
    let body = format!("primary: {{url: http://{}}}\n", primary.addr);
    let proxy = Proxy::start_listening(&|addr| tls_listen(addr, &[&a, &b]), "", &body).await;
    let config = client_config(&[&a, &b], &[b"http/1.1"]);
    for (name, expected) in [("a.test", &a), ("b.test", &b), ("127.0.0.1", &a)] {
        let stream = connect_tls(proxy.addr, config.clone(), name).await;
        assert_eq!(
            served(&stream),
            expected.der,
            "the certificate served for {name}"
        );
        let mut client = http1(stream).await;
        assert_eq!(
            get(&mut client, name, "/hello").await,
            (200, "legacy".into())
        );
    }
    let metrics = proxy.metrics().await;
    for name in ["a.test", "b.test"] {
        let expiry = sample(&metrics, "twinpeak_tls_certificate_expiry_seconds", &[name]);
        assert!(
            expiry.unwrap_or(0.0) > 1.7e9,
            "expiry of {name} in:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn a_replaced_certificate_is_served_to_new_connections_while_open_ones_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let old = make_cert(dir.path(), "site", &["site.test"]);
    let new = make_cert(dir.path(), "next", &["site.test"]);
    let primary = TestBackend::start(None, false, "legacy").await;
    let body = format!("primary: {{url: http://{}}}\n", primary.addr);
    let proxy = Proxy::start_listening(&|addr| tls_listen(addr, &[&old]), "", &body).await;
    let config = client_config(&[&old, &new], &[b"http/1.1"]);
    let open = connect_tls(proxy.addr, config.clone(), "site.test").await;
    assert_eq!(served(&open), old.der);
    let mut open = http1(open).await;
    assert_eq!(get(&mut open, "site.test", "/before").await.0, 200);

    replace_files(&new, &old);
    let renewed = eventually(Duration::from_secs(8), || {
        let config = config.clone();
        let new = new.der.clone();
        let addr = proxy.addr;
        async move { served(&connect_tls(addr, config, "site.test").await) == new }
    })
    .await;
    assert!(
        renewed,
        "the new certificate was not served within 8 s:\n{}",
        proxy.log_text()
    );
    // The connection opened before the change is still served.
    assert_eq!(
        get(&mut open, "site.test", "/after").await,
        (200, "legacy".into())
    );
    let metrics = proxy.metrics().await;
    assert!(sample(&metrics, "twinpeak_tls_reloads_total", &["result=\"ok\""]).unwrap() >= 1.0);
    assert!(
        proxy.log_text().contains("now serving"),
        "{}",
        proxy.log_text()
    );
}

#[tokio::test]
async fn a_bad_replacement_is_refused_and_the_old_certificate_kept() {
    let dir = tempfile::tempdir().unwrap();
    let good = make_cert(dir.path(), "site", &["site.test"]);
    let other = make_cert(dir.path(), "other", &["site.test"]);
    let primary = TestBackend::start(None, false, "legacy").await;
    let body = format!("primary: {{url: http://{}}}\n", primary.addr);
    let proxy = Proxy::start_listening(&|addr| tls_listen(addr, &[&good]), "", &body).await;
    let config = client_config(&[&good, &other], &[b"http/1.1"]);
    let failed = || async {
        sample(
            &proxy.metrics().await,
            "twinpeak_tls_reloads_total",
            &["result=\"failed\""],
        )
        .unwrap_or(0.0)
    };

    // A certificate whose key is not the one beside it.
    let staged = good.cert.with_extension("new");
    std::fs::copy(&other.cert, &staged).unwrap();
    std::fs::rename(&staged, &good.cert).unwrap();
    assert!(
        eventually(Duration::from_secs(8), || async { failed().await >= 1.0 }).await,
        "the mismatched pair was not refused:\n{}",
        proxy.log_text()
    );
    let stream = connect_tls(proxy.addr, config.clone(), "site.test").await;
    assert_eq!(served(&stream), good.der, "the old certificate is kept");
    let mut client = http1(stream).await;
    assert_eq!(get(&mut client, "site.test", "/").await.0, 200);
    assert!(proxy.log_text().contains("refused"), "{}", proxy.log_text());

    // Garbage in place of the certificate, read at once on SIGHUP.
    std::fs::write(&good.cert, "not a certificate").unwrap();
    let before = failed().await;
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &proxy.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    assert!(
        eventually(Duration::from_secs(5), || async { failed().await > before }).await,
        "SIGHUP did not read the files again:\n{}",
        proxy.log_text()
    );
    let stream = connect_tls(proxy.addr, config, "site.test").await;
    assert_eq!(
        served(&stream),
        good.der,
        "still the old certificate after SIGHUP"
    );
}

#[tokio::test]
async fn an_upstream_with_a_self_signed_certificate_is_refused_unless_its_ca_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert(dir.path(), "upstream", &["localhost", "127.0.0.1"]);
    let upstream = TestBackend::start(Some(&cert), false, "legacy over tls").await;

    let refused = Proxy::start(&format!("primary: {{url: https://{}}}\n", upstream.addr)).await;
    let res = common::client()
        .get(refused.url("/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 502);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("TLS handshake failed: invalid peer certificate"),
        "{text}"
    );
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    let metrics = refused.metrics().await;
    let tls_errors = sample(
        &metrics,
        "twinpeak_upstream_errors_total",
        &["kind=\"tls\"", "side=\"primary\""],
    );
    assert!(tls_errors.unwrap_or(0.0) >= 1.0, "{metrics}");

    let trusted = Proxy::start(&format!(
        "primary: {{url: https://{}, tls: {{ca: {}, sni: localhost}}}}\n",
        upstream.addr,
        cert.cert.display()
    ))
    .await;
    let res = common::client()
        .get(trusted.url("/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.unwrap(), "legacy over tls");

    // mTLS: an upstream that requires a client certificate gets the configured one.
    let client = make_cert(dir.path(), "client", &["proxy.test"]);
    let strict = TestBackend::start_verifying(Some(&cert), Some(&client), false, "mtls").await;
    let without = Proxy::start(&format!(
        "primary: {{url: https://{}, tls: {{ca: {}}}}}\n",
        strict.addr,
        cert.cert.display()
    ))
    .await;
    let res = common::client()
        .get(without.url("/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status().as_u16(),
        502,
        "no client certificate, no answer"
    );
    let with = Proxy::start(&format!(
        "primary: {{url: https://{}, tls: {{ca: {}, cert: {}, key: {}}}}}\n",
        strict.addr,
        cert.cert.display(),
        client.cert.display(),
        client.key.display()
    ))
    .await;
    let res = common::client().get(with.url("/x")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200, "{}", with.log_text());
    assert_eq!(res.text().await.unwrap(), "mtls");
}

#[tokio::test]
async fn curl_http2_over_tls_and_h2c_prior_knowledge_reach_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert(dir.path(), "localhost", &["localhost"]);
    let primary = TestBackend::start(None, false, "legacy").await;
    let (h2c, plain) = (free_port(), free_port());
    let listen = |addr: SocketAddr| {
        format!(
            "[{{address: {addr}, tls: {{cert: {}, key: {}}}}}, {{address: {h2c}, http2: true}}, {plain}]",
            cert.cert.display(),
            cert.key.display()
        )
    };
    let body = format!("primary: {{url: http://{}}}\n", primary.addr);
    let proxy = Proxy::start_listening(&listen, "", &body).await;
    let port = proxy.addr.port();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = format!("https://localhost:{port}/h2");
    let ca = cert.cert.display().to_string();
    let tls = curl_status(&["--http2", "--cacert", &ca, "--resolve", &resolve, &url]).await;
    assert_eq!(tls, "HTTP/2 200");
    let tls11 = curl_status(&["--http1.1", "--cacert", &ca, "--resolve", &resolve, &url]).await;
    assert_eq!(tls11, "HTTP/1.1 200 OK");
    let prior = curl_status(&["--http2-prior-knowledge", &format!("http://{h2c}/h2c")]).await;
    assert_eq!(prior, "HTTP/2 200");
    let h1_on_h2c = curl_status(&[&format!("http://{h2c}/h1")]).await;
    assert_eq!(
        h1_on_h2c, "HTTP/1.1 200 OK",
        "HTTP/1.1 still works on an h2c listener"
    );
    // h2c is opt-in: a plain listener does not take HTTP/2 with prior knowledge.
    let refused = curl_status(&["--http2-prior-knowledge", &format!("http://{plain}/no")]).await;
    assert_ne!(refused, "HTTP/2 200");
    assert!(primary.seen().len() >= 4);
}

#[tokio::test]
async fn an_h2_upstream_is_reached_with_http2_true_and_its_trailers_pass() {
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert(dir.path(), "upstream", &["127.0.0.1"]);
    let h2c_upstream = TestBackend::start(None, true, "h2c upstream").await;
    let tls_upstream = TestBackend::start(Some(&cert), true, "h2 upstream").await;

    let plain = Proxy::start(&format!(
        "primary: {{url: http://{}, http2: true}}\n",
        h2c_upstream.addr
    ))
    .await;
    let res = common::client().get(plain.url("/x")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.unwrap(), "h2c upstream");
    assert_eq!(h2c_upstream.seen()[0].version, Version::HTTP_2);

    // Over TLS, with ALPN h2, to a client speaking h2c itself: the trailer comes through.
    let h2c = free_port();
    let tls = Proxy::start_listening(
        &|addr| format!("[{addr}, {{address: {h2c}, http2: true}}]"),
        "",
        &format!(
            "primary: {{url: https://{}, http2: true, tls: {{ca: {}}}}}\n",
            tls_upstream.addr,
            cert.cert.display()
        ),
    )
    .await;
    // The proxy was waited for on its first listener; the second may bind a moment later.
    assert!(
        common::eventually(Duration::from_secs(10), || async {
            TcpStream::connect(h2c).await.is_ok()
        })
        .await,
        "nothing listens on {h2c}"
    );
    let tcp = TcpStream::connect(h2c).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("http://{h2c}/trailers"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.version(), Version::HTTP_2);
    let collected = res.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    assert_eq!(collected.to_bytes(), "h2 upstream");
    assert_eq!(
        trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .map(|v| v.to_str().unwrap().to_string()),
        Some("0".to_string()),
        "trailers: {trailers:?}\n{}",
        tls.log_text()
    );
    assert_eq!(tls_upstream.seen()[0].version, Version::HTTP_2);
}

#[tokio::test]
async fn mirroring_works_from_a_tls_h2_listener_to_an_h2_shadow() {
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert(dir.path(), "localhost", &["localhost"]);
    let primary = TestBackend::start(None, false, "legacy").await;
    let shadow = TestBackend::start(None, true, "rebuilt").await;
    let body = format!(
        "primary: {{url: http://{}}}\nshadow: {{url: http://{}, http2: true}}\nmirror: {{percent: 100}}\n\
         routes: [{{path: /bookings, mirror_methods: [POST]}}]\n",
        primary.addr, shadow.addr
    );
    let proxy = Proxy::start_listening(&|addr| tls_listen(addr, &[&cert]), "", &body).await;
    let port = proxy.addr.port();
    let status = curl_status(&[
        "--http2",
        "--cacert",
        &cert.cert.display().to_string(),
        "--resolve",
        &format!("localhost:{port}:127.0.0.1"),
        &format!("https://localhost:{port}/bookings/1"),
    ])
    .await;
    assert_eq!(status, "HTTP/2 200");
    let mirrored = eventually(Duration::from_secs(5), || async {
        shadow
            .seen()
            .iter()
            .any(|s| s.shadow_marked && s.version == Version::HTTP_2)
    })
    .await;
    assert!(
        mirrored,
        "shadow saw {:?}\n{}",
        shadow.seen(),
        proxy.log_text()
    );
    // A chunked HTTP/1.1 body goes to the h2 shadow framed as HTTP/2 frames it.
    let status = curl_status(&[
        "--http1.1",
        "--cacert",
        &cert.cert.display().to_string(),
        "--resolve",
        &format!("localhost:{port}:127.0.0.1"),
        "-H",
        "transfer-encoding: chunked",
        "--data-binary",
        "seat=12A",
        &format!("https://localhost:{port}/bookings"),
    ])
    .await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let posted = eventually(Duration::from_secs(5), || async {
        shadow
            .seen()
            .iter()
            .any(|s| s.method == "POST" && s.shadow_marked && s.body == b"seat=12A")
    })
    .await;
    assert!(
        posted,
        "shadow saw {:?}\n{}",
        shadow.seen(),
        proxy.log_text()
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.mirror_count("sent").await >= 2
        })
        .await
    );
}
