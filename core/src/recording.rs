//! `twinpeak.recording/v1`: live requests the proxy recorded, to be replayed by the load harness
//! or turned into a scenario.
//!
//! A recording is a directory of *segments*, `rec-<first-ms>-<seq>.jsonl.gz`. A segment is a
//! sequence of gzip members (RFC 1952 allows several in one file; `zcat` reads them all), each
//! holding whole JSON Lines, one [`RecordedExchange`] per line. The proxy writes each member in a
//! single `write`, so a crash leaves at most a torn last member, which [`read_segment`] skips: the
//! records before it are read, the torn one is reported. Segments sort by name in the order they
//! were written. Beside them, [`MANIFEST_FILE`] says what was recorded from where
//! ([`RecordingManifest`]), rewritten atomically whenever that changes.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::bufread::GzDecoder;
use flate2::write::DeflateEncoder;
use flate2::{Compression, Crc};
use serde::{Deserialize, Serialize};

/// Schema tag of a recording, in its manifest.
pub const RECORDING_SCHEMA: &str = "twinpeak.recording/v1";

/// File name of a recording's manifest.
pub const MANIFEST_FILE: &str = "recording.json";

/// What a recording directory holds and where it was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingManifest {
    /// Always [`RECORDING_SCHEMA`].
    pub schema: String,
    /// The primary the recorded requests went to (`http://host:port`): a replay aimed at it
    /// needs an explicit confirmation.
    pub primary: String,
    /// When recording (last) started (RFC 3339).
    pub started_at: String,
    /// Share of requests recorded, 0..=100.
    pub percent: f64,
    /// Whether the primary's answers are recorded.
    pub answers: bool,
}

impl RecordingManifest {
    /// Reads `dir`'s manifest; `None` when it has none (a directory of copied segments).
    pub fn read(dir: &Path) -> io::Result<Option<RecordingManifest>> {
        match std::fs::read(dir.join(MANIFEST_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// File name prefix of a segment.
pub const SEGMENT_PREFIX: &str = "rec-";

/// File name suffix of a segment.
pub const SEGMENT_SUFFIX: &str = ".jsonl.gz";

/// `body_encoding` of a body kept as UTF-8 text.
pub const BODY_TEXT: &str = "text";
/// `body_encoding` of a body kept as standard base64.
pub const BODY_BASE64: &str = "base64";
/// `body_encoding` of a body withheld because it could not be redacted; `body` says why.
pub const BODY_WITHHELD: &str = "withheld";

/// One recorded request, and the primary's answer when answers are recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedExchange {
    /// When the request arrived at the proxy, in microseconds since the Unix epoch.
    pub at_us: u64,
    /// The request id the upstreams saw (`x-request-id`), when there was one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_id: String,
    /// The route template the request matched (`other` when none).
    #[serde(default)]
    pub route: String,
    /// Request method.
    pub method: String,
    /// Path and query as the client sent them (secret query values redacted).
    pub path: String,
    /// Request headers in arrival order (secrets redacted to `[redacted]`).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The request body.
    #[serde(default)]
    pub body: RecordedBody,
    /// The primary's answer, when the recording keeps answers and one came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<RecordedResponse>,
}

/// A body as recorded: up to a cap, as text or base64, or withheld.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedBody {
    /// The body, encoded as `encoding` says (empty for no body).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data: String,
    /// [`BODY_TEXT`], [`BODY_BASE64`] or [`BODY_WITHHELD`].
    #[serde(default = "text")]
    pub encoding: String,
    /// Whole length of the body as it passed, when more than was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_from: Option<u64>,
}

fn text() -> String {
    BODY_TEXT.into()
}

impl Default for RecordedBody {
    /// No body.
    fn default() -> Self {
        RecordedBody {
            data: String::new(),
            encoding: text(),
            truncated_from: None,
        }
    }
}

impl RecordedBody {
    /// The body's bytes, when it was kept whole (not withheld, not truncated).
    pub fn bytes(&self) -> Option<Vec<u8>> {
        use base64::Engine;
        if self.truncated_from.is_some() {
            return None;
        }
        match self.encoding.as_str() {
            BODY_TEXT => Some(self.data.clone().into_bytes()),
            BODY_BASE64 => base64::engine::general_purpose::STANDARD
                .decode(self.data.as_bytes())
                .ok(),
            _ => None,
        }
    }
}

/// The primary's answer to a recorded request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedResponse {
    /// Status code.
    pub status: u16,
    /// Headers (secrets redacted).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body, up to the recording's answer cap.
    #[serde(default)]
    pub body: RecordedBody,
    /// From the request's arrival to the end of the answer, in microseconds.
    pub latency_us: u64,
}

/// The name of segment `seq` whose first record arrived at `first_ms` (Unix milliseconds):
/// zero-padded so that names sort in writing order.
pub fn segment_name(first_ms: u64, seq: u64) -> String {
    format!("{SEGMENT_PREFIX}{first_ms:015}-{seq:06}{SEGMENT_SUFFIX}")
}

/// Whether a file name is a segment's.
pub fn is_segment_name(name: &str) -> bool {
    name.starts_with(SEGMENT_PREFIX) && name.ends_with(SEGMENT_SUFFIX)
}

/// The segments of a recording directory, in writing order.
pub fn list_segments(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_str().is_some_and(is_segment_name))
        .map(|entry| entry.path())
        .collect();
    segments.sort();
    Ok(segments)
}

/// One gzip member holding `records` as JSON Lines: what the proxy appends to a segment in one
/// write.
pub fn encode_member(records: &[RecordedExchange]) -> io::Result<Vec<u8>> {
    // The lines are written whole first, then compressed in one call: serde_json writes a
    // record in many small pieces, and each would be a call into the compressor.
    let mut lines = Vec::new();
    for record in records {
        serde_json::to_writer(&mut lines, record)?;
        lines.push(b'\n');
    }
    encode_lines([lines.as_slice()])
}

/// One gzip member of lines already written, each a record's JSON ending in a newline, in
/// the order given: what [`encode_member`] makes of the records the lines were written from.
pub fn encode_lines<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> io::Result<Vec<u8>> {
    MemberEncoder::new().encode(lines)
}

/// Makes gzip members one after another with one compressor, reset between members instead
/// of made afresh: making one allocates and clears its tables, which costs more than
/// compressing the few dozen records a member holds.
pub struct MemberEncoder {
    deflate: DeflateEncoder<Vec<u8>>,
}

impl Default for MemberEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl MemberEncoder {
    /// The header of every member (RFC 1952): no name, no time, fastest compression, unknown
    /// system.
    const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 0xff];

    /// An encoder at gzip's fastest level.
    pub fn new() -> Self {
        MemberEncoder {
            deflate: DeflateEncoder::new(Self::HEADER.to_vec(), Compression::fast()),
        }
    }

    /// One gzip member of `lines`, in the order given.
    pub fn encode<'a>(&mut self, lines: impl IntoIterator<Item = &'a [u8]>) -> io::Result<Vec<u8>> {
        let mut crc = Crc::new();
        let written = lines.into_iter().try_for_each(|line| {
            crc.update(line);
            self.deflate.write_all(line)
        });
        // Resetting finishes the member's compressed data, hands it back, and starts the next
        // member after its header.
        let finished = self.deflate.reset(Self::HEADER.to_vec());
        written?;
        let mut member = finished?;
        member.extend_from_slice(&crc.sum().to_le_bytes());
        member.extend_from_slice(&crc.amount().to_le_bytes());
        Ok(member)
    }
}

/// What reading a segment found.
#[derive(Debug, Default)]
pub struct SegmentContents {
    /// The whole records, in order.
    pub records: Vec<RecordedExchange>,
    /// Why reading stopped before the end of the file (a torn last member: a write cut short by
    /// a crash), or `None` when the whole file was read.
    pub torn: Option<String>,
}

/// Why a segment cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The segment.
        path: PathBuf,
        /// What the system reported.
        #[source]
        source: io::Error,
    },
    /// A whole line is not a recorded exchange.
    #[error("{}: record {record}: {message}", path.display())]
    Record {
        /// The segment.
        path: PathBuf,
        /// The record's number in the segment, from 1.
        record: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// Reads a segment's bytes: every gzip member in turn, every whole line of them. A member cut
/// short ends the reading with [`SegmentContents::torn`] set; the records before it are kept.
pub fn read_segment_bytes(path: &Path, bytes: &[u8]) -> Result<SegmentContents, SegmentError> {
    let mut contents = SegmentContents::default();
    let mut rest = bytes;
    let mut text = Vec::new();
    while !rest.is_empty() {
        let mut decoder = GzDecoder::new(rest);
        let mut member = Vec::new();
        if let Err(e) = decoder.read_to_end(&mut member) {
            // Keep the whole lines a torn member did give.
            let whole = member
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            text.extend_from_slice(&member[..whole]);
            contents.torn = Some(format!(
                "{}: the last {} bytes are a torn write ({e}); read up to the last whole record",
                path.display(),
                rest.len()
            ));
            break;
        }
        let consumed = rest.len() - decoder.into_inner().len();
        text.extend_from_slice(&member);
        if consumed == 0 {
            break;
        }
        rest = &rest[consumed..];
    }
    for (index, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        let record = serde_json::from_slice(line).map_err(|e| SegmentError::Record {
            path: path.to_path_buf(),
            record: index + 1,
            message: e.to_string(),
        })?;
        contents.records.push(record);
    }
    Ok(contents)
}

/// Reads a segment file; see [`read_segment_bytes`].
pub fn read_segment(path: &Path) -> Result<SegmentContents, SegmentError> {
    let bytes = std::fs::read(path).map_err(|source| SegmentError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    read_segment_bytes(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(n: u64) -> RecordedExchange {
        RecordedExchange {
            at_us: 1_700_000_000_000_000 + n * 10_000,
            request_id: format!("id-{n}"),
            route: "/bookings/{id}".into(),
            method: "GET".into(),
            path: format!("/bookings/{n}"),
            headers: vec![("accept".into(), "application/json".into())],
            body: RecordedBody::default(),
            response: Some(RecordedResponse {
                status: 200,
                headers: vec![],
                body: RecordedBody {
                    data: format!("{{\"id\":{n}}}"),
                    encoding: BODY_TEXT.into(),
                    truncated_from: None,
                },
                latency_us: 900,
            }),
        }
    }

    #[test]
    fn members_concatenate_into_one_segment() {
        let mut file = encode_member(&[exchange(1), exchange(2)]).unwrap();
        file.extend(encode_member(&[exchange(3)]).unwrap());
        let read = read_segment_bytes(Path::new("s"), &file).unwrap();
        assert_eq!(read.records, vec![exchange(1), exchange(2), exchange(3)]);
        assert!(read.torn.is_none());
    }

    #[test]
    fn a_torn_last_member_is_read_up_to_the_last_whole_record() {
        let mut file = encode_member(&[exchange(1), exchange(2)]).unwrap();
        let whole = file.len();
        let big: Vec<_> = (3..200).map(exchange).collect();
        file.extend(encode_member(&big).unwrap());
        for cut in [whole + 5, whole + (file.len() - whole) / 2, file.len() - 3] {
            let read = read_segment_bytes(Path::new("seg"), &file[..cut]).unwrap();
            assert!(read.records.len() >= 2, "cut at {cut}");
            assert_eq!(read.records[..2], [exchange(1), exchange(2)]);
            assert!(read.records.len() <= 199, "cut at {cut}");
            assert!(read.torn.unwrap().starts_with("seg: the last"));
        }
    }

    #[test]
    fn members_of_one_reused_encoder_are_each_whole_gzip() {
        let mut encoder = MemberEncoder::new();
        let lines = |from: u64, to: u64| -> Vec<u8> {
            (from..to)
                .flat_map(|n| {
                    let mut line = serde_json::to_vec(&exchange(n)).unwrap();
                    line.push(b'\n');
                    line
                })
                .collect()
        };
        let (first, second) = (lines(1, 40), lines(40, 41));
        let mut file = encoder.encode([first.as_slice()]).unwrap();
        let second_member = encoder.encode([&second[..10], &second[10..]]).unwrap();
        // Each member alone is a whole gzip stream, as a standard reader takes it.
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(second_member.as_slice())
            .read_to_end(&mut text)
            .unwrap();
        assert_eq!(text, second);
        file.extend(second_member);
        let read = read_segment_bytes(Path::new("s"), &file).unwrap();
        assert_eq!(read.records, (1..41).map(exchange).collect::<Vec<_>>());
        assert!(read.torn.is_none());
    }

    #[test]
    fn segment_names_sort_in_writing_order() {
        let a = segment_name(999, 7);
        let b = segment_name(1_000, 8);
        assert!(a < b && is_segment_name(&a) && !is_segment_name("x.jsonl"));
    }

    #[test]
    fn a_truncated_or_withheld_body_has_no_bytes() {
        let mut body = RecordedBody {
            data: "AAE=".into(),
            encoding: BODY_BASE64.into(),
            truncated_from: None,
        };
        assert_eq!(body.bytes(), Some(vec![0, 1]));
        body.truncated_from = Some(9);
        assert_eq!(body.bytes(), None);
    }
}
