//! Where the lines go: standard output, or a file appended to in one write a batch, rotated by
//! size (`access.log` → `access.log.1` → … → `access.log.N`, the oldest removed) and reopened
//! when logrotate moved it away or removed it (its `create` style), or noticed truncated in
//! place (its `copytruncate` style: the file is opened for appending, so writes go on at the
//! new end).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::config::AccessLogConfig;

/// The access log's destination.
pub enum Sink {
    /// The proxy's standard output.
    Stdout,
    /// A file rotated by size.
    File(RotatingFile),
}

impl Sink {
    /// The destination `config` names, its file opened (created 0640 when missing).
    pub fn open(config: &AccessLogConfig) -> io::Result<Sink> {
        match config.file() {
            None => Ok(Sink::Stdout),
            Some(path) => {
                RotatingFile::open(path, config.max_file_bytes.0, config.keep).map(Sink::File)
            }
        }
    }

    /// Appends a batch of whole lines in one write (after rotating, when it would not fit).
    pub fn write(&mut self, batch: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(batch)?;
                out.flush()
            }
            Sink::File(file) => file.write(batch),
        }
    }

    /// Reopens the file when it is no longer at its path, and notices when it was truncated.
    pub fn check(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout => Ok(()),
            Sink::File(file) => file.check(),
        }
    }

    /// Syncs the file to disk (at exit).
    pub fn close(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout => io::stdout().lock().flush(),
            Sink::File(file) => file.sync(),
        }
    }
}

/// A file appended to, rotated past a size.
pub struct RotatingFile {
    path: PathBuf,
    /// `None` after a failed write or reopen: the next write opens it again.
    file: Option<File>,
    /// Bytes in the file as far as this process knows.
    size: u64,
    max_bytes: u64,
    keep: usize,
}

impl RotatingFile {
    /// Opens `path` for appending.
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> io::Result<RotatingFile> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file: Some(file),
            size,
            max_bytes,
            keep,
        })
    }

    fn write(&mut self, batch: &[u8]) -> io::Result<()> {
        let full =
            |file: &RotatingFile| file.size > 0 && file.size + batch.len() as u64 > file.max_bytes;
        if full(self) {
            // Another process writing the same file (the other one of an upgrade's overlap)
            // may have rotated it already: then this one follows it to the new file rather
            // than rotate again.
            self.check()?;
            if full(self) {
                self.rotate()?;
            }
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => self.reopen()?,
        };
        match file.write_all(batch) {
            Ok(()) => {
                self.size += batch.len() as u64;
                Ok(())
            }
            Err(e) => {
                // What part of the batch was written is not known: the next write starts
                // from a file opened again.
                self.file = None;
                Err(e)
            }
        }
    }

    /// `path.N-1` → `path.N`, …, `path` → `path.1` (a rename over `path.N` removes the
    /// oldest), then a new, empty `path`.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        for n in (1..self.keep).rev() {
            rename_if_present(&self.numbered(n), &self.numbered(n + 1))?;
        }
        rename_if_present(&self.path, &self.numbered(1))?;
        self.reopen()?;
        Ok(())
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn reopen(&mut self) -> io::Result<&mut File> {
        let file = open_append(&self.path)?;
        self.size = file.metadata()?.len();
        Ok(self.file.insert(file))
    }

    fn check(&mut self) -> io::Result<()> {
        let Some(file) = &self.file else {
            self.reopen()?;
            return Ok(());
        };
        let open = file.metadata()?;
        let moved = match std::fs::metadata(&self.path) {
            Ok(at_path) => (at_path.dev(), at_path.ino()) != (open.dev(), open.ino()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => return Err(e),
        };
        if moved {
            self.reopen()?;
        } else if open.len() < self.size {
            self.size = open.len();
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        match &self.file {
            Some(file) => file.sync_data(),
            None => Ok(()),
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

fn rename_if_present(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn rotation_keeps_the_newest_files_and_removes_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut file = RotatingFile::open(&path, 100, 2).unwrap();
        for n in 0..10u8 {
            file.write(&[b'0' + n; 60]).unwrap();
        }
        assert_eq!(
            names(dir.path()),
            ["access.log", "access.log.1", "access.log.2"]
        );
        assert_eq!(std::fs::read(&path).unwrap(), [b'9'; 60]);
        assert_eq!(
            std::fs::read(dir.path().join("access.log.1")).unwrap(),
            [b'8'; 60]
        );
        assert_eq!(
            std::fs::read(dir.path().join("access.log.2")).unwrap(),
            [b'7'; 60]
        );
    }

    #[test]
    fn two_processes_writing_one_file_rotate_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut old = RotatingFile::open(&path, 100, 3).unwrap();
        let mut new = RotatingFile::open(&path, 100, 3).unwrap();
        old.write(&[b'a'; 80]).unwrap();
        new.write(&[b'b'; 80]).unwrap();
        old.write(&[b'c'; 30]).unwrap();
        new.write(&[b'd'; 30]).unwrap();
        assert_eq!(names(dir.path()), ["access.log", "access.log.1"]);
        assert_eq!(
            std::fs::read(dir.path().join("access.log.1"))
                .unwrap()
                .len(),
            160
        );
        let newest = std::fs::read(&path).unwrap();
        assert_eq!(newest, [[b'c'; 30], [b'd'; 30]].concat());
    }

    #[test]
    fn a_file_moved_away_or_truncated_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut file = RotatingFile::open(&path, 1000, 3).unwrap();
        file.write(b"one\n").unwrap();
        // logrotate's `create`: moved away, then the writer is to start a new file.
        std::fs::rename(&path, dir.path().join("access.log-old")).unwrap();
        file.check().unwrap();
        file.write(b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("access.log-old")).unwrap(),
            "one\n"
        );
        // `copytruncate`: emptied in place; appending goes on from its new end.
        File::create(&path).unwrap();
        file.check().unwrap();
        assert_eq!(file.size, 0);
        file.write(b"three\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
    }
}
