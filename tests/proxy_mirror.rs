//! The shadowing proxy end to end: real backends on loopback, the real binary in between.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn shadow_config(primary: &str, shadow: &str, extra: &str) -> String {
    format!(
        "primary: {{ url: {primary} }}\nshadow: {{ url: {shadow}, timeout: 1s, max_in_flight: 64 }}\n{extra}"
    )
}

/// A primary and a shadow that both answer "ok", and a proxy between them configured with
/// `extra`.
async fn mirrored(extra: &str) -> (Backend, Backend, Proxy) {
    let primary = Backend::fixed("ok").await;
    let shadow = Backend::fixed("ok").await;
    let proxy = Proxy::start(&shadow_config(&primary.url(), &shadow.url(), extra)).await;
    (primary, shadow, proxy)
}

#[tokio::test]
async fn the_shadow_receives_the_same_request_with_marker_and_request_id() {
    let primary = Backend::fixed("from primary").await;
    let shadow = Backend::fixed("from shadow").await;
    let proxy = Proxy::start(&shadow_config(
        &primary.url(),
        &shadow.url(),
        "mirror: { percent: 100 }\nroutes: [{path: /bookings, mirror_methods: [POST]}]\n",
    ))
    .await;
    let c = client();
    let res = c
        .get(proxy.url("/partners?city=pune&service=spa"))
        .header("x-user-id", "u-1")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "not forwarded")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "from primary");
    let body = "{\"partner_id\": 7, \"slot\": \"2026-12-24T10:00\"}";
    let res = c
        .post(proxy.url("/bookings"))
        .header("content-type", "application/json")
        .header("x-request-id", "req-42")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(eventually(Duration::from_secs(5), || async { shadow.count() == 2 }).await);

    let (p, s) = (primary.requests(), shadow.requests());
    assert_eq!(p.len(), 2);
    for (p, s) in p.iter().zip(&s) {
        assert_eq!(p.method, s.method);
        assert_eq!(p.uri, s.uri);
        assert_eq!(p.body, s.body);
        assert_eq!(s.header("x-twinpeak-shadow"), Some("1"));
        assert_eq!(p.header("x-twinpeak-shadow"), None);
        assert!(p.header("x-request-id").is_some());
        assert_eq!(p.header("x-request-id"), s.header("x-request-id"));
        // Same headers on both sides but the marker.
        let mut ph: Vec<_> = p
            .headers
            .iter()
            .filter(|(k, _)| k != "connection")
            .cloned()
            .collect();
        let mut sh: Vec<_> = s
            .headers
            .iter()
            .filter(|(k, _)| k != "x-twinpeak-shadow" && k != "connection")
            .cloned()
            .collect();
        ph.sort();
        sh.sort();
        assert_eq!(ph, sh);
        assert_eq!(s.header("x-hop"), None);
    }
    // The client is added to the forwarding list; a scheme the client states is kept.
    assert_eq!(s[0].header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(s[0].header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        s[1].header("x-forwarded-for"),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(s[1].header("x-forwarded-proto"), Some("https"));
    assert_eq!(s[0].uri, "/partners?city=pune&service=spa");
    assert_eq!(
        s[0].header("traceparent"),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
    assert_eq!(s[0].header("x-user-id"), Some("u-1"));
    assert_eq!(s[1].body, body.as_bytes());
    assert_eq!(s[1].header("x-request-id"), Some("req-42"));
}

#[tokio::test]
async fn writes_are_not_mirrored_unless_a_route_opts_in() {
    let (primary, shadow, proxy) = mirrored("mirror: { percent: 100 }\n").await;
    let c = client();
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let res = c
            .request(method.parse().unwrap(), proxy.url("/bookings/1"))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    c.get(proxy.url("/bookings/1")).send().await.unwrap();
    assert!(eventually(Duration::from_secs(5), || async { shadow.count() == 1 }).await);
    assert_eq!(primary.count(), 5);
    assert_eq!(shadow.requests()[0].method, "GET");
    assert_eq!(proxy.mirror_count("method").await, 4);
}

#[tokio::test]
async fn a_route_can_be_kept_off_the_mirror() {
    let (primary, shadow, proxy) = mirrored("mirror: { percent: 100 }\nroutes: [{path: \"/bookings/{id}\", mirror: false}, \"/partners\"]\n").await;
    let c = client();
    c.get(proxy.url("/bookings/7")).send().await.unwrap();
    c.get(proxy.url("/partners")).send().await.unwrap();
    assert!(eventually(Duration::from_secs(5), || async { shadow.count() == 1 }).await);
    assert_eq!(shadow.requests()[0].uri, "/partners");
    assert_eq!(primary.count(), 2);
    let metrics = proxy.metrics().await;
    assert!(
        metrics
            .contains(r#"twinpeak_mirror_total{outcome="not_sampled",route="/bookings/{id}"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn no_spelling_of_a_path_slips_past_a_route_kept_off_the_mirror() {
    let (primary, shadow, proxy) =
        mirrored("mirror: { percent: 100 }\nroutes: [{path: \"/bookings/{id}\", mirror: false}]\n")
            .await;
    let spellings = [
        "//bookings/7",
        "/bookings//7",
        "/bookings/7/",
        "/%62ookings/7",
        "/bookings/./7",
        "/x/../bookings/7",
    ];
    for path in spellings {
        // Sent as written: an HTTP client library would tidy the path first.
        let answer = raw_get(proxy.addr, path).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
    }
    assert!(eventually(Duration::from_secs(5), || async { primary.count() == 6 }).await);
    // The primary got each path as the client wrote it; the shadow got none of them.
    let got: Vec<String> = primary.requests().into_iter().map(|r| r.uri).collect();
    assert_eq!(got, spellings);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(shadow.count(), 0);
    let metrics = proxy.metrics().await;
    assert!(
        metrics
            .contains(r#"twinpeak_mirror_total{outcome="not_sampled",route="/bookings/{id}"} 6"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn sampling_matches_the_share_and_is_consistent_per_key() {
    let (_primary, shadow, proxy) =
        mirrored("mirror: { percent: 30, key: header:x-user-id }\n").await;
    let c = client();
    let users = 300;
    for round in 0..2 {
        for user in 0..users {
            c.get(proxy.url(&format!("/r{round}")))
                .header("x-user-id", format!("user-{user}"))
                .send()
                .await
                .unwrap();
        }
    }
    let settled = eventually(Duration::from_secs(5), || async {
        proxy.mirror_count("sent").await + proxy.mirror_count("not_sampled").await == 2 * users
    })
    .await;
    assert!(settled);
    let mirrored: Vec<(String, String)> = shadow
        .requests()
        .iter()
        .map(|r| (r.uri.clone(), r.header("x-user-id").unwrap().to_string()))
        .collect();
    let round = |r: &str| {
        let mut u: Vec<String> = mirrored
            .iter()
            .filter(|(p, _)| p == r)
            .map(|(_, u)| u.clone())
            .collect();
        u.sort();
        u
    };
    // The same users are in on both rounds.
    assert_eq!(round("/r0"), round("/r1"));
    // 30% of 300 is 90; the standard deviation is about 8.
    let n = round("/r0").len();
    assert!((60..=120).contains(&n), "{n} of {users} users mirrored");
}

#[tokio::test]
async fn random_sampling_matches_the_share() {
    let (_primary, shadow, proxy) = mirrored("mirror: { percent: 20 }\n").await;
    let c = client();
    let total = 500;
    for _ in 0..total {
        c.get(proxy.url("/x")).send().await.unwrap();
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.mirror_count("sent").await + proxy.mirror_count("not_sampled").await == total
        })
        .await
    );
    // 20% of 500 is 100; the standard deviation is about 9.
    let n = shadow.count();
    assert!((60..=140).contains(&n), "{n} of {total} mirrored");
}

/// The client's answer through the proxy when the shadow misbehaves: same bytes as the
/// primary's, and fast (the shadow is never waited for).
async fn assert_client_unaffected(shadow_url: String, outcome: &str) {
    let primary = Backend::fixed("the primary's answer").await;
    let proxy = Proxy::start(&shadow_config(
        &primary.url(),
        &shadow_url,
        "mirror: { percent: 100 }\n",
    ))
    .await;
    let c = client();
    for _ in 0..5 {
        let started = Instant::now();
        let res = c.get(proxy.url("/bookings/1")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "the primary's answer");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.mirror_count(outcome).await == 5
        })
        .await,
        "expected 5 {outcome}: {}",
        proxy.admin_json("/api/v1/status").await["counters"]
    );
}

#[tokio::test]
async fn a_slow_shadow_changes_nothing_for_the_client() {
    let shadow = Backend::start(Duration::from_secs(2), Arc::new(|_| text(200, "late"))).await;
    assert_client_unaffected(shadow.url(), "shadow_timeout").await;
}

#[tokio::test]
async fn a_shadow_that_never_answers_changes_nothing_for_the_client() {
    let (addr, _) = misbehaving(Misbehaviour::Hang).await;
    assert_client_unaffected(format!("http://{addr}"), "shadow_timeout").await;
}

#[tokio::test]
async fn a_refusing_shadow_changes_nothing_for_the_client_and_is_held_back_after_three_failures() {
    let primary = Backend::fixed("the primary's answer").await;
    let shadow = refused_addr();
    let proxy = Proxy::start(&shadow_config(
        &primary.url(),
        &format!("http://{shadow}"),
        "mirror: { percent: 100 }\n",
    ))
    .await;
    let c = client();
    let n = 40;
    for _ in 0..n {
        let res = c.get(proxy.url("/bookings/1")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "the primary's answer");
    }
    let counted = eventually(Duration::from_secs(5), || async {
        proxy.mirror_count("shadow_error").await + proxy.mirror_count("shadow_down").await == n
    })
    .await;
    let (errors, held_back) = (
        proxy.mirror_count("shadow_error").await,
        proxy.mirror_count("shadow_down").await,
    );
    assert!(counted, "{errors} errors + {held_back} held back, of {n}");
    assert!(errors >= 3, "the first three copies were tried: {errors}");
    assert!(
        held_back > 0,
        "copies sent on at once after failures in a row are held back: {errors} errors"
    );
    // Once the shadow listens, copies go out again within the longest backoff.
    let listener = tokio::net::TcpListener::bind(shadow).await.unwrap();
    let answering = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let resumed = eventually(Duration::from_secs(10), || async {
        let _ = c.get(proxy.url("/bookings/2")).send().await;
        proxy.mirror_count("sent").await > 0
    })
    .await;
    answering.abort();
    assert!(resumed, "copies resume once the shadow answers");
}

#[tokio::test]
async fn a_shadow_resetting_mid_answer_changes_nothing_for_the_client() {
    let (addr, _) = misbehaving(Misbehaviour::ResetMidAnswer).await;
    assert_client_unaffected(format!("http://{addr}"), "shadow_error").await;
}

#[tokio::test]
async fn a_shadow_answering_garbage_changes_nothing_for_the_client() {
    let (addr, _) = misbehaving(Misbehaviour::Garbage).await;
    assert_client_unaffected(format!("http://{addr}"), "shadow_error").await;
}

#[tokio::test]
async fn the_in_flight_cap_drops_and_counts() {
    let primary = Backend::fixed("ok").await;
    let (addr, accepted) = misbehaving(Misbehaviour::Hang).await;
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshadow: {{ url: http://{addr}, timeout: 10s, max_in_flight: 3 }}\nmirror: {{ percent: 100 }}\n",
        primary.url()
    ))
    .await;
    let c = client();
    for _ in 0..10 {
        assert_eq!(c.get(proxy.url("/a")).send().await.unwrap().status(), 200);
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.mirror_count("dropped_in_flight").await == 7
        })
        .await
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            *accepted.lock().unwrap() == 3
        })
        .await
    );
    let metrics = proxy.metrics().await;
    assert!(metrics.contains("twinpeak_mirror_in_flight 3"), "{metrics}");
    assert!(
        metrics.contains(r#"twinpeak_mirror_total{outcome="dropped_in_flight",route="other"} 7"#)
    );
}

#[tokio::test]
async fn put_mirror_changes_the_share_live() {
    let (_primary, shadow, proxy) = mirrored("mirror: { percent: 0 }\n").await;
    let c = client();
    c.get(proxy.url("/a")).send().await.unwrap();
    let res = admin_change(
        "PUT",
        &proxy.admin_url("/api/v1/mirror"),
        r#"{"percent": 100, "methods": ["GET", "POST"], "by": "sre-on-call"}"#,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    c.get(proxy.url("/a")).send().await.unwrap();
    c.post(proxy.url("/a")).body("b").send().await.unwrap();
    assert!(eventually(Duration::from_secs(5), || async { shadow.count() == 2 }).await);
    let status = proxy.admin_json("/api/v1/status").await;
    assert_eq!(status["mirror"]["settings"]["percent"], 100.0);
    assert_eq!(
        status["mirror"]["settings"]["methods"],
        serde_json::json!(["GET", "POST"])
    );
    assert!(proxy
        .metrics()
        .await
        .contains("twinpeak_mirror_percent 100"));
    assert!(proxy.log_text().contains("sre-on-call (local, 127.0.0.1:"));
    assert!(proxy
        .log_text()
        .contains("mirror settings changed: percent 0 -> 100"));

    // Bad input is refused and changes nothing.
    for bad in [
        r#"{"percent": 130}"#,
        r#"{"key": "query:x"}"#,
        r#"{"pct": 1}"#,
        "not json",
    ] {
        let res = admin_change("PUT", &proxy.admin_url("/api/v1/mirror"), bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }
    assert_eq!(proxy.admin_json("/api/v1/mirror").await["percent"], 100.0);
}

#[tokio::test]
async fn a_request_already_mirrored_is_not_mirrored_again() {
    let (_primary, shadow, proxy) = mirrored("mirror: { percent: 100 }\n").await;
    let res = client()
        .get(proxy.url("/a"))
        .header("x-twinpeak-shadow", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.mirror_count("not_sampled").await == 1
        })
        .await
    );
    assert_eq!(shadow.count(), 0);
}

#[tokio::test]
async fn request_bodies_over_the_cap_are_not_mirrored() {
    let (primary, shadow, proxy) =
        mirrored("mirror: { percent: 100, methods: [POST], max_body_bytes: 1KiB }\n").await;
    let c = client();
    let big = vec![b'x'; 4096];
    c.post(proxy.url("/a"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    // A streamed (chunked) body over the cap is given up part way.
    c.post(proxy.url("/a"))
        .body(chunked(big.clone()))
        .send()
        .await
        .unwrap();
    c.post(proxy.url("/a")).body("small").send().await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.mirror_count("body_too_large").await == 2
        })
        .await
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.mirror_count("sent").await == 1
        })
        .await
    );
    assert_eq!(primary.count(), 3);
    assert_eq!(primary.requests()[1].body, big);
    let mirrored: Vec<_> = shadow
        .requests()
        .into_iter()
        .filter(|r| !r.body.is_empty())
        .collect();
    assert_eq!(mirrored.len(), 1);
    assert_eq!(mirrored[0].body, b"small");
}

/// The body as a stream of chunks, so it goes out chunked, with no length up front.
fn chunked(data: Vec<u8>) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        data.chunks(512).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

/// Sends `n` requests through a proxy mirroring all of them to a shadow answering `answer`
/// (raw bytes), and checks that the clients got the primary's answers, that every copy ended
/// in exactly one outcome — `expected` for all of them — and that nothing panicked.
async fn every_copy_is_counted(answer: &'static [u8], close: bool, expected: &str) {
    let primary = Backend::fixed("the primary's answer").await;
    let (shadow, answered) = raw_backend(answer, close).await;
    let proxy = Proxy::start(&shadow_config(
        &primary.url(),
        &format!("http://{shadow}"),
        "mirror: { percent: 100 }\nroutes: [\"/bookings/{id}\"]\n",
    ))
    .await;
    let c = client();
    let n = 20;
    for i in 0..n {
        let res = c.get(proxy.url(&format!("/bookings/{i}"))).send().await;
        let res = res.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "the primary's answer");
    }
    let outcomes = [
        "sent",
        "shadow_error",
        "shadow_timeout",
        "dropped_in_flight",
    ];
    let counted = eventually(Duration::from_secs(5), || async {
        let status = proxy.admin_json("/api/v1/status").await;
        let mirror = &status["counters"]["mirror"];
        let total: u64 = outcomes.iter().map(|o| mirror[o].as_u64().unwrap()).sum();
        total == n
    })
    .await;
    let status = proxy.admin_json("/api/v1/status").await;
    assert!(counted, "copies not all counted: {}", status["counters"]);
    assert_eq!(
        status["counters"]["mirror"][expected].as_u64(),
        Some(n),
        "{}",
        status["counters"]
    );
    assert!(*answered.lock().unwrap() > 0);
    let log = proxy.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test]
async fn a_shadow_sending_early_hints_before_every_answer_is_read_past_them() {
    every_copy_is_counted(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
          HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
        false,
        "sent",
    )
    .await;
}

#[tokio::test]
async fn a_shadow_sending_100_continue_unasked_is_read_past_it() {
    every_copy_is_counted(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        false,
        "sent",
    )
    .await;
}

#[tokio::test]
async fn a_shadow_sending_only_interim_answers_is_an_error() {
    every_copy_is_counted(
        b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n\
          HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n\
          HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n\
          HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n\
          HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n\
          HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n\
          HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n\
          HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n\
          HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n",
        true,
        "shadow_error",
    )
    .await;
}

#[tokio::test]
async fn a_shadow_switching_protocols_unasked_is_an_error() {
    every_copy_is_counted(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        true,
        "shadow_error",
    )
    .await;
}

#[tokio::test]
async fn a_shadow_answering_with_a_close_delimited_body_is_read_to_the_end() {
    every_copy_is_counted(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nok, then closed",
        true,
        "sent",
    )
    .await;
}

#[tokio::test]
async fn a_shadow_answering_with_trailers_is_read_to_the_end() {
    every_copy_is_counted(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n\
          2\r\nok\r\n0\r\nx-checksum: abc\r\n\r\n",
        false,
        "sent",
    )
    .await;
}

#[tokio::test]
async fn a_shadow_answering_a_bad_chunk_or_a_short_body_is_an_error() {
    every_copy_is_counted(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
        true,
        "shadow_error",
    )
    .await;
    every_copy_is_counted(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
        true,
        "shadow_error",
    )
    .await;
}

/// A text body of `lines` lines, each naming `side` and its number, 64 bytes a line.
fn big_text(side: &str, lines: usize) -> &'static str {
    let text: String = (0..lines)
        .map(|i| format!("{side} line {i:056}\n"))
        .collect();
    Box::leak(text.into_boxed_str())
}

#[tokio::test]
async fn big_answers_behind_a_stalled_comparison_stay_within_the_byte_budget() {
    // 1 MiB answers that differ on every line: each comparison runs to its time limit, so
    // pairs arrive far faster than they are compared.
    let (primary_body, shadow_body) = (big_text("p", 16_384), big_text("s", 16_384));
    assert_eq!(primary_body.len(), 1 << 20);
    let primary = Backend::start(Duration::ZERO, Arc::new(move |_| text(200, primary_body))).await;
    let shadow = Backend::start(Duration::ZERO, Arc::new(move |_| text(200, shadow_body))).await;
    let budget: u64 = 16 << 20;
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {}, timeout: 10s, max_in_flight: 256 }}\n\
         mirror: {{ percent: 100, max_buffered_bytes: {budget} }}\ncapture: {{ max_body_bytes: 1MiB }}\n\
         diff: {{ queue: 4096 }}\n",
        primary.url(),
        shadow.url()
    ))
    .await;
    let c = client();
    for _ in 0..4 {
        let body = c
            .get(proxy.url("/warm"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await;
        assert_eq!(body.unwrap().len(), 1 << 20);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = proxy.rss_bytes();
    let tasks: Vec<_> = (0..24)
        .map(|t| {
            let (c, url) = (c.clone(), proxy.url(&format!("/big/{t}")));
            tokio::spawn(async move {
                for _ in 0..16 {
                    let res = c.get(&url).send().await.unwrap();
                    assert_eq!(res.status(), 200);
                    assert_eq!(res.bytes().await.unwrap().len(), 1 << 20);
                }
            })
        })
        .collect();
    let mut peak = 0;
    let sampling = Instant::now();
    while tasks.iter().any(|t| !t.is_finished()) && sampling.elapsed() < Duration::from_secs(60) {
        peak = peak.max(proxy.rss_bytes());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Pairs keep arriving at the shadow side for a moment after the clients are done.
    for _ in 0..25 {
        peak = peak.max(proxy.rss_bytes());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = proxy.admin_json("/api/v1/status").await;
    let growth = peak.saturating_sub(baseline);
    // Without the budget the queue alone would hold hundreds of 2 MiB pairs.
    let margin: u64 = 64 << 20;
    assert!(
        growth < budget + margin,
        "RSS grew {} MiB over {} MiB (budget {} MiB); {}",
        growth >> 20,
        baseline >> 20,
        budget >> 20,
        status["counters"]
    );
    assert!(status["mirror"]["buffered_bytes"].as_u64().unwrap() <= budget);
    assert_eq!(
        status["mirror"]["max_buffered_bytes"].as_u64(),
        Some(budget)
    );
    // What did not fit was dropped and counted, not queued.
    assert!(
        status["counters"]["compared"]["dropped"].as_u64().unwrap() > 100,
        "{}",
        status["counters"]
    );
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains("twinpeak_mirror_buffered_bytes"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_primary_sending_early_hints_is_paired_on_its_final_answer() {
    let (primary, _) = raw_backend(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
          HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
        false,
    )
    .await;
    let shadow = Backend::fixed("ok").await;
    let proxy = Proxy::start(&shadow_config(
        &format!("http://{primary}"),
        &shadow.url(),
        "mirror: { percent: 100 }\n",
    ))
    .await;
    let c = client();
    for _ in 0..10 {
        let res = c.get(proxy.url("/x")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "ok");
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.admin_json("/api/v1/status").await["counters"]["compared"]["identical"] == 10
        })
        .await,
        "{}",
        proxy.admin_json("/api/v1/status").await["counters"]
    );
}

#[tokio::test]
async fn a_failing_shadow_is_logged_without_secret_query_values() {
    let primary = Backend::fixed("ok").await;
    let proxy = Proxy::start(&shadow_config(
        &primary.url(),
        &format!("http://{}", refused_addr()),
        "mirror: { percent: 100 }\n",
    ))
    .await;
    let res = client()
        .get(proxy.url("/partners?city=pune&access_token=s3cr3t-v4lue&api_key=k3y-v4lue"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.log_text().contains("shadow request")
        })
        .await
    );
    let log = proxy.log_text();
    assert!(log.contains("city=pune"), "{log}");
    assert!(
        !log.contains("s3cr3t-v4lue") && !log.contains("k3y-v4lue"),
        "{log}"
    );
}
