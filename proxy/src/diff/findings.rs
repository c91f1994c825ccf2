//! Collecting findings: deduplicated by (path, kind), capped, with path strings built only for
//! findings that are kept.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

use super::path::JsonPath;
use super::{DiffKind, Finding, MAX_DETAIL_CHARS};

/// The findings of one comparison.
pub(crate) struct Sink {
    findings: Vec<Finding>,
    /// Normalised path → bit set of the kinds already reported there.
    seen: HashMap<String, u16>,
    /// Reused buffer for the normalised path of the finding being considered.
    scratch: String,
    max: usize,
}

impl Sink {
    /// A sink that keeps at most `max` findings (at least one).
    pub(crate) fn new(max: usize) -> Self {
        Sink {
            findings: Vec::new(),
            seen: HashMap::new(),
            scratch: String::new(),
            max: max.max(1),
        }
    }

    /// Whether no further finding would be kept.
    pub(crate) fn is_full(&self) -> bool {
        self.findings.len() >= self.max
    }

    /// Records a finding at `path` unless the sink is full or this (path, kind) is already
    /// recorded. The detail is only built for findings that are kept; when the path has array
    /// indexes, they lead the detail (`[3]: …`).
    pub(crate) fn push(
        &mut self,
        path: &JsonPath<'_>,
        kind: DiffKind,
        detail: impl FnOnce() -> String,
    ) {
        if self.is_full() {
            return;
        }
        self.scratch.clear();
        path.write_normalised(&mut self.scratch);
        let bit = 1u16 << kind.index();
        match self.seen.get_mut(self.scratch.as_str()) {
            Some(kinds) if *kinds & bit != 0 => return,
            Some(kinds) => *kinds |= bit,
            None => {
                self.seen.insert(self.scratch.clone(), bit);
            }
        }
        let mut text = index_prefix(path);
        text.push_str(&detail());
        self.findings.push(Finding {
            path: self.scratch.clone(),
            kind,
            detail: truncate_chars(&text, MAX_DETAIL_CHARS).into_owned(),
        });
    }

    /// The findings, in the order they were recorded.
    pub(crate) fn into_findings(self) -> Vec<Finding> {
        self.findings
    }
}

/// `[1][4]: ` for a path through two arrays, nothing for a path through none.
fn index_prefix(path: &JsonPath<'_>) -> String {
    let mut prefix = String::new();
    for index in path.indexes() {
        // Writing into a String cannot fail.
        let _ = write!(prefix, "[{index}]");
    }
    if !prefix.is_empty() {
        prefix.push_str(": ");
    }
    prefix
}

/// `text` cut to at most `max` characters, ending with `…` when cut (on a char boundary).
pub(crate) fn truncate_chars(text: &str, max: usize) -> Cow<'_, str> {
    if text.char_indices().nth(max).is_none() {
        return Cow::Borrowed(text);
    }
    let keep = max.saturating_sub(1);
    let cut = text
        .char_indices()
        .nth(keep)
        .map_or(text.len(), |(offset, _)| offset);
    let mut short = String::with_capacity(cut + '…'.len_utf8());
    short.push_str(text.get(..cut).unwrap_or_default());
    short.push('…');
    Cow::Owned(short)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_by_path_and_kind_are_dropped() {
        let mut sink = Sink::new(10);
        let mut path = JsonPath::root();
        path.push_key("items");
        path.push_index(0);
        sink.push(&path, DiffKind::ValueChanged, || "1 → 2".to_owned());
        path.pop();
        path.push_index(1);
        sink.push(&path, DiffKind::ValueChanged, || {
            unreachable!("a duplicate's detail is never built")
        });
        sink.push(&path, DiffKind::TypeChanged, || {
            "number → string".to_owned()
        });
        let findings = sink.into_findings();
        assert_eq!(findings.len(), 2);
        assert_eq!(findings[0].path, "$.items[*]");
        assert_eq!(findings[0].detail, "[0]: 1 → 2");
        assert_eq!(findings[1].detail, "[1]: number → string");
    }

    #[test]
    fn the_cap_keeps_the_first_findings() {
        let mut sink = Sink::new(2);
        for key in ["a", "b", "c"] {
            let mut path = JsonPath::root();
            path.push_key(key);
            sink.push(&path, DiffKind::Missing, || key.to_owned());
        }
        assert!(sink.is_full());
        let paths: Vec<_> = sink.into_findings().into_iter().map(|f| f.path).collect();
        assert_eq!(paths, ["$.a", "$.b"]);
        assert!(
            !Sink::new(0).is_full(),
            "a zero cap still reports one finding"
        );
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abcd", 3), "ab…");
        assert_eq!(truncate_chars("ééé€€", 4), "ééé…");
        assert_eq!(truncate_chars("", 3), "");
    }
}
