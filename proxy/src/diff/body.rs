//! Whole-body comparison ([`diff_bodies`]): decides whether the bodies are JSON, text or
//! binary and compares them accordingly.

use std::time::Duration;

use serde::de::IgnoredAny;
use serde_json::Value;
use similar::{Algorithm, DiffTag, TextDiff};
use twinpeak_core::digest::hex_sha256;

use super::findings::truncate_chars;
use super::grpc::{diff_grpc_bodies, is_grpc_content_type};
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
/// Byte-identical bodies give no findings without being parsed. When either side's content
/// type is gRPC, both are read as gRPC message sequences (see [`super::grpc`]). Otherwise a side is JSON when its
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
    if primary_content_type
        .into_iter()
        .chain(shadow_content_type)
        .any(is_grpc_content_type)
    {
        return diff_grpc_bodies(primary, shadow, rules);
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
pub(super) fn diff_binary(primary: &[u8], shadow: &[u8]) -> Finding {
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
mod tests;
