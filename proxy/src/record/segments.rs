//! The recording directory: the manifest, written whole (a temporary file renamed over it),
//! and the segments, appended one gzip member per write, rotated by size, never reopened
//! after a restart or a failed write (their end may be torn), and kept within the
//! directory's bound by deleting the oldest first.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use twinpeak_core::recording::{
    list_segments, segment_name, RecordingManifest, MANIFEST_FILE, SEGMENT_PREFIX,
};

/// Mode of the directory when it is made.
const DIR_MODE: u32 = 0o700;
/// Mode of every file written.
const FILE_MODE: u32 = 0o600;

/// What a segment write did besides appending.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Appended {
    /// Segments deleted to stay within the bound.
    pub deleted: u64,
    /// Bytes they held.
    pub deleted_bytes: u64,
}

/// The segment being written.
struct Current {
    file: File,
    len: u64,
}

/// The segments of one recording directory.
pub struct Segments {
    dir: PathBuf,
    max_file_bytes: u64,
    max_total_bytes: u64,
    /// Every segment, oldest first (the current one last), with its size.
    written: VecDeque<(PathBuf, u64)>,
    current: Option<Current>,
    next_seq: u64,
}

impl Segments {
    /// Opens `dir`, making it (mode 0700) when missing; the segments already there count
    /// toward the bound and are deleted first.
    pub fn open(dir: &Path, max_file_bytes: u64, max_total_bytes: u64) -> io::Result<Segments> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
        let mut written = VecDeque::new();
        let mut next_seq = 0;
        for path in list_segments(dir)? {
            let len = std::fs::metadata(&path)?.len();
            if let Some(seq) = sequence_of(&path) {
                next_seq = next_seq.max(seq + 1);
            }
            written.push_back((path, len));
        }
        Ok(Segments {
            dir: dir.to_path_buf(),
            max_file_bytes,
            max_total_bytes,
            written,
            current: None,
            next_seq,
        })
    }

    /// Writes the manifest whole: to a temporary file, synced, then renamed over the old one.
    pub fn write_manifest(&self, manifest: &RecordingManifest) -> io::Result<()> {
        // Named by process: during a binary upgrade the old and the new process share the
        // directory, and neither may rename the other's half-written file into place.
        let tmp = self
            .dir
            .join(format!("{MANIFEST_FILE}.{}.tmp", std::process::id()));
        let mut text = serde_json::to_vec_pretty(manifest)?;
        text.push(b'\n');
        let mut file = create_private(&tmp, false)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(MANIFEST_FILE))
    }

    /// Checks that the manifest could be written, by making and removing a file of its own
    /// beside it (an upgrading process writes the manifest only once it has the sockets).
    pub fn check_writable(&self) -> io::Result<()> {
        let probe = self
            .dir
            .join(format!("{MANIFEST_FILE}.{}.probe", std::process::id()));
        create_private(&probe, false)?;
        std::fs::remove_file(&probe)
    }

    /// Appends one member (`first_ms`: when its first record arrived) in one write, starting
    /// a new segment first when the current one would pass `max_file_bytes`, and deleting the
    /// oldest segments the bound cannot hold beside it.
    pub fn append(&mut self, member: &[u8], first_ms: u64) -> io::Result<Appended> {
        let len = member.len() as u64;
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.len > 0 && c.len + len > self.max_file_bytes)
        {
            self.close()?;
        }
        if self.current.is_none() {
            let path = self.dir.join(segment_name(first_ms, self.next_seq));
            self.next_seq += 1;
            let file = create_private(&path, true)?;
            self.written.push_back((path, 0));
            self.current = Some(Current { file, len: 0 });
        }
        let appended = self.keep_within(len)?;
        let current = self.current.as_mut().expect("a segment is open");
        if let Err(e) = current.file.write_all(member) {
            // What reached the file may end in a torn member: the next write starts anew.
            self.current = None;
            return Err(e);
        }
        current.len += len;
        if let Some(last) = self.written.back_mut() {
            last.1 = current.len;
        }
        Ok(appended)
    }

    /// Syncs the current segment to disk.
    pub fn sync(&mut self) -> io::Result<()> {
        match &self.current {
            Some(current) => current.file.sync_data(),
            None => Ok(()),
        }
    }

    /// Syncs and closes the current segment; the next write starts a new one.
    pub fn close(&mut self) -> io::Result<()> {
        let synced = self.sync();
        self.current = None;
        synced
    }

    /// Bytes the directory's segments hold (the current one's included).
    pub fn total_bytes(&self) -> u64 {
        self.written.iter().map(|(_, len)| len).sum()
    }

    /// Deletes the oldest segments, never the current one, until `incoming` more bytes fit.
    fn keep_within(&mut self, incoming: u64) -> io::Result<Appended> {
        let mut appended = Appended::default();
        let mut total = self.total_bytes();
        while total + incoming > self.max_total_bytes && self.written.len() > 1 {
            let (path, len) = self.written.pop_front().expect("more than one segment");
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    self.written.push_front((path, len));
                    return Err(e);
                }
            }
            total -= len;
            appended.deleted += 1;
            appended.deleted_bytes += len;
        }
        Ok(appended)
    }
}

/// A new file only its owner may read; `exclusive` refuses one that exists.
fn create_private(path: &Path, exclusive: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).mode(FILE_MODE);
    if exclusive {
        options.create_new(true).append(true);
    } else {
        options.create(true).truncate(true);
    }
    let file = options.open(path)?;
    // A file that existed keeps its mode on open: make sure of it.
    file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// The sequence number in a segment's name (`rec-<first-ms>-<seq>.jsonl.gz`).
fn sequence_of(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_prefix(SEGMENT_PREFIX)?.split('.').next()?;
    stem.rsplit('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn segments_rotate_by_size_and_the_oldest_go_first() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("rec");
        let mut segments = Segments::open(&dir, 100, 250).unwrap();
        assert_eq!(mode(&dir), DIR_MODE);
        let mut deleted = 0;
        for i in 0..20 {
            deleted += segments.append(&[b'x'; 40], 1_000 + i).unwrap().deleted;
            assert!(segments.total_bytes() <= 250, "{}", segments.total_bytes());
        }
        let names = list_segments(&dir).unwrap();
        // 40-byte members, two to a 100-byte segment: 800 bytes in 10 segments, 3 kept.
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(deleted, 7);
        for name in &names {
            assert_eq!(mode(name), FILE_MODE, "{}", name.display());
        }
        assert_eq!(sequence_of(&names[2]), Some(9));
        // Reopened, it starts a new segment after the last and counts the old ones.
        drop(segments);
        let mut again = Segments::open(&dir, 100, 250).unwrap();
        assert_eq!(again.total_bytes(), 240);
        let appended = again.append(&[b'y'; 40], 5_000).unwrap();
        assert_eq!(appended.deleted, 1);
        let names = list_segments(&dir).unwrap();
        assert_eq!(sequence_of(names.last().unwrap()), Some(10));
    }

    #[test]
    fn the_manifest_is_replaced_whole_and_private() {
        let tmp = tempfile::tempdir().unwrap();
        let segments = Segments::open(tmp.path(), 1 << 20, 4 << 20).unwrap();
        let mut manifest = RecordingManifest {
            schema: twinpeak_core::recording::RECORDING_SCHEMA.into(),
            primary: "http://127.0.0.1:1".into(),
            started_at: "2026-12-01T00:00:00Z".into(),
            percent: 100.0,
            answers: true,
        };
        segments.write_manifest(&manifest).unwrap();
        manifest.percent = 5.0;
        segments.write_manifest(&manifest).unwrap();
        let read = RecordingManifest::read(tmp.path()).unwrap().unwrap();
        assert_eq!(read, manifest);
        assert_eq!(mode(&tmp.path().join(MANIFEST_FILE)), FILE_MODE);
        let manifest_tmp = format!("recording.json.{}.tmp", std::process::id());
        assert!(!tmp.path().join(manifest_tmp).exists());
    }
}
