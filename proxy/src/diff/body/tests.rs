//! Tests of comparing whole bodies: JSON recognised and compared structurally, invalid or
//! mismatched JSON as a type change, text summarised line by line, binary by size and digest.

use super::*;
use crate::diff::PathPattern;

const JSON: Option<&str> = Some("application/json");

fn rules() -> BodyRules {
    BodyRules::default()
}

fn one(findings: Vec<Finding>) -> Finding {
    assert_eq!(findings.len(), 1, "{findings:#?}");
    findings
        .into_iter()
        .next()
        .unwrap_or_else(|| unreachable!())
}

#[test]
fn identical_bytes_are_not_parsed() {
    let garbage = b"{ not json at all";
    assert!(diff_bodies(garbage, JSON, garbage, JSON, &rules()).is_empty());
    assert!(diff_bodies(b"", None, b"", None, &rules()).is_empty());
}

#[test]
fn json_bodies_compare_structurally() {
    let a = br#"{"a": 1, "s": "caf\u00e9"}"#;
    let b = b"{\"s\":\"caf\xc3\xa9\",\"a\":1.0}";
    assert!(diff_bodies(
        a,
        JSON,
        b,
        Some("application/json; charset=utf-8"),
        &rules()
    )
    .is_empty());
    let found = one(diff_bodies(
        a,
        JSON,
        br#"{"a": 2, "s": "caf\u00e9"}"#,
        JSON,
        &rules(),
    ));
    assert_eq!(found.path, "$.a");
}

#[test]
fn json_is_recognised_by_suffix_or_by_sniffing() {
    let a = br#"{"type": "about:blank", "status": 404}"#;
    let b = b"\n  {\"status\": 404, \"type\": \"about:blank\"}\n";
    assert!(diff_bodies(a, Some("application/problem+json"), b, None, &rules()).is_empty());
    assert!(diff_bodies(a, Some("text/plain"), b, Some("Application/JSON"), &rules()).is_empty());
    assert!(diff_bodies(b"\xef\xbb\xbf[1]", None, b"[1.0]", None, &rules()).is_empty());
    assert!(is_json_content_type(
        "application/vnd.api+JSON; charset=utf-8"
    ));
    assert!(!is_json_content_type("application/jsonl"));
    assert!(!is_json_content_type("json"));
}

#[test]
fn invalid_json_on_one_side_is_a_type_change_at_the_root() {
    let found = one(diff_bodies(
        br#"{"a": 1}"#,
        JSON,
        br#"{"a": 1"#,
        JSON,
        &rules(),
    ));
    assert_eq!(
        (found.path.as_str(), found.kind),
        ("$", DiffKind::TypeChanged)
    );
    assert!(
        found
            .detail
            .starts_with("shadow body is not valid JSON (content type application/json; EOF"),
        "{}",
        found.detail
    );

    let found = one(diff_bodies(b"", JSON, b"[]", None, &rules()));
    assert_eq!(
        found.detail,
        "primary body is not valid JSON (content type application/json; empty body)"
    );
}

#[test]
fn content_type_mismatch_is_a_type_change() {
    let found = one(diff_bodies(
        br#"{"ok": true}"#,
        JSON,
        b"<html><body>502 Bad Gateway</body></html>",
        Some("text/html"),
        &rules(),
    ));
    assert_eq!(found.kind, DiffKind::TypeChanged);
    assert_eq!(
        found.detail,
        "shadow body is not valid JSON (content type text/html; expected value at line 1 column 1)"
    );
}

#[test]
fn ignoring_the_root_drops_the_type_change() {
    let rules = BodyRules {
        ignore: vec![PathPattern::parse("$").expect("pattern")],
        ..rules()
    };
    assert!(diff_bodies(b"{}", JSON, b"oops", None, &rules).is_empty());
}

#[test]
fn both_invalid_fall_back_to_text() {
    let found = one(diff_bodies(b"{oops", JSON, b"{oops!", JSON, &rules()));
    assert_eq!(
        (found.path.as_str(), found.kind),
        (BODY_PATH, DiffKind::Text)
    );
    let found = one(diff_bodies(b"{broken", None, b"plain", None, &rules()));
    assert_eq!(found.kind, DiffKind::Text);
}

#[test]
fn text_diff_is_summarised() {
    let a = "line one\nline two\nline three\nline four\n";
    let b = "line one\nline 2\nline three\nline four\nline five\n";
    let found = one(diff_bodies(
        a.as_bytes(),
        Some("text/plain"),
        b.as_bytes(),
        Some("text/plain"),
        &rules(),
    ));
    assert_eq!(
        (found.path.as_str(), found.kind),
        (BODY_PATH, DiffKind::Text)
    );
    assert_eq!(
        found.detail,
        "+2 −1 lines; first change at line 2: line two"
    );

    let found = one(diff_bodies(b"a\nb\n", None, b"a\nb\nc\n", None, &rules()));
    assert_eq!(found.detail, "+1 −0 lines; first change at line 3: c");

    let long = format!("x\n{}\n", "é".repeat(500));
    let found = one(diff_bodies(b"x\n", None, long.as_bytes(), None, &rules()));
    assert!(found.detail.chars().count() <= crate::diff::MAX_DETAIL_CHARS);
    assert!(found.detail.ends_with('…'));
}

#[test]
fn binary_bodies_report_sizes_and_digests() {
    let found = one(diff_bodies(
        b"\xff\x00\x01",
        None,
        b"\xff\x00",
        Some("image/png"),
        &rules(),
    ));
    assert_eq!(
        (found.path.as_str(), found.kind),
        (BODY_PATH, DiffKind::Binary)
    );
    assert_eq!(
        found.detail,
        format!(
            "3 vs 2 bytes, sha256 {} vs {}",
            short_digest(b"\xff\x00\x01"),
            short_digest(b"\xff\x00")
        )
    );
    assert_eq!(short_digest(b""), "e3b0c44298fc");
    let text_vs_binary = one(diff_bodies(b"hello", None, b"\xff", None, &rules()));
    assert_eq!(text_vs_binary.kind, DiffKind::Binary);
}

#[test]
fn rules_reach_json_bodies() {
    let rules = BodyRules {
        ignore: vec![PathPattern::parse("$.meta").expect("pattern")],
        ..rules()
    };
    let a = br#"{"meta": {"request_id": "1"}, "v": 1}"#;
    let b = br#"{"meta": {"request_id": "2"}, "v": 1}"#;
    assert!(diff_bodies(a, JSON, b, JSON, &rules).is_empty());
}
