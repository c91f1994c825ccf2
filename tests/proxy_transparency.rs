//! The primary path is an ordinary, transparent proxy: whatever the primary answers reaches the
//! client unchanged, and a primary that cannot be reached is a counted 502, never a hang.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::Response;

fn answer(status: u16, headers: &[(&str, &str)], body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Full::new(Bytes::from(body))).unwrap()
}

/// A primary with a few routes that exercise HTTP's corners.
async fn corner_case_primary() -> Backend {
    let large: Arc<Vec<u8>> = Arc::new((0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect());
    Backend::start(
        Duration::ZERO,
        Arc::new(move |req| match req.uri.as_str() {
            "/no-content" => answer(204, &[], Vec::new()),
            "/not-modified" => answer(304, &[("etag", "\"v1\"")], Vec::new()),
            "/gzip" => answer(
                200,
                &[
                    ("content-encoding", "gzip"),
                    ("content-type", "application/json"),
                ],
                vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3],
            ),
            "/range" => answer(
                206,
                &[
                    ("content-range", "bytes 0-3/10"),
                    ("accept-ranges", "bytes"),
                ],
                b"0123".to_vec(),
            ),
            "/large" => answer(
                200,
                &[("content-type", "application/octet-stream")],
                large.to_vec(),
            ),
            "/echo" => answer(201, &[("x-seen-method", &req.method)], req.body.clone()),
            "/teapot" => answer(418, &[("x-custom", "kept")], b"short and stout".to_vec()),
            _ => answer(404, &[], b"no such thing".to_vec()),
        }),
    )
    .await
}

#[tokio::test]
async fn status_headers_and_bodies_pass_through_unchanged() {
    let primary = corner_case_primary().await;
    let shadow = Backend::fixed("shadow").await;
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {} }}\nmirror: {{ percent: 100 }}\n",
        primary.url(),
        shadow.url()
    ))
    .await;
    let c = client();

    let res = c.get(proxy.url("/no-content")).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert!(res.bytes().await.unwrap().is_empty());

    let res = c
        .get(proxy.url("/not-modified"))
        .header("if-none-match", "\"v1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    assert_eq!(res.headers()["etag"], "\"v1\"");
    assert_eq!(
        primary.requests().last().unwrap().header("if-none-match"),
        Some("\"v1\"")
    );

    let res = c.head(proxy.url("/large")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-length"],
        (8 * 1024 * 1024).to_string()
    );
    assert!(res.bytes().await.unwrap().is_empty());

    let res = c
        .get(proxy.url("/gzip"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]
    );

    let res = c
        .get(proxy.url("/range"))
        .header("range", "bytes=0-3")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.headers()["content-range"], "bytes 0-3/10");
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"0123");
    assert_eq!(
        primary.requests().last().unwrap().header("range"),
        Some("bytes=0-3")
    );

    let res = c.get(proxy.url("/large")).send().await.unwrap();
    let body = res.bytes().await.unwrap();
    assert_eq!(body.len(), 8 * 1024 * 1024);
    assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));

    let res = c.get(proxy.url("/teapot")).send().await.unwrap();
    assert_eq!(res.status(), 418);
    assert_eq!(res.headers()["x-custom"], "kept");
    assert_eq!(res.text().await.unwrap(), "short and stout");

    // A chunked upload reaches the primary whole.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 7) as u8).collect();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        data.chunks(4096).map(|c| Ok(c.to_vec())).collect();
    let res = c
        .patch(proxy.url("/echo"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["x-seen-method"], "PATCH");
    assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());
}

#[tokio::test]
async fn an_unreachable_primary_is_a_counted_502_with_an_explanation() {
    let dead = refused_addr();
    let proxy = Proxy::start(&format!("primary: {{ url: http://{dead} }}\n")).await;
    let c = client();
    for _ in 0..3 {
        let started = Instant::now();
        let res = c
            .get(proxy.url("/bookings/1"))
            .header("x-request-id", "req-7")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 502);
        assert_eq!(res.headers()["x-request-id"], "req-7");
        let text = res.text().await.unwrap();
        assert!(
            text.contains("primary backend could not be reached"),
            "{text}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains(
            r#"twinpeak_requests_total{route="other",side="primary",status_class="5xx"} 3"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        r#"twinpeak_upstream_errors_total{kind="connect",route="other",side="primary"} 3"#
    ));
}

#[tokio::test]
async fn malformed_client_input_gets_an_error_and_the_proxy_keeps_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let primary = Backend::fixed("ok").await;
    let proxy = Proxy::start(&format!("primary: {{ url: {} }}\n", primary.url())).await;
    for garbage in [
        &b"NOT A REQUEST\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0u8; 70_000][..],
    ] {
        let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        let _ = s.write_all(garbage).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
    }
    let res = client()
        .get(proxy.url("/still-alive"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn latency_and_snapshot_carry_mergeable_histograms() {
    let primary = Backend::fixed("ok").await;
    let shadow = Backend::start(Duration::from_millis(30), Arc::new(|_| text(200, "ok"))).await;
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {} }}\nmirror: {{ percent: 100 }}\nroutes: [\"/bookings/{{id}}\"]\n",
        primary.url(),
        shadow.url()
    ))
    .await;
    let c = client();
    for i in 0..20 {
        c.get(proxy.url(&format!("/bookings/{i}")))
            .send()
            .await
            .unwrap();
    }
    c.get(proxy.url("/elsewhere")).send().await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.admin_json("/api/v1/status").await["counters"]["compared"]["identical"] == 21
        })
        .await
    );
    let latency = proxy.admin_json("/api/v1/latency").await;
    let bookings = &latency["routes"]["/bookings/{id}"];
    assert_eq!(bookings["primary"]["count"], 20);
    assert_eq!(bookings["shadow"]["count"], 20);
    assert!(bookings["shadow"]["p50_us"].as_u64().unwrap() >= 30_000);
    assert!(bookings["shadow"]["histogram"].as_str().unwrap().len() > 10);
    assert_eq!(bookings["delta"]["count"], 20);
    assert!(bookings["delta"]["p50_us"].as_i64().unwrap() > 20_000);
    assert_eq!(latency["routes"]["other"]["primary"]["count"], 1);

    let snapshot = proxy.admin_json("/api/v1/snapshot").await;
    assert_eq!(snapshot["schema"], "twinpeak.snapshot/v1");
    assert_eq!(snapshot["proxy_config_sha256"].as_str().unwrap().len(), 64);
    let parsed: twinpeak_core::Snapshot = serde_json::from_value(snapshot).unwrap();
    let route = &parsed.routes["/bookings/{id}"];
    assert_eq!(route.primary.latency_us.len(), 20);
    assert_eq!(route.shadow.requests, 20);
    assert_eq!(route.mirror["sent"], 20);
    assert_eq!(route.compare["identical"], 20);
}
