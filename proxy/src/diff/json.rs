//! Structural comparison of two JSON documents ([`diff_json`]).

use std::mem::discriminant;

use serde_json::{Map, Number, Value};

use super::canonical::{self, type_name};
use super::findings::{truncate_chars, Sink};
use super::path::JsonPath;
use super::{BodyRules, DiffKind, Finding, MAX_DEPTH};

/// Characters of each value shown in a detail (`<primary> → <shadow>`).
const PREVIEW_CHARS: usize = 90;

/// Most pairs of leftover elements of an unordered array tried against each other under a
/// numeric tolerance.
const PAIRING_LIMIT: usize = 4096;

/// Compares two JSON documents and reports how the shadow's differs from the primary's.
///
/// Objects are compared by key (order never matters): a key only in the primary is `Missing`,
/// only in the shadow `Extra`; a `null` member is present, so `null` against an absent key is
/// `Missing`/`Extra` and `null` against `1` is `TypeChanged`. Numbers compare by value (`1`
/// equals `1.0`; integers exactly, otherwise as `f64`) within the tolerance of their path;
/// strings compare after unescaping. Arrays of different lengths give one `ArrayLength`
/// finding, the same elements in another order one `ArrayOrder`; otherwise elements compare
/// pairwise. Arrays marked unordered compare as multisets. Below [`MAX_DEPTH`] levels,
/// subtrees compare canonically as a whole (one `ValueChanged`, rules not applied).
///
/// Findings inside ignored paths are dropped, identical (path, kind) pairs reported once, and
/// at most `rules.max_findings` findings kept (the first ones).
pub fn diff_json(primary: &Value, shadow: &Value, rules: &BodyRules) -> Vec<Finding> {
    let mut walker = Walker {
        rules,
        path: JsonPath::root(),
        sink: Sink::new(rules.max_findings),
        probing: false,
        probe_hit: false,
    };
    walker.compare(primary, shadow);
    walker.sink.into_findings()
}

/// Walks both documents in step, keeping the current location as a stack of segments.
struct Walker<'r, 'v> {
    rules: &'r BodyRules,
    path: JsonPath<'v>,
    sink: Sink,
    /// Only asking "is there any difference?": findings are not recorded, the first one stops
    /// the walk.
    probing: bool,
    probe_hit: bool,
}

impl<'v> Walker<'_, 'v> {
    /// Whether the walk should stop: a probe found a difference, or the sink is full.
    fn stopped(&self) -> bool {
        if self.probing {
            self.probe_hit
        } else {
            self.sink.is_full()
        }
    }

    /// Records a finding at the current location (or, when probing, just notes that one exists).
    fn emit(&mut self, kind: DiffKind, detail: impl FnOnce() -> String) {
        if self.probing {
            self.probe_hit = true;
        } else {
            self.sink.push(&self.path, kind, detail);
        }
    }

    /// Compares the two values at the current location.
    fn compare(&mut self, a: &'v Value, b: &'v Value) {
        if self.stopped() || self.rules.ignored_at(&self.path) {
            return;
        }
        if self.path.depth() >= MAX_DEPTH {
            self.compare_whole(a, b);
            return;
        }
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => self.compare_objects(x, y),
            (Value::Array(x), Value::Array(y)) => self.compare_arrays(x, y),
            (Value::Number(x), Value::Number(y)) => {
                if !self.numbers_match(x, y) {
                    self.emit(DiffKind::ValueChanged, || changed(a, b));
                }
            }
            (Value::String(x), Value::String(y)) if x != y => {
                self.emit(DiffKind::ValueChanged, || changed(a, b));
            }
            (Value::Bool(x), Value::Bool(y)) if x != y => {
                self.emit(DiffKind::ValueChanged, || changed(a, b));
            }
            _ if discriminant(a) == discriminant(b) => {}
            _ => self.emit(DiffKind::TypeChanged, || {
                format!("{} → {}", type_name(a), type_name(b))
            }),
        }
    }

    /// Beyond [`MAX_DEPTH`]: one comparison of the canonical texts.
    fn compare_whole(&mut self, a: &'v Value, b: &'v Value) {
        let (x, y) = (canonical::canonical(a), canonical::canonical(b));
        if x != y {
            self.emit(DiffKind::ValueChanged, || {
                format!(
                    "subtrees differ below depth {MAX_DEPTH}: {} → {}",
                    truncate_chars(&x, PREVIEW_CHARS / 2),
                    truncate_chars(&y, PREVIEW_CHARS / 2)
                )
            });
        }
    }

    /// Equal by value, or within the tolerance that covers this location.
    fn numbers_match(&self, x: &Number, y: &Number) -> bool {
        match numeric_difference(x, y) {
            None => true,
            Some((a, b)) => self
                .rules
                .tolerance_at(&self.path)
                .is_some_and(|tolerance| tolerance.accepts(a, b)),
        }
    }

    /// Members by key: shared ones recursively, the others as `Missing` / `Extra`.
    fn compare_objects(&mut self, x: &'v Map<String, Value>, y: &'v Map<String, Value>) {
        for (key, a) in x {
            self.path.push_key(key.as_str());
            match y.get(key) {
                Some(b) => self.compare(a, b),
                None => self.report_alone(DiffKind::Missing, "primary", a),
            }
            self.path.pop();
            if self.stopped() {
                return;
            }
        }
        for (key, b) in y {
            if x.contains_key(key) {
                continue;
            }
            self.path.push_key(key.as_str());
            self.report_alone(DiffKind::Extra, "shadow", b);
            self.path.pop();
            if self.stopped() {
                return;
            }
        }
    }

    /// A member present on one side only.
    fn report_alone(&mut self, kind: DiffKind, side: &str, value: &Value) {
        if !self.rules.ignored_at(&self.path) {
            self.emit(kind, || format!("only in {side}: {}", preview(value)));
        }
    }

    /// Unordered arrays as multisets; otherwise length, then order, then element by element.
    fn compare_arrays(&mut self, x: &'v [Value], y: &'v [Value]) {
        if self.rules.unordered_at(&self.path) {
            self.compare_unordered(x, y);
            return;
        }
        if x.len() != y.len() {
            let (n, m) = (x.len(), y.len());
            self.emit(DiffKind::ArrayLength, || format!("{n} vs {m}"));
            return;
        }
        let first = x
            .iter()
            .zip(y)
            .enumerate()
            .position(|(index, (a, b))| self.elements_differ(index, a, b));
        let Some(first) = first else {
            return;
        };
        if self.probing {
            self.probe_hit = true;
            return;
        }
        if self.same_multiset(x, y, first) {
            let count = x.len();
            self.emit(DiffKind::ArrayOrder, || {
                format!(
                    "same {count} elements in a different order; first out of place at [{first}]"
                )
            });
            return;
        }
        for (index, (a, b)) in x.iter().zip(y).enumerate().skip(first) {
            self.path.push_index(index);
            self.compare(a, b);
            self.path.pop();
            if self.stopped() {
                return;
            }
        }
    }

    /// Whether comparing the element pair at `index` would report anything.
    fn elements_differ(&mut self, index: usize, a: &'v Value, b: &'v Value) -> bool {
        let saved = (self.probing, self.probe_hit);
        (self.probing, self.probe_hit) = (true, false);
        self.path.push_index(index);
        self.compare(a, b);
        self.path.pop();
        let hit = self.probe_hit;
        (self.probing, self.probe_hit) = saved;
        hit
    }

    /// Whether both arrays hold the same elements, given that the pair at `first` differs.
    /// A cheap necessary condition comes first: the primary's element at `first` must equal
    /// some other element of the shadow's (when one element changed, none does).
    fn same_multiset(&mut self, x: &'v [Value], y: &'v [Value], first: usize) -> bool {
        let Some(moved) = x.get(first) else {
            return false;
        };
        let found_elsewhere = y
            .iter()
            .enumerate()
            .any(|(index, b)| index != first && !self.elements_differ(first, moved, b));
        if !found_elsewhere {
            return false;
        }
        let mut a = self.element_forms(x);
        let mut b = self.element_forms(y);
        a.sort_unstable();
        b.sort_unstable();
        a.iter()
            .map(|form| &form.0)
            .eq(b.iter().map(|form| &form.0))
    }

    /// Multiset comparison: elements only in the primary are `Missing`, only in the shadow
    /// `Extra`, each reported once at the array's `[*]` with a count and the first of them.
    fn compare_unordered(&mut self, x: &'v [Value], y: &'v [Value]) {
        let mut a = self.element_forms(x);
        let mut b = self.element_forms(y);
        a.sort_unstable();
        b.sort_unstable();
        let (mut only_a, mut only_b) = unmatched(&a, &b);
        if !self.rules.tolerances.is_empty() {
            self.pair_within_tolerance(x, y, &mut only_a, &mut only_b);
        }
        self.report_unmatched(x, &only_a, DiffKind::Missing, "primary");
        if !self.stopped() {
            self.report_unmatched(y, &only_b, DiffKind::Extra, "shadow");
        }
    }

    /// Pairs leftover elements that are equal within their tolerances, which canonical forms
    /// cannot see.
    fn pair_within_tolerance(
        &mut self,
        x: &'v [Value],
        y: &'v [Value],
        only_a: &mut Vec<usize>,
        only_b: &mut Vec<usize>,
    ) {
        if only_a.len().saturating_mul(only_b.len()) > PAIRING_LIMIT {
            return;
        }
        let mut kept = Vec::new();
        for &i in only_a.iter() {
            let Some(a) = x.get(i) else { continue };
            let partner = only_b
                .iter()
                .position(|&j| y.get(j).is_some_and(|b| !self.elements_differ(i, a, b)));
            match partner {
                Some(position) => {
                    only_b.swap_remove(position);
                }
                None => kept.push(i),
            }
        }
        *only_a = kept;
    }

    /// One finding for the elements of `items` (at `unmatched`) that found no partner, at the
    /// first of them that is not ignored.
    fn report_unmatched(
        &mut self,
        items: &'v [Value],
        unmatched: &[usize],
        kind: DiffKind,
        side: &str,
    ) {
        let mut count = 0usize;
        let mut first: Option<usize> = None;
        for &index in unmatched {
            self.path.push_index(index);
            let ignored = self.rules.ignored_at(&self.path);
            self.path.pop();
            if !ignored {
                count += 1;
                first = Some(first.map_or(index, |seen| seen.min(index)));
            }
        }
        let Some((index, item)) = first.and_then(|index| Some((index, items.get(index)?))) else {
            return;
        };
        self.path.push_index(index);
        self.emit(kind, || {
            let noun = if count == 1 { "element" } else { "elements" };
            format!("{count} {noun} only in {side}; first: {}", preview(item))
        });
        self.path.pop();
    }

    /// Canonical forms of the elements, each with its index.
    fn element_forms(&mut self, items: &'v [Value]) -> Vec<(String, usize)> {
        let mut forms = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            self.path.push_index(index);
            let mut form = String::new();
            if !self.rules.ignored_at(&self.path) {
                self.write_form(item, &mut form);
            }
            self.path.pop();
            forms.push((form, index));
        }
        forms
    }

    /// Appends the canonical form of `value` at the current location under the rules: ignored
    /// members and elements leave no trace, unordered arrays list their elements sorted.
    /// Two values with equal forms compare without findings (tolerances aside).
    fn write_form(&mut self, value: &'v Value, out: &mut String) {
        if !self.rules.shape_canonical_forms() || self.path.depth() >= MAX_DEPTH {
            canonical::write_canonical(value, out, usize::MAX);
            return;
        }
        match value {
            Value::Object(map) => {
                let mut members: Vec<(&'v String, &'v Value)> = map.iter().collect();
                members.sort_unstable_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                let mut first = true;
                for (key, member) in members {
                    self.path.push_key(key.as_str());
                    if !self.rules.ignored_at(&self.path) {
                        if !first {
                            out.push(',');
                        }
                        first = false;
                        canonical::write_string(key, out, usize::MAX);
                        out.push(':');
                        self.write_form(member, out);
                    }
                    self.path.pop();
                }
                out.push('}');
            }
            Value::Array(items) if self.rules.unordered_at(&self.path) => {
                let mut forms = self.element_forms(items);
                forms.sort_unstable();
                out.push('[');
                for (position, (form, _)) in forms.iter().enumerate() {
                    if position > 0 {
                        out.push(',');
                    }
                    out.push_str(form);
                }
                out.push(']');
            }
            Value::Array(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    self.path.push_index(index);
                    if !self.rules.ignored_at(&self.path) {
                        self.write_form(item, out);
                    }
                    self.path.pop();
                }
                out.push(']');
            }
            scalar => {
                canonical::write_canonical(scalar, out, usize::MAX);
            }
        }
    }
}

/// Indexes of the elements left over on each side after matching equal forms; both lists of
/// forms must be sorted.
fn unmatched(a: &[(String, usize)], b: &[(String, usize)]) -> (Vec<usize>, Vec<usize>) {
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        match x.0.cmp(&y.0) {
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                only_a.push(x.1);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                only_b.push(y.1);
                j += 1;
            }
        }
    }
    only_a.extend(a.iter().skip(i).map(|form| form.1));
    only_b.extend(b.iter().skip(j).map(|form| form.1));
    (only_a, only_b)
}

/// `None` when the numbers are equal by value, else both as `f64` for a tolerance check.
/// Two integers compare exactly (as `i128`); anything else as `f64`.
fn numeric_difference(a: &Number, b: &Number) -> Option<(f64, f64)> {
    if let (Some(x), Some(y)) = (as_integer(a), as_integer(b)) {
        return (x != y).then_some((x as f64, y as f64));
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x != y).then_some((x, y)),
        // Numbers without an f64 form compare by text, and no tolerance applies to them.
        _ => (a.to_string() != b.to_string()).then_some((f64::NAN, f64::NAN)),
    }
}

fn as_integer(number: &Number) -> Option<i128> {
    number
        .as_i64()
        .map(i128::from)
        .or_else(|| number.as_u64().map(i128::from))
}

/// `<primary> → <shadow>`.
fn changed(a: &Value, b: &Value) -> String {
    format!("{} → {}", preview(a), preview(b))
}

/// A short rendering of a value: numbers as written, everything else as canonical JSON,
/// cut to [`PREVIEW_CHARS`].
fn preview(value: &Value) -> String {
    if let Value::Number(number) = value {
        return number.to_string();
    }
    let mut text = String::new();
    let complete = canonical::write_canonical(value, &mut text, PREVIEW_CHARS * 4);
    let mut short = truncate_chars(&text, PREVIEW_CHARS).into_owned();
    if !complete && !short.ends_with('…') {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::diff::{PathPattern, Tolerance};

    fn rules() -> BodyRules {
        BodyRules::default()
    }

    fn patterns(texts: &[&str]) -> Vec<PathPattern> {
        texts
            .iter()
            .map(|text| PathPattern::parse(text).expect("valid pattern"))
            .collect()
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("valid JSON")
    }

    fn summary(findings: &[Finding]) -> Vec<(String, DiffKind)> {
        findings.iter().map(|f| (f.path.clone(), f.kind)).collect()
    }

    fn one(findings: &[Finding]) -> &Finding {
        assert_eq!(findings.len(), 1, "{findings:#?}");
        &findings[0]
    }

    #[test]
    fn key_order_never_matters() {
        let a = parse(r#"{"a": 1, "b": {"x": [1, 2], "y": null}}"#);
        let b = parse(r#"{"b": {"y": null, "x": [1, 2]}, "a": 1}"#);
        assert!(diff_json(&a, &b, &rules()).is_empty());
    }

    #[test]
    fn integers_equal_their_float_form() {
        assert!(diff_json(&parse("1"), &parse("1.0"), &rules()).is_empty());
        assert!(diff_json(&parse("[100]"), &parse("[1e2]"), &rules()).is_empty());
        assert!(diff_json(&parse("-0.0"), &parse("0"), &rules()).is_empty());
        let found = diff_json(&parse(r#"{"n": 1}"#), &parse(r#"{"n": 1.5}"#), &rules());
        let finding = one(&found);
        assert_eq!(finding.path, "$.n");
        assert_eq!(finding.kind, DiffKind::ValueChanged);
        assert_eq!(finding.detail, "1 → 1.5");
    }

    #[test]
    fn large_integers_compare_exactly() {
        let a = json!(9_007_199_254_740_993u64);
        let b = json!(9_007_199_254_740_992u64);
        assert_eq!(
            one(&diff_json(&a, &b, &rules())).kind,
            DiffKind::ValueChanged
        );
        assert!(diff_json(&json!(u64::MAX), &json!(u64::MAX), &rules()).is_empty());
        assert_eq!(diff_json(&json!(-1), &json!(u64::MAX), &rules()).len(), 1);
    }

    #[test]
    fn null_is_present_and_differs_from_absent() {
        let found = diff_json(&parse(r#"{"a": null}"#), &parse("{}"), &rules());
        let finding = one(&found);
        assert_eq!(
            (finding.path.as_str(), finding.kind),
            ("$.a", DiffKind::Missing)
        );
        assert_eq!(finding.detail, "only in primary: null");

        let found = diff_json(&parse("{}"), &parse(r#"{"a": null}"#), &rules());
        assert_eq!(one(&found).kind, DiffKind::Extra);

        let found = diff_json(&parse(r#"{"a": null}"#), &parse(r#"{"a": 1}"#), &rules());
        let finding = one(&found);
        assert_eq!(finding.kind, DiffKind::TypeChanged);
        assert_eq!(finding.detail, "null → number");
    }

    #[test]
    fn empty_array_differs_from_absent() {
        let found = diff_json(&parse(r#"{"tags": []}"#), &parse("{}"), &rules());
        let finding = one(&found);
        assert_eq!(
            (finding.path.as_str(), finding.kind),
            ("$.tags", DiffKind::Missing)
        );
        assert_eq!(finding.detail, "only in primary: []");
    }

    #[test]
    fn strings_compare_after_unescaping() {
        let a = parse(r#"{"city": "Montr\u00e9al", "path": "a\/b", "q": "\"x\""}"#);
        let b = parse(r#"{"city": "Montréal", "path": "a/b", "q": "\u0022x\u0022"}"#);
        assert!(diff_json(&a, &b, &rules()).is_empty());

        let found = diff_json(&json!({"s": "PENDING"}), &json!({"s": "pending"}), &rules());
        assert_eq!(one(&found).detail, r#""PENDING" → "pending""#);

        let found = diff_json(&json!({"s": "é"}), &json!({"s": "e\u{301}"}), &rules());
        assert_eq!(
            one(&found).kind,
            DiffKind::ValueChanged,
            "no Unicode normalisation"
        );
    }

    #[test]
    fn type_changes_name_both_types() {
        let found = diff_json(&json!({"n": "12"}), &json!({"n": 12}), &rules());
        let finding = one(&found);
        assert_eq!(finding.kind, DiffKind::TypeChanged);
        assert_eq!(finding.detail, "string → number");
        let found = diff_json(&json!([1]), &json!({"0": 1}), &rules());
        assert_eq!(one(&found).detail, "array → object");
    }

    #[test]
    fn paths_normalise_indexes_and_details_keep_them() {
        let a = json!({"bookings": [{"price": {"amount": 10}}, {"price": {"amount": 12.5}}]});
        let b = json!({"bookings": [{"price": {"amount": 10}}, {"price": {"amount": 12.51}}]});
        let found = diff_json(&a, &b, &rules());
        let finding = one(&found);
        assert_eq!(finding.path, "$.bookings[*].price.amount");
        assert_eq!(finding.detail, "[1]: 12.5 → 12.51");

        let found = diff_json(&json!({"a.b": 1}), &json!({"a.b": 2}), &rules());
        assert_eq!(one(&found).path, "$['a.b']");
    }

    #[test]
    fn array_length_is_one_finding_without_element_findings() {
        let found = diff_json(
            &json!({"a": [1, 2, 3]}),
            &json!({"a": [1, 5, 3, 4]}),
            &rules(),
        );
        let finding = one(&found);
        assert_eq!(
            (finding.path.as_str(), finding.kind),
            ("$.a", DiffKind::ArrayLength)
        );
        assert_eq!(finding.detail, "3 vs 4");
    }

    #[test]
    fn reordered_objects_are_one_array_order_finding() {
        let a = json!({"items": [{"id": 1, "n": "a"}, {"id": 2, "n": "b"}, {"id": 3, "n": "c"}]});
        let b = json!({"items": [{"n": "b", "id": 2}, {"id": 1, "n": "a"}, {"id": 3, "n": "c"}]});
        let found = diff_json(&a, &b, &rules());
        let finding = one(&found);
        assert_eq!(
            (finding.path.as_str(), finding.kind),
            ("$.items", DiffKind::ArrayOrder)
        );
        assert_eq!(
            finding.detail,
            "same 3 elements in a different order; first out of place at [0]"
        );

        let unordered = BodyRules {
            unordered: patterns(&["$.items"]),
            ..rules()
        };
        assert!(diff_json(&a, &b, &unordered).is_empty());
    }

    #[test]
    fn changed_elements_are_compared_pairwise() {
        let a = json!([{"id": 1, "s": "a"}, {"id": 2, "s": "b"}]);
        let b = json!([{"id": 1, "s": "a"}, {"id": 2, "s": "c"}]);
        let found = diff_json(&a, &b, &rules());
        let finding = one(&found);
        assert_eq!(finding.path, "$[*].s");
        assert_eq!(finding.detail, r#"[1]: "b" → "c""#);
    }

    #[test]
    fn unordered_arrays_report_what_each_side_lacks() {
        let rules = BodyRules {
            unordered: patterns(&["$.tags", "$..codes"]),
            ..rules()
        };
        let a = json!({"tags": ["a", "b", "c", "c"], "x": {"codes": [[1, 2], [3]]}});
        let b = json!({"tags": ["c", "d", "a"], "x": {"codes": [[3], [1, 2]]}});
        let found = diff_json(&a, &b, &rules);
        assert_eq!(
            summary(&found),
            [
                ("$.tags[*]".to_owned(), DiffKind::Missing),
                ("$.tags[*]".to_owned(), DiffKind::Extra),
            ]
        );
        assert_eq!(
            found[0].detail,
            r#"[1]: 2 elements only in primary; first: "b""#
        );
        assert_eq!(
            found[1].detail,
            r#"[1]: 1 element only in shadow; first: "d""#
        );
    }

    #[test]
    fn nested_unordered_arrays_count_in_order_checks() {
        let rules = BodyRules {
            unordered: patterns(&["$[*].tags"]),
            ..rules()
        };
        let a = json!([{"id": 1, "tags": ["x", "y"]}, {"id": 2, "tags": []}]);
        let b = json!([{"id": 2, "tags": []}, {"id": 1, "tags": ["y", "x"]}]);
        let found = diff_json(&a, &b, &rules);
        assert_eq!(one(&found).kind, DiffKind::ArrayOrder);
    }

    #[test]
    fn numeric_tolerances_absolute_and_relative() {
        let a = json!({"total": 100.0, "fee": 2.0, "count": 10, "rate": 1000});
        let b = json!({"total": 100.004, "fee": 2.1, "count": 11, "rate": 1009});
        let tolerant = BodyRules {
            tolerances: vec![
                (
                    PathPattern::parse("$.total").expect("pattern"),
                    Tolerance {
                        absolute: 0.01,
                        relative: 0.0,
                    },
                ),
                (
                    PathPattern::parse("$.rate").expect("pattern"),
                    Tolerance {
                        absolute: 0.0,
                        relative: 0.01,
                    },
                ),
            ],
            ..rules()
        };
        let paths: BTreeSet<_> = diff_json(&a, &b, &tolerant)
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(
            paths,
            BTreeSet::from(["$.fee".to_owned(), "$.count".to_owned()])
        );
        assert_eq!(diff_json(&a, &b, &rules()).len(), 4);
    }

    #[test]
    fn tolerances_cover_descendants_and_unordered_elements() {
        let rules = BodyRules {
            unordered: patterns(&["$.prices"]),
            tolerances: vec![(
                PathPattern::parse("$.prices").expect("pattern"),
                Tolerance {
                    absolute: 0.01,
                    relative: 0.0,
                },
            )],
            ..rules()
        };
        let a = json!({"prices": [10.0, 20.0]});
        let b = json!({"prices": [20.001, 10.001]});
        assert!(diff_json(&a, &b, &rules).is_empty());
        let c = json!({"prices": [20.5, 10.001]});
        assert_eq!(diff_json(&a, &c, &rules).len(), 2);
    }

    #[test]
    fn ignore_rules_drop_findings_beneath() {
        let rules = BodyRules {
            ignore: patterns(&["$..updated_at", "$.meta"]),
            ..rules()
        };
        let a = json!({
            "meta": {"request_id": "a1", "took_ms": 3},
            "updated_at": "t1",
            "items": [{"id": 1, "updated_at": "t1"}, {"id": 2, "updated_at": "t2"}],
            "status": "ok"
        });
        let b = json!({
            "meta": {"request_id": "b2", "extra": true},
            "items": [{"id": 1, "updated_at": "t9"}, {"id": 2}],
            "status": "OK"
        });
        let found = diff_json(&a, &b, &rules);
        assert_eq!(
            summary(&found),
            [("$.status".to_owned(), DiffKind::ValueChanged)]
        );
    }

    #[test]
    fn ignored_members_do_not_break_order_detection() {
        let rules = BodyRules {
            ignore: patterns(&["$..updated_at"]),
            ..rules()
        };
        let a = json!([{"id": 1, "updated_at": "t1"}, {"id": 2, "updated_at": "t2"}]);
        let b = json!([{"id": 2, "updated_at": "t8"}, {"id": 1, "updated_at": "t9"}]);
        assert_eq!(one(&diff_json(&a, &b, &rules)).kind, DiffKind::ArrayOrder);
    }

    #[test]
    fn ignoring_the_root_ignores_everything() {
        let rules = BodyRules {
            ignore: patterns(&["$"]),
            ..rules()
        };
        assert!(diff_json(&json!(1), &json!("x"), &rules).is_empty());
    }

    #[test]
    fn deep_nesting_is_compared_whole_below_the_depth_limit() {
        fn nest(depth: usize, leaf: Value) -> Value {
            let mut value = leaf;
            for _ in 0..depth {
                value = json!({ "a": value });
            }
            value
        }
        let a = nest(200, json!(1));
        assert!(diff_json(&a, &a, &rules()).is_empty());
        assert!(diff_json(&a, &nest(200, json!(1.0)), &rules()).is_empty());

        let found = diff_json(&a, &nest(200, json!(2)), &rules());
        let finding = one(&found);
        assert_eq!(finding.kind, DiffKind::ValueChanged);
        assert_eq!(finding.path, format!("${}", ".a".repeat(MAX_DEPTH)));
        assert!(
            finding
                .detail
                .starts_with("subtrees differ below depth 128"),
            "{}",
            finding.detail
        );

        let shallow = diff_json(&nest(100, json!(1)), &nest(100, json!(2)), &rules());
        assert_eq!(one(&shallow).path, format!("${}", ".a".repeat(100)));
    }

    #[test]
    fn deep_arrays_probe_without_overflow() {
        let mut a = json!(1);
        let mut b = json!(2);
        for _ in 0..1_000 {
            a = json!([0, a]);
            b = json!([0, b]);
        }
        let found = diff_json(&a, &b, &rules());
        assert_eq!(one(&found).path, format!("${}", "[*]".repeat(MAX_DEPTH)));
    }

    #[test]
    fn max_findings_keeps_the_first_ones() {
        let a: Map<String, Value> = (0..100).map(|i| (format!("k{i:03}"), json!(i))).collect();
        let b: Map<String, Value> = (0..100)
            .map(|i| (format!("k{i:03}"), json!(-i - 1)))
            .collect();
        let capped = BodyRules {
            max_findings: 5,
            ..rules()
        };
        let found = diff_json(
            &Value::Object(a.clone()),
            &Value::Object(b.clone()),
            &capped,
        );
        let paths: Vec<_> = found.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["$.k000", "$.k001", "$.k002", "$.k003", "$.k004"]);
        let all = diff_json(&Value::Object(a), &Value::Object(b), &rules());
        assert_eq!(all.len(), crate::diff::DEFAULT_MAX_FINDINGS);
    }

    #[test]
    fn identical_paths_and_kinds_are_reported_once() {
        let a = json!([{"p": 1}, {"p": 2}, {"p": 3}]);
        let b = json!([{"p": 4}, {"p": 5}, {"p": 6}]);
        let found = diff_json(&a, &b, &rules());
        let finding = one(&found);
        assert_eq!(finding.path, "$[*].p");
        assert_eq!(finding.detail, "[0]: 1 → 4");
    }

    #[test]
    fn long_values_are_cut_in_details() {
        let a = json!({"s": "x".repeat(1000)});
        let b = json!({"s": "y".repeat(1000)});
        let found = diff_json(&a, &b, &rules());
        let detail = &one(&found).detail;
        assert!(detail.chars().count() <= crate::diff::MAX_DETAIL_CHARS);
        assert!(detail.contains("… → "), "{detail}");
    }

    /// Arbitrary JSON from small alphabets, so that two draws often share keys and values.
    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-2i64..3).prop_map(Value::from),
            (-2i64..3).prop_map(|n| Value::from(n as f64)),
            (-2.0f64..2.0).prop_map(Value::from),
            "[ab\u{e9}\"]{0,2}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[abc]", inner, 0..4)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    fn unlimited() -> BodyRules {
        BodyRules {
            max_findings: usize::MAX,
            ..BodyRules::default()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn a_value_never_differs_from_itself(a in arb_json()) {
            prop_assert!(diff_json(&a, &a, &unlimited()).is_empty());
            let copy = a.clone();
            prop_assert!(diff_json(&a, &copy, &unlimited()).is_empty());
        }

        #[test]
        fn swapping_sides_mirrors_the_findings(a in arb_json(), b in arb_json()) {
            let forward: BTreeSet<_> = diff_json(&a, &b, &unlimited())
                .into_iter()
                .map(|f| (f.path, f.kind.mirrored()))
                .collect();
            let backward: BTreeSet<_> = diff_json(&b, &a, &unlimited())
                .into_iter()
                .map(|f| (f.path, f.kind))
                .collect();
            prop_assert_eq!(forward, backward);
        }

        #[test]
        fn no_findings_exactly_when_canonical_forms_agree(a in arb_json(), b in arb_json()) {
            let same = canonical::canonical(&a) == canonical::canonical(&b);
            prop_assert_eq!(diff_json(&a, &b, &unlimited()).is_empty(), same);
        }

        #[test]
        fn unordered_arrays_ignore_any_permutation(
            items in prop::collection::vec(arb_json(), 0..6),
            seed in any::<u64>(),
        ) {
            let mut shuffled = items.clone();
            let len = shuffled.len();
            for i in (1..len).rev() {
                let j = (seed.rotate_left(i as u32) as usize) % (i + 1);
                shuffled.swap(i, j);
            }
            let rules = BodyRules {
                unordered: patterns(&["$"]),
                ..unlimited()
            };
            let (a, b) = (Value::Array(items), Value::Array(shuffled));
            prop_assert!(diff_json(&a, &b, &rules).is_empty());
            let ordered = diff_json(&a, &b, &unlimited());
            prop_assert!(ordered.iter().all(|f| f.kind == DiffKind::ArrayOrder));
        }
    }
}
