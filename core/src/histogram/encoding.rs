//! The wire form of a histogram: base64 (standard alphabet) of the HdrHistogram V2 deflate
//! encoding, the form HdrHistogram's own tools read and write.

use std::io::{self, Read};
use std::ops::{Deref, DerefMut};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use flate2::read::ZlibDecoder;
use hdrhistogram::serialization::{
    DeserializeError, Deserializer as HdrDeserializer, Serializer as _, V2DeflateSerializeError,
    V2DeflateSerializer,
};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::new_latency_histogram;

/// A histogram that serializes as one base64 string of its HdrHistogram V2 deflate encoding.
///
/// The string is what HdrHistogram's tools call a compressed histogram (it starts with `HISTF`),
/// so any of them can decode and merge it. Decoding checks the encoding before trusting any
/// length in it: a malformed string is a serde error, never a panic or a huge allocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EncodedHistogram(#[serde(with = "base64_v2")] pub Histogram<u64>);

impl Default for EncodedHistogram {
    /// An empty [`new_latency_histogram`].
    fn default() -> Self {
        Self(new_latency_histogram())
    }
}

impl From<Histogram<u64>> for EncodedHistogram {
    fn from(h: Histogram<u64>) -> Self {
        Self(h)
    }
}

impl Deref for EncodedHistogram {
    type Target = Histogram<u64>;

    fn deref(&self) -> &Histogram<u64> {
        &self.0
    }
}

impl DerefMut for EncodedHistogram {
    fn deref_mut(&mut self) -> &mut Histogram<u64> {
        &mut self.0
    }
}

/// `#[serde(with = ...)]` functions for a `Histogram<u64>` field stored as an encoded string.
pub(crate) mod base64_v2 {
    use std::fmt;

    use hdrhistogram::Histogram;
    use serde::{de, ser, Deserializer, Serializer};

    /// Writes `h` as a base64 V2 deflate string.
    pub(crate) fn serialize<S: Serializer>(h: &Histogram<u64>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::encode(h).map_err(ser::Error::custom)?)
    }

    /// Reads a histogram from a base64 V2 deflate string.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Histogram<u64>, D::Error> {
        d.deserialize_str(Base64Visitor)
    }

    struct Base64Visitor;

    impl de::Visitor<'_> for Base64Visitor {
        type Value = Histogram<u64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a base64 HdrHistogram V2 deflate string")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Histogram<u64>, E> {
            super::decode(text)
                .map_err(|e| E::custom(format_args!("invalid encoded histogram: {e}")))
        }
    }
}

/// First four bytes of a V2 deflate encoding.
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;

/// Bytes before the counts in a plain V2 encoding: cookie, payload length, normalizing offset,
/// significant digits, lowest and highest value, integer-to-double ratio.
const V2_HEADER_LEN: usize = 40;

/// Largest inflated encoding accepted. A 1 µs .. 1 h histogram at 3 digits takes under 256 KiB
/// even with every bucket counted.
const MAX_INFLATED_LEN: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
enum DecodeError {
    #[error("not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("not an HdrHistogram V2 deflate encoding")]
    Cookie,
    #[error("truncated")]
    Truncated,
    #[error("inflates to more than {MAX_INFLATED_LEN} bytes")]
    TooLarge,
    #[error("bad deflate stream: {0}")]
    Inflate(#[source] io::Error),
    #[error("{0}")]
    Histogram(#[from] DeserializeError),
}

fn encode(h: &Histogram<u64>) -> Result<String, V2DeflateSerializeError> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new().serialize(h, &mut bytes)?;
    Ok(STANDARD.encode(bytes))
}

fn decode(text: &str) -> Result<Histogram<u64>, DecodeError> {
    let bytes = STANDARD.decode(text)?;
    let (header, body) = bytes
        .split_first_chunk::<8>()
        .ok_or(DecodeError::Truncated)?;
    let (cookie, len) = header.split_at(4);
    if cookie != V2_DEFLATE_COOKIE.to_be_bytes() {
        return Err(DecodeError::Cookie);
    }
    let compressed = body.get(..be_u32(len)).ok_or(DecodeError::Truncated)?;

    let mut plain = Vec::new();
    ZlibDecoder::new(compressed)
        .take(MAX_INFLATED_LEN as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(DecodeError::Inflate)?;
    if plain.len() > MAX_INFLATED_LEN {
        return Err(DecodeError::TooLarge);
    }
    // hdrhistogram allocates the payload length it reads before reading the payload: make sure
    // the payload is really there first.
    let payload_len = plain.get(4..8).map(be_u32).ok_or(DecodeError::Truncated)?;
    if payload_len > plain.len().saturating_sub(V2_HEADER_LEN) {
        return Err(DecodeError::Truncated);
    }
    Ok(HdrDeserializer::new().deserialize(&mut plain.as_slice())?)
}

fn be_u32(bytes: &[u8]) -> usize {
    let mut word = [0; 4];
    word.copy_from_slice(bytes);
    u32::from_be_bytes(word) as usize
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::ZlibEncoder;
    use flate2::Compression;

    use super::*;
    use crate::histogram::record_saturating;

    fn sample() -> EncodedHistogram {
        let mut h = new_latency_histogram();
        for v in [0, 1, 7, 950, 12_345, 2_000_000, u64::MAX] {
            record_saturating(&mut h, v);
        }
        EncodedHistogram(h)
    }

    fn parse(json: &str) -> Result<EncodedHistogram, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn round_trips_through_json() {
        let h = sample();
        let json = serde_json::to_string(&h).unwrap();
        assert!(
            json.starts_with("\"HISTF"),
            "standard compressed form: {json}"
        );
        let back = parse(&json).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.high(), h.high());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }

    #[test]
    fn bad_base64_is_an_error() {
        let err = parse("\"not base64!\"").unwrap_err();
        assert!(err.to_string().contains("not base64"), "{err}");
    }

    #[test]
    fn wrong_type_is_an_error() {
        let err = parse("42").unwrap_err();
        assert!(err.to_string().contains("base64 HdrHistogram"), "{err}");
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        let bytes = STANDARD.decode(encode(&sample()).unwrap()).unwrap();
        for cut in [0, 3, 8, 20, bytes.len() - 1] {
            let text = STANDARD.encode(&bytes[..cut]);
            assert!(decode(&text).is_err(), "cut at {cut}");
        }
        assert!(matches!(
            decode(&STANDARD.encode(b"HISTFAAA garbage")),
            Err(DecodeError::Cookie)
        ));
    }

    #[test]
    fn forged_payload_length_is_refused_before_allocating() {
        const V2_COOKIE: u32 = 0x1c84_9313;
        let mut plain = V2_COOKIE.to_be_bytes().to_vec();
        plain.extend_from_slice(&u32::MAX.to_be_bytes());
        plain.extend_from_slice(&[0; V2_HEADER_LEN - 8]);
        let mut deflate = ZlibEncoder::new(Vec::new(), Compression::default());
        deflate.write_all(&plain).unwrap();
        let compressed = deflate.finish().unwrap();

        let mut bytes = V2_DEFLATE_COOKIE.to_be_bytes().to_vec();
        bytes.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&compressed);
        assert!(matches!(
            decode(&STANDARD.encode(bytes)),
            Err(DecodeError::Truncated)
        ));
    }
}
