//! Tests of the structural JSON diff: what counts as equal (key order, number forms, escapes,
//! null against absent), arrays (length, order, unordered sets), tolerances, ignore rules,
//! the depth and findings limits, and properties over generated documents.

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
