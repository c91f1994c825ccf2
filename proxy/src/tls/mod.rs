//! TLS at the front door and to upstreams, with rustls (Pingora's `rustls` backend).
//!
//! - `certs`: PEM pairs read and checked (key matches, names, expiry).
//! - `resolver`: the SNI choice among a listener's certificates, replaceable at any time.
//! - `reload`: the background service that reads changed files again, and all on SIGHUP.
//! - `metrics`: reloads and expiry times.
//! - `upstream`: verification, CA bundle, client certificate and SNI for `https://` upstreams.

pub mod certs;
pub mod metrics;
pub mod reload;
pub mod resolver;
pub mod upstream;
