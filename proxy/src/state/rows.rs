//! What one window row holds and how two of them merge: latency histograms are added, counters
//! summed, findings merged with [`DiffSummary::merge`]: exactly, whichever replicas or windows
//! they come from. The same merge serves the buffer, the write, the coarsening and the reader.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use twinpeak_core::merge::add_histogram;
use twinpeak_core::{DiffSummary, SignedHistogram};

use super::codec;

/// A minute, the width windows are written at.
pub const MINUTE_S: i64 = 60;
/// An hour, the width minute windows are coarsened to.
pub const HOUR_S: i64 = 3600;

/// Which latency a histogram holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Series {
    /// The legacy backend.
    Primary,
    /// The rebuilt backend, on mirrored copies.
    Shadow,
    /// The rebuilt backend, on the canary share.
    Candidate,
    /// Paired total-time deltas, shadow − primary.
    Delta,
}

impl Series {
    /// The three sides (every series but the delta).
    pub const SIDES: [Series; 3] = [Series::Primary, Series::Shadow, Series::Candidate];
}

/// A counter: its Prometheus name and labels (`twinpeak_mirror_total{route, outcome}`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CounterKey {
    /// The metric name.
    pub name: String,
    /// Label names to values.
    pub labels: BTreeMap<String, String>,
}

impl CounterKey {
    /// A counter from its name and `(label, value)` pairs.
    pub fn new<'a>(name: &str, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        CounterKey {
            name: name.to_string(),
            labels: labels
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// What a window row is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum RowKey {
    /// A latency histogram of a route.
    Latency(String, Series),
    /// A counter.
    Counter(CounterKey),
    /// The findings of a route.
    Findings(String),
}

impl RowKey {
    /// The `kind` column.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            RowKey::Latency(..) => "latency",
            RowKey::Counter(_) => "counter",
            RowKey::Findings(_) => "findings",
        }
    }

    /// The `key` column: JSON of what identifies the row within its kind.
    pub(crate) fn key_text(&self) -> String {
        let text = match self {
            RowKey::Latency(route, series) => serde_json::to_string(&(route, series)),
            RowKey::Counter(counter) => serde_json::to_string(counter),
            RowKey::Findings(route) => serde_json::to_string(route),
        };
        text.expect("keys are plain data")
    }

    /// Reads a key back from its two columns.
    pub(crate) fn parse(kind: &str, key: &str) -> Result<RowKey, String> {
        let bad = |e: serde_json::Error| format!("bad {kind} key {key:?}: {e}");
        match kind {
            "latency" => serde_json::from_str::<(String, Series)>(key)
                .map(|(route, series)| RowKey::Latency(route, series))
                .map_err(bad),
            "counter" => serde_json::from_str(key).map(RowKey::Counter).map_err(bad),
            "findings" => serde_json::from_str(key).map(RowKey::Findings).map_err(bad),
            other => Err(format!("unknown row kind {other:?}")),
        }
    }
}

/// A row's value as it is stored: a count and a text (`""` for counters, the encoded
/// histogram, or the JSON of the findings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cell {
    pub count: i64,
    pub data: String,
}

impl Cell {
    /// Bytes it takes in the buffer, roughly.
    pub(crate) fn size(&self) -> usize {
        self.data.len() + 16
    }
}

/// A row's value, decoded.
#[derive(Debug, Clone)]
pub(crate) enum RowValue {
    /// A side's latency histogram (µs).
    Latency(Histogram<u64>),
    /// The paired delta.
    Delta(SignedHistogram),
    /// A counter's value.
    Count(u64),
    /// A route's findings over the window.
    Findings(Box<DiffSummary>),
}

impl RowValue {
    /// Encodes it as stored.
    pub(crate) fn encode(&self) -> Cell {
        match self {
            RowValue::Latency(h) => Cell {
                count: to_i64(h.len()),
                data: codec::encode(h),
            },
            RowValue::Delta(d) => Cell {
                count: to_i64(d.count()),
                data: codec::encode_delta(d),
            },
            RowValue::Count(n) => Cell {
                count: to_i64(*n),
                data: String::new(),
            },
            RowValue::Findings(f) => Cell {
                count: to_i64(f.compared),
                data: serde_json::to_string(f).expect("findings always encode"),
            },
        }
    }

    /// Decodes a stored row of `key`.
    pub(crate) fn decode(key: &RowKey, cell: &Cell) -> Result<RowValue, String> {
        let bad = |e: serde_json::Error| format!("undecodable {} row: {e}", key.kind());
        Ok(match key {
            RowKey::Latency(_, Series::Delta) => RowValue::Delta(
                codec::decode_delta(&cell.data).map_err(|e| format!("undecodable delta: {e}"))?,
            ),
            RowKey::Latency(..) => RowValue::Latency(
                codec::decode(&cell.data).map_err(|e| format!("undecodable histogram: {e}"))?,
            ),
            RowKey::Counter(_) => RowValue::Count(u64::try_from(cell.count).unwrap_or(0)),
            RowKey::Findings(_) => {
                RowValue::Findings(Box::new(serde_json::from_str(&cell.data).map_err(bad)?))
            }
        })
    }

    /// Adds `other` (a value of the same key) into `self`.
    pub(crate) fn add(&mut self, other: &RowValue) -> Result<(), String> {
        match (self, other) {
            (RowValue::Latency(a), RowValue::Latency(b)) => {
                add_histogram(a, b).map_err(|e| format!("cannot add histograms: {e:?}"))
            }
            (RowValue::Delta(a), RowValue::Delta(b)) => a
                .add(b)
                .map_err(|e| format!("cannot add histograms: {e:?}")),
            (RowValue::Count(a), RowValue::Count(b)) => {
                *a = a.saturating_add(*b);
                Ok(())
            }
            (RowValue::Findings(a), RowValue::Findings(b)) => {
                a.merge(b);
                Ok(())
            }
            _ => Err("cannot merge rows of different kinds".into()),
        }
    }
}

/// Merges two stored cells of `key`. Counters never decode.
pub(crate) fn merge_cells(key: &RowKey, into: &Cell, from: &Cell) -> Result<Cell, String> {
    if let RowKey::Counter(_) = key {
        return Ok(Cell {
            count: into.count.saturating_add(from.count),
            data: String::new(),
        });
    }
    let mut value = RowValue::decode(key, into)?;
    value.add(&RowValue::decode(key, from)?)?;
    Ok(value.encode())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The start of the window of `width_s` seconds holding `unix_s`.
pub(crate) fn window_start(unix_s: i64, width_s: i64) -> i64 {
    unix_s.div_euclid(width_s) * width_s
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinpeak_core::{new_latency_histogram, record_saturating};

    fn histogram(values: &[u64]) -> Histogram<u64> {
        let mut h = new_latency_histogram();
        values.iter().for_each(|v| record_saturating(&mut h, *v));
        h
    }

    #[test]
    fn keys_round_trip_through_their_columns() {
        let keys = [
            RowKey::Latency("/bookings/{id}".into(), Series::Delta),
            RowKey::Counter(CounterKey::new(
                "twinpeak_mirror_total",
                [("route", "/a,b"), ("outcome", "sent")],
            )),
            RowKey::Findings("other".into()),
        ];
        for key in keys {
            let back = RowKey::parse(key.kind(), &key.key_text()).unwrap();
            assert_eq!(back, key);
        }
        assert!(RowKey::parse("latency", "[1]").is_err());
        assert!(RowKey::parse("gauge", "\"x\"").is_err());
    }

    #[test]
    fn cells_merge_exactly_by_kind() {
        let key = RowKey::Latency("/a".into(), Series::Primary);
        let a = RowValue::Latency(histogram(&[100, 200])).encode();
        let b = RowValue::Latency(histogram(&[300])).encode();
        let merged = merge_cells(&key, &a, &b).unwrap();
        assert_eq!(merged.count, 3);
        let RowValue::Latency(h) = RowValue::decode(&key, &merged).unwrap() else {
            panic!("not a latency row");
        };
        assert_eq!(h, histogram(&[100, 200, 300]));

        let delta = RowKey::Latency("/a".into(), Series::Delta);
        let mut d1 = SignedHistogram::new();
        d1.record(-50);
        let mut d2 = SignedHistogram::new();
        d2.record(70);
        let merged = merge_cells(
            &delta,
            &RowValue::Delta(d1).encode(),
            &RowValue::Delta(d2).encode(),
        )
        .unwrap();
        assert_eq!(merged.count, 2);

        let counter = RowKey::Counter(CounterKey::new("c", []));
        let merged = merge_cells(
            &counter,
            &RowValue::Count(4).encode(),
            &RowValue::Count(5).encode(),
        )
        .unwrap();
        assert_eq!(merged.count, 9);

        let garbage = Cell {
            count: 1,
            data: "\"not a histogram\"".into(),
        };
        assert!(merge_cells(&key, &a, &garbage).is_err());
    }

    #[test]
    fn windows_start_on_their_boundary() {
        assert_eq!(window_start(3_725, MINUTE_S), 3_720);
        assert_eq!(window_start(3_725, HOUR_S), 3_600);
        assert_eq!(window_start(-1, MINUTE_S), -60);
    }
}
