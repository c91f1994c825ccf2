//! Response comparison end to end: a shadow that differs on one field of one route in about
//! 10% of answers, while both sides emit a random id field.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::Response;

/// A booking API answer: a random id on every answer; on the shadow, every tenth booking's
/// price is off by one.
fn booking_backend(is_shadow: bool) -> Handler {
    let counter = Arc::new(AtomicU64::new(0));
    Arc::new(move |req| {
        let nonce = counter.fetch_add(1, Ordering::Relaxed) * 7919 + u64::from(is_shadow);
        let body = if let Some(n) = req.uri.strip_prefix("/bookings/") {
            let n: u64 = n.parse().unwrap_or(0);
            let amount = if is_shadow && n.is_multiple_of(10) {
                1001
            } else {
                1000
            };
            format!(
                r#"{{"id": "req-{nonce}", "booking": {{"id": {n}, "status": "confirmed", "price": {{"amount": {amount}, "currency": "INR"}}}}}}"#
            )
        } else {
            format!(r#"{{"id": "req-{nonce}", "partners": [{{"id": 1, "city": "pune"}}]}}"#)
        };
        Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    })
}

#[tokio::test]
async fn a_real_field_difference_is_found_and_volatile_fields_are_noise() {
    let primary = Backend::start(Duration::ZERO, booking_backend(false)).await;
    let shadow = Backend::start(Duration::ZERO, booking_backend(true)).await;
    let corpus = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&format!(
        r#"primary: {{ url: {} }}
shadow: {{ url: {} }}
mirror: {{ percent: 100 }}
routes: ["/bookings/{{id}}", "/partners"]
diff:
  noise: {{ resample_percent: 50, min_samples: 10 }}
  redact: ["$..card"]
  corpus: {}
  corpus_per_key: 2
"#,
        primary.url(),
        shadow.url(),
        corpus.path().display()
    ))
    .await;
    let c = client();
    let bookings = 400;
    for i in 0..bookings {
        let res = c
            .get(proxy.url(&format!("/bookings/{i}")))
            .header("authorization", "Bearer very-secret")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    for _ in 0..50 {
        c.get(proxy.url("/partners")).send().await.unwrap();
    }
    let compared =
        |v: &serde_json::Value, route: &str| v["routes"][route]["compared"].as_u64().unwrap_or(0);
    assert!(
        eventually(Duration::from_secs(10), || async {
            let d = proxy.admin_json("/api/v1/diffs").await;
            compared(&d, "/bookings/{id}") == bookings && compared(&d, "/partners") == 50
        })
        .await,
        "{}",
        proxy.admin_json("/api/v1/diffs").await
    );
    let diffs = proxy.admin_json("/api/v1/diffs").await;
    assert_eq!(diffs["noise_reference"]["source"], "resample");
    let route = &diffs["routes"]["/bookings/{id}"];
    let fields = route["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 1, "only the price differs for real: {route}");
    assert_eq!(fields[0]["path"], "$.booking.price.amount");
    assert_eq!(fields[0]["kind"], "value_changed");
    let rate = fields[0]["rate"].as_f64().unwrap();
    assert!((0.09..=0.11).contains(&rate), "rate {rate}");
    let noise = route["noise"].as_array().unwrap();
    assert!(
        noise
            .iter()
            .any(|n| n["path"] == "$.id" && n["suggested_ignore"] == "$..id"),
        "the random id is noise: {route}"
    );
    assert!(route["reference_compared"].as_u64().unwrap() > 100);
    // The other route differs only in its random id: noise, never a difference.
    let partners = &diffs["routes"]["/partners"];
    assert_eq!(
        partners["fields"].as_array().unwrap().len(),
        0,
        "{partners}"
    );

    // Examples hold the request and both answers, secrets redacted.
    let examples = proxy
        .admin_json("/api/v1/diffs/examples?route=/bookings/%7Bid%7D&path=$.booking.price.amount")
        .await;
    let first = &examples["examples"][0];
    assert!(first["request"]["start_line"]
        .as_str()
        .unwrap()
        .starts_with("GET /bookings/"));
    let auth = first["request"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "authorization")
        .unwrap();
    assert_eq!(auth[1], "[redacted]");
    assert!(first["shadow"]["body"].as_str().unwrap().contains("1001"));
    assert!(first["primary"]["body"].as_str().unwrap().contains("1000"));

    // Metrics count real differences by kind.
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains(r#"twinpeak_diff_total{kind="value_changed",route="/bookings/{id}"} "#),
        "{metrics}"
    );

    // The corpus holds a bounded number of diverging requests per field, ready for replay.
    let lines = std::fs::read_to_string(corpus.path().join("diverging.jsonl")).unwrap();
    let price: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["field"] == "$.booking.price.amount")
        .collect();
    assert_eq!(price.len(), 2);
    assert_eq!(price[0]["method"], "GET");
    assert!(price[0]["path"].as_str().unwrap().starts_with("/bookings/"));
    assert_eq!(price[0]["headers"]["authorization"], "[redacted]");

    // The snapshot carries the summary; DELETE starts over.
    let snapshot = proxy.admin_json("/api/v1/snapshot").await;
    assert_eq!(
        snapshot["routes"]["/bookings/{id}"]["diff"]["compared"],
        bookings
    );
    let res = c
        .delete(proxy.admin_url("/api/v1/diffs"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(proxy.admin_json("/api/v1/diffs").await["routes"]
        .as_object()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn truncated_bodies_are_not_differences_and_status_changes_are() {
    let big_primary = Backend::start(
        Duration::ZERO,
        Arc::new(|req| {
            let status = if req.uri == "/missing" { 404 } else { 200 };
            Response::builder()
                .status(status)
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from(vec![b'a'; 4096])))
                .unwrap()
        }),
    )
    .await;
    let big_shadow = Backend::start(
        Duration::ZERO,
        Arc::new(|_| {
            Response::builder()
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from(vec![b'b'; 4096])))
                .unwrap()
        }),
    )
    .await;
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {} }}\nmirror: {{ percent: 100 }}\ncapture: {{ max_body_bytes: 1KiB }}\n",
        big_primary.url(),
        big_shadow.url()
    ))
    .await;
    let c = client();
    c.get(proxy.url("/big")).send().await.unwrap();
    c.get(proxy.url("/missing")).send().await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.admin_json("/api/v1/diffs").await["routes"]["other"]["compared"] == 2
        })
        .await
    );
    let other = &proxy.admin_json("/api/v1/diffs").await["routes"]["other"];
    assert_eq!(other["truncated"], 2);
    let fields = other["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 1, "{other}");
    assert_eq!(fields[0]["path"], "status");
    assert_eq!(other["identical"], 1);
}
