//! twinpeak's proxy: a Pingora reverse proxy in front of the legacy (primary) backend that
//! serves every client from it, mirrors a configurable share of requests to the rebuilt
//! (shadow) backend without ever waiting for it, pairs the two answers, diffs them, and records
//! both latencies in HDR histograms per route. It can also serve a weighted, sticky canary
//! share from the rebuilt backend and roll it back on its own.
//!
//! # Use
//!
//! ```no_run
//! let loaded = twinpeak_proxy::Config::load(std::path::Path::new("proxy.yaml"))?;
//! twinpeak_proxy::run(loaded, twinpeak_proxy::Start::Fresh)?; // serves until SIGINT or SIGTERM
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Config::load`] reads and checks a configuration file; a [`ConfigError`] names the file,
//! line, column and key at fault (`proxy.yaml:4:12: mirror.percent: ...`). [`run`] assembles
//! the services and serves; a [`StartError`] names the file and the key whose value could not
//! be put to use (`proxy.yaml: shadow.url: cannot resolve ...`).
//!
//! # One request, module by module
//!
//! 1. `service`: Pingora hands the request to `request_filter`, the proxy's entry point. Every
//!    step below that runs on the request path only ever takes non-blocking calls.
//! 2. `routes`: the path, normalised, finds its route template (`/bookings/{id}`), or `other`;
//!    the route names every metric, so label cardinality stays bounded.
//! 3. `canary`: the side that serves the request: the force header where the operator allows
//!    it, then the sticky key's hash against the weight. A candidate request is not mirrored.
//! 4. `mirror`: admission: the shadow marker, the method, the sample (`sampling`), the body's
//!    size and a free in-flight slot; a request turned away is counted with its reason. An
//!    admitted request gets one id on both sides (`headers`) and its shadow task is spawned.
//! 5. `mirror::tee`: the body tee passes each body chunk to the shadow task as it goes to the
//!    primary, and gives the copy up (counted) rather than buffer past its limits.
//! 6. `mirror::client`: the shadow task sends the copy through one shared connector, and, to
//!    learn noise, asks the reference for a second legacy answer (`mirror::reference`).
//! 7. `capture`: both answers are kept, capped, within the mirror's byte budget (`budget`).
//! 8. `mirror::pairing`: the shadow's answer waits (bounded) for the primary's, and the pair
//!    joins a bounded queue; what does not fit is dropped and counted.
//! 9. `comparison`: a worker off the request path compares status, chosen headers and bodies
//!    (the `diff` engine), learns noise, keeps per-field results and redacted examples.
//! 10. `stats` and `metrics`: each exchange lands in HDR histograms per route × side, the
//!     pair's latency delta beside them, and in Prometheus counters (`labels` holds the label
//!     values).
//! 11. `admin`: `/metrics`, `/api/v1/...` and `twinpeak.snapshot/v1` records, and live changes
//!     to the mirror and the canary, behind the admin guard; `/ready` and the metrics-only
//!     listener without it.
//! 12. `notify`: canary decisions and new real differences, posted to webhooks from bounded
//!     queues off the request path.
//! 13. `access_log`: when configured, the request's last hook copies its outcome into a record
//!     for a bounded queue; a writer thread writes it as a JSON line to a rotated file.
//!
//! Around them: `config` (the file), `server` (the wiring), `listen` and `frontdoor` (the
//! listeners: plaintext, h2c, TLS), `tls` (certificates chosen by SNI and reloaded, and TLS to
//! upstreams), `upstream` (peers resolved at start), `error`, `secret`, `ratelimit`, `shards` and `units`; [`state`] is the store that
//! keeps what the proxy learns across restarts. `reload` applies SIGHUP, `drain` the SIGTERM
//! drain, and `upgrade` the binary upgrade ([`Start::Upgrade`]: the listening sockets taken
//! over from the running proxy, which hands them over on SIGQUIT).

mod access_log;
mod admin;
mod budget;
mod canary;
mod capture;
mod comparison;
mod config;
mod diff;
mod drain;
mod error;
mod frontdoor;
mod headers;
mod labels;
mod listen;
mod metrics;
mod mirror;
mod notify;
mod ratelimit;
mod record;
mod reload;
mod routes;
mod sampling;
mod secret;
mod server;
mod service;
mod shards;
pub mod state;
mod stats;
mod tls;
mod units;
mod upgrade;
mod upstream;
mod writer_thread;

pub use comparison::replay::ReplayComparison;
pub use config::{Config, ConfigError, LoadedConfig};
pub use error::{SetupError, SetupProblem, StartError};
pub use server::run;
pub use upgrade::Start;
