//! gRPC answers in the comparison: the body is a sequence of length-prefixed messages (one
//! flag byte, a big-endian `u32` length, the message), each read without a schema
//! ([`super::protobuf`]) so the JSON diff compares them by field-number path; `grpc-status` and
//! `grpc-message` are compared from the trailers (or the headers of a trailers-only answer).

use http::HeaderMap;
use serde_json::Value;

use super::body::diff_binary;
use super::json::diff_json;
use super::path::JsonPath;
use super::protobuf::{decode_message, DecodeError};
use super::{BodyRules, DiffKind, Finding, BODY_PATH};

/// Most messages read from one body; a body with more is compared as binary.
pub const MAX_MESSAGES: usize = 1024;

/// Bytes of each message's prefix: the compressed flag and the length.
const PREFIX_LEN: usize = 5;

/// Path of the finding for differing `grpc-status` values.
pub const GRPC_STATUS_PATH: &str = "grpc-status";

/// Path of the finding for differing `grpc-message` values.
pub const GRPC_MESSAGE_PATH: &str = "grpc-message";

/// Whether a content type is gRPC with protobuf messages: `application/grpc` or
/// `application/grpc+proto`, parameters and case aside.
pub fn is_grpc_content_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/grpc")
        || essence.eq_ignore_ascii_case("application/grpc+proto")
}

/// Whether a gRPC body holds more than one message (judged from the first prefix: bytes past
/// the first message mean more follow). What a streaming call is told by.
pub fn holds_several_messages(body: &[u8]) -> bool {
    match body.split_first_chunk::<PREFIX_LEN>() {
        Some((prefix, rest)) => rest.len() > message_len(prefix),
        None => false,
    }
}

/// Why a gRPC body is not read as messages.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    /// A message's compressed flag is set: its bytes are compressed, not protobuf.
    #[error("compressed gRPC messages")]
    Compressed,
    /// The framing is broken.
    #[error("the body ends inside message {0}'s prefix or bytes")]
    Framing(usize),
    /// Too many messages.
    #[error("more than {MAX_MESSAGES} gRPC messages")]
    TooManyMessages,
    /// A message is not valid protobuf.
    #[error("message {0} is not protobuf: {1}")]
    Message(usize, DecodeError),
}

/// The body's messages: none is `null`, one is its object, several an array of them.
fn read_body(mut body: &[u8]) -> Result<Value, BodyError> {
    let mut messages = Vec::new();
    while !body.is_empty() {
        let index = messages.len();
        if index == MAX_MESSAGES {
            return Err(BodyError::TooManyMessages);
        }
        let (prefix, rest) = body
            .split_first_chunk::<PREFIX_LEN>()
            .ok_or(BodyError::Framing(index))?;
        if prefix[0] & 1 == 1 {
            return Err(BodyError::Compressed);
        }
        let len = message_len(prefix);
        let message = rest.get(..len).ok_or(BodyError::Framing(index))?;
        messages.push(decode_message(message).map_err(|e| BodyError::Message(index, e))?);
        body = &rest[len..];
    }
    Ok(match messages.len() {
        0 => Value::Null,
        1 => messages.pop().unwrap_or_default(),
        _ => Value::Array(messages),
    })
}

fn message_len(prefix: &[u8; PREFIX_LEN]) -> usize {
    let [_, a, b, c, d] = *prefix;
    usize::try_from(u32::from_be_bytes([a, b, c, d])).unwrap_or(usize::MAX)
}

/// Compares two gRPC bodies known to differ: message by message through the JSON diff when
/// both read as protobuf; compressed messages by size and digest (a `Binary` finding that says
/// so); a side that does not read, one `TypeChanged` finding at `$` saying why.
pub(super) fn diff_grpc_bodies(primary: &[u8], shadow: &[u8], rules: &BodyRules) -> Vec<Finding> {
    let root = JsonPath::root();
    match (read_body(primary), read_body(shadow)) {
        (Ok(a), Ok(b)) => diff_json(&a, &b, rules),
        (Err(BodyError::Compressed), _) | (_, Err(BodyError::Compressed)) => {
            if rules.ignored_at(&root) {
                return Vec::new();
            }
            let bytes = diff_binary(primary, shadow);
            vec![Finding::new(
                BODY_PATH,
                DiffKind::Binary,
                &format!(
                    "compressed gRPC messages, compared as bytes: {}",
                    bytes.detail
                ),
            )]
        }
        (Err(error), _) => unreadable("primary", &error, rules),
        (_, Err(error)) => unreadable("shadow", &error, rules),
    }
}

fn unreadable(side: &str, error: &BodyError, rules: &BodyRules) -> Vec<Finding> {
    let root = JsonPath::root();
    if rules.ignored_at(&root) {
        return Vec::new();
    }
    let detail = format!("{side} body is not a gRPC message sequence ({error})");
    vec![Finding::new(
        root.to_string(),
        DiffKind::TypeChanged,
        &detail,
    )]
}

/// One side's answer as far as its gRPC outcome goes.
pub struct GrpcAnswer<'a> {
    /// The answer's headers.
    pub headers: &'a HeaderMap,
    /// The answer's trailers (empty for a trailers-only answer).
    pub trailers: &'a HeaderMap,
}

impl GrpcAnswer<'_> {
    /// A value from the trailers, or from the headers when the trailers lack it.
    fn value(&self, name: &str) -> Option<&str> {
        self.trailers
            .get(name)
            .or_else(|| self.headers.get(name))
            .map(|v| v.to_str().unwrap_or("(not text)").trim())
    }
}

/// Findings for differing `grpc-status` (a `Status` finding at [`GRPC_STATUS_PATH`]) and
/// `grpc-message` (a `Header` finding at [`GRPC_MESSAGE_PATH`]).
pub fn diff_grpc_outcome(primary: &GrpcAnswer<'_>, shadow: &GrpcAnswer<'_>) -> Vec<Finding> {
    [
        (GRPC_STATUS_PATH, DiffKind::Status),
        (GRPC_MESSAGE_PATH, DiffKind::Header),
    ]
    .into_iter()
    .filter_map(|(name, kind)| {
        let (a, b) = (primary.value(name), shadow.value(name));
        (a != b).then(|| {
            Finding::new(
                name,
                kind,
                &format!("{} → {}", a.unwrap_or("(absent)"), b.unwrap_or("(absent)")),
            )
        })
    })
    .collect()
}

#[cfg(test)]
mod tests;
