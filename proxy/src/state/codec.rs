//! How a histogram is stored in a row: base64 of its HdrHistogram V2 encoding (the standard
//! form without deflate: a flush encodes and decodes every histogram it touches, and deflate
//! would take most of that time for a few kilobytes saved). Decoding checks every length before
//! trusting it, so a damaged row is an error, never a panic or a huge allocation.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use hdrhistogram::Histogram;
use twinpeak_core::SignedHistogram;

/// First four bytes of a V2 encoding.
const V2_COOKIE: [u8; 4] = 0x1c84_9313u32.to_be_bytes();

/// Bytes before the counts in a V2 encoding.
const V2_HEADER_LEN: usize = 40;

/// Encodes `h` as base64 V2.
pub(crate) fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut bytes)
        .expect("a u64 histogram always encodes");
    STANDARD.encode(bytes)
}

/// Decodes a base64 V2 histogram.
pub(crate) fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| format!("not base64: {e}"))?;
    if bytes.get(..4) != Some(&V2_COOKIE[..]) {
        return Err("not an HdrHistogram V2 encoding".into());
    }
    // hdrhistogram allocates the payload length it reads before reading the payload.
    let payload = bytes
        .get(4..8)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("truncated")?;
    if payload > bytes.len().saturating_sub(V2_HEADER_LEN) {
        return Err("truncated".into());
    }
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("bad histogram: {e:?}"))
}

/// Encodes a delta as its two halves, `slower faster`.
pub(crate) fn encode_delta(d: &SignedHistogram) -> String {
    format!("{} {}", encode(&d.slower), encode(&d.faster))
}

/// Decodes a delta written by [`encode_delta`].
pub(crate) fn decode_delta(text: &str) -> Result<SignedHistogram, String> {
    let (slower, faster) = text.split_once(' ').ok_or("not a delta histogram")?;
    Ok(SignedHistogram {
        slower: decode(slower)?,
        faster: decode(faster)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinpeak_core::{new_latency_histogram, record_saturating};

    #[test]
    fn histograms_round_trip_and_damage_is_an_error() {
        let mut h = new_latency_histogram();
        for v in [0, 1, 950, 12_345, 2_000_000, u64::MAX] {
            record_saturating(&mut h, v);
        }
        assert_eq!(decode(&encode(&h)).unwrap(), h);
        let mut d = SignedHistogram::new();
        d.record(-40);
        d.record(7);
        assert_eq!(decode_delta(&encode_delta(&d)).unwrap(), d);

        let bytes = STANDARD.decode(encode(&h)).unwrap();
        for cut in [0, 3, 8, 39, bytes.len() - 1] {
            assert!(
                decode(&STANDARD.encode(&bytes[..cut])).is_err(),
                "cut at {cut}"
            );
        }
        let mut forged = bytes.clone();
        forged[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&STANDARD.encode(&forged)).is_err());
        assert!(decode("not base64!").is_err());
        assert!(decode_delta("AAAA").is_err());
    }
}
