//! twinpeak's proxy: a Pingora reverse proxy in front of the legacy (primary) backend that
//! serves every client from it, mirrors a configurable share of requests to the rebuilt
//! (shadow) backend without ever waiting for it, pairs the two answers, and records both
//! latencies in HDR histograms per route. It can also serve a weighted, sticky canary share
//! from the rebuilt backend and roll it back on its own (`canary`). See `server::run` for the
//! entry point.

pub mod admin;
pub mod budget;
pub mod canary;
pub mod capture;
pub mod comparison;
pub mod config;
pub mod diff;
pub mod error;
pub mod headers;
pub mod labels;
pub mod metrics;
pub mod mirror;
pub mod ratelimit;
pub mod routes;
pub mod sampling;
pub mod secret;
pub mod server;
pub mod service;
pub mod shards;
pub mod state;
pub mod stats;
pub mod units;
pub mod upstream;

pub use config::{Config, ConfigError, LoadedConfig};
