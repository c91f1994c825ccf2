//! Value types of twinpeak's YAML files (the proxy's configuration, the load harness's
//! scenarios) that validate themselves while they are parsed, so a bad value is reported with
//! the file, line and key it came from.
//!
//! One rule for each kind of value, everywhere:
//! - **percentages**: `30`, `30%`, `0.5` and `0.5%` all mean percent (never a fraction), from
//!   0 to 100;
//! - **durations**: `250ms`, `2s`, `5m`, `1h 30m`, longer than zero;
//! - **sizes**: `4096`, `64KiB`, `1MiB`, `1 MB`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// A value that does not parse or is out of range; the text says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

/// A share of traffic in percent, `0.0..=100.0`; fractions are allowed (`0.5`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Percent(f64);

impl Percent {
    /// Builds a percentage, refusing values outside `0..=100` and NaN.
    pub fn new(value: f64) -> Result<Self, InvalidValue> {
        if value.is_finite() && (0.0..=100.0).contains(&value) {
            Ok(Percent(value))
        } else {
            Err(InvalidValue(format!(
                "must be a number from 0 to 100, got {value}"
            )))
        }
    }

    /// The percentage as a number from 0 to 100.
    pub fn value(self) -> f64 {
        self.0
    }

    /// The percentage as a fraction from 0 to 1.
    pub fn fraction(self) -> f64 {
        self.0 / 100.0
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        let value = match Raw::deserialize(deserializer)? {
            Raw::Number(n) => n,
            Raw::Text(t) => t
                .trim()
                .trim_end_matches('%')
                .trim()
                .parse::<f64>()
                .map_err(|_| {
                    de::Error::custom(format!(
                        "expected a percentage such as 30 or 0.5, got {t:?}"
                    ))
                })?,
        };
        Percent::new(value).map_err(de::Error::custom)
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0)
    }
}

/// A duration written the human way: `250ms`, `2s`, `5m`, `1h 30m`; longer than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match humantime::parse_duration(text.trim()) {
            Ok(d) if d.is_zero() => Err(InvalidValue("must be longer than zero".into())),
            Ok(d) => Ok(HumanDuration(d)),
            Err(e) => Err(InvalidValue(format!(
                "expected a duration such as 250ms, 2s or 5m, got {text:?} ({e})"
            ))),
        }
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A size in bytes written the human way: `512`, `64KiB`, `1MiB`, `1 MB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(Bytes(n)),
            Raw::Text(t) => bytesize::ByteSize::from_str(t.trim())
                .map(|size| Bytes(size.as_u64()))
                .map_err(|_| {
                    de::Error::custom(format!(
                        "expected a size such as 4096, 64KiB or 1MiB, got {t:?}"
                    ))
                }),
        }
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&bytesize::ByteSize::b(self.0).display().iec().to_string())
    }
}

/// An HTTP method name, upper case (`GET`, `POST`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Method(pub http::Method);

impl Method {
    /// Whether the method is safe (see [`is_safe`]).
    pub fn is_safe(&self) -> bool {
        is_safe(&self.0)
    }
}

/// Whether a method is safe in the sense of RFC 9110 §9.2.1: GET, HEAD, OPTIONS and TRACE
/// change nothing on the server.
pub fn is_safe(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS | http::Method::TRACE
    )
}

impl FromStr for Method {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let upper = text.trim().to_ascii_uppercase();
        if upper.is_empty() || !upper.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') {
            return Err(InvalidValue(format!(
                "expected an HTTP method such as GET or POST, got {text:?}"
            )));
        }
        http::Method::from_bytes(upper.as_bytes())
            .map(Method)
            .map_err(|_| {
                InvalidValue(format!(
                    "expected an HTTP method such as GET or POST, got {text:?}"
                ))
            })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }
}

impl Serialize for Method {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

/// An upstream address given as a URL: `http://host:port` or `https://host:port`, no path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// `true` for https.
    pub tls: bool,
    /// Host name or address as written.
    pub host: String,
    /// Port, the scheme's default when absent.
    pub port: u16,
}

impl UpstreamUrl {
    /// `host:port`, the form connectors take.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for UpstreamUrl {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let uri: http::Uri = text
            .trim()
            .parse()
            .map_err(|e| InvalidValue(format!("{text:?} is not a URL ({e})")))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(InvalidValue(format!(
                    "{text:?} must start with http:// or https://"
                )))
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| InvalidValue(format!("{text:?} names no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(InvalidValue(format!(
                "{text:?} must not have a path or query: requests keep their own"
            )));
        }
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(UpstreamUrl { tls, host, port })
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority())
    }
}

impl<'de> Deserialize<'de> for UpstreamUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }
}

impl Serialize for UpstreamUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_percent_with_or_without_the_sign() {
        for (text, value) in [("0.5", 0.5), ("30", 30.0), ("'30%'", 30.0), ("'0.5%'", 0.5)] {
            assert_eq!(
                serde_yaml::from_str::<Percent>(text).unwrap().value(),
                value
            );
        }
        assert!(serde_yaml::from_str::<Percent>("101").is_err());
        assert!(serde_yaml::from_str::<Percent>("'120%'").is_err());
        assert!(serde_yaml::from_str::<Percent>("-1").is_err());
        assert!(serde_yaml::from_str::<Percent>(".nan").is_err());
        assert!((Percent::new(2.0).unwrap().fraction() - 0.02).abs() < 1e-12);
    }

    #[test]
    fn durations_and_sizes_parse_human_forms() {
        let d: HumanDuration = serde_yaml::from_str("2s").unwrap();
        assert_eq!(d.0, Duration::from_secs(2));
        assert_eq!(
            "1h 30m".parse::<HumanDuration>().unwrap().to_string(),
            "1h 30m"
        );
        assert!(serde_yaml::from_str::<HumanDuration>("2 parsecs").is_err());
        let zero = "0s".parse::<HumanDuration>().unwrap_err();
        assert_eq!(zero.to_string(), "must be longer than zero");
        assert_eq!(serde_yaml::from_str::<Bytes>("1MiB").unwrap().0, 1 << 20);
        assert_eq!(serde_yaml::from_str::<Bytes>("4096").unwrap().0, 4096);
        assert!(serde_yaml::from_str::<Bytes>("lots").is_err());
    }

    #[test]
    fn upstream_urls_need_scheme_and_no_path() {
        let url: UpstreamUrl = "http://127.0.0.1:9001".parse().unwrap();
        assert_eq!(url.authority(), "127.0.0.1:9001");
        assert!(!url.tls);
        let url: UpstreamUrl = "https://[::1]".parse().unwrap();
        assert_eq!(url.authority(), "[::1]:443");
        assert!("127.0.0.1:9001".parse::<UpstreamUrl>().is_err());
        assert!("http://127.0.0.1:9001/api".parse::<UpstreamUrl>().is_err());
        assert!("ftp://x".parse::<UpstreamUrl>().is_err());
    }

    #[test]
    fn methods_are_upper_cased_and_classified() {
        let m: Method = "get".parse().unwrap();
        assert_eq!(m.to_string(), "GET");
        assert!(m.is_safe());
        assert!(is_safe(&http::Method::TRACE));
        assert!(!"POST".parse::<Method>().unwrap().is_safe());
        assert!("GE T".parse::<Method>().is_err());
    }
}
