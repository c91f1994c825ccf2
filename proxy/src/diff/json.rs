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
mod tests;
