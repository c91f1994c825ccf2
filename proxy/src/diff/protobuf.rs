//! A schemaless reading of the protobuf wire format ([`decode_message`]): a message becomes a
//! JSON object keyed by field number (`"1"`, `"3"`), so the JSON diff, its paths (`$.1.3[*].2`)
//! and its rules apply to protobuf answers without any `.proto` file.
//!
//! Without a schema the wire format is ambiguous, and these rules settle it:
//! - a varint is its unsigned value (a negative `int64` shows as a large number, a `sint`
//!   as its zigzag code, a `bool` as 0 or 1);
//! - fixed32 and fixed64 are their unsigned values;
//! - a length-delimited field is, in this order: a string when it is printable UTF-8 (text
//!   that also happens to parse as a message stays text), a nested object when its bytes parse
//!   wholly as a message, a string when it is other UTF-8, else its bytes in standard base64;
//!   empty bytes are the empty string;
//! - a field number seen more than once becomes an array of its values in wire order (so a
//!   repeated field with one element is a plain value; packed repeated numbers are bytes);
//! - groups (wire types 3 and 4, long deprecated) are not read: a message holding one is
//!   malformed.
//!
//! Reading is bounded: messages nest at most [`MAX_NESTING`] deep (deeper bytes stay strings
//! or base64) and one reading takes at most [`MAX_FIELDS`] fields. Malformed input is an
//! error, never a panic.

use base64::Engine as _;
use serde_json::{Map, Value};

/// Deepest nesting read as messages; length-delimited fields below it stay strings or bytes.
pub const MAX_NESTING: usize = 32;

/// Most fields one reading takes, nested and speculative readings included.
pub const MAX_FIELDS: usize = 100_000;

/// Why bytes are not a protobuf message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end inside a field.
    #[error("the message ends inside a field")]
    Truncated,
    /// A varint runs past ten bytes.
    #[error("a varint is longer than ten bytes")]
    VarintTooLong,
    /// Field number zero, which no message may use.
    #[error("field number 0")]
    FieldZero,
    /// A wire type that is not 0, 1, 2 or 5.
    #[error("wire type {0} is not read (groups and unknown types)")]
    WireType(u8),
    /// More than [`MAX_FIELDS`] fields.
    #[error("more than {MAX_FIELDS} fields")]
    TooManyFields,
}

/// Reads `bytes` as one protobuf message: an object keyed by field number.
pub fn decode_message(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut budget = MAX_FIELDS;
    Reader {
        budget: &mut budget,
    }
    .message(bytes, 0)
}

struct Reader<'a> {
    /// Fields still to be taken.
    budget: &'a mut usize,
}

impl Reader<'_> {
    fn message(&mut self, mut bytes: &[u8], depth: usize) -> Result<Value, DecodeError> {
        let mut fields: Map<String, Value> = Map::new();
        while !bytes.is_empty() {
            *self.budget = self
                .budget
                .checked_sub(1)
                .ok_or(DecodeError::TooManyFields)?;
            let key = read_varint(&mut bytes)?;
            let number = key >> 3;
            if number == 0 {
                return Err(DecodeError::FieldZero);
            }
            let value = match (key & 7) as u8 {
                0 => Value::from(read_varint(&mut bytes)?),
                1 => Value::from(u64::from_le_bytes(take_array(&mut bytes)?)),
                5 => Value::from(u32::from_le_bytes(take_array(&mut bytes)?)),
                2 => {
                    let length = usize::try_from(read_varint(&mut bytes)?)
                        .map_err(|_| DecodeError::Truncated)?;
                    let content = bytes.get(..length).ok_or(DecodeError::Truncated)?;
                    bytes = &bytes[length..];
                    self.length_delimited(content, depth)?
                }
                other => return Err(DecodeError::WireType(other)),
            };
            add_field(&mut fields, number.to_string(), value);
        }
        Ok(Value::Object(fields))
    }

    /// A length-delimited field's value, by the rules in the module's documentation.
    fn length_delimited(&mut self, content: &[u8], depth: usize) -> Result<Value, DecodeError> {
        let text = std::str::from_utf8(content).ok();
        if let Some(text) = text.filter(|t| is_printable(t)) {
            return Ok(Value::from(text));
        }
        if depth + 1 < MAX_NESTING {
            match self.message(content, depth + 1) {
                Ok(nested) => return Ok(nested),
                Err(DecodeError::TooManyFields) => return Err(DecodeError::TooManyFields),
                Err(_) => {}
            }
        }
        Ok(match text {
            Some(text) => Value::from(text),
            None => Value::from(base64::engine::general_purpose::STANDARD.encode(content)),
        })
    }
}

/// Adds a field's value; a number seen before turns into (or grows) an array. A decoded value
/// is never an array itself (it is a number, a string or an object), so an array found here is
/// one this made.
fn add_field(fields: &mut Map<String, Value>, number: String, value: Value) {
    match fields.get_mut(&number) {
        None => {
            fields.insert(number, value);
        }
        Some(Value::Array(values)) => values.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
    }
}

/// Text with no control characters but tab, line feed and carriage return.
fn is_printable(text: &str) -> bool {
    text.chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
}

/// A base-128 varint of at most ten bytes.
fn read_varint(bytes: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut value: u64 = 0;
    for (index, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            *bytes = &bytes[index + 1..];
            return Ok(value);
        }
    }
    Err(if bytes.len() >= 10 {
        DecodeError::VarintTooLong
    } else {
        DecodeError::Truncated
    })
}

/// The next `N` bytes.
fn take_array<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], DecodeError> {
    let (head, rest) = bytes
        .split_first_chunk::<N>()
        .ok_or(DecodeError::Truncated)?;
    *bytes = rest;
    Ok(*head)
}

#[cfg(test)]
mod tests;
