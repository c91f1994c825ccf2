//! Timestamps in records: RFC 3339, UTC, millisecond precision.

use std::time::SystemTime;

/// Formats `t` as records write it, e.g. `2025-11-28T09:00:00.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parses an RFC 3339 UTC timestamp, at any fractional precision.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn round_trips_at_millisecond_precision() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_320_400_123);
        let text = rfc3339(t);
        assert_eq!(text, "2025-11-28T09:00:00.123Z");
        assert_eq!(parse_rfc3339(&text), Some(t));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
