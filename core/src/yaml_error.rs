//! Where-and-why errors for the YAML files twinpeak reads (proxy configurations, load
//! scenarios): each names the file, the 1-based line and column, the dotted key at fault
//! (`mirror.percent`, `requests[2].after`) and what is wrong, shown as
//! `file:line:col: key: message`.
//!
//! serde_yaml only knows a position while it reads a value, and reports errors found after
//! reading (and every error found in validation) at the parent mapping or nowhere at all; these
//! errors walk the document again to the key at fault, so they point at the key itself, in block
//! and flow style alike.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeOwned, Deserializer};

/// A YAML file that could not be used, with where and why; shown as `file:line:col: key: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlFileError {
    /// The file the text came from.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Dotted key (`mirror.percent`, `phases[1].rps`), when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for YamlFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for YamlFileError {}

impl YamlFileError {
    /// An error about the file as a whole, with no place in it (it cannot be read, for example).
    pub fn whole_file(file: &Path, message: String) -> YamlFileError {
        YamlFileError {
            file: file.to_path_buf(),
            line: None,
            column: None,
            key: None,
            message,
        }
    }

    /// An error at a dotted key of `text`, located in the text (at the nearest enclosing key
    /// when the key itself is not written, e.g. an inherited or defaulted value); `fallback`,
    /// a 1-based (line, column), is used when nothing can be found, for example when the text
    /// is not valid YAML.
    pub fn at_key(
        file: &Path,
        text: &str,
        key: Option<String>,
        fallback: Option<(usize, usize)>,
        message: String,
    ) -> YamlFileError {
        let mut position = None;
        let mut enclosing = key.as_deref().unwrap_or_default();
        while position.is_none() && !enclosing.is_empty() {
            position = locate(text, enclosing);
            enclosing = &enclosing[..enclosing.rfind(['.', '[']).unwrap_or(0)];
        }
        let position = position.or(fallback);
        YamlFileError {
            file: file.to_path_buf(),
            line: position.map(|(line, _)| line),
            column: position.map(|(_, column)| column),
            key,
            message,
        }
    }

    /// The error serde_yaml reported while reading `text` into a type, at the key serde was
    /// reading (located in the text, or at serde_yaml's own position when it cannot be), with
    /// serde_yaml's position suffix and parent-key prefix taken off the message.
    pub fn from_deserialize(
        file: &Path,
        text: &str,
        error: serde_path_to_error::Error<serde_yaml::Error>,
    ) -> YamlFileError {
        let key = error.path().to_string();
        let inner = error.into_inner();
        let fallback = inner.location().map(|l| (l.line(), l.column()));
        let message = strip_path_prefix(&strip_location(&inner.to_string()), &key);
        let key = (!key.is_empty() && key != ".").then_some(key);
        YamlFileError::at_key(file, text, key, fallback, message)
    }
}

/// Reads YAML `text` into a `T`; an error names the key at fault and where it is written.
/// `file` is used in errors only.
pub fn deserialize<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, YamlFileError> {
    serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text))
        .map_err(|e| YamlFileError::from_deserialize(file, text, e))
}

/// serde_yaml appends " at line L column C" to its messages; the location is reported apart.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// serde_yaml may start a message with the path of the value's parent (`mirror: ...`,
/// `phases[0]: ...`); the full key is reported apart, so that prefix is dropped.
fn strip_path_prefix(message: &str, key: &str) -> String {
    let mut prefix = String::new();
    let mut longest = None;
    for part in key.split('.') {
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(part);
        if message.starts_with(&format!("{prefix}: ")) {
            longest = Some(prefix.len() + 2);
        }
    }
    longest.map_or_else(|| message.to_string(), |n| message[n..].to_string())
}

/// Finds a dotted key (`requests[1].after`) in YAML text and returns its 1-based line and
/// column: the key itself when the path ends in a key, the item when it ends in an index.
fn locate(text: &str, dotted: &str) -> Option<(usize, usize)> {
    let mut steps = Vec::new();
    for part in dotted.split('.') {
        let (name, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !name.is_empty() {
            steps.push(Step::Key(name));
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let (index, tail) = inner.split_once(']')?;
            steps.push(Step::Index(index.parse().ok()?));
            rest = tail;
        }
        if !rest.is_empty() {
            return None;
        }
    }
    match de::DeserializeSeed::deserialize(Locate(&steps), serde_yaml::Deserializer::from_str(text))
    {
        Err(e) if e.to_string().contains(FOUND) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

const FOUND: &str = "twinpeak: location found";

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Walks to the remaining steps and fails on arrival, so serde_yaml marks the error there. On
/// arrival at a scalar, serde's default `visit_*` fails with `expecting`'s text, which is then
/// [`FOUND`]; a scalar reached before the last step fails with another message (not found).
struct Locate<'a>(&'a [Step<'a>]);

impl Locate<'_> {
    fn arrived<E: de::Error>(&self) -> Result<(), E> {
        match self.0 {
            [] => Err(E::custom(FOUND)),
            _ => Ok(()),
        }
    }
}

impl<'de> de::DeserializeSeed<'de> for Locate<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for Locate<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => f.write_str(FOUND),
            _ => f.write_str("a mapping or a sequence"),
        }
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.arrived()?;
        let [Step::Key(want), rest @ ..] = self.0 else {
            return Ok(());
        };
        let last = rest.is_empty();
        while let Some(found) = map.next_key_seed(KeyIs { want, last })? {
            if found {
                return map.next_value_seed(Locate(rest));
            }
            map.next_value::<de::IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.arrived()?;
        let [Step::Index(want), rest @ ..] = self.0 else {
            return Ok(());
        };
        for _ in 0..*want {
            if seq.next_element::<de::IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Locate(rest)).map(|_| ())
    }
}

/// Reads a mapping key: whether it is the one wanted, failing at it when it is the last step.
struct KeyIs<'a> {
    want: &'a str,
    last: bool,
}

impl<'de> de::DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> de::Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        match key == self.want {
            true if self.last => Err(E::custom(FOUND)),
            found => Ok(found),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line `at_key` gives a dotted key of `text`.
    fn line_of(text: &str, key: &str) -> Option<usize> {
        YamlFileError::at_key(
            Path::new("f.yaml"),
            text,
            Some(key.into()),
            None,
            String::new(),
        )
        .line
    }

    #[test]
    fn locate_finds_keys_and_items() {
        let text = "a: 1\nb:\n  - {x: 1, y: 2}\n  - name: n\n    after: z\nc: {d: [5, 6]}\n";
        assert_eq!(locate(text, "b[1].after"), Some((5, 5)));
        assert_eq!(locate(text, "b[0].y"), Some((3, 12)));
        assert_eq!(locate(text, "b[1]"), Some((4, 5)));
        assert_eq!(locate(text, "c.d[1]"), Some((6, 12)));
        assert_eq!(locate(text, "a"), Some((1, 1)));
        assert_eq!(locate(text, "b[2]"), None);
        assert_eq!(locate(text, "nope"), None);
        assert_eq!(locate("a: [\nb: 1\n", "b"), None);
    }

    #[test]
    fn at_key_follows_nesting() {
        let text = "a: 1\nmirror:\n  key: x\n  percent: 3\nother:\n  percent: 9\n";
        assert_eq!(line_of(text, "mirror.percent"), Some(4));
        assert_eq!(line_of(text, "other.percent"), Some(6));
        assert_eq!(
            line_of("mirror: { percent: 3 }\n", "mirror.percent"),
            Some(1)
        );
    }

    #[test]
    fn at_key_finds_list_items_and_falls_back_to_enclosing_keys() {
        let text = "canary:\n  ramp:\n    - {weight: 1, hold: 1m}\n    - weight: 5\n      hold: 2m\n    - weight: 9\n  judge: {}\n";
        assert_eq!(line_of(text, "canary.ramp[0].hold"), Some(3));
        assert_eq!(line_of(text, "canary.ramp[1].hold"), Some(5));
        assert_eq!(line_of(text, "canary.ramp[2].weight"), Some(6));
        assert_eq!(line_of(text, "canary.ramp[2].hold"), Some(6));
        assert_eq!(line_of(text, "canary.upstream"), Some(1));
        let flush = "canary:\n  ramp:\n  - {weight: 1}\n  - {weight: 2}\n";
        assert_eq!(line_of(flush, "canary.ramp[1].weight"), Some(4));
        let inline = "canary: {ramp: [{weight: 1}]}\n";
        assert_eq!(line_of(inline, "canary.ramp[0].weight"), Some(1));
    }

    #[test]
    fn at_key_uses_the_fallback_when_nothing_is_found() {
        let file = Path::new("f.yaml");
        let broken = "a: [\nb: 1\n";
        let e = YamlFileError::at_key(file, broken, Some("b".into()), Some((2, 2)), "x".into());
        assert_eq!((e.line, e.column), (Some(2), Some(2)));
        let e = YamlFileError::at_key(file, "a: 1\n", None, None, "x".into());
        assert_eq!((e.line, e.column), (None, None));
    }

    #[test]
    fn display_names_file_line_column_and_key() {
        let e = YamlFileError::at_key(
            Path::new("s.yaml"),
            "a:\n  b: 1\n",
            Some("a.b".into()),
            None,
            "is wrong".into(),
        );
        assert_eq!(e.to_string(), "s.yaml:2:3: a.b: is wrong");
        let e = YamlFileError::whole_file(Path::new("s.yaml"), "cannot read the file".into());
        assert_eq!(e.to_string(), "s.yaml: cannot read the file");
    }

    #[test]
    fn serde_messages_lose_their_position_and_parent_path() {
        assert_eq!(
            strip_location("unknown field `x` at line 3 column 5"),
            "unknown field `x`"
        );
        assert_eq!(strip_location("no position"), "no position");
        assert_eq!(
            strip_path_prefix("phases[0]: missing field `rps`", "phases[0]"),
            "missing field `rps`"
        );
        assert_eq!(
            strip_path_prefix("mirror: unknown field `percnt`", "mirror.percnt"),
            "unknown field `percnt`"
        );
        assert_eq!(strip_path_prefix("other: text", "mirror"), "other: text");
    }

    #[test]
    fn deserialize_errors_name_the_key_where_it_is_written() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Inner {
            count: u32,
        }
        #[derive(Debug, serde::Deserialize)]
        struct Outer {
            inner: Inner,
        }
        let file = Path::new("f.yaml");
        let read: Outer = deserialize(file, "inner: {count: 2}\n").unwrap();
        assert_eq!(read.inner.count, 2);
        let e = deserialize::<Outer>(file, "inner:\n  count: many\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("inner.count"));
        assert_eq!((e.line, e.column), (Some(2), Some(3)));
        assert!(!e.message.contains(" at line "), "{e}");
        let e = deserialize::<Outer>(file, "inner:\n  cont: 1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.yaml:2:3: inner.cont: unknown field `cont`, expected `count`"
        );
        let e = deserialize::<Outer>(file, "inner: [\n").unwrap_err();
        assert!(e.line.is_some(), "{e}");
        let e = deserialize::<Outer>(file, "other: 1\n").unwrap_err();
        assert_eq!(e.key, None);
        assert_eq!(e.message, "missing field `inner`");
    }
}
