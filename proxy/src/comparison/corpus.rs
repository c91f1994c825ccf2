//! The corpus: diverging requests appended as JSON Lines (redacted), a few per distinct
//! (route, field, kind), so they can be replayed against the next build.
//!
//! Crash-safe and bounded: each line goes out in one `write`, and a short write is cut off
//! again, so the file only ever holds whole lines (a crash mid-write can leave a torn last
//! line, which opening cuts off and replay skips). The file is private (mode 0600), synced
//! every [`SYNC_EVERY_LINES`] lines or once [`SYNC_EVERY`] has passed, and rotated by size:
//! `diverging.jsonl` becomes `diverging.1.jsonl` and so on, and the oldest beyond the limit is
//! deleted, so the corpus never holds more than `(max_files + 1) × max_bytes`. Whatever is
//! dropped is counted ([`CorpusDrops`]).

use std::collections::HashMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::diff::DiffKind;

/// Most distinct (route, field, kind) keys the corpus tracks; past it new keys are not written.
const MAX_KEYS: usize = 10_000;

/// Lines written between two syncs at most.
pub const SYNC_EVERY_LINES: usize = 64;

/// Longest time unsynced lines wait for a sync, as long as pairs keep being compared.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Name of the file being written; rotated files are `diverging.N.jsonl`, 1 the newest.
pub const CORPUS_FILE: &str = "diverging.jsonl";

/// One line of the corpus: enough to send the request again, and why it was kept.
#[derive(Debug, Serialize)]
pub struct CorpusEntry<'a> {
    /// Request method.
    pub method: &'a str,
    /// Path and query (secret query values redacted).
    pub path: &'a str,
    /// Request headers (secrets redacted), repeated names joined with ", ".
    pub headers: &'a std::collections::BTreeMap<String, String>,
    /// Request body as text, base64, or why it was withheld (see `body_encoding`).
    pub body: &'a str,
    /// `"text"`, `"base64"` or `"withheld"`.
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

/// How much the corpus keeps.
#[derive(Debug, Clone, Copy)]
pub struct CorpusLimits {
    /// Lines per (route, field, kind).
    pub per_key: usize,
    /// Size at which the file is rotated; a line longer than this is dropped.
    pub max_bytes: u64,
    /// Rotated files kept.
    pub max_files: usize,
}

/// What the corpus dropped, so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CorpusDrops {
    /// Lines longer than the rotation size.
    pub oversized_lines: u64,
    /// Lines the disk did not take (an error, or a short write that was cut off again).
    pub failed_lines: u64,
    /// Rotated files deleted to stay within the limit.
    pub deleted_files: u64,
    /// Bytes in those files.
    pub deleted_bytes: u64,
    /// Bytes of a torn last line (from a crash mid-write) cut off when the file was opened.
    pub torn_bytes: u64,
}

/// An append-only JSON Lines file with a cap per key, rotated by size.
pub struct Corpus {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    size: u64,
    written: HashMap<(usize, String, DiffKind), usize>,
    limits: CorpusLimits,
    unsynced: usize,
    last_sync: Instant,
    drops: CorpusDrops,
}

impl Corpus {
    /// Opens (creating as needed, private to this user) `dir/diverging.jsonl` for appending; a
    /// torn last line left by a crash is cut off.
    pub fn open(dir: &Path, limits: CorpusLimits) -> io::Result<Corpus> {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let path = dir.join(CORPUS_FILE);
        let (file, size, torn) = open_whole(&path)?;
        if torn > 0 {
            log::warn!(
                "corpus {}: cut off a torn last line of {torn} bytes",
                path.display()
            );
        }
        Ok(Corpus {
            dir: dir.to_path_buf(),
            path,
            file,
            size,
            written: HashMap::new(),
            limits,
            unsynced: 0,
            last_sync: Instant::now(),
            drops: CorpusDrops {
                torn_bytes: torn,
                ..CorpusDrops::default()
            },
        })
    }

    /// Where the corpus is written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What was dropped so far.
    pub fn drops(&self) -> CorpusDrops {
        self.drops
    }

    /// Whether an entry for this key would still be written.
    pub fn wants(&self, route: usize, field: &str, kind: DiffKind) -> bool {
        match self.written.get(&(route, field.to_string(), kind)) {
            Some(n) => *n < self.limits.per_key,
            None => self.written.len() < MAX_KEYS,
        }
    }

    /// Appends an entry (if its key still wants one) as one whole line, rotating first when
    /// the line would take the file past its size.
    pub fn append(
        &mut self,
        route: usize,
        kind: DiffKind,
        entry: &CorpusEntry<'_>,
    ) -> io::Result<()> {
        if !self.wants(route, entry.field, kind) {
            return Ok(());
        }
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        let length = line.len() as u64;
        if length > self.limits.max_bytes {
            self.drops.oversized_lines += 1;
            return Err(io::Error::other(format!(
                "a line of {length} bytes is over diff.corpus_max_bytes ({} bytes); dropped",
                self.limits.max_bytes
            )));
        }
        if self.size > 0 && self.size + length > self.limits.max_bytes {
            self.rotate()?;
        }
        self.write_line(&line)?;
        *self
            .written
            .entry((route, entry.field.to_string(), kind))
            .or_insert(0) += 1;
        self.unsynced += 1;
        if self.unsynced >= SYNC_EVERY_LINES {
            self.sync()?;
        } else {
            self.sync_if_due()?;
        }
        Ok(())
    }

    /// Syncs lines written more than [`SYNC_EVERY`] after the last sync.
    pub fn sync_if_due(&mut self) -> io::Result<()> {
        if self.unsynced > 0 && self.last_sync.elapsed() >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.unsynced = 0;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// One `write` of the whole line; anything short of it is cut off again.
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let result = match self.file.write(line) {
            Ok(n) if n == line.len() => Ok(()),
            Ok(n) => Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("the disk took {n} of {} bytes", line.len()),
            )),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                self.size += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.drops.failed_lines += 1;
                self.file.set_len(self.size)?;
                Err(e)
            }
        }
    }

    /// `diverging.N.jsonl` for `n` ≥ 1.
    fn rotated(&self, n: usize) -> PathBuf {
        self.dir.join(format!("diverging.{n}.jsonl"))
    }

    /// Moves every file one place older, deleting the oldest beyond the limit, and starts a
    /// new file.
    fn rotate(&mut self) -> io::Result<()> {
        self.sync()?;
        let oldest = match self.limits.max_files {
            0 => self.path.clone(),
            n => self.rotated(n),
        };
        if let Ok(meta) = std::fs::metadata(&oldest) {
            std::fs::remove_file(&oldest)?;
            self.drops.deleted_files += 1;
            self.drops.deleted_bytes += meta.len();
            log::info!(
                "corpus: deleted {} ({} bytes) to keep at most {} rotated files",
                oldest.display(),
                meta.len(),
                self.limits.max_files
            );
        }
        for n in (1..self.limits.max_files).rev() {
            let from = self.rotated(n);
            if from.exists() {
                std::fs::rename(&from, self.rotated(n + 1))?;
            }
        }
        if self.limits.max_files > 0 {
            std::fs::rename(&self.path, self.rotated(1))?;
        }
        File::open(&self.dir)?.sync_all()?;
        let (file, size, _) = open_whole(&self.path)?;
        self.file = file;
        self.size = size;
        Ok(())
    }
}

impl Drop for Corpus {
    fn drop(&mut self) {
        let _ = self.file.sync_data();
    }
}

/// Opens `path` for appending with mode 0600 (also when it exists), cutting off a torn last
/// line; returns the file, its size and the bytes cut.
fn open_whole(path: &Path) -> io::Result<(File, u64, u64)> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    let size = file.metadata()?.len();
    let whole = whole_lines_length(&mut file, size)?;
    if whole < size {
        file.set_len(whole)?;
        file.sync_data()?;
    }
    Ok((file, whole, size - whole))
}

/// The length of the file up to and including its last newline.
fn whole_lines_length(file: &mut File, size: u64) -> io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = size;
    let mut buffer = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buffer[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system's temporary one, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("twinpeak-corpus-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn limits(per_key: usize, max_bytes: u64, max_files: usize) -> CorpusLimits {
        CorpusLimits {
            per_key,
            max_bytes,
            max_files,
        }
    }

    fn append(corpus: &mut Corpus, field: &str, body: &str) -> io::Result<()> {
        let headers = BTreeMap::from([("accept".to_string(), "application/json".to_string())]);
        let entry = CorpusEntry {
            method: "GET",
            path: "/bookings/7",
            headers: &headers,
            body,
            body_encoding: "text",
            route: "/bookings/{id}",
            field,
            kind: "value_changed",
            request_id: "r-1",
            seen_at: "2026-01-01T00:00:00Z",
        };
        corpus.append(0, DiffKind::ValueChanged, &entry)
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn appends_whole_lines_privately_and_caps_each_key() {
        let dir = TempDir::new();
        let mut corpus = Corpus::open(&dir.path().join("c"), limits(2, 1 << 20, 2)).unwrap();
        for field in ["$.price", "$.price", "$.price", "$.name"] {
            append(&mut corpus, field, "").unwrap();
        }
        let lines = lines(corpus.path());
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["method"], "GET");
        assert_eq!(lines[2]["field"], "$.name");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(corpus.path()), 0o600);
        assert_eq!(mode(&dir.path().join("c")), 0o700);
    }

    #[test]
    fn rotation_keeps_the_total_size_bounded_and_counts_what_it_deletes() {
        let dir = TempDir::new();
        let max_bytes = 2_000;
        let mut corpus = Corpus::open(dir.path(), limits(1, max_bytes, 2)).unwrap();
        let body = "x".repeat(300);
        for i in 0..40 {
            append(&mut corpus, &format!("$.f{i}"), &body).unwrap();
        }
        let mut total = 0;
        let mut files: Vec<String> = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let entry = entry.unwrap();
            let size = entry.metadata().unwrap().len();
            assert!(size <= max_bytes, "{size}");
            total += size;
            files.push(entry.file_name().to_string_lossy().into_owned());
            lines(&entry.path());
        }
        files.sort();
        assert_eq!(
            files,
            ["diverging.1.jsonl", "diverging.2.jsonl", "diverging.jsonl"]
        );
        assert!(total <= 3 * max_bytes);
        let drops = corpus.drops();
        assert!(drops.deleted_files >= 5, "{drops:?}");
        assert!(drops.deleted_bytes > 0);
        // The newest line is in the current file, the one before in diverging.1.jsonl.
        assert_eq!(lines(corpus.path()).last().unwrap()["field"], "$.f39");
        // A line that no file could hold is dropped and counted.
        assert!(append(&mut corpus, "$.big", &"y".repeat(4_000)).is_err());
        assert_eq!(corpus.drops().oversized_lines, 1);
    }

    #[test]
    fn a_torn_last_line_is_cut_off_when_opening() {
        let dir = TempDir::new();
        let path = dir.path().join(CORPUS_FILE);
        std::fs::write(&path, "{\"path\":\"/a\"}\n{\"path\":\"/b\",\"hea").unwrap();
        let mut corpus = Corpus::open(dir.path(), limits(1, 1 << 20, 1)).unwrap();
        assert_eq!(corpus.drops().torn_bytes, 17);
        append(&mut corpus, "$.price", "").unwrap();
        let lines = lines(&path);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["path"], "/a");
        assert_eq!(lines[1]["field"], "$.price");
    }
}
