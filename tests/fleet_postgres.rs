//! A fleet of `twinpeak proxy` processes on loopback sharing one throwaway PostgreSQL: the
//! split and the weight agree on every replica, one replica judges, killing it hands the judge
//! to another within two intervals with the state intact and the successor judging, a
//! candidate failing 5% is rolled back fleet-wide on figures that add every replica's, each
//! interval judged once, the fleet's latency is every replica's
//! histograms added, and with the database away requests flow untouched, the canary holds and
//! says so, and what was buffered lands when it returns. Every wait is bounded.

mod common;
#[path = "../proxy/tests/support/postgres.rs"]
mod pg;
mod state_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use pg::ThrowawayPostgres;
use state_support::*;
use twinpeak_core::merge::add_histogram;
use twinpeak_core::EncodedHistogram;

const ROUTE: &str = "/items/{id}";

/// A backend answering 200, or 500 to every `fail_every`-th request (0: never).
async fn backend(body: &'static str, fail_every: u64) -> Backend {
    let n = Arc::new(AtomicU64::new(0));
    Backend::start(
        Duration::ZERO,
        Arc::new(move |_| {
            let i = n.fetch_add(1, Ordering::Relaxed) + 1;
            if fail_every > 0 && i.is_multiple_of(fail_every) {
                text(500, "failed")
            } else {
                text(200, body)
            }
        }),
    )
    .await
}

fn fleet_config(
    pg: &ThrowawayPostgres,
    primary: &Backend,
    candidate: &Backend,
    judge: &str,
) -> String {
    format!(
        "primary: {{ url: {} }}\nroutes: [\"{ROUTE}\"]\ncanary:\n  upstream: {}\n  weight: 20\n  \
         sticky: header:x-user-id\n  judge: {{interval: 1s, {judge}}}\n\
         state:\n  postgres: {{url: '{}', password_file: {}}}\n  flush_interval: 500ms\n",
        primary.url(),
        candidate.url(),
        pg.url(),
        pg.password_file().display()
    )
}

async fn start_fleet(dir: &std::path::Path, body: &str, n: usize) -> Vec<Replica> {
    let mut fleet = Vec::new();
    for i in 1..=n {
        fleet.push(Replica::start(dir, &format!("r{i}"), body).await);
    }
    fleet
}

/// Runs `query` on the database from a blocking thread (the driver blocks).
async fn db<T: Send + 'static>(
    pg: &ThrowawayPostgres,
    query: impl FnOnce(&mut postgres::Client) -> T + Send + 'static,
) -> T {
    let mut config: postgres::Config = pg.url().parse().unwrap();
    config.password(pg.password());
    tokio::task::spawn_blocking(move || query(&mut config.connect(postgres::NoTls).unwrap()))
        .await
        .unwrap()
}

/// Every verdict in the store, oldest first: the replica that wrote it, and the start of the
/// interval it judged.
async fn stored_verdicts(pg: &ThrowawayPostgres) -> Vec<(String, SystemTime)> {
    db(pg, |client| {
        client
            .query(
                "SELECT replica, decision FROM twinpeak_decisions ORDER BY id",
                &[],
            )
            .unwrap()
            .into_iter()
            .filter_map(|row| {
                let decision: serde_json::Value =
                    serde_json::from_str(&row.get::<_, String>(1)).unwrap();
                if !is_verdict(&decision) {
                    return None;
                }
                let (start, _) = judged_interval(decision["summary"].as_str()?)?;
                Some((row.get::<_, String>(0), start))
            })
            .collect()
    })
    .await
}

async fn leaders(fleet: &[Replica]) -> Vec<String> {
    let mut leaders = Vec::new();
    for r in fleet {
        if r.metric("twinpeak_canary_leader").await == Some(1.0) {
            leaders.push(r.name.clone());
        }
    }
    leaders
}

/// The primary latency histogram a latency view holds for the route.
fn primary_histogram(latency: &serde_json::Value) -> EncodedHistogram {
    serde_json::from_value(latency["routes"][ROUTE]["primary"]["histogram"].clone())
        .unwrap_or_else(|e| panic!("{e}: {latency}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_make_one_decision_and_hand_the_judge_over() {
    let pg = tokio::task::spawn_blocking(ThrowawayPostgres::start)
        .await
        .unwrap();
    let (primary, candidate) = (backend("legacy", 0).await, backend("rebuilt", 0).await);
    let dir = tempfile::tempdir().unwrap();
    let body = fleet_config(
        &pg,
        &primary,
        &candidate,
        "min_requests: 5, max_p99_ratio: 100, latency_effect: 0.95",
    );
    let mut fleet = start_fleet(dir.path(), &body, 3).await;

    // One judge.
    let one = eventually(Duration::from_secs(5), || async {
        leaders(&fleet).await.len() == 1
    })
    .await;
    assert!(one, "leaders: {:?}", leaders(&fleet).await);

    // An operator's change on one replica is in force on every one within a second, audited once.
    let res = fleet[1]
        .change("PUT", "/api/v1/canary", r#"{"weight": 30, "by": "sre"}"#)
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let changed_at = Instant::now();
    for r in &fleet {
        let applied = eventually(Duration::from_secs(1), || async {
            r.json("/api/v1/canary").await["weight"] == 30.0
        })
        .await;
        assert!(
            applied,
            "{} did not apply the weight within a second",
            r.name
        );
    }
    assert!(changed_at.elapsed() < Duration::from_millis(1_500));
    let audited = db(&pg, |client| {
        let row = client
            .query_one(
                "SELECT COUNT(*) FROM twinpeak_audit WHERE action = 'weight'",
                &[],
            )
            .unwrap();
        row.get::<_, i64>(0)
    })
    .await;
    assert_eq!(audited, 1);

    // The same users land on the same side whichever replica they reach.
    let c = client();
    let mut candidates = 0;
    for user in 0..150 {
        let mut sides = Vec::new();
        for r in &fleet {
            let res = c
                .get(r.url("/items/1"))
                .header("x-user-id", format!("user-{user}"))
                .send()
                .await
                .unwrap();
            sides.push(
                res.headers()["x-twinpeak-side"]
                    .to_str()
                    .unwrap()
                    .to_string(),
            );
        }
        assert!(
            sides.iter().all(|s| *s == sides[0]),
            "user-{user}: {sides:?}"
        );
        candidates += usize::from(sides[0] == "candidate");
    }
    assert!(
        (20..75).contains(&candidates),
        "{candidates} of 150 users on the candidate at 30%"
    );

    // Traffic on every replica; the fleet's latency is the three replicas' histograms added.
    let stop = Arc::new(AtomicBool::new(false));
    let urls = fleet.iter().map(|r| r.url("/items")).collect();
    let seen = load(urls, 6, Duration::from_secs(10), stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(seen.failed.load(Ordering::Relaxed), 0);
    let mut added: Option<EncodedHistogram> = None;
    for r in &fleet {
        let own = primary_histogram(&r.json(&format!("/api/v1/latency?replica={}", r.name)).await);
        let counted = r
            .metric(&format!(
                "twinpeak_upstream_duration_seconds_count{{route=\"{ROUTE}\",side=\"primary\"}}"
            ))
            .await
            .unwrap();
        assert_eq!(
            own.0.len() as f64,
            counted,
            "{}'s stored histogram is all it served",
            r.name
        );
        match &mut added {
            Some(sum) => add_histogram(&mut sum.0, &own.0).unwrap(),
            None => added = Some(own),
        }
    }
    let fleet_view = fleet[0].json("/api/v1/latency").await;
    assert_eq!(
        fleet_view["replicas"],
        serde_json::json!(["r1", "r2", "r3"])
    );
    assert_eq!(primary_histogram(&fleet_view).0, added.unwrap().0);

    // Kill the judge: another takes over within two intervals, the state as it was.
    let leader = leaders(&fleet).await.pop().unwrap();
    let at = fleet.iter().position(|r| r.name == leader).unwrap();
    let before = fleet[(at + 1) % 3].json("/api/v1/canary").await;
    let killed_at = SystemTime::now();
    fleet[at].kill();
    let killed = Instant::now();
    let rest: Vec<&Replica> = fleet.iter().filter(|r| r.name != leader).collect();
    let mut successor = None;
    while killed.elapsed() < Duration::from_secs(5) && successor.is_none() {
        for r in &rest {
            if r.metric("twinpeak_canary_leader").await == Some(1.0) {
                successor = Some(r.name.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = killed.elapsed();
    assert!(successor.is_some(), "nobody took the judge over");
    assert!(
        took <= Duration::from_secs(2),
        "the judge was handed over in {took:?}"
    );
    // The survivors agree on who judges (on a loaded machine the lease may change hands once
    // more before they settle: each names the holder it saw at its last try, a third of the
    // lease's term ago at most), and the state is as it was.
    let agreed = std::sync::Mutex::new(None);
    let settled = eventually(Duration::from_secs(3), || async {
        let mut judges = Vec::new();
        for r in &rest {
            let now = r.json("/api/v1/canary").await;
            assert_eq!(now["state"], before["state"]);
            assert_eq!(now["weight"], before["weight"]);
            judges.push(now["fleet"]["judge"].as_str().map(str::to_string));
        }
        let holder = judges[0].clone();
        *agreed.lock().unwrap() = holder.clone();
        let leader = match rest.iter().find(|r| Some(&r.name) == holder.as_ref()) {
            Some(r) => r.metric("twinpeak_canary_leader").await == Some(1.0),
            None => false,
        };
        leader && judges.iter().all(|j| *j == holder)
    })
    .await;
    let agreed = agreed.into_inner().unwrap();
    assert!(
        settled,
        "the survivors do not agree on the judge: last {agreed:?}"
    );
    // The successor judges: once the killed replica's rows are past, a verdict it wrote over
    // an interval that began after the kill.
    let successor = agreed.unwrap();
    let judging = eventually(Duration::from_secs(10), || async {
        stored_verdicts(&pg)
            .await
            .iter()
            .any(|(by, start)| *by == successor && *start >= killed_at)
    })
    .await;
    assert!(
        judging,
        "{successor} never judged after the handover: {}",
        fleet[0].json("/api/v1/canary").await
    );
    fleet.remove(at);
}

/// The fleet's verdicts with the interval and replicas they were judged over.
fn judged(history: &serde_json::Value) -> Vec<(i64, u64, Vec<String>)> {
    history
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["decision"] == "fail" || d["decision"] == "pass")
        .filter_map(|d| {
            let (start, replicas) = judged_interval(d["summary"].as_str()?)?;
            let start_ms = start
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_millis() as i64;
            let requests = d["reasons"]
                .as_array()?
                .iter()
                .find(|r| r["metric"] == "requests")?["candidate"]
                .as_f64()? as u64;
            Some((start_ms / 1_000, requests, replicas))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_candidate_failing_5_percent_is_rolled_back_fleet_wide() {
    let pg = tokio::task::spawn_blocking(ThrowawayPostgres::start)
        .await
        .unwrap();
    let (primary, candidate) = (backend("legacy", 0).await, backend("rebuilt", 20).await);
    let dir = tempfile::tempdir().unwrap();
    let body = fleet_config(
        &pg,
        &primary,
        &candidate,
        "min_requests: 20, max_error_rate: 1%, failures_to_rollback: 2, max_p99_ratio: 100, latency_effect: 0.95",
    );
    let fleet = start_fleet(dir.path(), &body, 3).await;
    let stop = Arc::new(AtomicBool::new(false));
    let urls = fleet.iter().map(|r| r.url("/items")).collect();
    let _seen = load(urls, 6, Duration::from_secs(25), stop.clone());
    let mut rolled_back = true;
    for r in &fleet {
        rolled_back &= eventually(Duration::from_secs(20), || async {
            let c = r.json("/api/v1/canary").await;
            c["state"] == "rolled_back" && c["weight"] == 0.0
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    assert!(
        rolled_back,
        "not rolled back everywhere: {}",
        fleet[0].log()
    );
    for r in &fleet {
        assert_eq!(
            r.metric("twinpeak_canary_weight").await,
            Some(0.0),
            "{}",
            r.name
        );
    }

    // Each verdict's candidate requests are the sum of the replicas' rows of its interval.
    let history = fleet[0].json("/api/v1/canary").await["history"].clone();
    let verdicts = judged(&history);
    assert!(!verdicts.is_empty(), "{history}");
    let rows: BTreeMap<(i64, String), u64> = db(&pg, |client| {
        client
            .query(
                "SELECT seq, replica, data FROM twinpeak_intervals WHERE width_ms = 1000",
                &[],
            )
            .unwrap()
            .into_iter()
            .map(|row| {
                let data: serde_json::Value =
                    serde_json::from_str(&row.get::<_, String>(2)).unwrap();
                let requests = data["candidate"]["requests"].as_u64().unwrap();
                ((row.get::<_, i64>(0), row.get::<_, String>(1)), requests)
            })
            .collect()
    })
    .await;
    for (seq, requests, replicas) in &verdicts {
        let sum: u64 = replicas.iter().map(|r| rows[&(*seq, r.clone())]).sum();
        assert_eq!(*requests, sum, "interval {seq} over {replicas:?}");
    }
    assert!(
        verdicts.iter().any(|(_, _, replicas)| replicas.len() == 3),
        "some verdict was over all three: {verdicts:?}"
    );
    let rollbacks = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["decision"] == "rollback")
        .count();
    assert_eq!(rollbacks, 1, "one rollback for the fleet");
    // One verdict per interval, in the store and in every replica's history.
    let stored = stored_verdicts(&pg).await;
    let intervals: BTreeSet<SystemTime> = stored.iter().map(|(_, start)| *start).collect();
    assert_eq!(
        intervals.len(),
        stored.len(),
        "an interval judged twice: {stored:?}"
    );
    for r in &fleet {
        let history = r.json("/api/v1/canary").await["history"].clone();
        let seen: Vec<i64> = judged(&history)
            .into_iter()
            .map(|(seq, _, _)| seq)
            .collect();
        let unique: BTreeSet<i64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "{}: {seen:?}", r.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_database_away_requests_flow_the_canary_holds_and_writes_land_later() {
    let mut pg = tokio::task::spawn_blocking(ThrowawayPostgres::start)
        .await
        .unwrap();
    let (primary, candidate) = (backend("legacy", 0).await, backend("rebuilt", 0).await);
    let dir = tempfile::tempdir().unwrap();
    let body = fleet_config(
        &pg,
        &primary,
        &candidate,
        "min_requests: 5, max_p99_ratio: 100, latency_effect: 0.95",
    );
    let fleet = start_fleet(dir.path(), &body, 2).await;
    let stop = Arc::new(AtomicBool::new(false));
    let urls: Vec<String> = fleet.iter().map(|r| r.url("/items")).collect();
    let before = load(urls.clone(), 4, Duration::from_secs(3), stop.clone());
    let judging = eventually(Duration::from_secs(5), || async {
        fleet[0].json("/api/v1/canary").await["history"]
            .as_array()
            .is_some_and(|h| h.iter().any(|d| d["decision"] == "pass"))
    })
    .await;
    assert!(judging, "the fleet never judged: {}", fleet[0].log());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let normal_slowest = before.slowest_us.load(Ordering::Relaxed);

    pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let during = load(urls, 4, Duration::from_secs(15), stop.clone());
    for r in &fleet {
        let holding = eventually(Duration::from_secs(6), || async {
            let c = r.json("/api/v1/canary").await;
            c["holding"] == true && c["weight"] == 20.0
        })
        .await;
        assert!(holding, "{} does not say it holds", r.name);
        assert_eq!(r.metric("twinpeak_canary_holding").await, Some(1.0));
        // Flushes say the store is down at their next attempt (reads never do).
        let down = eventually(Duration::from_secs(3), || async {
            r.metric("twinpeak_state_up").await == Some(0.0)
        })
        .await;
        assert!(down, "{}'s twinpeak_state_up stays 1", r.name);
        let buffered = eventually(Duration::from_secs(3), || async {
            r.metric("twinpeak_state_buffered_bytes")
                .await
                .unwrap_or(0.0)
                > 0.0
        })
        .await;
        assert!(buffered, "{} buffers nothing", r.name);
    }
    let refused = fleet[0]
        .change("PUT", "/api/v1/canary", r#"{"weight": 40}"#)
        .await;
    assert_eq!(refused.status(), 503);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        during.failed.load(Ordering::Relaxed),
        0,
        "a request failed with the database away"
    );
    assert!(during.ok.load(Ordering::Relaxed) > 100);
    let slowest = during.slowest_us.load(Ordering::Relaxed);
    assert!(
        slowest < 500_000,
        "the slowest answer took {slowest} µs with the database away ({normal_slowest} µs before)"
    );

    let pg = tokio::task::spawn_blocking(move || {
        pg.resume();
        pg
    })
    .await
    .unwrap();
    for r in &fleet {
        let landed = eventually(Duration::from_secs(40), || async {
            r.metric("twinpeak_state_buffered_bytes").await == Some(0.0)
                && r.metric("twinpeak_state_up").await == Some(1.0)
        })
        .await;
        assert!(landed, "{}'s buffered writes did not land", r.name);
    }
    // Everything each replica counted is in the store, the outage included.
    let series = format!(
        "twinpeak_requests_total{{route=\"{ROUTE}\",side=\"primary\",status_class=\"2xx\"}}"
    );
    let mut live = 0.0;
    for r in &fleet {
        live += r.metric(&series).await.unwrap_or(0.0);
    }
    let stored = fleet[0].json("/api/v1/snapshot").await;
    let stored = stored["routes"][ROUTE]["primary"]["requests"]
        .as_f64()
        .unwrap();
    assert_eq!(stored, live);
    let cleared = eventually(Duration::from_secs(5), || async {
        fleet[1].json("/api/v1/canary").await["holding"] == false
    })
    .await;
    assert!(cleared, "the hold did not end");
    drop(pg);
}
