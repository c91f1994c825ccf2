//! Many clients at once: no booking is lost or double-booked on either build, and legacy queues
//! where rebuilt does not (measured with a wide margin; the figures belong to benchmarks).

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use http::Method;
use twinpeak_testbed::Build;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_bookings_of_one_day_are_never_lost_or_double_booked() {
    for build in Build::ALL {
        let testbed = start(build).await;
        let addr = testbed.addr;
        let partner = partner_offering(addr, "bengaluru", "yoga-class").await;
        let date = day(5);
        // Half ask for the day's first free slot, half for an exact slot (several per slot).
        let requests: Vec<_> = (0..200)
            .map(|i| {
                let slot = if i % 2 == 0 {
                    date.clone()
                } else {
                    let minute = 9 * 60 + 10 * ((i * 7) % 48);
                    format!("{date}T{:02}:{:02}", minute / 60, minute % 60)
                };
                let body = booking(partner, "yoga-class", &slot, &format!("customer-{i}"));
                tokio::spawn(async move { post(addr, "/bookings", &body).await })
            })
            .collect();
        let mut booked: HashMap<String, serde_json::Value> = HashMap::new();
        let mut slots = HashSet::new();
        let mut conflicts = 0;
        for request in requests {
            let reply = request.await.unwrap();
            match reply.status {
                201 => {
                    let made = reply.json();
                    assert!(
                        slots.insert(made["slot"].as_str().unwrap().to_string()),
                        "{made}"
                    );
                    let id = made["id"].as_str().unwrap().to_string();
                    assert!(booked.insert(id, made).is_none());
                }
                409 => {
                    reply.error();
                    conflicts += 1;
                }
                other => panic!("{build}: {other} {}", reply.text()),
            }
        }
        assert_eq!(
            booked.len(),
            48,
            "{build}: every slot of the day is taken once"
        );
        assert_eq!(conflicts, 200 - 48, "{build}");
        let mut ids: Vec<&String> = booked.keys().collect();
        ids.sort();
        assert_eq!(ids.first().map(|s| s.as_str()), Some("bk-000001"));
        assert_eq!(ids.last().map(|s| s.as_str()), Some("bk-000048"));
        for (id, made) in &booked {
            let shown = get(addr, &format!("/bookings/{id}")).await;
            assert_eq!(shown.status, 200, "{build} {id}");
            assert_eq!(&shown.json(), made, "{build} {id}");
        }
        let free = get(
            addr,
            &format!("/partners/{partner}/availability?date={date}"),
        )
        .await;
        assert_eq!(free.json()["slots"], serde_json::json!([]));

        // Cancelling one booking from many clients at once succeeds exactly once.
        let cancels: Vec<_> = (0..20)
            .map(|_| {
                tokio::spawn(async move {
                    send(addr, Method::POST, "/bookings/bk-000007/cancel", None).await
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for cancel in cancels {
            statuses.push(cancel.await.unwrap().status);
        }
        statuses.sort();
        assert_eq!(statuses[0], 200, "{build}");
        assert!(
            statuses[1..].iter().all(|s| *s == 409),
            "{build}: {statuses:?}"
        );
        let free = get(
            addr,
            &format!("/partners/{partner}/availability?date={date}"),
        )
        .await;
        assert_eq!(free.json()["slots"].as_array().unwrap().len(), 1, "{build}");
        testbed.shutdown().await;
    }
}

/// Sends `count` bookings of distinct slots at once; returns each latency and the wall time.
async fn burst_of_bookings(
    addr: SocketAddr,
    partner: u32,
    count: usize,
) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let requests: Vec<_> = (0..count)
        .map(|i| {
            let minute = 9 * 60 + 10 * (i % 48);
            let slot = format!(
                "{}T{:02}:{:02}",
                day(10 + (i / 48) as i64),
                minute / 60,
                minute % 60
            );
            let body = booking(partner, "haircut", &slot, "burst");
            tokio::spawn(async move {
                let sent = Instant::now();
                let reply = post(addr, "/bookings", &body).await;
                assert_eq!(reply.status, 201, "{}", reply.text());
                sent.elapsed()
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for request in requests {
        latencies.push(request.await.unwrap());
    }
    (latencies, started.elapsed())
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_queues_under_concurrency_and_rebuilt_does_not() {
    let mut burst_totals = HashMap::new();
    for build in Build::ALL {
        let testbed = start(build).await;
        let addr = testbed.addr;
        let partner = partner_offering(addr, "hyderabad", "haircut").await;
        let search = "/partners?city=hyderabad&service=haircut";

        let mut idle_search = Vec::new();
        for _ in 0..10 {
            let sent = Instant::now();
            assert_eq!(get(addr, search).await.status, 200);
            idle_search.push(sent.elapsed());
        }
        let mut idle_booking = Vec::new();
        for i in 0..10 {
            let body = booking(
                partner,
                "haircut",
                &format!("{}T09:{}0", day(20), i % 6),
                "idle",
            );
            let body = if i < 6 {
                body
            } else {
                booking(partner, "haircut", &day(21), "idle")
            };
            let sent = Instant::now();
            assert_eq!(post(addr, "/bookings", &body).await.status, 201);
            idle_booking.push(sent.elapsed());
        }

        // A search sent while 50 bookings are in flight waits behind them on legacy.
        let burst = tokio::spawn(burst_of_bookings(addr, partner, 50));
        tokio::time::sleep(Duration::from_millis(5)).await;
        let sent = Instant::now();
        assert_eq!(get(addr, search).await.status, 200);
        let busy_search = sent.elapsed();
        let (latencies, total) = burst.await.unwrap();
        eprintln!(
            "{build}: idle search {:?}, idle booking {:?}; 50 concurrent bookings: median {:?}, \
             slowest {:?}, all done in {:?}; a search among them {:?}",
            median(idle_search),
            median(idle_booking),
            median(latencies.clone()),
            latencies.iter().max().unwrap(),
            total,
            busy_search,
        );
        burst_totals.insert(build, total);
        testbed.shutdown().await;
    }
    // Legacy serialises every booking behind a 15-25 ms notification: at least 750 ms for 50.
    // Rebuilt's bookings are sub-millisecond writes. The margin is wide on purpose.
    let (legacy, rebuilt) = (burst_totals[&Build::Legacy], burst_totals[&Build::Rebuilt]);
    assert!(legacy >= Duration::from_millis(750), "{legacy:?}");
    assert!(
        legacy >= rebuilt * 10,
        "legacy {legacy:?} should take at least 10x rebuilt {rebuilt:?}"
    );
}
