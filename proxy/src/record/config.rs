//! The `record:` section: which live requests are recorded, how much of each is kept, and how
//! big the recording may grow.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::InvalidKey;
use crate::routes::{RouteConfig, OTHER_ROUTE};
use crate::units::{Bytes, Method, Percent, SampleKey};

/// Smallest `record.max_file_bytes`: a segment holds at least a few flushes.
pub const MIN_FILE_BYTES: u64 = 64 << 10;

/// Recording of live traffic for replay (`twinpeak load --replay`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecordConfig {
    /// The recording directory (created 0700 when missing); segments and the manifest go here.
    pub dir: PathBuf,
    /// Share of requests recorded, 0..100; changeable live with `PUT /api/v1/record`.
    #[serde(default = "hundred_percent")]
    pub percent: Percent,
    /// Consistent sampling key (`header:NAME`, `cookie:NAME`); absent means random per request.
    #[serde(default)]
    pub key: SampleKey,
    /// Route templates (from `routes:`, or `other`) whose requests are recorded; absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<String>>,
    /// Methods recorded; absent: all (writes too: recording is not replaying).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<Method>>,
    /// Bytes of each request body kept; past it the body is marked truncated.
    #[serde(default = "default_body_bytes")]
    pub max_body_bytes: Bytes,
    /// Whether the primary's answer (status, headers, body, latency) is recorded.
    #[serde(default = "crate::units::on")]
    pub answers: bool,
    /// Bytes of each answer body kept; past it the body is marked truncated.
    #[serde(default = "default_body_bytes")]
    pub max_response_bytes: Bytes,
    /// Size at which a segment is closed and a new one started.
    #[serde(default = "default_file_bytes")]
    pub max_file_bytes: Bytes,
    /// Most bytes the directory's segments take; past it the oldest are deleted (counted).
    #[serde(default = "default_total_bytes")]
    pub max_total_bytes: Bytes,
    /// Records waiting for the writer; a record past it is dropped and counted.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Bytes of records waiting for the writer (bodies and headers); a record that would pass
    /// it is dropped and counted.
    #[serde(default = "default_queued_bytes")]
    pub max_queued_bytes: Bytes,
}

impl RecordConfig {
    /// Checks the section against itself and the route table.
    pub fn validate(&self, routes: &[RouteConfig]) -> Result<(), InvalidKey> {
        if self.dir.as_os_str().is_empty() {
            return Err(InvalidKey::new("record.dir", "must name a directory"));
        }
        if self.queue == 0 {
            return Err(InvalidKey::new(
                "record.queue",
                "must be at least 1 (set record.percent: 0 to record nothing)",
            ));
        }
        if self.max_file_bytes.0 < MIN_FILE_BYTES {
            return Err(InvalidKey::new(
                "record.max_file_bytes",
                format!("must be at least {MIN_FILE_BYTES} bytes"),
            ));
        }
        if self.max_total_bytes.0 < 2 * self.max_file_bytes.0 {
            return Err(InvalidKey::new(
                "record.max_total_bytes",
                format!(
                    "must hold at least two segments (2 × record.max_file_bytes, {} bytes)",
                    2 * self.max_file_bytes.0
                ),
            ));
        }
        let largest = self.max_body_bytes.0 + self.max_response_bytes.0;
        if self.max_queued_bytes.0 < largest {
            return Err(InvalidKey::new(
                "record.max_queued_bytes",
                format!(
                    "must hold at least one whole record (record.max_body_bytes + \
                     record.max_response_bytes, {largest} bytes)"
                ),
            ));
        }
        if let Some(listed) = &self.routes {
            if listed.is_empty() {
                return Err(InvalidKey::new(
                    "record.routes",
                    "lists no route (leave it out to record every route)",
                ));
            }
            for name in listed {
                let known = name == OTHER_ROUTE
                    || routes
                        .iter()
                        .any(|r| r.template().as_str() == name.as_str());
                if !known {
                    return Err(InvalidKey::new(
                        "record.routes",
                        format!("{name:?} is not a template in routes: (nor \"other\")"),
                    ));
                }
            }
        }
        if self.methods.as_ref().is_some_and(Vec::is_empty) {
            return Err(InvalidKey::new(
                "record.methods",
                "lists no method (leave it out to record every method)",
            ));
        }
        Ok(())
    }
}

fn hundred_percent() -> Percent {
    Percent::new(100.0).expect("100 is a percentage")
}
fn default_body_bytes() -> Bytes {
    Bytes(64 << 10)
}
fn default_file_bytes() -> Bytes {
    Bytes(64 << 20)
}
fn default_total_bytes() -> Bytes {
    Bytes(1 << 30)
}
fn default_queue() -> usize {
    4096
}
fn default_queued_bytes() -> Bytes {
    Bytes(16 << 20)
}
