//! Concrete locations in a JSON document ([`JsonPath`]) and the JSONPath-like patterns that
//! select them ([`PathPattern`]) in ignore rules and per-path options.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most steps a pattern may have (its matcher keeps one bit per step).
const MAX_STEPS: usize = 63;

/// One step of a concrete location: an object member or an array element.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment<'a> {
    /// The member of an object with this key.
    Key(Cow<'a, str>),
    /// The element of an array at this zero-based index.
    Index(usize),
}

/// A concrete location in a JSON document, such as `$.bookings[3].price`.
///
/// Keys borrow from the document being compared, so walking a document allocates nothing
/// until a finding is produced. `Display` prints the normalised form, in which every array
/// index is written `[*]` (`$.bookings[*].price`); [`JsonPath::to_concrete_string`] keeps the
/// indexes. Keys that are not plain identifiers print quoted: `$['unit price']`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct JsonPath<'a> {
    segments: Vec<PathSegment<'a>>,
}

impl<'a> JsonPath<'a> {
    /// The root of the document, `$`.
    pub fn root() -> Self {
        JsonPath::default()
    }

    /// Parses a concrete location such as `$.items[0]['unit price']`.
    ///
    /// # Errors
    ///
    /// A text that is not a pattern (see [`PathPattern::parse`]), or one with wildcards or
    /// `..`, which name many locations.
    pub fn parse(text: &str) -> Result<JsonPath<'static>, PathSyntaxError> {
        let mut path = JsonPath::root();
        for step in parse_steps(text)? {
            match (step.descendant, step.selector) {
                (true, _) => return Err(invalid(text, "a concrete path cannot contain `..`")),
                (false, Selector::Any) => {
                    return Err(invalid(text, "a concrete path cannot contain `*`"))
                }
                (false, Selector::Key(key)) => path.push_key(String::from(key)),
                (false, Selector::Index(index)) => path.push_index(index),
            }
        }
        Ok(path)
    }

    /// Descends into the object member `key`.
    pub fn push_key(&mut self, key: impl Into<Cow<'a, str>>) {
        self.segments.push(PathSegment::Key(key.into()));
    }

    /// Descends into the array element at `index`.
    pub fn push_index(&mut self, index: usize) {
        self.segments.push(PathSegment::Index(index));
    }

    /// Goes back up one level, returning the step removed (`None` at the root).
    pub fn pop(&mut self) -> Option<PathSegment<'a>> {
        self.segments.pop()
    }

    /// The steps from the root to this location.
    pub fn segments(&self) -> &[PathSegment<'a>] {
        &self.segments
    }

    /// How many steps below the root this location is.
    pub fn depth(&self) -> usize {
        self.segments.len()
    }

    /// Whether this is the root, `$`.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// The same location with owned keys, independent of the document it came from.
    pub fn into_owned(self) -> JsonPath<'static> {
        let segments = self
            .segments
            .into_iter()
            .map(|segment| match segment {
                PathSegment::Key(key) => PathSegment::Key(Cow::Owned(key.into_owned())),
                PathSegment::Index(index) => PathSegment::Index(index),
            })
            .collect();
        JsonPath { segments }
    }

    /// The location with its real array indexes, e.g. `$.bookings[3].price`.
    pub fn to_concrete_string(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = write_path(&mut text, &self.segments, false);
        text
    }

    /// Appends the normalised form to `out` (reusing its allocation).
    pub(crate) fn write_normalised(&self, out: &mut String) {
        // Writing into a String cannot fail.
        let _ = write_path(out, &self.segments, true);
    }

    /// The array indexes along the path, outermost first.
    pub(crate) fn indexes(&self) -> impl Iterator<Item = usize> + '_ {
        self.segments.iter().filter_map(|segment| match segment {
            PathSegment::Index(index) => Some(*index),
            PathSegment::Key(_) => None,
        })
    }
}

impl fmt::Display for JsonPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_path(f, &self.segments, true)
    }
}

/// Writes `$` and the segments; `normalise` writes every index as `[*]`.
fn write_path(
    out: &mut impl fmt::Write,
    segments: &[PathSegment<'_>],
    normalise: bool,
) -> fmt::Result {
    out.write_char('$')?;
    for segment in segments {
        match segment {
            PathSegment::Key(key) => write_key(out, key)?,
            PathSegment::Index(_) if normalise => out.write_str("[*]")?,
            PathSegment::Index(index) => write!(out, "[{index}]")?,
        }
    }
    Ok(())
}

/// Writes `.key` for plain identifiers and field numbers, `['key']` (escaped) for anything else.
fn write_key(out: &mut impl fmt::Write, key: &str) -> fmt::Result {
    if is_identifier(key) || is_field_number(key) {
        out.write_char('.')?;
        return out.write_str(key);
    }
    out.write_str("['")?;
    for c in key.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '\'' => out.write_str("\\'")?,
            c if c.is_control() => write!(out, "\\u{:04x}", u32::from(c))?,
            c => out.write_char(c)?,
        }
    }
    out.write_str("']")
}

/// An ASCII letter or `_`, then ASCII letters, digits or `_`.
fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// ASCII digits only: a protobuf field number, as gRPC bodies are keyed (`$.1.3`). Array
/// elements are always written in brackets (`[3]`), so `.3` can only be a key.
fn is_field_number(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit())
}

/// A JSONPath-like pattern naming locations, used by ignore rules and per-path options.
///
/// Syntax: `$` (the root) followed by steps: `.key`, `['any key']` or `["any key"]`, `[3]` (an
/// array element), `.*` or `[*]` (any member or element), and `..` before a step for recursive
/// descent (`$..updated_at` names `updated_at` at any depth). `Display` and serde give back the
/// text the pattern was parsed from, so configuration files can hold patterns as strings.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PathPattern {
    text: Box<str>,
    steps: Box<[Step]>,
}

impl PathPattern {
    /// Parses a pattern.
    ///
    /// # Errors
    ///
    /// A text that does not follow the syntax above; the message quotes the text and names
    /// the problem and its byte offset, e.g. `invalid path pattern "$.items[": unterminated
    /// `[` at offset 8`.
    pub fn parse(text: &str) -> Result<PathPattern, PathSyntaxError> {
        let steps = parse_steps(text)?;
        Ok(PathPattern {
            text: text.into(),
            steps: steps.into(),
        })
    }

    /// The text the pattern was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern names exactly this location (`$.meta` matches `$.meta`, not
    /// `$.meta.id`).
    pub fn matches(&self, path: &JsonPath<'_>) -> bool {
        let accept = self.accept_state();
        let mut states = 1u64;
        for segment in path.segments() {
            states = self.advance(states, segment);
            if states == 0 {
                return false;
            }
        }
        states & accept != 0
    }

    /// Whether the pattern names this location or one of its ancestors (`$.meta` covers
    /// `$.meta` and `$.meta.id`), which is how ignore rules and tolerances apply.
    pub fn covers(&self, path: &JsonPath<'_>) -> bool {
        let accept = self.accept_state();
        let mut states = 1u64;
        for segment in path.segments() {
            if states & accept != 0 {
                return true;
            }
            states = self.advance(states, segment);
            if states == 0 {
                return false;
            }
        }
        states & accept != 0
    }

    /// The bit of the state where every step has matched.
    fn accept_state(&self) -> u64 {
        1u64 << self.steps.len()
    }

    /// One step of the matcher: bit `i` of `states` means "the first `i` steps match the path
    /// so far". A recursive-descent step may also let the segment pass without consuming it.
    fn advance(&self, states: u64, segment: &PathSegment<'_>) -> u64 {
        let mut next = 0u64;
        let mut pending = states;
        while pending != 0 {
            let position = pending.trailing_zeros() as usize;
            pending &= pending - 1;
            if let Some(step) = self.steps.get(position) {
                if step.descendant {
                    next |= 1u64 << position;
                }
                if step.selector.selects(segment) {
                    next |= 1u64 << (position + 1);
                }
            }
        }
        next
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PathPattern").field(&self.text).finish()
    }
}

impl FromStr for PathPattern {
    type Err = PathSyntaxError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        PathPattern::parse(text)
    }
}

impl Serialize for PathPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for PathPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        PathPattern::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// One step of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Step {
    /// Preceded by `..`: any number of levels may be skipped before the selector.
    descendant: bool,
    selector: Selector,
}

/// What a step accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Selector {
    Key(Box<str>),
    Index(usize),
    Any,
}

impl Selector {
    fn selects(&self, segment: &PathSegment<'_>) -> bool {
        match (self, segment) {
            (Selector::Any, _) => true,
            (Selector::Key(want), PathSegment::Key(key)) => **want == **key,
            (Selector::Index(want), PathSegment::Index(index)) => want == index,
            _ => false,
        }
    }
}

/// A path or pattern that does not parse: the text, what is wrong and, when it is one place,
/// its byte offset; shown as `invalid path pattern "$.items[": unterminated `[` at offset 8`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid path pattern {text:?}: {reason}{}",
    .offset.map(|at| format!(" at offset {at}")).unwrap_or_default()
)]
pub struct PathSyntaxError {
    /// The text as given.
    pub text: String,
    /// What is wrong.
    pub reason: String,
    /// Where, in bytes from the start, when it is one place.
    pub offset: Option<usize>,
}

fn invalid(text: &str, reason: &str) -> PathSyntaxError {
    PathSyntaxError {
        text: text.to_string(),
        reason: reason.to_string(),
        offset: None,
    }
}

/// Parses the steps of a pattern or a concrete path.
fn parse_steps(text: &str) -> Result<Vec<Step>, PathSyntaxError> {
    let mut parser = Parser { text, pos: 0 };
    if text.is_empty() {
        return Err(invalid(
            text,
            "empty; a path starts with `$` (the document root)",
        ));
    }
    if !parser.eat('$') {
        return parser.fail("a path must start with `$` (the document root)");
    }
    let mut steps = Vec::new();
    while let Some(c) = parser.peek() {
        let step = match c {
            '.' => {
                parser.bump();
                if parser.eat('.') {
                    Step {
                        descendant: true,
                        selector: parser.descendant_selector()?,
                    }
                } else {
                    Step {
                        descendant: false,
                        selector: parser.member_selector("`.`")?,
                    }
                }
            }
            '[' => Step {
                descendant: false,
                selector: parser.bracket_selector()?,
            },
            c => return parser.fail(&format!("unexpected {c:?}; expected `.`, `..` or `[`")),
        };
        steps.push(step);
        if steps.len() > MAX_STEPS {
            return parser.fail(&format!("more than {MAX_STEPS} steps"));
        }
    }
    Ok(steps)
}

/// A cursor over the pattern text; `pos` is a byte offset, always on a char boundary.
struct Parser<'t> {
    text: &'t str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.text
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, expected: char) -> bool {
        let found = self.peek() == Some(expected);
        if found {
            self.pos += expected.len_utf8();
        }
        found
    }

    fn fail<T>(&self, reason: &str) -> Result<T, PathSyntaxError> {
        Err(PathSyntaxError {
            offset: Some(self.pos),
            ..invalid(self.text, reason)
        })
    }

    /// After `..`: a bracket selector, `*` or a key name.
    fn descendant_selector(&mut self) -> Result<Selector, PathSyntaxError> {
        if self.peek() == Some('[') {
            self.bracket_selector()
        } else {
            self.member_selector("`..`")
        }
    }

    /// After `.` or `..`: `*` or a key name.
    fn member_selector(&mut self, after: &str) -> Result<Selector, PathSyntaxError> {
        match self.peek() {
            Some('*') => {
                self.bump();
                Ok(Selector::Any)
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.pos;
                let key = self.name();
                if is_field_number(key) {
                    Ok(Selector::Key(key.to_owned().into()))
                } else {
                    self.pos = start;
                    self.fail(&format!(
                        "a key after {after} that starts with a digit is a field number, all \
                         digits; write `[{c}]` for an array element or `['{c}…']` for such a key"
                    ))
                }
            }
            Some(c) if c.is_alphabetic() || c == '_' => Ok(Selector::Key(self.name().into())),
            Some(c) => self.fail(&format!(
                "expected a key name or `*` after {after}, found {c:?}; quote unusual keys as \
                 `['key']`"
            )),
            None => self.fail(&format!("expected a key name or `*` after {after}")),
        }
    }

    /// A shorthand key: letters, digits, `_` and `-`.
    fn name(&mut self) -> &str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !(c.is_alphanumeric() || c == '_' || c == '-') {
                break;
            }
            self.pos += c.len_utf8();
        }
        self.text.get(start..self.pos).unwrap_or_default()
    }

    /// `[*]`, `[3]`, `['key']` or `["key"]`.
    fn bracket_selector(&mut self) -> Result<Selector, PathSyntaxError> {
        self.bump();
        let selector = match self.peek() {
            Some('*') => {
                self.bump();
                Selector::Any
            }
            Some(quote @ ('\'' | '"')) => Selector::Key(self.quoted(quote)?.into()),
            Some(c) if c.is_ascii_digit() => Selector::Index(self.index()?),
            Some('-') => return self.fail("negative array indexes are not supported"),
            Some(c) => {
                return self.fail(&format!(
                    "expected an index, `*` or a quoted key after `[`, found {c:?}"
                ))
            }
            None => return self.fail("unterminated `[`"),
        };
        match self.peek() {
            Some(']') => {
                self.bump();
                Ok(selector)
            }
            Some(c) => self.fail(&format!("expected `]`, found {c:?}")),
            None => self.fail("unterminated `[`, expected `]`"),
        }
    }

    fn index(&mut self) -> Result<usize, PathSyntaxError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits = self.text.get(start..self.pos).unwrap_or_default();
        match digits.parse() {
            Ok(index) => Ok(index),
            Err(_) => self.fail("array index is too large"),
        }
    }

    /// A quoted key with backslash escapes; the cursor is on the opening quote.
    fn quoted(&mut self, quote: char) -> Result<String, PathSyntaxError> {
        let start = self.pos;
        self.bump();
        let mut key = String::new();
        loop {
            match self.bump() {
                None => {
                    self.pos = start;
                    return self.fail("unterminated quoted key");
                }
                Some(c) if c == quote => return Ok(key),
                Some('\\') => key.push(self.escape()?),
                Some(c) => key.push(c),
            }
        }
    }

    fn escape(&mut self) -> Result<char, PathSyntaxError> {
        match self.bump() {
            Some(c @ ('\\' | '\'' | '"' | '/')) => Ok(c),
            Some('n') => Ok('\n'),
            Some('r') => Ok('\r'),
            Some('t') => Ok('\t'),
            Some('b') => Ok('\u{8}'),
            Some('f') => Ok('\u{c}'),
            Some('u') => self.unicode_escape(),
            Some(c) => self.fail(&format!("unknown escape `\\{c}`")),
            None => self.fail("unterminated quoted key"),
        }
    }

    /// The four hex digits of `\uXXXX`.
    fn unicode_escape(&mut self) -> Result<char, PathSyntaxError> {
        let start = self.pos;
        let digits: String = (0..4).filter_map(|_| self.bump()).collect();
        u32::from_str_radix(&digits, 16)
            .ok()
            .filter(|_| digits.len() == 4)
            .and_then(char::from_u32)
            .map_or_else(
                || {
                    self.pos = start;
                    self.fail(
                        "`\\u` needs four hex digits of a non-surrogate code point (write other \
                         characters as they are)",
                    )
                },
                Ok,
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> JsonPath<'static> {
        JsonPath::parse(text).expect("valid concrete path")
    }

    fn pattern(text: &str) -> PathPattern {
        PathPattern::parse(text).expect("valid pattern")
    }

    #[test]
    fn display_normalises_indexes_and_quotes_unusual_keys() {
        let mut location = JsonPath::root();
        assert_eq!(location.to_string(), "$");
        location.push_key("bookings");
        location.push_index(3);
        location.push_key("price");
        location.push_key("amount");
        assert_eq!(location.to_string(), "$.bookings[*].price.amount");
        assert_eq!(location.to_concrete_string(), "$.bookings[3].price.amount");

        let mut odd = JsonPath::root();
        odd.push_key("a.b");
        odd.push_key("it's");
        odd.push_key("");
        odd.push_key("x-id");
        odd.push_key("9lives");
        odd.push_key("back\\slash\n");
        assert_eq!(
            odd.to_string(),
            r"$['a.b']['it\'s']['']['x-id']['9lives']['back\\slash\u000a']"
        );
    }

    #[test]
    fn concrete_paths_round_trip_through_display() {
        let mut location = JsonPath::root();
        for key in [
            "plain",
            "with space",
            "quote'",
            "tab\t",
            "é",
            "\"",
            "_x1",
            "12",
        ] {
            location.push_key(key);
            location.push_index(7);
        }
        let reparsed = path(&location.to_concrete_string());
        assert_eq!(reparsed, location.into_owned());
    }

    #[test]
    fn field_numbers_are_keys_written_after_a_dot() {
        let mut location = JsonPath::root();
        location.push_key("1");
        location.push_key("3");
        location.push_index(0);
        location.push_key("2");
        assert_eq!(location.to_string(), "$.1.3[*].2");
        assert!(pattern("$.1.3[*].2").matches(&location));
        assert!(pattern("$..2").matches(&location));
        assert!(!pattern("$.1[3]").matches(&location));
        assert_eq!(pattern("$.1.3[*].2").to_string(), "$.1.3[*].2");
    }

    #[test]
    fn concrete_paths_reject_wildcards() {
        assert!(JsonPath::parse("$.a[*]").is_err());
        assert!(JsonPath::parse("$..a").is_err());
        assert_eq!(path(r#"$["a"][2].b"#).to_concrete_string(), "$.a[2].b");
    }

    #[test]
    fn plain_patterns_match_exactly_and_cover_descendants() {
        let meta = pattern("$.meta");
        assert!(meta.matches(&path("$.meta")));
        assert!(!meta.matches(&path("$.meta.request_id")));
        assert!(meta.covers(&path("$.meta.request_id")));
        assert!(meta.covers(&path("$.meta")));
        assert!(!meta.covers(&path("$.metadata")));
        assert!(!meta.covers(&path("$")));
        assert!(!meta.matches(&path("$.data.meta")));

        let root = pattern("$");
        assert!(root.matches(&path("$")));
        assert!(!root.matches(&path("$.a")));
        assert!(root.covers(&path("$.a[1]")));
    }

    #[test]
    fn recursive_descent_matches_at_any_depth() {
        let updated = pattern("$..updated_at");
        assert!(updated.matches(&path("$.updated_at")));
        assert!(updated.matches(&path("$.a.b[4].updated_at")));
        assert!(!updated.matches(&path("$.a.updated_at.x")));
        assert!(updated.covers(&path("$.a.updated_at.x")));
        assert!(!updated.matches(&path("$.updated")));

        let nested = pattern("$..items..id");
        assert!(nested.matches(&path("$.items.id")));
        assert!(nested.matches(&path("$.x.items[2].y.id")));
        assert!(!nested.matches(&path("$.id")));

        let any_index = pattern("$..[0]");
        assert!(any_index.matches(&path("$.a[0]")));
        assert!(any_index.matches(&path("$[0]")));
        assert!(!any_index.matches(&path("$.a[1]")));
    }

    #[test]
    fn wildcards_and_indexes() {
        let ids = pattern("$.items[*].id");
        assert!(ids.matches(&path("$.items[0].id")));
        assert!(ids.matches(&path("$.items[17].id")));
        assert!(!ids.matches(&path("$.items[0].name")));

        let first = pattern("$.items[0]");
        assert!(first.matches(&path("$.items[0]")));
        assert!(!first.matches(&path("$.items[1]")));
        assert!(!first.matches(&path("$.items['0']")));

        let any = pattern("$.*.id");
        assert!(any.matches(&path("$.a.id")));
        assert!(any.matches(&path("$[3].id")));
        assert!(!any.matches(&path("$.id")));

        let quoted = pattern("$['key with.dots'][\"x\"]");
        assert!(quoted.matches(&path("$['key with.dots'].x")));
        assert_eq!(quoted.to_string(), "$['key with.dots'][\"x\"]");

        assert!(pattern("$.x-request-id").matches(&path("$['x-request-id']")));
        assert!(pattern("$.café").matches(&path("$['café']")));
    }

    #[test]
    fn bad_patterns_explain_themselves() {
        let cases = [
            ("", "empty"),
            ("meta", "must start with `$`"),
            ("$.", "expected a key name or `*` after `.`"),
            ("$..", "after `..`"),
            ("$.a.", "at offset 4"),
            ("$[", "unterminated `[`"),
            ("$.items[abc]", "expected an index, `*` or a quoted key"),
            ("$['open", "unterminated quoted key at offset 2"),
            ("$[-1]", "negative array indexes"),
            ("$.0a", "starts with a digit is a field number"),
            ("$ .a", "unexpected ' '"),
            ("$.a b", "unexpected ' '"),
            ("$[1", "expected `]`"),
            ("$[1x]", "expected `]`, found 'x'"),
            ("$[99999999999999999999999999]", "too large"),
            ("$['\\q']", "unknown escape"),
            ("$['\\ud800']", "non-surrogate"),
            ("$.a.@", "quote unusual keys"),
        ];
        for (text, expected) in cases {
            let error = PathPattern::parse(text).expect_err(text).to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(error.starts_with("invalid path pattern"), "{error}");
        }
        let long = format!("${}", ".a".repeat(MAX_STEPS + 1));
        assert!(PathPattern::parse(&long).is_err());
        assert!(PathPattern::parse(&format!("${}", ".a".repeat(MAX_STEPS))).is_ok());
    }

    #[test]
    fn escapes_in_quoted_keys() {
        let escaped = pattern(r"$['caf\u00e9']['it\'s']['a\\b']");
        assert!(escaped.matches(&path(r"$['café']['it\'s']['a\\b']")));
    }

    #[test]
    fn patterns_serialize_as_their_text() {
        let parsed: PathPattern =
            serde_json::from_str("\"$..updated_at\"").expect("pattern from a string");
        assert_eq!(parsed, pattern("$..updated_at"));
        assert_eq!(
            serde_json::to_string(&parsed).expect("pattern to a string"),
            "\"$..updated_at\""
        );
        let error = serde_json::from_str::<PathPattern>("\"$[\"").expect_err("bad pattern");
        assert!(error.to_string().contains("unterminated"), "{error}");
        assert_eq!("$.a".parse::<PathPattern>(), Ok(pattern("$.a")));
    }
}
