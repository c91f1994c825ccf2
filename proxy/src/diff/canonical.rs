//! Canonical JSON text: object keys sorted, numbers written by value (`1.0` as `1`), no
//! whitespace. Two values with the same canonical text compare equal (without tolerances).
//! The writer keeps its own stack, so no value, however deep, can exhaust the thread's stack.

use std::fmt::{Display, Write as _};

use serde_json::{Number, Value};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Work left for [`write_canonical`].
enum Task<'v> {
    Value(&'v Value),
    Key(&'v str),
    Text(&'static str),
}

/// Appends the canonical text of `value` to `out`, stopping early once `out` holds `limit`
/// bytes or more. Returns whether the text is complete.
pub(crate) fn write_canonical(value: &Value, out: &mut String, limit: usize) -> bool {
    let mut stack = vec![Task::Value(value)];
    while let Some(task) = stack.pop() {
        if out.len() >= limit {
            return false;
        }
        match task {
            Task::Text(text) => out.push_str(text),
            Task::Key(key) => {
                if !write_string(key, out, limit) {
                    return false;
                }
                out.push(':');
            }
            Task::Value(Value::Object(map)) => {
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                members.sort_unstable_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                stack.push(Task::Text("}"));
                for (position, (key, member)) in members.into_iter().enumerate().rev() {
                    stack.push(Task::Value(member));
                    stack.push(Task::Key(key));
                    if position > 0 {
                        stack.push(Task::Text(","));
                    }
                }
            }
            Task::Value(Value::Array(items)) => {
                out.push('[');
                stack.push(Task::Text("]"));
                for (position, item) in items.iter().enumerate().rev() {
                    stack.push(Task::Value(item));
                    if position > 0 {
                        stack.push(Task::Text(","));
                    }
                }
            }
            Task::Value(Value::String(text)) => {
                if !write_string(text, out, limit) {
                    return false;
                }
            }
            Task::Value(Value::Number(number)) => write_number(number, out),
            Task::Value(Value::Bool(flag)) => out.push_str(if *flag { "true" } else { "false" }),
            Task::Value(Value::Null) => out.push_str("null"),
        }
    }
    true
}

/// The canonical text of `value`, in full.
pub(crate) fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out, usize::MAX);
    out
}

/// Appends `text` as a JSON string literal, stopping (without the closing quote) once `out`
/// holds `limit` bytes or more. Returns whether the literal is complete.
pub(crate) fn write_string(text: &str, out: &mut String, limit: usize) -> bool {
    out.push('"');
    for c in text.chars() {
        if out.len() >= limit {
            return false;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let code = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[code >> 4]));
                out.push(char::from(HEX[code & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    true
}

/// Writes a number by value: integers as integers, floats in their shortest exact form, and
/// integral floats without a fraction, so `1`, `1.0` and `1e0` all read `1`.
fn write_number(number: &Number, out: &mut String) {
    if let Some(integer) = number.as_i64() {
        push_display(out, integer);
    } else if let Some(integer) = number.as_u64() {
        push_display(out, integer);
    } else if let Some(float) = number.as_f64() {
        if float == 0.0 {
            out.push('0');
        } else {
            push_display(out, float);
        }
    } else {
        push_display(out, number);
    }
}

fn push_display(out: &mut String, value: impl Display) {
    // Writing into a String cannot fail.
    let _ = write!(out, "{value}");
}

/// The JSON type's name, for `TypeChanged` details.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_are_sorted_and_numbers_normalised() {
        let value: Value =
            serde_json::from_str(r#"{"b": [1.0, -0.0, 2.5, 1e2], "a": {"y": null, "x": true}}"#)
                .expect("valid JSON");
        assert_eq!(
            canonical(&value),
            r#"{"a":{"x":true,"y":null},"b":[1,0,2.5,100]}"#
        );
    }

    #[test]
    fn integers_and_equal_floats_read_the_same() {
        assert_eq!(canonical(&json!(1)), canonical(&json!(1.0)));
        assert_eq!(canonical(&json!(u64::MAX)), u64::MAX.to_string());
        assert_eq!(canonical(&json!(i64::MIN)), i64::MIN.to_string());
        assert_ne!(canonical(&json!(1)), canonical(&json!(1.5)));
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(
            canonical(&json!("é \"q\" \\ \n \u{1}")),
            r#""é \"q\" \\ \n \u0001""#
        );
    }

    #[test]
    fn limit_stops_early() {
        let mut out = String::new();
        let complete = write_canonical(&json!({"long": "x".repeat(1000)}), &mut out, 20);
        assert!(!complete);
        assert!(out.len() <= 24, "{out}");
        let mut small = String::new();
        assert!(write_canonical(&json!([1, 2]), &mut small, 20));
        assert_eq!(small, "[1,2]");
    }

    #[test]
    fn very_deep_values_do_not_recurse() {
        let mut value = json!(0);
        for _ in 0..5_000 {
            value = Value::Array(vec![value]);
        }
        let text = canonical(&value);
        assert_eq!(text.len(), 10_001);
        // Dismantle without recursive drops.
        let mut current = value;
        while let Value::Array(mut items) = current {
            current = items.pop().unwrap_or(Value::Null);
        }
    }
}
