//! Starting on an existing database, refusing someone else's, and stopping in order.

mod common;

use std::time::{Duration, Instant};

use common::*;
use twinpeak_testbed::{Build, Testbed, TestbedError};

fn any_port() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_file_keeps_its_bookings_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    for build in Build::ALL {
        let db = dir.path().join(format!("{build}.sqlite"));
        let first = Testbed::start(build, any_port(), Some(db.clone()))
            .await
            .unwrap();
        assert_eq!(first.db_path(), db);
        let partner = partner_offering(first.addr, "ahmedabad", "facial").await;
        let made = post(
            first.addr,
            "/bookings",
            &booking(partner, "facial", &day(1), "z"),
        )
        .await;
        assert_eq!(made.status, 201);
        first.shutdown().await;

        let second = Testbed::start(build, any_port(), Some(db.clone()))
            .await
            .unwrap();
        let shown = get(second.addr, "/bookings/bk-000001").await;
        assert_eq!(shown.body, made.body, "{build}: kept, not seeded again");
        let next = post(
            second.addr,
            "/bookings",
            &booking(partner, "facial", &day(1), "y"),
        )
        .await;
        assert_eq!(next.json()["id"], "bk-000002");
        assert_eq!(next.json()["slot"], format!("{}T09:10", day(1)));
        second.shutdown().await;
        assert!(db.exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_builds_or_foreign_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("legacy.sqlite");
    Testbed::start(Build::Legacy, any_port(), Some(db.clone()))
        .await
        .unwrap()
        .shutdown()
        .await;
    let refused = Testbed::start(Build::Rebuilt, any_port(), Some(db.clone())).await;
    match refused {
        Err(e @ TestbedError::WrongBuild { .. }) => {
            assert!(e.to_string().contains("holds a legacy database"), "{e}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a legacy database served by rebuilt"),
    }

    let foreign = dir.path().join("foreign.sqlite");
    let conn = rusqlite::Connection::open(&foreign).unwrap();
    conn.execute_batch("CREATE TABLE notes (body TEXT)")
        .unwrap();
    drop(conn);
    let refused = Testbed::start(Build::Legacy, any_port(), Some(foreign)).await;
    assert!(matches!(refused, Err(TestbedError::Foreign { .. })));

    let not_a_database = dir.path().join("text.sqlite");
    std::fs::write(&not_a_database, "this is not SQLite").unwrap();
    let refused = Testbed::start(Build::Rebuilt, any_port(), Some(not_a_database)).await;
    assert!(matches!(refused, Err(TestbedError::Database { .. })));

    let missing_dir = dir.path().join("no/such/dir/db.sqlite");
    let refused = Testbed::start(Build::Legacy, any_port(), Some(missing_dir)).await;
    assert!(matches!(refused, Err(TestbedError::Database { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_address_is_an_error() {
    let first = start(Build::Legacy).await;
    let refused = Testbed::start(Build::Rebuilt, first.addr, None).await;
    assert!(matches!(refused, Err(TestbedError::Bind { .. })));
    first.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight_and_stops_listening() {
    for build in Build::ALL {
        let testbed = start(build).await;
        let addr = testbed.addr;
        let partner = partner_offering(addr, "delhi", "haircut").await;
        let in_flight: Vec<_> = (0..10)
            .map(|_| {
                let body = booking(partner, "haircut", &day(1), "late");
                tokio::spawn(async move { post(addr, "/bookings", &body).await })
            })
            .collect();
        // Long enough for the connections to be accepted; legacy is still booking then.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stopping = Instant::now();
        testbed.shutdown().await;
        assert!(
            stopping.elapsed() < Duration::from_secs(5),
            "{:?}",
            stopping.elapsed()
        );
        for request in in_flight {
            assert_eq!(request.await.unwrap().status, 201, "{build}");
        }
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_database_is_removed_on_drop() {
    let testbed = start(Build::Rebuilt).await;
    let db = testbed.db_path().to_path_buf();
    assert!(db.exists());
    drop(testbed);
    assert!(!db.exists());
    assert!(!db.parent().unwrap().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_is_quick_and_the_same_every_time() {
    let started = Instant::now();
    let one = start(Build::Legacy).await;
    // Well under a second in a release build; a debug build on a busy machine gets 10 s.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let two = start(Build::Legacy).await;
    for service in ["haircut", "massage", "yoga-class"] {
        let a = get(one.addr, &format!("/partners?city=pune&service={service}")).await;
        let b = get(two.addr, &format!("/partners?city=pune&service={service}")).await;
        assert_eq!(a.body, b.body);
    }
    one.shutdown().await;
    two.shutdown().await;
}
