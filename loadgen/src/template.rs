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
    pub fn parse(text: &str) -> Result<Template, String> {
        Self::parse_with(text, false)
    }

    /// Parses a URL template (path and query): every value it inserts is percent-encoded, so a
    /// value such as `new delhi` or `a/b` stays one query value or one path segment. The
    /// template's own text is used as written.
    pub fn parse_url(text: &str) -> Result<Template, String> {
        Self::parse_with(text, true)
    }

    fn parse_with(text: &str, url_escaped: bool) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let inner = &rest[open + 2..];
            let close = inner.find("}}").ok_or_else(|| {
                format!(
                    "`{{{{` at byte {} is never closed",
                    text.len() - rest.len() + open
                )
            })?;
            parts.push(parse_placeholder(inner[..close].trim())?);
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
    pub fn from_value(value: Value) -> Result<JsonTemplate, String> {
        fn node(value: &Value, at: &str) -> Result<Node, String> {
            Ok(match value {
                Value::String(s) => {
                    Node::Text(Template::parse(s).map_err(|e| format!("at {at}: {e}"))?)
                }
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
                        .collect::<Result<_, String>>()?,
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
    pub fn parse(text: &str) -> Result<ExtractPath, String> {
        let bad =
            |why: &str| format!("{text:?} is not a path such as $.id or $.items[0].id: {why}");
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
mod tests {
    use super::*;
    use rand::SeedableRng;
    use serde_json::json;

    struct Fixture {
        rng: ChaCha8Rng,
        data: Data,
        session: HashMap<String, Value>,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                rng: ChaCha8Rng::seed_from_u64(7),
                data: Data::from_values([
                    (
                        "city".to_string(),
                        vec!["new delhi".to_string(), "pune".to_string()],
                    ),
                    ("one".to_string(), vec!["a/b?c=d&e".to_string()]),
                ]),
                session: HashMap::from([("booking_id".to_string(), json!("42"))]),
            }
        }

        fn ctx(&mut self) -> RenderContext<'_> {
            RenderContext {
                rng: &mut self.rng,
                data: &self.data,
                session: &self.session,
                today: NaiveDate::from_ymd_opt(2024, 2, 27).unwrap(),
            }
        }

        fn render(&mut self, text: &str) -> Result<String, RenderError> {
            Template::parse(text).unwrap().render(&mut self.ctx())
        }
    }

    #[test]
    fn parses_placeholders_and_lists_variables() {
        let t = Template::parse("/p?c={{ city }}&s={{service}}&n={{int 1 5}}&u={{uuid}}").unwrap();
        assert_eq!(t.variables().collect::<Vec<_>>(), ["city", "service"]);
        assert_eq!(
            t.as_str(),
            "/p?c={{ city }}&s={{service}}&n={{int 1 5}}&u={{uuid}}"
        );
        assert!(Template::parse("plain } text {")
            .unwrap()
            .variables()
            .next()
            .is_none());
        for bad in [
            "{{city",
            "{{}}",
            "{{int 5 1}}",
            "{{int 1}}",
            "{{int a b}}",
            "{{uuid 4}}",
            "{{date 1x}}",
            "{{date +1d..+2h}}",
            "{{date +7d..+1d}}",
            "{{date +99999d}}",
            "{{choice}}",
            "{{two words}}",
            "{{9lives}}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn renders_the_same_with_the_same_seed() {
        let text = "{{city}} {{int 1 1000}} {{uuid}} {{choice a b c}}";
        let first = Fixture::new().render(text).unwrap();
        let second = Fixture::new().render(text).unwrap();
        assert_eq!(first, second);
        let mut f = Fixture::new();
        for _ in 0..50 {
            let n: i64 = f.render("{{int -2 2}}").unwrap().parse().unwrap();
            assert!((-2..=2).contains(&n));
            assert!(["a", "b"].contains(&f.render("{{choice a b}}").unwrap().as_str()));
        }
        let id = f.render("{{uuid}}").unwrap();
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
    }

    #[test]
    fn session_variables_fill_in_or_fail() {
        let mut f = Fixture::new();
        assert_eq!(
            f.render("/bookings/{{booking_id}}").unwrap(),
            "/bookings/42"
        );
        assert_eq!(
            f.render("{{missing}}"),
            Err(RenderError::Unset("missing".into()))
        );
    }

    #[test]
    fn an_extracted_value_keeps_its_json_type_in_a_json_body() {
        let mut f = Fixture::new();
        f.session.insert("partner_id".into(), json!(162));
        let t = JsonTemplate::from_value(json!({
            "partner_id": "{{partner_id}}",
            "label": "partner {{partner_id}}",
            "booking": "{{booking_id}}",
            "city": "{{city}}"
        }))
        .unwrap();
        let v = t.render(&mut f.ctx()).unwrap();
        assert_eq!(v["partner_id"], json!(162));
        assert_eq!(v["label"], json!("partner 162"));
        assert_eq!(v["booking"], json!("42"), "a string stays a string");
        assert!(v["city"].is_string(), "data variables are text");
    }

    #[test]
    fn url_templates_percent_encode_values_only() {
        let mut f = Fixture::new();
        let t = Template::parse_url("/x/{{one}}?q={{one}}&z=a b").unwrap();
        assert_eq!(
            t.render(&mut f.ctx()).unwrap(),
            "/x/a%2Fb%3Fc%3Dd%26e?q=a%2Fb%3Fc%3Dd%26e&z=a b"
        );
        let mut seen = std::collections::BTreeSet::new();
        let t = Template::parse_url("?city={{city}}").unwrap();
        for _ in 0..40 {
            seen.insert(t.render(&mut f.ctx()).unwrap());
        }
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            ["?city=new%20delhi", "?city=pune"]
        );
        assert_eq!(f.render("{{one}}").unwrap(), "a/b?c=d&e");
    }

    #[test]
    fn dates_count_from_the_injected_today() {
        let mut f = Fixture::new();
        assert_eq!(f.render("{{date +1d}}").unwrap(), "2024-02-28");
        assert_eq!(f.render("{{date +3d}}").unwrap(), "2024-03-01");
        assert_eq!(f.render("{{date -1d}}").unwrap(), "2024-02-26");
        assert_eq!(f.render("{{date +30h}}").unwrap(), "2024-02-28T06:00:00Z");
        for _ in 0..50 {
            let day = f.render("{{date +1d..+7d}}").unwrap();
            assert!(
                ("2024-02-28".."2024-03-06").contains(&day.as_str()),
                "{day}"
            );
            let at = f.render("{{date +2h..+30h}}").unwrap();
            let at = chrono::DateTime::parse_from_rfc3339(&at).unwrap();
            let hours =
                (at.naive_utc() - f.ctx().today.and_time(chrono::NaiveTime::MIN)).num_hours();
            assert!((2..=30).contains(&hours), "{at}");
        }
    }

    #[test]
    fn json_templates_render_ints_as_numbers() {
        let mut f = Fixture::new();
        let t = JsonTemplate::from_value(json!({
            "partner_id": "{{int 7 7}}",
            "label": "n{{int 7 7}}",
            "items": [{"id": "{{booking_id}}", "qty": 2, "ok": true}],
            "note": null
        }))
        .unwrap();
        assert_eq!(t.variables(), ["booking_id"]);
        assert_eq!(
            t.render(&mut f.ctx()).unwrap(),
            json!({
                "partner_id": 7,
                "label": "n7",
                "items": [{"id": "42", "qty": 2, "ok": true}],
                "note": null
            })
        );
        let e = JsonTemplate::from_value(json!({"a": ["{{int}}"]})).unwrap_err();
        assert!(e.starts_with("at $.a[0]: "), "{e}");
    }

    #[test]
    fn extraction_paths_walk_fields_and_indexes() {
        let answer = json!({
            "id": 17,
            "booking": {"id": "b-9", "paid": false, "note": null},
            "items": [{"id": "first"}, {"id": 2.5}]
        });
        let get = |p: &str| ExtractPath::parse(p).unwrap().extract(&answer);
        assert_eq!(get("$.id"), Some(json!(17)));
        assert_eq!(get("$.booking.id"), Some(json!("b-9")));
        assert_eq!(get("$.booking.paid"), Some(json!(false)));
        assert_eq!(get("$.items[0].id"), Some(json!("first")));
        assert_eq!(get("$.items[1].id"), Some(json!(2.5)));
        assert_eq!(get("$.items[2].id"), None);
        assert_eq!(get("$.booking.note"), None);
        assert_eq!(get("$.booking"), None);
        assert_eq!(get("$.nope"), None);
        for bad in ["id", "$.", "$..id", "$.items[x]", "$.items[0", "$id"] {
            assert!(ExtractPath::parse(bad).is_err(), "{bad} should not parse");
        }
    }
}
