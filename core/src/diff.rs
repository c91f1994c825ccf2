//! The comparison summary of one route, as the proxy's snapshot records it: how many pairs
//! were compared and how they came out, per field path how often it differed, and per
//! *signature* (the set of fields a pair differed on) how many pairs differed exactly so.
//!
//! How a pair came out is derived, never stored: a pair is `different` when one of its
//! signature's fields is a real difference under the [`NoiseRule`] applied to the current
//! counts, and `noise_only` when all of them are noise. So the route's figures always agree
//! with its fields, also while noise is still being learned, and summaries from several proxies
//! merge exactly: counts are added and the figures derived again.

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
    pub truncated: u64,
    /// Reference comparisons (primary against a second legacy answer) made to learn noise.
    pub reference_compared: u64,
    /// Fields that differ for real, most frequent first.
    pub fields: Vec<FieldSummary>,
    /// Fields that differ between two legacy answers too: noise, not counted as differences.
    pub noise: Vec<FieldSummary>,
    /// How fields are told apart from noise; absent in records written before signatures were
    /// kept, whose counts are then added as they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise_rule: Option<NoiseRule>,
    /// Pairs per set of fields they differed on, most frequent first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<Signature>,
    /// Pairs whose signature came after the route's limit of distinct signatures: each was
    /// classified once, when compared, and is counted here and in `different` or `noise_only`.
    #[serde(skip_serializing_if = "Overflow::is_empty")]
    pub overflow: Overflow,
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

/// A set of fields, each as `[path, kind]`, and the pairs that differed on exactly those.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The fields, sorted.
    pub fields: Vec<(String, String)>,
    /// Pairs that differed on exactly these fields.
    pub pairs: u64,
}

/// Pairs past the limit of distinct signatures, classified when they were compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Overflow {
    /// Of those, pairs with a real difference at the time.
    pub different: u64,
    /// Of those, pairs whose differences were all noise at the time.
    pub noise_only: u64,
}

impl Overflow {
    /// Whether no pair overflowed.
    pub fn is_empty(&self) -> bool {
        self.different == 0 && self.noise_only == 0
    }
}

/// When a field is noise: two legacy answers differ there too (in at least one of
/// `min_samples` or more reference comparisons), and the shadow does not differ there clearly
/// more often (by `absolute_threshold` *and* by `relative_threshold` of the reference rate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NoiseRule {
    /// Reference comparisons needed before a field can be called noise.
    pub min_samples: u64,
    /// How much more often than the reference the shadow must differ, as a fraction of pairs.
    pub absolute_threshold: f64,
    /// How much more often than the reference the shadow must differ, as a share of the
    /// reference rate.
    pub relative_threshold: f64,
}

/// What one route's field counts are measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Pairs compared.
    pub compared: u64,
    /// Reference comparisons.
    pub reference_compared: u64,
}

impl NoiseRule {
    /// Whether a field that differed in `count` pairs and `reference_count` reference
    /// comparisons is noise.
    pub fn is_noise(&self, count: u64, reference_count: u64, totals: Totals) -> bool {
        if reference_count == 0 || totals.reference_compared < self.min_samples {
            return false;
        }
        let rate = ratio(count, totals.compared);
        let noise = ratio(reference_count, totals.reference_compared);
        let clearly_more = rate - noise >= self.absolute_threshold
            && rate >= noise * (1.0 + self.relative_threshold);
        !clearly_more
    }
}

impl DiffSummary {
    /// Share of compared pairs with a real difference.
    pub fn diff_rate(&self) -> f64 {
        ratio(self.different, self.compared)
    }

    /// Pairs kept under a signature.
    pub fn signed_pairs(&self) -> u64 {
        self.signatures.iter().map(|s| s.pairs).sum()
    }

    /// Derives everything that depends on noise from the counts: which fields are noise (with
    /// their rates and suggested ignore rules), and `different` and `noise_only` from the
    /// signatures and the overflow. `fields` and `noise` may hold the fields in any split;
    /// fields that never differed against the shadow and are not noise are left out. Does
    /// nothing without a noise rule.
    pub fn classify(&mut self) {
        let Some(rule) = self.noise_rule else {
            return;
        };
        let totals = Totals {
            compared: self.compared,
            reference_compared: self.reference_compared,
        };
        let mut all = std::mem::take(&mut self.fields);
        all.append(&mut self.noise);
        let mut noise_keys = BTreeMap::new();
        for mut field in all {
            let noise = rule.is_noise(field.count, field.reference_count, totals);
            noise_keys.insert((field.path.clone(), field.kind.clone()), noise);
            field.rate = ratio(field.count, totals.compared);
            field.reference_rate = (totals.reference_compared > 0)
                .then(|| ratio(field.reference_count, totals.reference_compared));
            field.suggested_ignore = noise.then(|| suggested_ignore(&field.path));
            match (noise, field.count) {
                (true, _) => self.noise.push(field),
                (false, 0) => {}
                (false, _) => self.fields.push(field),
            }
        }
        let (mut different, mut noise_only) = (self.overflow.different, self.overflow.noise_only);
        for signature in &self.signatures {
            // A field missing from the list cannot be shown to be noise: it is real.
            let real = signature
                .fields
                .iter()
                .any(|key| !noise_keys.get(key).copied().unwrap_or(false));
            if real {
                different += signature.pairs;
            } else {
                noise_only += signature.pairs;
            }
        }
        self.different = different;
        self.noise_only = noise_only;
        for list in [&mut self.fields, &mut self.noise] {
            list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.path.cmp(&b.path)));
        }
        self.signatures
            .sort_by(|a, b| b.pairs.cmp(&a.pairs).then_with(|| a.fields.cmp(&b.fields)));
    }

    /// Adds another summary of the same route (from another proxy or another time). When both
    /// carry a noise rule the figures are derived again from the added counts (with `self`'s
    /// rule), so the result is what one proxy seeing every pair would report; otherwise the
    /// counts are added as they are.
    pub fn merge(&mut self, other: &DiffSummary) {
        self.compared += other.compared;
        self.identical += other.identical;
        self.different += other.different;
        self.noise_only += other.noise_only;
        self.truncated += other.truncated;
        self.reference_compared += other.reference_compared;
        self.overflow.different += other.overflow.different;
        self.overflow.noise_only += other.overflow.noise_only;
        self.signatures = merge_signatures(&self.signatures, &other.signatures);
        if self.noise_rule.is_some() && other.noise_rule.is_some() {
            let ours = self.fields.iter().chain(&self.noise);
            let theirs = other.fields.iter().chain(&other.noise);
            self.fields = merge_fields(ours.chain(theirs));
            self.noise.clear();
            self.classify();
            return;
        }
        self.noise_rule = None;
        let totals = Totals {
            compared: self.compared,
            reference_compared: self.reference_compared,
        };
        self.fields = with_rates(
            merge_fields(self.fields.iter().chain(&other.fields)),
            totals,
        );
        self.noise = with_rates(merge_fields(self.noise.iter().chain(&other.noise)), totals);
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

/// The ignore rule that silences a noisy field: the field name at any depth when it is a
/// plain key (`$..updated_at`), the path itself otherwise.
pub fn suggested_ignore(path: &str) -> String {
    match path.rsplit_once('.') {
        Some((parent, name))
            if parent.starts_with('$')
                && !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            format!("$..{name}")
        }
        _ => path.to_string(),
    }
}

/// Fields with the same path and kind added together, most frequent first.
fn merge_fields<'a>(fields: impl Iterator<Item = &'a FieldSummary>) -> Vec<FieldSummary> {
    let mut by_key: BTreeMap<(String, String), FieldSummary> = BTreeMap::new();
    for f in fields {
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
    let mut merged: Vec<FieldSummary> = by_key.into_values().collect();
    merged.sort_by(|x, y| y.count.cmp(&x.count).then_with(|| x.path.cmp(&y.path)));
    merged
}

fn with_rates(mut fields: Vec<FieldSummary>, totals: Totals) -> Vec<FieldSummary> {
    for f in &mut fields {
        f.rate = ratio(f.count, totals.compared);
        f.reference_rate = (totals.reference_compared > 0)
            .then(|| ratio(f.reference_count, totals.reference_compared));
    }
    fields
}

fn merge_signatures(a: &[Signature], b: &[Signature]) -> Vec<Signature> {
    let mut by_fields: BTreeMap<&[(String, String)], u64> = BTreeMap::new();
    for s in a.iter().chain(b) {
        *by_fields.entry(&s.fields).or_default() += s.pairs;
    }
    let mut merged: Vec<Signature> = by_fields
        .into_iter()
        .map(|(fields, pairs)| Signature {
            fields: fields.to_vec(),
            pairs,
        })
        .collect();
    merged.sort_by(|x, y| y.pairs.cmp(&x.pairs).then_with(|| x.fields.cmp(&y.fields)));
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: NoiseRule = NoiseRule {
        min_samples: 10,
        absolute_threshold: 0.03,
        relative_threshold: 0.2,
    };

    fn field(path: &str, count: u64, reference_count: u64, seen: &str) -> FieldSummary {
        FieldSummary {
            path: path.into(),
            kind: "value_changed".into(),
            count,
            rate: 0.0,
            reference_count,
            reference_rate: None,
            first_seen: seen.into(),
            last_seen: seen.into(),
            suggested_ignore: None,
        }
    }

    fn signature(paths: &[&str], pairs: u64) -> Signature {
        Signature {
            fields: paths
                .iter()
                .map(|p| (p.to_string(), "value_changed".to_string()))
                .collect(),
            pairs,
        }
    }

    /// One proxy's view: 100 pairs, all differing on a nonce, 10 also on the price; `reference`
    /// comparisons, all differing on the nonce.
    fn nonce_and_price(reference: u64, seen: &str) -> DiffSummary {
        let mut s = DiffSummary {
            compared: 100,
            reference_compared: reference,
            fields: vec![
                field("$.nonce", 100, reference, seen),
                field("$.price", 10, 0, seen),
            ],
            noise_rule: Some(RULE),
            signatures: vec![
                signature(&["$.nonce"], 90),
                signature(&["$.nonce", "$.price"], 10),
            ],
            ..DiffSummary::default()
        };
        s.classify();
        s
    }

    #[test]
    fn pairs_are_classified_by_the_current_noise_of_their_fields() {
        // Too few reference comparisons: nothing is noise yet, every pair differs.
        let learning = nonce_and_price(5, "2026-01-01T00:00:00Z");
        assert_eq!((learning.different, learning.noise_only), (100, 0));
        assert_eq!(learning.fields.len(), 2);
        // Once the nonce is known to be noise, the same pairs are counted again.
        let learned = nonce_and_price(20, "2026-01-01T00:00:00Z");
        assert_eq!((learned.different, learned.noise_only), (10, 90));
        assert!((learned.diff_rate() - learned.fields[0].rate).abs() < 1e-12);
        assert_eq!(learned.noise[0].path, "$.nonce");
        assert_eq!(
            learned.noise[0].suggested_ignore.as_deref(),
            Some("$..nonce")
        );
        assert_eq!(learned.signed_pairs(), 100);
    }

    #[test]
    fn merging_derives_the_figures_again_from_the_added_counts() {
        // Alone, the first proxy has not learned the nonce; with the second one's references
        // the merged counts show it is noise.
        let mut a = nonce_and_price(6, "2026-01-02T00:00:00Z");
        let b = nonce_and_price(6, "2026-01-01T00:00:00Z");
        assert_eq!(a.different, 100);
        a.merge(&b);
        assert_eq!((a.compared, a.reference_compared), (200, 12));
        assert_eq!((a.different, a.noise_only), (20, 180));
        assert_eq!(a.fields.len(), 1);
        assert_eq!(a.fields[0].count, 20);
        assert!((a.fields[0].rate - 0.1).abs() < 1e-12);
        assert_eq!(a.noise[0].first_seen, "2026-01-01T00:00:00Z");
        assert_eq!(a.signatures[0], signature(&["$.nonce"], 180));
    }

    #[test]
    fn overflowed_pairs_keep_the_class_they_were_given() {
        let mut s = nonce_and_price(20, "2026-01-01T00:00:00Z");
        s.compared += 5;
        s.overflow = Overflow {
            different: 3,
            noise_only: 2,
        };
        s.classify();
        assert_eq!((s.different, s.noise_only), (13, 92));
    }

    #[test]
    fn records_without_a_noise_rule_are_added_as_they_are() {
        let mut a = DiffSummary {
            compared: 100,
            identical: 90,
            different: 10,
            fields: vec![field("$.price", 10, 0, "2026-01-02T00:00:00Z")],
            ..DiffSummary::default()
        };
        let b = DiffSummary {
            compared: 100,
            identical: 80,
            different: 20,
            fields: vec![
                field("$.price", 5, 0, "2026-01-01T00:00:00Z"),
                field("$.name", 14, 0, "2026-01-03T00:00:00Z"),
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

    #[test]
    fn a_field_clearly_above_its_noise_is_real() {
        let totals = Totals {
            compared: 100,
            reference_compared: 100,
        };
        assert!(RULE.is_noise(6, 5, totals));
        assert!(!RULE.is_noise(50, 5, totals));
        assert!(!RULE.is_noise(1, 0, totals));
        assert_eq!(suggested_ignore("$.a[*].b"), "$..b");
        assert_eq!(suggested_ignore("header:etag"), "header:etag");
    }
}
