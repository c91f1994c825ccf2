//! The corpus: diverging requests appended as JSON Lines (redacted), a few per distinct
//! (route, field, kind), so they can be replayed against the next build.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::diff::DiffKind;

/// Most distinct (route, field, kind) keys the corpus tracks; past it new keys are not written.
const MAX_KEYS: usize = 10_000;

/// One line of the corpus: enough to send the request again, and why it was kept.
#[derive(Debug, Serialize)]
pub struct CorpusEntry<'a> {
    /// Request method.
    pub method: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// Request headers (secrets redacted), repeated names joined with ", ".
    pub headers: &'a std::collections::BTreeMap<String, String>,
    /// Request body as text, or base64 (see `body_encoding`).
    pub body: &'a str,
    /// `"text"` or `"base64"`.
    pub body_encoding: &'a str,
    /// The route template it matched.
    pub route: &'a str,
    /// The field that differed.
    pub field: &'a str,
    /// How it differed.
    pub kind: &'a str,
    /// The id both sides saw.
    pub request_id: &'a str,
    /// When (RFC 3339).
    pub seen_at: &'a str,
}

/// An append-only JSON Lines file with a cap per key.
pub struct Corpus {
    path: PathBuf,
    out: BufWriter<File>,
    written: HashMap<(usize, String, DiffKind), usize>,
    per_key: usize,
}

impl Corpus {
    /// Opens (creating as needed) `dir/diverging.jsonl` for appending.
    pub fn open(dir: &Path, per_key: usize) -> io::Result<Corpus> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("diverging.jsonl");
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Corpus {
            path,
            out: BufWriter::new(file),
            written: HashMap::new(),
            per_key,
        })
    }

    /// Where the corpus is written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether an entry for this key would still be written.
    pub fn wants(&self, route: usize, field: &str, kind: DiffKind) -> bool {
        match self.written.get(&(route, field.to_string(), kind)) {
            Some(n) => *n < self.per_key,
            None => self.written.len() < MAX_KEYS,
        }
    }

    /// Appends an entry (if its key still wants one) and flushes, so the file is always whole
    /// lines.
    pub fn append(
        &mut self,
        route: usize,
        kind: DiffKind,
        entry: &CorpusEntry<'_>,
    ) -> io::Result<()> {
        if !self.wants(route, entry.field, kind) {
            return Ok(());
        }
        serde_json::to_writer(&mut self.out, entry)?;
        self.out.write_all(b"\n")?;
        self.out.flush()?;
        *self
            .written
            .entry((route, entry.field.to_string(), kind))
            .or_insert(0) += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn appends_whole_lines_and_caps_each_key() {
        let dir = std::env::temp_dir().join(format!("twinpeak-corpus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut corpus = Corpus::open(&dir, 2).unwrap();
        let headers = BTreeMap::from([("accept".to_string(), "application/json".to_string())]);
        for field in ["$.price", "$.price", "$.price", "$.name"] {
            let entry = CorpusEntry {
                method: "GET",
                path: "/bookings/7",
                headers: &headers,
                body: "",
                body_encoding: "text",
                route: "/bookings/{id}",
                field,
                kind: "value_changed",
                request_id: "r-1",
                seen_at: "2026-01-01T00:00:00Z",
            };
            corpus.append(0, DiffKind::ValueChanged, &entry).unwrap();
        }
        let text = std::fs::read_to_string(corpus.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["method"], "GET");
        assert_eq!(lines[2]["field"], "$.name");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
