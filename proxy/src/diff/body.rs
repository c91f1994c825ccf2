//! Whole-body comparison ([`diff_bodies`]): decides whether the bodies are JSON, text or
//! binary and compares them accordingly.

use std::time::Duration;

use serde::de::IgnoredAny;
use serde_json::Value;
use similar::{Algorithm, DiffTag, TextDiff};
use twinpeak_core::digest::hex_sha256;

use super::findings::truncate_chars;
use super::json::diff_json;
use super::path::JsonPath;
use super::{BodyRules, DiffKind, Finding, BODY_PATH};

/// Longest a line diff may run before it settles for a coarser (still correct) answer.
const TEXT_DIFF_TIMEOUT: Duration = Duration::from_millis(50);

/// Characters of the first changed line quoted in a text finding.
const LINE_PREVIEW_CHARS: usize = 120;

/// Hex digits of each digest quoted in a binary finding.
const DIGEST_HEX_CHARS: usize = 12;

const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// Compares two response bodies.
///
/// Byte-identical bodies give no findings without being parsed. A side is JSON when its
/// content type is `application/json` or `…+json` and it parses, or, whatever its content
/// type, when it starts (after whitespace) with `{` or `[` and parses. Both sides JSON: see
/// [`diff_json`]. One side only: one `TypeChanged` finding at `$` saying which side is not
/// valid JSON. Neither side JSON: two UTF-8 bodies give one `Text` finding summarising a line
/// diff, anything else one `Binary` finding with sizes and digests, both at [`BODY_PATH`].
pub fn diff_bodies(
    primary: &[u8],
    primary_content_type: Option<&str>,
    shadow: &[u8],
    shadow_content_type: Option<&str>,
    rules: &BodyRules,
) -> Vec<Finding> {
    if primary == shadow {
        return Vec::new();
    }
    let primary_json = parse_json(primary, primary_content_type);
    let shadow_json = parse_json(shadow, shadow_content_type);
    match (primary_json, shadow_json) {
        (Some(a), Some(b)) => diff_json(&a, &b, rules),
        (Some(_), None) => not_json("shadow", shadow, shadow_content_type, rules),
        (None, Some(_)) => not_json("primary", primary, primary_content_type, rules),
        (None, None) => vec![diff_raw(primary, shadow)],
    }
}

/// The body as JSON, if it is JSON by content type or by its first character.
fn parse_json(body: &[u8], content_type: Option<&str>) -> Option<Value> {
    let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
    let declared = content_type.is_some_and(is_json_content_type);
    if !declared && !starts_like_json(body) {
        return None;
    }
    serde_json::from_slice(body).ok()
}

/// `application/json` or any `…+json` type, parameters and case aside.
fn is_json_content_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence
            .len()
            .checked_sub("+json".len())
            .and_then(|start| essence.get(start..))
            .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json"))
}

/// Whether the first character after JSON whitespace opens an object or an array.
fn starts_like_json(body: &[u8]) -> bool {
    body.iter()
        .find(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|byte| matches!(byte, b'{' | b'['))
}

/// The finding for "one side is JSON, this one is not".
fn not_json(
    side: &str,
    body: &[u8],
    content_type: Option<&str>,
    rules: &BodyRules,
) -> Vec<Finding> {
    let root = JsonPath::root();
    if rules.ignored_at(&root) {
        return Vec::new();
    }
    let mut reasons = Vec::new();
    if let Some(content_type) = content_type {
        reasons.push(format!("content type {content_type}"));
    }
    let unmarked = body.strip_prefix(UTF8_BOM).unwrap_or(body);
    if unmarked.is_empty() {
        reasons.push("empty body".to_owned());
    } else {
        match serde_json::from_slice::<IgnoredAny>(unmarked) {
            Err(error) => reasons.push(error.to_string()),
            Ok(_) => reasons.push("neither an object nor an array".to_owned()),
        }
    }
    let detail = format!("{side} body is not valid JSON ({})", reasons.join("; "));
    vec![Finding::new(
        root.to_string(),
        DiffKind::TypeChanged,
        &detail,
    )]
}

/// Text or binary comparison of two bodies known to differ.
fn diff_raw(primary: &[u8], shadow: &[u8]) -> Finding {
    match (std::str::from_utf8(primary), std::str::from_utf8(shadow)) {
        (Ok(old), Ok(new)) => diff_text(old, new),
        _ => diff_binary(primary, shadow),
    }
}

/// `+A −R lines; first change at line N: <line>`, N counting lines of the primary.
fn diff_text(old: &str, new: &str) -> Finding {
    let diff = TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .timeout(TEXT_DIFF_TIMEOUT)
        .diff_lines(old, new);
    let (mut added, mut removed) = (0usize, 0usize);
    let mut first: Option<(usize, &str)> = None;
    for op in diff.ops() {
        let (tag, old_range, new_range) = op.as_tag_tuple();
        if tag == DiffTag::Equal {
            continue;
        }
        removed += old_range.len();
        added += new_range.len();
        if first.is_none() {
            let line = if old_range.is_empty() {
                diff.new_slice(new_range.start)
            } else {
                diff.old_slice(old_range.start)
            };
            first = Some((old_range.start + 1, line.unwrap_or_default()));
        }
    }
    let summary = format!("+{added} −{removed} lines");
    let detail = match first {
        Some((number, line)) => format!(
            "{summary}; first change at line {number}: {}",
            truncate_chars(line.trim_end_matches(['\n', '\r']), LINE_PREVIEW_CHARS)
        ),
        None => summary,
    };
    Finding::new(BODY_PATH, DiffKind::Text, &detail)
}

/// `N vs M bytes, sha256 <hex> vs <hex>`.
fn diff_binary(primary: &[u8], shadow: &[u8]) -> Finding {
    let detail = format!(
        "{} vs {} bytes, sha256 {} vs {}",
        primary.len(),
        shadow.len(),
        short_digest(primary),
        short_digest(shadow)
    );
    Finding::new(BODY_PATH, DiffKind::Binary, &detail)
}

/// The first [`DIGEST_HEX_CHARS`] hex digits of the body's SHA-256.
fn short_digest(body: &[u8]) -> String {
    let mut digest = hex_sha256(body);
    digest.truncate(DIGEST_HEX_CHARS);
    digest
}

#[cfg(test)]
mod tests {
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
        assert!(
            diff_bodies(a, Some("text/plain"), b, Some("Application/JSON"), &rules()).is_empty()
        );
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
}
