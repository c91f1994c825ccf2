//! The state store over TLS to a throwaway PostgreSQL with a self-signed certificate: with the
//! certificate's authority given (`ca_file`) and `sslmode=require` it connects and writes;
//! without it the certificate is refused at start, naming why; with verification turned off
//! it connects.

mod support;

use std::time::{Duration, SystemTime};

use support::postgres::ThrowawayPostgres;
use twinpeak_proxy::state::{
    Batch, CounterKey, Flushed, Location, PostgresConfig, Settings, Store,
};

fn location(
    pg: &ThrowawayPostgres,
    sslmode: &str,
    ca_file: Option<std::path::PathBuf>,
    verify: bool,
) -> Location {
    let config = PostgresConfig {
        url: Some(format!("{}?sslmode={sslmode}", pg.url())),
        password_file: Some(pg.password_file()),
        ca_file,
        verify_certificate: verify,
        ..PostgresConfig::default()
    };
    Location::Postgres(Box::new(config.target().unwrap()))
}

fn settings() -> Settings {
    Settings {
        replica: "tls-1".into(),
        max_retry_backoff: Duration::from_millis(200),
        ..Settings::default()
    }
}

#[test]
fn tls_is_verified_against_the_given_authority() {
    let (pg, cert) = ThrowawayPostgres::start_with_tls();

    let mut store = Store::open(&location(&pg, "require", Some(cert), true), settings())
        .expect("connects over TLS with the certificate's authority");
    let mut batch = Batch::new(SystemTime::now());
    batch.counters.insert(
        CounterKey::new("twinpeak_requests_total", [("route", "/a")]),
        3,
    );
    assert_eq!(store.flush(&batch), Flushed::Written);
    let view = store.read_view(None, None, None).unwrap();
    assert_eq!(view.counters.values().sum::<u64>(), 3);

    let refused = Store::open(&location(&pg, "require", None, true), settings())
        .expect_err("a self-signed certificate is not trusted by default")
        .to_string();
    assert!(
        refused.to_lowercase().contains("certificate"),
        "the refusal names the certificate: {refused}"
    );

    let unverified = Store::open(&location(&pg, "require", None, false), settings());
    assert!(unverified.is_ok(), "{:?}", unverified.err());
}
