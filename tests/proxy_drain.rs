//! SIGTERM drains: the proxy stops accepting connections at once, the request in flight is
//! answered, and the proxy exits as soon as none is left — well before `shutdown.drain` ends.
//! The real binary on loopback.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_the_request_in_flight_then_exits_without_waiting_out_the_drain() {
    let primary = Backend::start(
        Duration::from_millis(800),
        Arc::new(|_| text(200, "slow answer")),
    )
    .await;
    let mut proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshutdown: {{ drain: 8s }}\n",
        primary.url()
    ))
    .await;
    let url = proxy.url("/bookings/1");
    let in_flight = tokio::spawn(async move {
        let answer = client().get(url).send().await.expect("an answer");
        (
            answer.status().as_u16(),
            answer.text().await.unwrap_or_default(),
        )
    });
    assert!(
        eventually(Duration::from_secs(5), || async { primary.count() == 1 }).await,
        "the request reached the primary"
    );
    let stopped = Instant::now();
    proxy.signal("TERM");
    assert!(
        eventually(Duration::from_secs(3), || async {
            tokio::net::TcpStream::connect(proxy.addr).await.is_err()
        })
        .await,
        "no new connection is accepted once SIGTERM arrived"
    );
    let (status, body) = in_flight.await.unwrap();
    assert_eq!((status, body.as_str()), (200, "slow answer"));
    let status = proxy.exited_within(Duration::from_secs(6)).await;
    let waited = stopped.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
    assert!(
        waited < Duration::from_secs(6),
        "exited {waited:?} after SIGTERM, not at the end of the 8 s drain"
    );
    let log = proxy.log_text();
    assert!(log.contains("every request answered"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_proxy_exits_on_sigterm_at_once() {
    let primary = Backend::fixed("ok").await;
    let mut proxy = Proxy::start(&format!("primary: {{ url: {} }}\n", primary.url())).await;
    let stopped = Instant::now();
    proxy.signal("TERM");
    let status = proxy.exited_within(Duration::from_secs(5)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "the default 10 s drain is not waited out with nothing in flight"
    );
}

#[test]
fn a_drain_longer_than_ten_minutes_is_refused_naming_its_key() {
    let out = check_config(
        "listen: 127.0.0.1:1\nprimary: { url: http://127.0.0.1:9 }\nshutdown:\n  drain: 11m\n",
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("shutdown.drain"), "{text}");
}
