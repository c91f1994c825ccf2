//! Value types of the proxy's configuration that validate themselves while they are parsed, so a
//! bad value is reported with the file, line and key it came from: those every twinpeak file
//! shares ([`twinpeak_core::units`]) and the proxy's own (sampling keys, client networks).

use std::fmt;
use std::str::FromStr;

pub use twinpeak_core::units::{
    is_safe, Bytes, HumanDuration, InvalidValue, Method, Percent, UpstreamUrl,
};

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// Where a consistent sampling decision takes its key from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SampleKey {
    /// No key: every request is drawn at random.
    #[default]
    Random,
    /// The value of a request header (lower-cased name).
    Header(String),
    /// The value of a cookie.
    Cookie(String),
}

impl FromStr for SampleKey {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("random") {
            return Ok(SampleKey::Random);
        }
        let bad = || {
            InvalidValue(format!(
                "expected header:NAME, cookie:NAME or random, got {text:?}"
            ))
        };
        let (kind, name) = text.split_once(':').ok_or_else(bad)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad());
        }
        match kind.trim().to_ascii_lowercase().as_str() {
            "header" => http::HeaderName::from_bytes(name.as_bytes())
                .map(|h| SampleKey::Header(h.as_str().to_string()))
                .map_err(|_| InvalidValue(format!("{name:?} is not a valid header name"))),
            "cookie" => Ok(SampleKey::Cookie(name.to_string())),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for SampleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SampleKey::Random => f.write_str("random"),
            SampleKey::Header(name) => write!(f, "header:{name}"),
            SampleKey::Cookie(name) => write!(f, "cookie:{name}"),
        }
    }
}

impl<'de> Deserialize<'de> for SampleKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }
}

impl Serialize for SampleKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// GET, HEAD and OPTIONS: the methods mirrored, and those the canary's force header applies
/// to, unless the configuration says otherwise.
pub fn read_methods() -> Vec<Method> {
    ["GET", "HEAD", "OPTIONS"]
        .iter()
        .map(|m| m.parse().expect("static method names parse"))
        .collect()
}

/// The default of a switch that is on unless turned off.
pub fn on() -> bool {
    true
}

/// A network clients may come from: `10.0.0.0/8`, `::1/128`, or one address (`127.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceNet(pub ipnet::IpNet);

impl FromStr for SourceNet {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Ok(net) = text.parse::<ipnet::IpNet>() {
            return Ok(SourceNet(net.trunc()));
        }
        text.parse::<std::net::IpAddr>()
            .map(|ip| SourceNet(ipnet::IpNet::from(ip)))
            .map_err(|_| {
                InvalidValue(format!(
                    "expected an address or a network such as 10.0.0.0/8, got {text:?}"
                ))
            })
    }
}

impl fmt::Display for SourceNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for SourceNet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }
}

impl Serialize for SourceNet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_keys_name_header_cookie_or_random() {
        assert_eq!(
            "header:X-User-Id".parse::<SampleKey>().unwrap(),
            SampleKey::Header("x-user-id".into())
        );
        assert_eq!(
            "cookie:session".parse::<SampleKey>().unwrap(),
            SampleKey::Cookie("session".into())
        );
        assert_eq!("random".parse::<SampleKey>().unwrap(), SampleKey::Random);
        assert!("query:x".parse::<SampleKey>().is_err());
        assert!("header:".parse::<SampleKey>().is_err());
    }

    #[test]
    fn source_networks_take_addresses_and_prefixes() {
        let net: SourceNet = "10.1.2.3/8".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        let one: SourceNet = "127.0.0.1".parse().unwrap();
        assert_eq!(one.to_string(), "127.0.0.1/32");
        assert!(one
            .0
            .contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap()));
        let v6: SourceNet = "::1".parse().unwrap();
        assert_eq!(v6.to_string(), "::1/128");
        let err = "localhost".parse::<SourceNet>().unwrap_err().to_string();
        assert!(err.contains("10.0.0.0/8"), "{err}");
    }
}
