//! The store's Prometheus metrics, made at scrape time from its [`Health`] and the canary's
//! standing (their names are an interface: the alert rules and the dashboard use them).

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

use super::Health;

/// Gauge, 1 when the last write to the store succeeded, else 0.
pub const STATE_UP: &str = "twinpeak_state_up";
/// Counter of flush writes, by `outcome` (`ok`, `failed`).
pub const STATE_WRITES_TOTAL: &str = "twinpeak_state_writes_total";
/// Gauge of bytes of deltas waiting to be written.
pub const STATE_BUFFERED_BYTES: &str = "twinpeak_state_buffered_bytes";
/// Counter of deltas that did not fit in the buffer and were dropped.
pub const STATE_DROPPED_TOTAL: &str = "twinpeak_state_dropped_total";
/// Gauge, 1 while this replica holds the judge's lease.
pub const CANARY_LEADER: &str = "twinpeak_canary_leader";
/// Gauge, 1 while the canary holds its weight because no fresh judgement is possible.
pub const CANARY_HOLDING: &str = "twinpeak_canary_holding";

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_string());
    family.set_help(help.to_string());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

fn gauge(value: f64) -> Metric {
    let mut gauge = Gauge::default();
    gauge.set_value(value);
    let mut metric = Metric::default();
    metric.set_gauge(gauge);
    metric
}

fn counter(value: u64, labels: &[(&str, &str)]) -> Metric {
    let mut counter = Counter::default();
    counter.set_value(value as f64);
    let mut metric = Metric::default();
    metric.set_counter(counter);
    metric.set_label(
        labels
            .iter()
            .map(|(name, value)| {
                let mut pair = LabelPair::default();
                pair.set_name(name.to_string());
                pair.set_value(value.to_string());
                pair
            })
            .collect(),
    );
    metric
}

/// The store's metric families: from `health`, and whether this replica is the judge's
/// `leader` and the canary is `holding`.
pub fn families(health: &Health, leader: bool, holding: bool) -> Vec<MetricFamily> {
    let flag = |b: bool| gauge(if b { 1.0 } else { 0.0 });
    vec![
        family(
            STATE_UP,
            "1 when the last write to the state store succeeded.",
            MetricType::GAUGE,
            vec![flag(health.up)],
        ),
        family(
            STATE_WRITES_TOTAL,
            "Flushes to the state store, by outcome.",
            MetricType::COUNTER,
            vec![
                counter(health.writes_ok, &[("outcome", "ok")]),
                counter(health.writes_failed, &[("outcome", "failed")]),
            ],
        ),
        family(
            STATE_BUFFERED_BYTES,
            "Bytes of deltas waiting to be written to the state store.",
            MetricType::GAUGE,
            vec![gauge(health.buffered_bytes as f64)],
        ),
        family(
            STATE_DROPPED_TOTAL,
            "Deltas that did not fit in the state store's buffer and were dropped.",
            MetricType::COUNTER,
            vec![counter(health.dropped, &[])],
        ),
        family(
            CANARY_LEADER,
            "1 while this replica holds the canary judge's lease.",
            MetricType::GAUGE,
            vec![flag(leader)],
        ),
        family(
            CANARY_HOLDING,
            "1 while the canary holds its weight because no fresh judgement is possible.",
            MetricType::GAUGE,
            vec![flag(holding)],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, TextEncoder};

    #[test]
    fn families_render_with_their_names() {
        let health = Health {
            up: true,
            writes_ok: 3,
            writes_failed: 1,
            buffered_bytes: 512,
            dropped: 2,
            ..Health::default()
        };
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&families(&health, true, false), &mut text)
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        for line in [
            "twinpeak_state_up 1",
            "twinpeak_state_writes_total{outcome=\"ok\"} 3",
            "twinpeak_state_writes_total{outcome=\"failed\"} 1",
            "twinpeak_state_buffered_bytes 512",
            "twinpeak_state_dropped_total 2",
            "twinpeak_canary_leader 1",
            "twinpeak_canary_holding 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
