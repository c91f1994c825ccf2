//! The comparison summary of one route, as the proxy's snapshot records it: how many pairs
//! were compared and how they came out, and per field path how often it differed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Comparison results of one route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiffSummary {
    /// Pairs compared.
    pub compared: u64,
    /// Pairs with no difference.
    pub identical: u64,
    /// Pairs with at least one real difference.
    pub different: u64,
    /// Pairs whose differences were all noise.
    pub noise_only: u64,
    /// Pairs whose bodies were cut by the capture cap (bodies not compared).
    #[serde(default)]
    pub truncated: u64,
    /// Reference comparisons (primary against a second legacy answer) made to learn noise.
    #[serde(default)]
    pub reference_compared: u64,
    /// Fields that differ for real, most frequent first.
    #[serde(default)]
    pub fields: Vec<FieldSummary>,
    /// Fields that differ between two legacy answers too: noise, not counted as differences.
    #[serde(default)]
    pub noise: Vec<FieldSummary>,
}

/// One field path and kind of difference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldSummary {
    /// Where (`$.booking.price.amount`, `status`, `header:content-type`, `$body`).
    pub path: String,
    /// What kind of difference (`value_changed`, `missing`, ...).
    pub kind: String,
    /// Pairs in which it differed.
    pub count: u64,
    /// `count` over the route's compared pairs.
    pub rate: f64,
    /// Reference comparisons in which it differed too.
    #[serde(default)]
    pub reference_count: u64,
    /// `reference_count` over the route's reference comparisons, when there were any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_rate: Option<f64>,
    /// When it was first seen (RFC 3339).
    pub first_seen: String,
    /// When it was last seen (RFC 3339).
    pub last_seen: String,
    /// A rule that would silence it, for noise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_ignore: Option<String>,
}

impl DiffSummary {
    /// Share of compared pairs with a real difference.
    pub fn diff_rate(&self) -> f64 {
        ratio(self.different, self.compared)
    }

    /// Adds another summary of the same route (from another proxy or another time).
    pub fn merge(&mut self, other: &DiffSummary) {
        self.compared += other.compared;
        self.identical += other.identical;
        self.different += other.different;
        self.noise_only += other.noise_only;
        self.truncated += other.truncated;
        self.reference_compared += other.reference_compared;
        self.fields = merge_fields(
            &self.fields,
            &other.fields,
            self.compared,
            self.reference_compared,
        );
        self.noise = merge_fields(
            &self.noise,
            &other.noise,
            self.compared,
            self.reference_compared,
        );
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

fn merge_fields(
    a: &[FieldSummary],
    b: &[FieldSummary],
    compared: u64,
    reference: u64,
) -> Vec<FieldSummary> {
    let mut by_key: BTreeMap<(String, String), FieldSummary> = BTreeMap::new();
    for f in a.iter().chain(b) {
        by_key
            .entry((f.path.clone(), f.kind.clone()))
            .and_modify(|m| {
                m.count += f.count;
                m.reference_count += f.reference_count;
                if f.first_seen < m.first_seen {
                    m.first_seen = f.first_seen.clone();
                }
                if f.last_seen > m.last_seen {
                    m.last_seen = f.last_seen.clone();
                }
            })
            .or_insert_with(|| f.clone());
    }
    let mut merged: Vec<FieldSummary> = by_key
        .into_values()
        .map(|mut f| {
            f.rate = ratio(f.count, compared);
            f.reference_rate = (reference > 0).then(|| ratio(f.reference_count, reference));
            f
        })
        .collect();
    merged.sort_by(|x, y| y.count.cmp(&x.count).then_with(|| x.path.cmp(&y.path)));
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(path: &str, count: u64, seen: &str) -> FieldSummary {
        FieldSummary {
            path: path.into(),
            kind: "value_changed".into(),
            count,
            rate: 0.0,
            reference_count: 0,
            reference_rate: None,
            first_seen: seen.into(),
            last_seen: seen.into(),
            suggested_ignore: None,
        }
    }

    #[test]
    fn merge_adds_counts_and_recomputes_rates() {
        let mut a = DiffSummary {
            compared: 100,
            identical: 90,
            different: 10,
            fields: vec![field("$.price", 10, "2026-01-02T00:00:00Z")],
            ..DiffSummary::default()
        };
        let b = DiffSummary {
            compared: 100,
            identical: 80,
            different: 20,
            fields: vec![
                field("$.price", 5, "2026-01-01T00:00:00Z"),
                field("$.name", 14, "2026-01-03T00:00:00Z"),
            ],
            ..DiffSummary::default()
        };
        a.merge(&b);
        assert_eq!(a.compared, 200);
        assert!((a.diff_rate() - 0.15).abs() < 1e-9);
        assert_eq!(a.fields[0].path, "$.price");
        assert_eq!(a.fields[0].count, 15);
        assert!((a.fields[0].rate - 0.075).abs() < 1e-9);
        assert_eq!(a.fields[0].first_seen, "2026-01-01T00:00:00Z");
        assert_eq!(a.fields[0].last_seen, "2026-01-02T00:00:00Z");
        assert_eq!(a.fields[1].path, "$.name");
    }
}
