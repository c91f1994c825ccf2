//! `twinpeak-testbed`: a small booking API on SQLite in two builds, **legacy** and **rebuilt**,
//! for demonstrating and testing twinpeak against something real.
//!
//! Both builds serve the same endpoints over the same seeded data (500 partners in the cities and
//! services of `scenarios/data/`):
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /health` | `{"status":"ok","build":"legacy"}` |
//! | `GET /partners?city=&service=` | up to 20 partners offering the service there, best rated first |
//! | `GET /partners/{id}/availability?date=YYYY-MM-DD` | that day's free slots (default: today) |
//! | `POST /bookings` `{partner_id, service, slot, customer}` | 201 and the booking; 409 when taken |
//! | `GET /bookings/{id}` | the booking |
//! | `POST /bookings/{id}/cancel` | the booking, cancelled; its slot is free again |
//!
//! A `slot` is a day (`2030-05-01`: the first free slot that day) or a grid slot
//! (`2030-05-01T09:40`: every 10 minutes from 09:00 to 16:50). Errors are JSON
//! (`{"error": "..."}`): 400 bad input, 404 unknown, 405 wrong method, 409 conflict, 413 body
//! over 64 KiB.
//!
//! # How the builds perform
//!
//! They degrade, or not, by their own construction, not by a scripted delay:
//!
//! - **legacy** reaches the database through one connection behind one lock, for reads and
//!   writes alike; its search filters with expressions no index serves and computes ratings with
//!   correlated subqueries over unindexed reviews (about 2 ms a search); and a booking calls
//!   the notification gateway (15-25 ms) while it still holds the lock. Idle, it answers quickly;
//!   at peak, requests queue behind each other and latency grows without bound.
//! - **rebuilt** indexes what it searches, runs SQLite in WAL mode with a pool of four readers and
//!   one writer, and hands notifications to a bounded queue drained in the background (a full
//!   queue drops the notification and counts it). It stays fast under the same load.
//!
//! Neither build ever loses or double-books a booking: a unique index allows one confirmed
//! booking per partner and slot, and each booking is one transaction.
//!
//! # How the builds answer differently
//!
//! Three honest differences, for a diff engine to find; every other answer is byte for byte the
//! same for the same state (same key order, and booking ids `bk-000001`, `bk-000002`, ... in the
//! order bookings are made):
//!
//! 1. **Price rounding**: legacy shows a price as computed (`1046.5`), rebuilt rounds half up to
//!    whole rupees (`1047`). Whole prices are the same on both.
//! 2. **A renamed field**: a booking names its partner in `partner_name` on legacy and in
//!    `partner_display_name` on rebuilt (which has no `partner_name`).
//! 3. **Invalid slot status**: a booking whose slot is unparseable, in the past or off the grid is
//!    refused with 400 by legacy and 422 by rebuilt (same error message).
//!
//! # Use
//!
//! ```no_run
//! # async fn demo() -> Result<(), twinpeak_testbed::TestbedError> {
//! use twinpeak_testbed::{Build, Testbed};
//! let legacy = Testbed::start(Build::Legacy, "127.0.0.1:0".parse().unwrap(), None).await?;
//! let rebuilt = Testbed::start(Build::Rebuilt, "127.0.0.1:0".parse().unwrap(), None).await?;
//! println!("primary {} shadow {}", legacy.url(), rebuilt.url());
//! legacy.shutdown().await;
//! rebuilt.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! From the command line, [`TestbedCommand`] serves one build until Ctrl-C or SIGTERM.

mod api;
mod booking;
mod builds;
pub mod catalog;
mod command;
mod error;
mod notify;
mod pool;
mod schema;
mod seed;
mod server;
mod slots;
mod store;

pub use api::BODY_LIMIT;
pub use builds::{Build, UnknownBuild};
pub use command::{TestbedCommand, EXIT_START_FAILED};
pub use error::TestbedError;
pub use notify::{NotificationStats, GATEWAY_MILLIS, QUEUE_CAPACITY};
pub use seed::SEED;
pub use server::{Testbed, SHUTDOWN_GRACE};
pub use store::{READERS, SEARCH_LIMIT};
