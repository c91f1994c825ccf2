//! Comparison of the primary's and the shadow's answers: a pure engine (no I/O, no async) that
//! turns two bodies into a short, bounded list of [`Finding`]s.
//!
//! JSON bodies are compared structurally (`json::diff_json`), other UTF-8 bodies line by line, and
//! anything else by size and digest ([`diff_bodies`]); gRPC bodies are read without a schema
//! into objects keyed by protobuf field number (`$.1.3[*].2`) and then compared as JSON. Paths in findings are normalised
//! (`$.bookings[*].price`) so that aggregating findings by path has bounded cardinality, and
//! [`BodyRules`] say which paths to ignore, which arrays are unordered and which numbers may
//! drift within a tolerance.

mod body;
mod canonical;
mod findings;
mod grpc;
mod json;
mod path;
mod protobuf;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use body::diff_bodies;
pub use grpc::{diff_grpc_outcome, holds_several_messages, is_grpc_content_type, GrpcAnswer};
pub use path::{JsonPath, PathPattern, PathSegment};

/// Path of the findings that describe a whole non-JSON body (text or binary).
pub const BODY_PATH: &str = "$body";

/// Longest [`Finding::detail`], in characters; longer texts end with `…`.
pub const MAX_DETAIL_CHARS: usize = 200;

/// Nesting depth below which JSON subtrees are compared as a whole (canonically) instead of
/// member by member, so that no input can exhaust the stack.
pub const MAX_DEPTH: usize = 128;

/// [`BodyRules::max_findings`] when the rules do not say otherwise.
pub const DEFAULT_MAX_FINDINGS: usize = 50;

/// What kind of difference a finding is (label values of `twinpeak_diff_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// The status codes differ.
    Status,
    /// A compared header differs.
    Header,
    /// Same JSON type, different value.
    ValueChanged,
    /// Different JSON types at the same path (`string → number`), or one body is not JSON.
    TypeChanged,
    /// An object member the primary has and the shadow lacks.
    Missing,
    /// An object member the shadow has and the primary lacks.
    Extra,
    /// Arrays of different lengths.
    ArrayLength,
    /// Arrays with the same elements in a different order.
    ArrayOrder,
    /// Text bodies that differ.
    Text,
    /// Binary bodies that differ.
    Binary,
}

impl DiffKind {
    /// Every kind, in [`DiffKind::index`] order.
    pub const ALL: [DiffKind; 10] = [
        DiffKind::Status,
        DiffKind::Header,
        DiffKind::ValueChanged,
        DiffKind::TypeChanged,
        DiffKind::Missing,
        DiffKind::Extra,
        DiffKind::ArrayLength,
        DiffKind::ArrayOrder,
        DiffKind::Text,
        DiffKind::Binary,
    ];

    /// The metric label value, e.g. `value_changed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DiffKind::Status => "status",
            DiffKind::Header => "header",
            DiffKind::ValueChanged => "value_changed",
            DiffKind::TypeChanged => "type_changed",
            DiffKind::Missing => "missing",
            DiffKind::Extra => "extra",
            DiffKind::ArrayLength => "array_length",
            DiffKind::ArrayOrder => "array_order",
            DiffKind::Text => "text",
            DiffKind::Binary => "binary",
        }
    }

    /// Position in [`DiffKind::ALL`], for per-kind counters kept in arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The kind reported when primary and shadow swap places: `Missing` and `Extra` trade
    /// places, every other kind stays (what the diff's symmetry is tested by).
    #[cfg(test)]
    pub const fn mirrored(self) -> DiffKind {
        match self {
            DiffKind::Missing => DiffKind::Extra,
            DiffKind::Extra => DiffKind::Missing,
            other => other,
        }
    }
}

impl fmt::Display for DiffKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One difference between the primary's and the shadow's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Normalised location: a JSON path with array indexes written `[*]`, or [`BODY_PATH`].
    pub path: String,
    /// What kind of difference this is.
    pub kind: DiffKind,
    /// Short human text (at most [`MAX_DETAIL_CHARS`] characters), e.g. `12.5 → 12.51`;
    /// concrete array indexes lead it when the path has any (`[3]: 12.5 → 12.51`).
    pub detail: String,
}

impl Finding {
    /// A finding whose detail is cut to [`MAX_DETAIL_CHARS`] characters.
    pub fn new(path: impl Into<String>, kind: DiffKind, detail: &str) -> Self {
        Finding {
            path: path.into(),
            kind,
            detail: findings::truncate_chars(detail, MAX_DETAIL_CHARS).into_owned(),
        }
    }
}

/// How far two numbers may drift apart and still count as equal: they are equal when
/// `|a − b| ≤ absolute` or `|a − b| ≤ relative · max(|a|, |b|)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tolerance {
    /// Largest accepted absolute difference.
    pub absolute: f64,
    /// Largest accepted difference relative to the larger magnitude (0.01 is 1 %).
    pub relative: f64,
}

impl Tolerance {
    /// Whether `a` and `b` are equal within this tolerance.
    pub fn accepts(&self, a: f64, b: f64) -> bool {
        let difference = (a - b).abs();
        difference <= self.absolute || difference <= self.relative * a.abs().max(b.abs())
    }
}

/// Per-route options for comparing bodies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BodyRules {
    /// Locations whose differences are dropped, together with everything beneath them
    /// (`$.meta` also ignores `$.meta.request_id`).
    pub ignore: Vec<PathPattern>,
    /// Arrays (named by their own path, e.g. `$.items`) compared as multisets: order never
    /// matters, elements present on one side only are reported as `Missing` / `Extra`.
    pub unordered: Vec<PathPattern>,
    /// Numeric tolerances; the first pattern matching a number or one of its ancestors wins.
    pub tolerances: Vec<(PathPattern, Tolerance)>,
    /// Most findings reported per comparison (the first ones are kept). Zero counts as one, so
    /// a difference is never hidden.
    pub max_findings: usize,
}

impl Default for BodyRules {
    fn default() -> Self {
        BodyRules {
            ignore: Vec::new(),
            unordered: Vec::new(),
            tolerances: Vec::new(),
            max_findings: DEFAULT_MAX_FINDINGS,
        }
    }
}

impl BodyRules {
    /// Whether an ignore pattern names exactly this location. The comparison checks every
    /// location on the way down, so this also drops everything beneath an ignored location.
    pub(crate) fn ignored_at(&self, path: &JsonPath<'_>) -> bool {
        self.ignore.iter().any(|pattern| pattern.matches(path))
    }

    /// Whether the array at this location is compared as a multiset.
    pub(crate) fn unordered_at(&self, path: &JsonPath<'_>) -> bool {
        self.unordered.iter().any(|pattern| pattern.matches(path))
    }

    /// The tolerance for a number at this location, if any pattern covers it.
    pub(crate) fn tolerance_at(&self, path: &JsonPath<'_>) -> Option<Tolerance> {
        self.tolerances
            .iter()
            .find(|(pattern, _)| pattern.covers(path))
            .map(|(_, tolerance)| *tolerance)
    }

    /// Whether ignore or unordered rules change what "the same value" means, so canonical
    /// forms must be built with the rules instead of plainly.
    pub(crate) fn shape_canonical_forms(&self) -> bool {
        !self.ignore.is_empty() || !self.unordered.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_listed_in_index_order_with_distinct_labels() {
        for (position, kind) in DiffKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), position);
            assert_eq!(kind.to_string(), kind.as_str());
        }
        let mut labels: Vec<_> = DiffKind::ALL.iter().map(|kind| kind.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), DiffKind::ALL.len());
    }

    #[test]
    fn mirroring_swaps_missing_and_extra_only() {
        assert_eq!(DiffKind::Missing.mirrored(), DiffKind::Extra);
        assert_eq!(DiffKind::Extra.mirrored(), DiffKind::Missing);
        for kind in DiffKind::ALL {
            assert_eq!(kind.mirrored().mirrored(), kind);
            if !matches!(kind, DiffKind::Missing | DiffKind::Extra) {
                assert_eq!(kind.mirrored(), kind);
            }
        }
    }

    #[test]
    fn kinds_serialize_as_their_labels() {
        for kind in DiffKind::ALL {
            let json = serde_json::to_value(kind).expect("a kind serializes");
            assert_eq!(json, serde_json::Value::from(kind.as_str()));
        }
    }

    #[test]
    fn finding_detail_is_cut_on_a_char_boundary() {
        let long = "é".repeat(500);
        let finding = Finding::new("$", DiffKind::ValueChanged, &long);
        assert_eq!(finding.detail.chars().count(), MAX_DETAIL_CHARS);
        assert!(finding.detail.ends_with('…'));
        let short = Finding::new("$", DiffKind::ValueChanged, "1 → 2");
        assert_eq!(short.detail, "1 → 2");
    }

    #[test]
    fn finding_serializes_with_kind_label() {
        let finding = Finding::new("$.a", DiffKind::ArrayLength, "3 vs 4");
        let json = serde_json::to_value(&finding).expect("a finding serializes");
        assert_eq!(
            json,
            serde_json::json!({"path": "$.a", "kind": "array_length", "detail": "3 vs 4"})
        );
    }

    #[test]
    fn tolerance_accepts_absolute_or_relative_drift() {
        let absolute = Tolerance {
            absolute: 0.01,
            relative: 0.0,
        };
        assert!(absolute.accepts(10.0, 10.005));
        assert!(!absolute.accepts(10.0, 10.02));
        let relative = Tolerance {
            absolute: 0.0,
            relative: 0.01,
        };
        assert!(relative.accepts(1000.0, 1009.0));
        assert!(!relative.accepts(1000.0, 1011.0));
        assert!(Tolerance::default().accepts(3.0, 3.0));
        assert!(!Tolerance::default().accepts(3.0, 3.000_001));
    }

    #[test]
    fn rules_deserialize_with_defaults_and_reject_bad_patterns() {
        let rules: BodyRules = serde_json::from_value(serde_json::json!({
            "ignore": ["$..updated_at", "$.meta"],
            "tolerances": [["$..price", {"relative": 0.01}]]
        }))
        .expect("valid rules");
        assert_eq!(rules.max_findings, DEFAULT_MAX_FINDINGS);
        assert_eq!(rules.ignore[1].to_string(), "$.meta");
        assert_eq!(rules.tolerances[0].1.relative, 0.01);
        assert_eq!(rules.tolerances[0].1.absolute, 0.0);

        let error = serde_json::from_value::<BodyRules>(serde_json::json!({"ignore": ["meta"]}))
            .expect_err("a pattern without `$` is rejected");
        assert!(error.to_string().contains("must start with `$`"), "{error}");
    }
}
