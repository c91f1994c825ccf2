//! Reading recordings the proxy made (`twinpeak.recording/v1`): a directory of segments with
//! its manifest, or single segment files. A torn last write is reported and the records before
//! it are kept.

use std::path::{Path, PathBuf};

use twinpeak_core::digest::hex_sha256;
use twinpeak_core::recording::{
    list_segments, read_segment_bytes, RecordedExchange, RecordingManifest,
};

use super::ReplayError;

/// What the recordings given to one replay hold.
#[derive(Debug, Default)]
pub struct Recordings {
    /// Every record, in arrival order (recordings made side by side interleave by time).
    pub records: Vec<RecordedExchange>,
    /// The manifests of the directories that had one.
    pub manifests: Vec<(PathBuf, RecordingManifest)>,
    /// Torn tails and other things worth a warning.
    pub warnings: Vec<String>,
    /// Segment files read.
    pub segments: usize,
    /// SHA-256 of the SHA-256s of every segment read, in order: names the replay in its run
    /// record.
    pub sha256: String,
}

/// Reads `inputs`, each a recording directory or a segment file.
pub fn read(inputs: &[PathBuf]) -> Result<Recordings, ReplayError> {
    let mut recordings = Recordings::default();
    let mut digest = String::new();
    for input in inputs {
        let segments = if input.is_dir() {
            let manifest = RecordingManifest::read(input).map_err(|source| ReplayError::Read {
                path: input.join(twinpeak_core::recording::MANIFEST_FILE),
                source,
            })?;
            if let Some(manifest) = manifest {
                recordings.manifests.push((input.clone(), manifest));
            }
            list_segments(input).map_err(|source| ReplayError::Read {
                path: input.clone(),
                source,
            })?
        } else {
            vec![input.clone()]
        };
        if segments.is_empty() {
            return Err(ReplayError::Empty {
                path: input.clone(),
            });
        }
        for segment in segments {
            read_one(&segment, &mut recordings, &mut digest)?;
        }
    }
    // Stable: records of one instant keep the order they were written in.
    recordings.records.sort_by_key(|r| r.at_us);
    recordings.sha256 = hex_sha256(digest.as_bytes());
    Ok(recordings)
}

/// Adds one segment's records to `recordings`.
fn read_one(
    segment: &Path,
    recordings: &mut Recordings,
    digest: &mut String,
) -> Result<(), ReplayError> {
    let bytes = std::fs::read(segment).map_err(|source| ReplayError::Read {
        path: segment.to_path_buf(),
        source,
    })?;
    digest.push_str(&hex_sha256(&bytes));
    let contents =
        read_segment_bytes(segment, &bytes).map_err(|e| ReplayError::Segment(e.to_string()))?;
    if let Some(torn) = contents.torn {
        recordings.warnings.push(torn);
    }
    recordings.segments += 1;
    recordings.records.extend(contents.records);
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use twinpeak_core::recording::{encode_member, segment_name, RecordedBody};

    pub(crate) fn exchange(at_us: u64, method: &str, path: &str) -> RecordedExchange {
        RecordedExchange {
            at_us,
            request_id: String::new(),
            route: path.to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
            headers: vec![],
            body: RecordedBody::default(),
            response: None,
        }
    }

    #[test]
    fn segments_of_several_recordings_interleave_by_time_and_a_torn_tail_warns() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let first = encode_member(&[exchange(10, "GET", "/1"), exchange(30, "GET", "/3")]).unwrap();
        std::fs::write(a.join(segment_name(0, 0)), &first).unwrap();
        let mut torn = encode_member(&[exchange(20, "GET", "/2")]).unwrap();
        let second = encode_member(&[exchange(40, "GET", "/4")]).unwrap();
        torn.extend_from_slice(&second[..second.len() / 2]);
        std::fs::write(b.join(segment_name(0, 0)), &torn).unwrap();
        std::fs::write(b.join("notes.txt"), "not a segment").unwrap();
        let read = read(&[a.clone(), b.clone()]).unwrap();
        let paths: Vec<_> = read.records.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/1", "/2", "/3"]);
        assert_eq!(read.segments, 2);
        assert_eq!(read.warnings.len(), 1);
        assert!(
            read.warnings[0].contains("torn write"),
            "{:?}",
            read.warnings
        );
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(matches!(
            super::read(&[empty]),
            Err(ReplayError::Empty { .. })
        ));
    }
}
