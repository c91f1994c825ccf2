//! Request templates and extraction paths.
//!
//! A template is text with placeholders filled in for every request:
//!
//! | placeholder | renders |
//! |---|---|
//! | `{{name}}` | a data variable's value drawn at random, or a session variable set by `extract` |
//! | `{{int 1 500}}` | a whole number from 1 to 500, both included |
//! | `{{uuid}}` | a random UUID (v4) |
//! | `{{date +1d..+7d}}` | today plus a random number of days in the range, `YYYY-MM-DD` |
//! | `{{date +2h..+30h}}` | midnight (UTC) of today plus a random number of hours, RFC 3339 |
//! | `{{choice a b c}}` | one of the words, drawn at random |
//!
//! A single offset (`{{date +1d}}`) is allowed. Randomness comes from the caller's seeded
//! generator and "today" from the caller, so a run with the same seed sends the same requests.
//! An [`ExtractPath`] names the value of a JSON answer that becomes a session variable.

use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;

use chrono::{NaiveDate, SecondsFormat, TimeDelta};
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use twinpeak_core::units::InvalidValue;

use crate::data::Data;

/// Names of the built-in placeholders; a variable cannot take one of them.
pub const RESERVED_NAMES: [&str; 4] = ["int", "uuid", "date", "choice"];

/// Largest offset `{{date}}` accepts, in days (hours are limited to the same span).
const MAX_DAYS: i64 = 3650;

/// Text with `{{...}}` placeholders, parsed once and rendered per request.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
    url_escaped: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Var(String),
    Int(i64, i64),
    Uuid,
    Date { hours: bool, from: i64, to: i64 },
    Choice(Vec<String>),
}

/// What a render may read: the seeded generator, data variables, the session's extracted
/// variables, and the day `{{date}}` counts from (passed in so tests can fix it).
pub struct RenderContext<'a> {
    /// The generator every random choice is drawn from.
    pub rng: &'a mut ChaCha8Rng,
    /// Data variables, resolved at load time.
    pub data: &'a Data,
    /// Variables extracted from earlier answers in this session, with their JSON types.
    pub session: &'a HashMap<String, Value>,
    /// The day `{{date}}` offsets count from.
    pub today: NaiveDate,
}

/// A template that could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A variable has no value: it is not a data variable and no earlier request in this
    /// session extracted it.
    #[error("`{0}` is not set: no earlier request in this session extracted it")]
    Unset(String),
}

impl Template {
    /// Parses a template whose values are inserted as they are (headers, bodies, JSON strings).
    pub fn parse(text: &str) -> Result<Template, InvalidValue> {
        Self::parse_with(text, false)
    }

    /// Parses a URL template (path and query): every value it inserts is percent-encoded, so a
    /// value such as `new delhi` or `a/b` stays one query value or one path segment. The
    /// template's own text is used as written.
    pub fn parse_url(text: &str) -> Result<Template, InvalidValue> {
        Self::parse_with(text, true)
    }

    fn parse_with(text: &str, url_escaped: bool) -> Result<Template, InvalidValue> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let inner = &rest[open + 2..];
            let close = inner.find("}}").ok_or_else(|| {
                InvalidValue(format!(
                    "`{{{{` at byte {} is never closed",
                    text.len() - rest.len() + open
                ))
            })?;
            parts.push(parse_placeholder(inner[..close].trim()).map_err(InvalidValue)?);
            rest = &inner[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template {
            source: text.to_string(),
            parts,
            url_escaped,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The variables the template reads (data or session), in order of use.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// Fills in every placeholder.
    pub fn render(&self, ctx: &mut RenderContext<'_>) -> Result<String, RenderError> {
        let mut out = String::with_capacity(self.source.len() + 16);
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                _ if self.url_escaped => percent_encode(&render_part(part, ctx)?, &mut out),
                _ => out.push_str(&render_part(part, ctx)?),
            }
        }
        Ok(out)
    }

    /// The variable's name when the template is exactly one `{{name}}` and nothing else.
    fn single_var(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Var(name)] => Some(name),
            _ => None,
        }
    }

    /// The range when the template is exactly one `{{int A B}}` and nothing else.
    fn single_int(&self) -> Option<(i64, i64)> {
        match self.parts.as_slice() {
            [Part::Int(low, high)] => Some((*low, *high)),
            _ => None,
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Template::parse(&String::deserialize(deserializer)?).map_err(de::Error::custom)
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

/// Whether `name` can be used as a variable: letters, digits and `_`, not starting with a digit,
/// and not one of [`RESERVED_NAMES`].
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !RESERVED_NAMES.contains(&name)
}

fn parse_placeholder(inner: &str) -> Result<Part, String> {
    let mut words = inner.split_whitespace();
    let head = words.next().unwrap_or_default();
    let args: Vec<&str> = words.collect();
    let bad = |usage: &str| format!("{{{{{inner}}}}}: {usage}");
    match head {
        "int" => match args.as_slice() {
            [low, high] => match (low.parse::<i64>(), high.parse::<i64>()) {
                (Ok(low), Ok(high)) if low <= high => Ok(Part::Int(low, high)),
                (Ok(_), Ok(_)) => Err(bad("the first number must not be above the second")),
                _ => Err(bad("`int` takes two whole numbers, such as {{int 1 500}}")),
            },
            _ => Err(bad("`int` takes two whole numbers, such as {{int 1 500}}")),
        },
        "uuid" if args.is_empty() => Ok(Part::Uuid),
        "uuid" => Err(bad("`uuid` takes nothing")),
        "date" => match args.as_slice() {
            [range] => parse_date_range(range).map_err(|e| bad(&e)),
            _ => Err(bad(
                "`date` takes one offset or range, such as {{date +1d..+7d}}",
            )),
        },
        "choice" if !args.is_empty() => {
            Ok(Part::Choice(args.iter().map(|a| a.to_string()).collect()))
        }
        "choice" => Err(bad(
            "`choice` needs at least one word, such as {{choice a b}}",
        )),
        name if args.is_empty() && is_variable_name(name) => Ok(Part::Var(name.to_string())),
        "" => Err(bad("empty placeholder")),
        _ => Err(bad(
            "expected a variable name, or int, uuid, date or choice with their arguments",
        )),
    }
}

/// `+1d..+7d`, `+2h..+30h`, `+1d`, `-2d..0d`: both ends in the same unit.
fn parse_date_range(text: &str) -> Result<Part, String> {
    let usage = "expected an offset such as +1d or a range such as +1d..+7d or +2h..+30h";
    let offset = |t: &str| -> Option<(bool, i64)> {
        let (number, hours) = match t.strip_suffix('d') {
            Some(n) => (n, false),
            None => (t.strip_suffix('h')?, true),
        };
        let value: i64 = number.strip_prefix('+').unwrap_or(number).parse().ok()?;
        let limit = if hours { MAX_DAYS * 24 } else { MAX_DAYS };
        (value.abs() <= limit).then_some((hours, value))
    };
    let (first, second) = text.split_once("..").unwrap_or((text, text));
    match (offset(first), offset(second)) {
        (Some((hours, from)), Some((same, to))) if hours == same && from <= to => {
            Ok(Part::Date { hours, from, to })
        }
        (Some((a, _)), Some((b, _))) if a != b => Err("both ends need the same unit".into()),
        (Some(_), Some(_)) => Err("the first offset must not be after the second".into()),
        _ => Err(format!("{usage} (offsets up to {MAX_DAYS} days)")),
    }
}

fn render_part(part: &Part, ctx: &mut RenderContext<'_>) -> Result<String, RenderError> {
    Ok(match part {
        Part::Text(text) => text.clone(),
        Part::Var(name) => match ctx.data.choose(name, ctx.rng) {
            Some(value) => value.to_string(),
            None => match ctx.session.get(name) {
                Some(Value::String(text)) => text.clone(),
                Some(value) => value.to_string(),
                None => return Err(RenderError::Unset(name.clone())),
            },
        },
        Part::Int(low, high) => ctx.rng.random_range(*low..=*high).to_string(),
        Part::Uuid => uuid::Builder::from_random_bytes(ctx.rng.random())
            .into_uuid()
            .to_string(),
        Part::Date { hours, from, to } => {
            let offset = ctx.rng.random_range(*from..=*to);
            if *hours {
                (ctx.today.and_time(chrono::NaiveTime::MIN) + TimeDelta::hours(offset))
                    .and_utc()
                    .to_rfc3339_opts(SecondsFormat::Secs, true)
            } else {
                (ctx.today + TimeDelta::days(offset))
                    .format("%Y-%m-%d")
                    .to_string()
            }
        }
        Part::Choice(words) => words.choose(ctx.rng).cloned().unwrap_or_default(),
    })
}

/// Percent-encodes everything but RFC 3986's unreserved characters, which is safe both in a path
/// segment and in a query value.
fn percent_encode(value: &str, out: &mut String) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

/// A JSON body whose strings are templates. A string that is exactly one `{{int A B}}` renders
/// as a JSON number; every other string renders as a JSON string. Keys are used as written.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonTemplate {
    source: Value,
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Literal(Value),
    Text(Template),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl JsonTemplate {
    /// Parses every string of a JSON value as a template.
    pub fn from_value(value: Value) -> Result<JsonTemplate, InvalidValue> {
        fn node(value: &Value, at: &str) -> Result<Node, InvalidValue> {
            Ok(match value {
                Value::String(s) => Node::Text(
                    Template::parse(s).map_err(|e| InvalidValue(format!("at {at}: {e}")))?,
                ),
                Value::Array(items) => Node::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| node(v, &format!("{at}[{i}]")))
                        .collect::<Result<_, _>>()?,
                ),
                Value::Object(map) => Node::Object(
                    map.iter()
                        .map(|(k, v)| Ok((k.clone(), node(v, &format!("{at}.{k}"))?)))
                        .collect::<Result<_, InvalidValue>>()?,
                ),
                other => Node::Literal(other.clone()),
            })
        }
        let root = node(&value, "$")?;
        Ok(JsonTemplate {
            source: value,
            root,
        })
    }

    /// The JSON as written.
    pub fn as_value(&self) -> &Value {
        &self.source
    }

    /// The variables its strings read.
    pub fn variables(&self) -> Vec<&str> {
        fn walk<'a>(node: &'a Node, out: &mut Vec<&'a str>) {
            match node {
                Node::Literal(_) => {}
                Node::Text(t) => out.extend(t.variables()),
                Node::Array(items) => items.iter().for_each(|n| walk(n, out)),
                Node::Object(fields) => fields.iter().for_each(|(_, n)| walk(n, out)),
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }

    /// Fills in every string's placeholders.
    pub fn render(&self, ctx: &mut RenderContext<'_>) -> Result<Value, RenderError> {
        fn render(node: &Node, ctx: &mut RenderContext<'_>) -> Result<Value, RenderError> {
            Ok(match node {
                Node::Literal(v) => v.clone(),
                Node::Text(t) => {
                    // A string that is one extracted value keeps that value's JSON type, so an
                    // id read as a number is sent back as a number.
                    let extracted = t
                        .single_var()
                        .filter(|name| !ctx.data.contains(name))
                        .and_then(|name| ctx.session.get(name));
                    match (extracted, t.single_int()) {
                        (Some(value), _) => value.clone(),
                        (None, Some((low, high))) => Value::from(ctx.rng.random_range(low..=high)),
                        (None, None) => Value::String(t.render(ctx)?),
                    }
                }
                Node::Array(items) => Value::Array(
                    items
                        .iter()
                        .map(|n| render(n, ctx))
                        .collect::<Result<_, _>>()?,
                ),
                Node::Object(fields) => Value::Object(
                    fields
                        .iter()
                        .map(|(k, n)| Ok((k.clone(), render(n, ctx)?)))
                        .collect::<Result<_, RenderError>>()?,
                ),
            })
        }
        render(&self.root, ctx)
    }
}

impl<'de> Deserialize<'de> for JsonTemplate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        JsonTemplate::from_value(Value::deserialize(deserializer)?).map_err(de::Error::custom)
    }
}

impl Serialize for JsonTemplate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.source.serialize(serializer)
    }
}

/// A simple JSON path naming one value of an answer: `$.id`, `$.booking.id`, `$.items[0].id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractPath {
    source: String,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
}

impl ExtractPath {
    /// Parses `$` followed by `.field` and `[index]` steps.
    pub fn parse(text: &str) -> Result<ExtractPath, InvalidValue> {
        let bad = |why: &str| {
            InvalidValue(format!(
                "{text:?} is not a path such as $.id or $.items[0].id: {why}"
            ))
        };
        let mut rest = text
            .trim()
            .strip_prefix('$')
            .ok_or_else(|| bad("it must start with $"))?;
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                if end == 0 {
                    return Err(bad("a `.` must be followed by a field name"));
                }
                steps.push(Step::Field(after[..end].to_string()));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let (index, tail) = after
                    .split_once(']')
                    .ok_or_else(|| bad("a `[` is never closed"))?;
                let index = index
                    .trim()
                    .parse()
                    .map_err(|_| bad("an index must be a whole number"))?;
                steps.push(Step::Index(index));
                rest = tail;
            } else {
                return Err(bad("expected `.field` or `[index]`"));
            }
        }
        Ok(ExtractPath {
            source: text.trim().to_string(),
            steps,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The value at the path when it is a string, number or boolean; `None` when the path is
    /// absent or names null, an object or an array.
    pub fn extract(&self, value: &Value) -> Option<Value> {
        let mut at = value;
        for step in &self.steps {
            at = match step {
                Step::Field(name) => at.get(name)?,
                Step::Index(i) => at.get(*i)?,
            };
        }
        match at {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => Some(at.clone()),
            _ => None,
        }
    }
}

impl fmt::Display for ExtractPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for ExtractPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ExtractPath::parse(&String::deserialize(deserializer)?).map_err(de::Error::custom)
    }
}

impl Serialize for ExtractPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

#[cfg(test)]
mod tests;
