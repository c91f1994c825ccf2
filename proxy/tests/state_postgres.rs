//! The state store on a real PostgreSQL (a throwaway server per test): replicas' rows merge
//! exactly, one replica at a time holds the judge's lease and another takes it over when the
//! holder stops, a canary change is seen by every replica within a second and audited once,
//! and while the database is down deltas are buffered within their bound, the rest counted,
//! and written when it returns.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use support::postgres::ThrowawayPostgres;
use twinpeak_core::merge::add_histogram;
use twinpeak_core::{new_latency_histogram, record_saturating, SignedHistogram};
use twinpeak_proxy::state::{
    AuditEntry, Batch, CanaryRecord, CanaryUpdate, CounterKey, Flushed, Location, PostgresConfig,
    Series, Settings, SharedStore, StateError, Store, SCHEMA_VERSION,
};

fn location(pg: &ThrowawayPostgres) -> Location {
    let config = PostgresConfig {
        url: Some(pg.url()),
        password_file: Some(pg.password_file()),
        ..PostgresConfig::default()
    };
    Location::Postgres(Box::new(config.target().unwrap()))
}

fn replica(pg: &ThrowawayPostgres, name: &str) -> Store {
    let settings = Settings {
        replica: name.into(),
        max_retry_backoff: Duration::from_millis(200),
        ..Settings::default()
    };
    Store::open(&location(pg), settings).unwrap()
}

/// A deterministic spread of latencies, different per seed.
fn latencies(seed: u64, n: usize) -> Vec<u64> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            50 + x % 200_000
        })
        .collect()
}

fn histogram(values: &[u64]) -> Histogram<u64> {
    let mut h = new_latency_histogram();
    values.iter().for_each(|v| record_saturating(&mut h, *v));
    h
}

fn requests() -> CounterKey {
    CounterKey::new(
        "twinpeak_requests_total",
        [("route", "/a"), ("side", "primary")],
    )
}

fn batch(at: SystemTime, seed: u64, n: usize) -> Batch {
    let mut b = Batch::new(at);
    let values = latencies(seed, n);
    b.latency
        .insert(("/a".into(), Series::Primary), histogram(&values));
    b.latency.insert(
        ("/a".into(), Series::Shadow),
        histogram(&latencies(seed + 1, n)),
    );
    let mut delta = SignedHistogram::new();
    values
        .iter()
        .for_each(|v| delta.record(*v as i64 - 100_000));
    b.deltas.insert("/a".into(), delta);
    b.counters.insert(requests(), n as u64);
    b
}

#[test]
fn three_replicas_merge_exactly() {
    let pg = ThrowawayPostgres::start();
    let mut stores: Vec<Store> = ["proxy-0", "proxy-1", "proxy-2"]
        .iter()
        .map(|name| replica(&pg, name))
        .collect();
    assert_eq!(stores[0].schema_version().unwrap(), SCHEMA_VERSION);
    let now = SystemTime::now();
    let mut by_hand = new_latency_histogram();
    let mut delta_by_hand = SignedHistogram::new();
    let mut of_proxy_1 = new_latency_histogram();
    let mut total = 0;
    for (i, store) in stores.iter_mut().enumerate() {
        for flush in 0..3u64 {
            let n = 200 + 50 * i + flush as usize;
            let b = batch(
                now - Duration::from_secs(flush * 70),
                10 * i as u64 + flush,
                n,
            );
            let h = &b.latency[&("/a".to_string(), Series::Primary)];
            add_histogram(&mut by_hand, h).unwrap();
            delta_by_hand.add(&b.deltas["/a"]).unwrap();
            if i == 1 {
                add_histogram(&mut of_proxy_1, h).unwrap();
            }
            total += n as u64;
            assert_eq!(store.flush(&b), Flushed::Written);
        }
    }
    let fleet = stores[2].read_view(None, None, None).unwrap();
    assert_eq!(fleet.replicas.len(), 3);
    let flushed = stores[0].replicas().unwrap();
    let names: Vec<&str> = flushed.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["proxy-0", "proxy-1", "proxy-2"]);
    assert!(flushed
        .iter()
        .all(|(_, at)| *at >= now - Duration::from_secs(1)));
    assert_eq!(fleet.routes["/a"].latency[&Series::Primary], by_hand);
    assert_eq!(fleet.routes["/a"].delta, delta_by_hand);
    assert_eq!(fleet.counters[&requests()], total);
    let one = stores[0].read_view(None, None, Some("proxy-1")).unwrap();
    assert_eq!(one.routes["/a"].latency[&Series::Primary], of_proxy_1);
    // The windows of the last five minutes hold the same as all time.
    let period = stores[0]
        .read_view(Some(now - Duration::from_secs(300)), Some(now), None)
        .unwrap();
    assert_eq!(period.routes["/a"].latency[&Series::Primary], by_hand);
    assert_eq!(period.counters[&requests()], total);
    // Only the newest flush of each replica is in the current minute.
    let minute = stores[0]
        .read_view(Some(now - Duration::from_secs(1)), Some(now), None)
        .unwrap();
    assert_eq!(minute.counters[&requests()], 200 + 250 + 300);
}

#[test]
fn a_stopped_replicas_old_minutes_are_coarsened_once_by_the_replicas_still_running() {
    let pg = ThrowawayPostgres::start();
    let now = SystemTime::now();
    let old = now - Duration::from_secs(30 * 3600);
    let old_s = old.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let hour = UNIX_EPOCH + Duration::from_secs(old_s - old_s % 3600);
    // A replica flushed four minutes of that hour, then stopped (a pod of an old rollout).
    let mut gone = replica(&pg, "gone");
    for minute in 0..4u64 {
        let at = hour + Duration::from_secs(minute * 60 + 5);
        assert_eq!(gone.flush(&batch(at, minute, 100)), Flushed::Written);
    }
    drop(gone);
    let mut config: postgres::Config = pg.url().parse().unwrap();
    config.password(pg.password());
    let mut client = config.connect(postgres::NoTls).unwrap();
    let old_ms = old.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    client
        .execute(
            "UPDATE twinpeak_replicas SET flushed_ms = $1 WHERE replica = 'gone'",
            &[&old_ms],
        )
        .unwrap();

    // Two replicas still running flush at the same time, again and again.
    let mut running: Vec<Store> = ["a", "b"].iter().map(|n| replica(&pg, n)).collect();
    std::thread::scope(|scope| {
        for store in running.iter_mut() {
            scope.spawn(move || {
                for seed in 0..5 {
                    assert_eq!(store.flush(&batch(now, seed, 10)), Flushed::Written);
                }
            });
        }
    });
    let minutes: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM twinpeak_windows WHERE replica = 'gone' AND width_s = 60",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(minutes, 0, "the stopped replica's old minutes are left");
    let view = running[0]
        .read_view(
            Some(hour),
            Some(hour + Duration::from_secs(3600)),
            Some("gone"),
        )
        .unwrap();
    assert_eq!(view.counters[&requests()], 400, "coarsened once, exactly");
    assert_eq!(view.routes["/a"].latency[&Series::Primary].len(), 400);
}

/// What a replica's judge loop sees of the lease after one attempt.
fn attempt(store: &mut Store, ttl: Duration) -> bool {
    store
        .try_lease("judge", ttl)
        .map(|lease| lease.holds(Instant::now()))
        .unwrap_or(false)
}

#[test]
fn one_replica_holds_the_judge_and_another_takes_over_within_two_intervals() {
    let pg = ThrowawayPostgres::start();
    let mut stores: Vec<Store> = ["a", "b", "c"].iter().map(|n| replica(&pg, n)).collect();
    // The judge interval; the lease lasts one interval and is renewed three times in it.
    let interval = Duration::from_millis(600);
    let renew = interval / 3;
    let mut holders = Vec::new();
    for _ in 0..6 {
        let held: Vec<usize> = (0..3)
            .filter(|&i| attempt(&mut stores[i], interval))
            .collect();
        assert_eq!(held.len(), 1, "exactly one holder: {held:?}");
        holders.push(held[0]);
        std::thread::sleep(renew);
    }
    assert!(
        holders.windows(2).all(|w| w[0] == w[1]),
        "the holder keeps it: {holders:?}"
    );
    let leader = holders[0];
    let first_term = stores[leader].try_lease("judge", interval).unwrap().term;
    // The leader writes the canary state it judged.
    stores[leader]
        .change_canary(|_| {
            Some(CanaryUpdate {
                record: CanaryRecord {
                    state: "running".into(),
                    weight: 10.0,
                    step: Some(2),
                    passes: 3,
                    ..CanaryRecord::default()
                },
                ..CanaryUpdate::default()
            })
        })
        .unwrap();

    // The leader stops renewing (as if killed); the others keep trying.
    let stopped = Instant::now();
    let deadline = stopped + 4 * interval;
    let next = loop {
        assert!(Instant::now() < deadline, "nobody took the lease over");
        let held: Vec<usize> = (0..3)
            .filter(|&i| i != leader)
            .filter(|&i| attempt(&mut stores[i], interval))
            .collect();
        assert!(held.len() <= 1, "two holders at once: {held:?}");
        if let Some(&i) = held.first() {
            break i;
        }
        std::thread::sleep(renew);
    };
    let took = stopped.elapsed();
    assert!(took <= 2 * interval, "taken over after {took:?}");
    let lease = stores[next].try_lease("judge", interval).unwrap();
    assert!(lease.term > first_term, "a new holder, a new term");
    // The old leader, back, does not get it while the new one renews.
    assert!(!attempt(&mut stores[leader], interval));
    // The new leader continues the same canary state.
    let row = stores[next].canary().unwrap().unwrap();
    assert_eq!((row.record.step, row.record.passes), (Some(2), 3));
    // A clean shutdown gives the lease up at once.
    stores[next].release_lease("judge").unwrap();
    assert!(attempt(&mut stores[leader], interval));
}

#[test]
fn a_canary_change_is_seen_by_every_replica_within_a_second_and_audited_once() {
    let pg = ThrowawayPostgres::start();
    let mut stores: Vec<Store> = ["a", "b", "c"].iter().map(|n| replica(&pg, n)).collect();
    let start = CanaryUpdate {
        record: CanaryRecord {
            state: "running".into(),
            weight: 5.0,
            ..CanaryRecord::default()
        },
        ..CanaryUpdate::default()
    };
    stores[0].change_canary(|_| Some(start.clone())).unwrap();
    let seen: Vec<u64> = stores
        .iter_mut()
        .map(|s| s.canary_generation().unwrap().unwrap())
        .collect();

    // An operator sets the weight through replica c's admin API.
    let changed = Instant::now();
    stores[2]
        .change_canary(|current| {
            let mut record = current?.record.clone();
            record.weight = 25.0;
            record.state = "paused".into();
            Some(CanaryUpdate {
                record,
                decisions: Vec::new(),
                audit: Some(AuditEntry {
                    at: SystemTime::now(),
                    by: "alice (token, 10.0.0.7:5123)".into(),
                    action: "weight".into(),
                    summary: "weight 5 → 25".into(),
                }),
            })
        })
        .unwrap();
    // Replicas a and b poll every 100 ms.
    for (i, store) in stores.iter_mut().enumerate().take(2) {
        let deadline = changed + Duration::from_secs(1);
        loop {
            if store.canary_generation().unwrap() != Some(seen[i]) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica {i} did not see the change in 1 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(store.canary().unwrap().unwrap().record.weight, 25.0);
    }
    assert!(changed.elapsed() < Duration::from_secs(1));
    let audit = stores[0].audit(100).unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].replica, "c");

    // Two operators at once, on two replicas: both changes are written, each audited once,
    // one after the other.
    std::thread::scope(|scope| {
        for (store, weight) in stores.iter_mut().take(2).zip([30.0, 40.0]) {
            scope.spawn(move || {
                store
                    .change_canary(|current| {
                        let mut record = current?.record.clone();
                        record.weight = weight;
                        Some(CanaryUpdate {
                            record,
                            decisions: Vec::new(),
                            audit: Some(AuditEntry {
                                at: SystemTime::now(),
                                by: "bob".into(),
                                action: "weight".into(),
                                summary: format!("weight → {weight}"),
                            }),
                        })
                    })
                    .unwrap()
            });
        }
    });
    let row = stores[2].canary().unwrap().unwrap();
    assert_eq!(row.generation, seen[0] + 3);
    assert_eq!(stores[2].audit(100).unwrap().len(), 3);
}

#[test]
fn while_the_database_is_down_deltas_are_buffered_within_bounds_and_written_when_it_returns() {
    let mut pg = ThrowawayPostgres::start();
    // A few batches' worth: each batch below takes a few KiB (three histograms of 500 values).
    let bound = 20 * 1024;
    let settings = Settings {
        replica: "r".into(),
        max_buffered_bytes: bound,
        max_retry_backoff: Duration::from_millis(200),
        ..Settings::default()
    };
    let mut store = Store::open(&location(&pg), settings).unwrap();
    let now = SystemTime::now();
    assert_eq!(store.flush(&batch(now, 1, 500)), Flushed::Written);
    let mut written = 500u64;

    pg.stop();
    let mut kept = 0u64;
    let mut dropped = 0u64;
    for i in 0..12u64 {
        // Each flush lands in an earlier minute: a new window, so the buffer grows.
        let at = now - Duration::from_secs(60 * (i + 1));
        match store.flush(&batch(at, 100 + i, 500)) {
            Flushed::Buffered => kept += 500,
            Flushed::Dropped => dropped += 1,
            Flushed::Written => panic!("written while the database is down"),
        }
        let health = store.health();
        assert!(!health.up);
        assert!(health.buffered_bytes <= bound, "{health:?}");
        std::thread::sleep(Duration::from_millis(30));
    }
    let health = store.health();
    assert!(
        kept >= 500 && dropped >= 1,
        "kept {kept}, dropped {dropped}"
    );
    assert_eq!(health.dropped, dropped);
    assert!(health.writes_failed >= 1);
    assert!(health.last_error.is_some());
    assert!(!health.fresh(SystemTime::now(), Duration::from_secs(60)));

    pg.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut flushes = 0;
    loop {
        flushes += 1;
        if store.flush(&batch(now, 999, 0)) == Flushed::Written {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not written after the database returned"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    written += kept;
    let health = store.health();
    assert!(
        health.up && health.buffered_bytes == 0,
        "{health:?} after {flushes} flushes"
    );
    assert!(health.fresh(SystemTime::now(), Duration::from_secs(60)));
    let view = store.read_view(None, None, Some("r")).unwrap();
    assert_eq!(view.counters[&requests()], written);
    assert_eq!(
        view.routes["/a"].latency[&Series::Primary].len(),
        written,
        "histograms and counters of the same batches"
    );
}

#[test]
fn a_newer_schema_is_refused_and_the_password_is_never_shown() {
    let pg = ThrowawayPostgres::start();
    drop(replica(&pg, "a"));
    let mut config: postgres::Config = pg.url().parse().unwrap();
    config.password(pg.password());
    let mut client = config.connect(postgres::NoTls).unwrap();
    client
        .execute(
            "UPDATE twinpeak_meta SET value = $1 WHERE key = 'schema_version'",
            &[&(SCHEMA_VERSION + 1).to_string()],
        )
        .unwrap();
    let err = Store::open(&location(&pg), Settings::default()).unwrap_err();
    assert!(matches!(err, StateError::SchemaTooNew { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("twinpeak@127.0.0.1:{}/postgres", pg.port())),
        "{text}"
    );
    assert!(!text.contains(pg.password()), "{text}");

    let wrong = PostgresConfig {
        url: Some(pg.url()),
        ..PostgresConfig::default()
    };
    let err = Store::open(
        &Location::Postgres(Box::new(wrong.target().unwrap())),
        Settings::default(),
    )
    .unwrap_err();
    assert!(matches!(err, StateError::Open { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_callers_reach_postgres_off_the_runtime() {
    let pg = tokio::task::spawn_blocking(ThrowawayPostgres::start)
        .await
        .unwrap();
    let settings = Settings {
        replica: "async".into(),
        ..Settings::default()
    };
    let store = SharedStore::open(location(&pg), settings).await.unwrap();
    let b = batch(SystemTime::now(), 3, 100);
    assert_eq!(store.call(move |s| s.flush(&b)).await, Flushed::Written);
    let counters: BTreeMap<CounterKey, u64> = store
        .call(|s| s.read_view(None, None, None).map(|v| v.counters))
        .await
        .unwrap();
    assert_eq!(counters[&requests()], 100);
    drop(store);
    tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
}
