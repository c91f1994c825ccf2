//! Value types of the configuration file that validate themselves while they are parsed, so a bad
//! value is reported with the file, line and key it came from.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// A share of traffic in percent, `0.0..=100.0`; fractions are allowed (`0.5`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Percent(f64);

impl Percent {
    /// Builds a percentage, refusing values outside `0..=100` and NaN.
    pub fn new(value: f64) -> Result<Self, String> {
        if value.is_finite() && (0.0..=100.0).contains(&value) {
            Ok(Percent(value))
        } else {
            Err(format!("must be a number from 0 to 100, got {value}"))
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

/// A duration written the human way: `250ms`, `2s`, `5m`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let duration = humantime::parse_duration(&text).map_err(|e| {
            de::Error::custom(format!(
                "expected a duration such as 250ms, 2s or 5m, got {text:?} ({e})"
            ))
        })?;
        if duration.is_zero() {
            return Err(de::Error::custom("must be longer than zero"));
        }
        Ok(HumanDuration(duration))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(self.0).to_string())
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
    /// Whether the method is safe in the sense of RFC 9110 (it changes nothing on the server).
    pub fn is_safe(&self) -> bool {
        matches!(
            self.0,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS | http::Method::TRACE
        )
    }
}

impl FromStr for Method {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let upper = text.trim().to_ascii_uppercase();
        if upper.is_empty() || !upper.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') {
            return Err(format!(
                "expected an HTTP method such as GET or POST, got {text:?}"
            ));
        }
        http::Method::from_bytes(upper.as_bytes())
            .map(Method)
            .map_err(|_| format!("expected an HTTP method such as GET or POST, got {text:?}"))
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
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("random") {
            return Ok(SampleKey::Random);
        }
        let bad = || format!("expected header:NAME, cookie:NAME or random, got {text:?}");
        let (kind, name) = text.split_once(':').ok_or_else(bad)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad());
        }
        match kind.trim().to_ascii_lowercase().as_str() {
            "header" => http::HeaderName::from_bytes(name.as_bytes())
                .map(|h| SampleKey::Header(h.as_str().to_string()))
                .map_err(|_| format!("{name:?} is not a valid header name")),
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

    /// A Pingora peer for this upstream, its host name resolved now (once, as nginx does at
    /// start); the error names the configuration `key` and says why it could not be. The host
    /// goes along as TLS SNI for https only: a plain-HTTP peer carries no name, so the copy made
    /// for every request allocates nothing.
    pub fn peer(&self, key: &str) -> Result<pingora_core::upstreams::peer::HttpPeer, String> {
        let authority = self.authority();
        let address = std::net::ToSocketAddrs::to_socket_addrs(&authority)
            .map_err(|e| format!("{key}: cannot resolve {authority}: {e}"))?
            .next()
            .ok_or_else(|| format!("{key}: cannot resolve {authority}: no address"))?;
        let sni = if self.tls {
            self.host.clone()
        } else {
            String::new()
        };
        Ok(pingora_core::upstreams::peer::HttpPeer::new(
            address, self.tls, sni,
        ))
    }
}

impl FromStr for UpstreamUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let uri: http::Uri = text
            .trim()
            .parse()
            .map_err(|e| format!("{text:?} is not a URL ({e})"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("{text:?} must start with http:// or https://")),
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("{text:?} names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!(
                "{text:?} must not have a path or query: requests keep their own"
            ));
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

/// A network clients may come from: `10.0.0.0/8`, `::1/128`, or one address (`127.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceNet(pub ipnet::IpNet);

impl FromStr for SourceNet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Ok(net) = text.parse::<ipnet::IpNet>() {
            return Ok(SourceNet(net.trunc()));
        }
        text.parse::<std::net::IpAddr>()
            .map(|ip| SourceNet(ipnet::IpNet::from(ip)))
            .map_err(|_| {
                format!("expected an address or a network such as 10.0.0.0/8, got {text:?}")
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
    fn percent_accepts_fractions_and_refuses_out_of_range() {
        assert_eq!(serde_yaml::from_str::<Percent>("0.5").unwrap().value(), 0.5);
        assert_eq!(
            serde_yaml::from_str::<Percent>("'30%'").unwrap().value(),
            30.0
        );
        assert!(serde_yaml::from_str::<Percent>("101").is_err());
        assert!(serde_yaml::from_str::<Percent>("-1").is_err());
        assert!(serde_yaml::from_str::<Percent>(".nan").is_err());
    }

    #[test]
    fn durations_and_sizes_parse_human_forms() {
        let d: HumanDuration = serde_yaml::from_str("2s").unwrap();
        assert_eq!(d.0, Duration::from_secs(2));
        assert!(serde_yaml::from_str::<HumanDuration>("2 parsecs").is_err());
        assert!(serde_yaml::from_str::<HumanDuration>("0s").is_err());
        assert_eq!(serde_yaml::from_str::<Bytes>("1MiB").unwrap().0, 1 << 20);
        assert_eq!(serde_yaml::from_str::<Bytes>("4096").unwrap().0, 4096);
        assert!(serde_yaml::from_str::<Bytes>("lots").is_err());
    }

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
        assert!(!"POST".parse::<Method>().unwrap().is_safe());
        assert!("GE T".parse::<Method>().is_err());
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
        let err = "localhost".parse::<SourceNet>().unwrap_err();
        assert!(err.contains("10.0.0.0/8"), "{err}");
    }
}
