//! The `access_log:` section: where the access log goes, how big its files grow and how many
//! are kept, and how much may wait for the writer.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::InvalidKey;
use crate::units::Bytes;

/// Smallest `access_log.max_file_bytes`: a file holds at least a few batches.
pub const MIN_FILE_BYTES: u64 = 64 << 10;

/// Most rotated files `access_log.keep` may ask for.
pub const MAX_KEEP: usize = 1000;

/// Smallest `access_log.max_queued_bytes`: room for a few of the largest records.
pub const MIN_QUEUED_BYTES: u64 = 64 << 10;

/// What `path: "-"` means: the proxy's standard output.
pub const STDOUT: &str = "-";

/// A JSON Lines access log, one line per client request, written off the request path.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// The file written (created 0640 when missing, appended to when present), or `-` for
    /// standard output (never rotated).
    pub path: PathBuf,
    /// Size past which the file is rotated: `access.log` becomes `access.log.1`, and so on.
    #[serde(default = "default_file_bytes")]
    pub max_file_bytes: Bytes,
    /// Rotated files kept (`access.log.1` … `access.log.N`); the oldest is removed.
    #[serde(default = "default_keep")]
    pub keep: usize,
    /// Records waiting for the writer; a record past it is dropped and counted.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Bytes of records waiting for the writer; a record that would pass it is dropped and
    /// counted.
    #[serde(default = "default_queued_bytes")]
    pub max_queued_bytes: Bytes,
}

impl AccessLogConfig {
    /// The file written, or `None` for standard output.
    pub fn file(&self) -> Option<&Path> {
        (self.path.as_os_str() != STDOUT).then_some(self.path.as_path())
    }

    /// Checks the section against itself.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        if self.path.as_os_str().is_empty() {
            return Err(InvalidKey::new(
                "access_log.path",
                "must name a file, or \"-\" for standard output",
            ));
        }
        if self.file().is_some_and(|f| f.file_name().is_none()) {
            return Err(InvalidKey::new(
                "access_log.path",
                format!("{} names a directory, not a file", self.path.display()),
            ));
        }
        if self.max_file_bytes.0 < MIN_FILE_BYTES {
            return Err(InvalidKey::new(
                "access_log.max_file_bytes",
                format!("must be at least {MIN_FILE_BYTES} bytes"),
            ));
        }
        if !(1..=MAX_KEEP).contains(&self.keep) {
            return Err(InvalidKey::new(
                "access_log.keep",
                format!("must be from 1 to {MAX_KEEP}, got {}", self.keep),
            ));
        }
        if self.queue == 0 {
            return Err(InvalidKey::new(
                "access_log.queue",
                "must be at least 1 (leave access_log out to log nothing)",
            ));
        }
        if self.max_queued_bytes.0 < MIN_QUEUED_BYTES {
            return Err(InvalidKey::new(
                "access_log.max_queued_bytes",
                format!("must be at least {MIN_QUEUED_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

fn default_file_bytes() -> Bytes {
    Bytes(100 << 20)
}
fn default_keep() -> usize {
    5
}
fn default_queue() -> usize {
    8192
}
fn default_queued_bytes() -> Bytes {
    Bytes(8 << 20)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    const MINIMAL: &str = "listen: 127.0.0.1:8080\nprimary: { url: http://127.0.0.1:9001 }\n";

    #[test]
    fn the_section_is_off_by_default_and_fills_its_defaults() {
        let parse = |text: &str| Config::parse(text, Path::new("proxy.yaml"));
        assert!(parse(MINIMAL).unwrap().access_log.is_none());
        let c = parse(&format!(
            "{MINIMAL}access_log: {{path: /var/log/tp/access.log}}\n"
        ))
        .unwrap();
        let section = c.access_log.as_ref().unwrap();
        assert_eq!(section.file(), Some(Path::new("/var/log/tp/access.log")));
        assert_eq!(section.max_file_bytes.0, 100 << 20);
        assert_eq!((section.keep, section.queue), (5, 8192));
        assert_eq!(section.max_queued_bytes.0, 8 << 20);
        let yaml = c.to_yaml();
        assert!(yaml.contains("max_file_bytes: 100.0 MiB"), "{yaml}");
        assert_eq!(parse(&yaml).unwrap().to_yaml(), yaml);
        let stdout = parse(&format!("{MINIMAL}access_log: {{path: \"-\"}}\n")).unwrap();
        assert_eq!(stdout.access_log.unwrap().file(), None);
    }

    #[test]
    fn its_errors_name_file_line_and_key() {
        for (section, line, key, says) in [
            (
                "access_log:\n  keep: 3\n",
                3,
                "access_log",
                "missing field `path`",
            ),
            (
                "access_log:\n  path: a.log\n  keep: 0\n",
                5,
                "access_log.keep",
                "from 1",
            ),
            (
                "access_log:\n  path: a.log\n  queue: 0\n",
                5,
                "access_log.queue",
                "at least 1",
            ),
            (
                "access_log:\n  path: a.log\n  max_file_bytes: 1KiB\n",
                5,
                "access_log.max_file_bytes",
                "at least",
            ),
            (
                "access_log:\n  path: a.log\n  max_queued_bytes: lots\n",
                5,
                "access_log.max_queued_bytes",
                "size",
            ),
            (
                "access_log:\n  path: a.log\n  rotate: daily\n",
                5,
                "access_log.rotate",
                "unknown field",
            ),
            (
                "access_log:\n  path: \"\"\n",
                4,
                "access_log.path",
                "must name a file",
            ),
        ] {
            let e =
                Config::parse(&format!("{MINIMAL}{section}"), Path::new("proxy.yaml")).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{e}");
            assert_eq!(e.line, Some(line), "{e}");
            assert!(e.message.contains(says), "{e}");
            assert!(
                e.to_string().starts_with(&format!("proxy.yaml:{line}:")),
                "{e}"
            );
        }
    }
}
