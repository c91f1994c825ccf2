//! The `listen:` section: where the proxy accepts clients, and how. An entry is an address
//! (`127.0.0.1:8080`, plaintext HTTP/1.1) or `{address, tls, http2}`: TLS with one certificate
//! (`tls: {cert, key}`) or several chosen by SNI (`tls: {certificates: [{cert, key}, ...]}`),
//! and HTTP/2 — offered by ALPN on TLS listeners unless `http2: false`, accepted with prior
//! knowledge (h2c) on a plaintext one only with `http2: true`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::InvalidKey;
use crate::tls::certs::{self, PairProblem};

/// One address the proxy accepts client traffic on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    /// The address and port.
    pub address: SocketAddr,
    /// TLS termination; absent: plaintext.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// HTTP/2: on TLS listeners offered by ALPN unless `false`; on plaintext ones accepted
    /// with prior knowledge (h2c) only when `true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2: Option<bool>,
}

impl Listener {
    /// Whether clients may speak HTTP/2 here.
    pub fn http2(&self) -> bool {
        self.http2.unwrap_or(self.tls.is_some())
    }
}

/// A listener's certificates: one pair (`cert`, `key`), or several (`certificates`) chosen by
/// the name the client asks for (SNI), the first when it asks for none or an unknown one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// The certificate chain (PEM), leaf first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Several pairs, chosen by SNI from each certificate's names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateFiles>,
}

/// A certificate chain and its private key, as files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    /// The certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

impl ListenerTls {
    /// Every pair, in order (the first is the default), each with the configuration key it
    /// was given under (`tls` or `tls.certificates[1]`).
    pub fn pairs(&self) -> Vec<(String, CertificateFiles)> {
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => vec![(
                "tls".to_string(),
                CertificateFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                },
            )],
            _ => self
                .certificates
                .iter()
                .enumerate()
                .map(|(i, pair)| (format!("tls.certificates[{i}]"), pair.clone()))
                .collect(),
        }
    }

    /// Checks the shape, then reads every pair as it will be served; the key at fault is under
    /// `prefix` (`listen[0]`).
    fn check(&self, prefix: &str) -> Result<(), InvalidKey> {
        let single = self.cert.is_some() || self.key.is_some();
        let fail =
            |key: &str, message: &str| Err(InvalidKey::new(format!("{prefix}.{key}"), message));
        match (single, self.certificates.is_empty()) {
            (true, false) => {
                return fail(
                    "tls",
                    "give either cert and key, or certificates: [{cert, key}, ...], not both",
                )
            }
            (false, true) => {
                return fail(
                    "tls",
                    "needs cert and key, or certificates: [{cert, key}, ...]",
                )
            }
            (true, true) if self.cert.is_none() => return fail("tls.cert", "is required with key"),
            (true, true) if self.key.is_none() => return fail("tls.key", "is required with cert"),
            _ => {}
        }
        for (key, pair) in self.pairs() {
            if let Err(problem) = certs::load_pair(&pair.cert, &pair.key) {
                let field = match problem {
                    PairProblem::Key(_) | PairProblem::Mismatch(_) => "key",
                    PairProblem::Cert(_) => "cert",
                };
                return Err(InvalidKey::new(
                    format!("{prefix}.{key}.{field}"),
                    problem.to_string(),
                ));
            }
        }
        Ok(())
    }
}

/// Checks the listeners: no address twice, certificates that load and match their keys.
pub fn check(listeners: &[Listener]) -> Result<(), InvalidKey> {
    for (i, listener) in listeners.iter().enumerate() {
        if listeners[..i].iter().any(|l| l.address == listener.address) {
            return Err(InvalidKey::new(
                "listen",
                format!("{} is listed twice", listener.address),
            ));
        }
        if let Some(tls) = &listener.tls {
            tls.check(&format!("listen[{i}]"))?;
        }
    }
    Ok(())
}

/// The fields of a listener written as a map.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerFields {
    address: SocketAddr,
    #[serde(default)]
    tls: Option<ListenerTls>,
    #[serde(default)]
    http2: Option<bool>,
}

const EXPECTED: &str = "an address such as 127.0.0.1:8080, or {address: ..., tls: {cert: FILE, \
                        key: FILE}}, or a list of them";

fn parse_address<E: de::Error>(text: &str) -> Result<SocketAddr, E> {
    text.trim()
        .parse()
        .map_err(|_| E::custom(format!("{text:?} is not an address: expected {EXPECTED}")))
}

impl<'de> Deserialize<'de> for Listener {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ListenerVisitor)
    }
}

struct ListenerVisitor;

impl<'de> Visitor<'de> for ListenerVisitor {
    type Value = Listener;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Listener, E> {
        Ok(Listener {
            address: parse_address(text)?,
            tls: None,
            http2: None,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Listener, A::Error> {
        let fields = ListenerFields::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Listener {
            address: fields.address,
            tls: fields.tls,
            http2: fields.http2,
        })
    }
}

/// Reads `listen:` as one listener or a list of them.
pub fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Listener>, D::Error> {
    struct ListVisitor;
    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Vec<Listener>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(EXPECTED)
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            ListenerVisitor.visit_str(text).map(|l| vec![l])
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            ListenerVisitor.visit_map(map).map(|l| vec![l])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut listeners = Vec::new();
            while let Some(listener) = seq.next_element::<Listener>()? {
                listeners.push(listener);
            }
            if listeners.is_empty() {
                return Err(de::Error::custom("needs at least one address"));
            }
            Ok(listeners)
        }
    }
    d.deserialize_any(ListVisitor)
}

/// Writes `listen:` back: plain addresses as text, the others as maps.
pub fn serialize<S: serde::Serializer>(listeners: &[Listener], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(listeners.len()))?;
    for listener in listeners {
        if listener.tls.is_none() && listener.http2.is_none() {
            seq.serialize_element(&listener.address)?;
        } else {
            seq.serialize_element(listener)?;
        }
    }
    seq.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        #[serde(deserialize_with = "one_or_many")]
        listen: Vec<Listener>,
    }

    fn read(text: &str) -> Result<Vec<Listener>, String> {
        serde_yaml::from_str::<Doc>(text)
            .map(|d| d.listen)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_form_reads() {
        assert_eq!(read("listen: 127.0.0.1:80").unwrap().len(), 1);
        let many = read(
            "listen: [127.0.0.1:80, {address: 127.0.0.1:81, http2: true}, \
             {address: 127.0.0.1:443, tls: {cert: c.pem, key: k.pem}}]",
        )
        .unwrap();
        assert_eq!(many.len(), 3);
        assert!(!many[0].http2() && many[1].http2() && many[2].http2());
        assert_eq!(many[2].tls.as_ref().unwrap().pairs()[0].0, "tls");
        let sni = read(
            "listen: {address: 127.0.0.1:443, http2: false, tls: {certificates: [{cert: a, key: b}, {cert: c, key: d}]}}",
        )
        .unwrap();
        assert!(!sni[0].http2());
        let pairs = sni[0].tls.as_ref().unwrap().pairs();
        assert_eq!(pairs[1].0, "tls.certificates[1]");
        assert_eq!(pairs[1].1.cert, PathBuf::from("c"));
    }

    #[test]
    fn bad_forms_are_explained() {
        assert!(read("listen: localhost")
            .unwrap_err()
            .contains("not an address"));
        assert!(read("listen: []").unwrap_err().contains("at least one"));
        let unknown = read("listen: [{address: 127.0.0.1:1, tsl: {}}]").unwrap_err();
        assert!(unknown.contains("unknown field `tsl`"), "{unknown}");
        let both = ListenerTls {
            cert: Some("c".into()),
            key: Some("k".into()),
            certificates: vec![CertificateFiles {
                cert: "c".into(),
                key: "k".into(),
            }],
        };
        assert_eq!(both.check("listen[0]").unwrap_err().key, "listen[0].tls");
        let half = ListenerTls {
            cert: Some("c".into()),
            ..ListenerTls::default()
        };
        assert_eq!(
            half.check("listen[2]").unwrap_err().key,
            "listen[2].tls.key"
        );
        let missing = ListenerTls {
            cert: Some("/nonexistent/c.pem".into()),
            key: Some("/nonexistent/k.pem".into()),
            ..ListenerTls::default()
        };
        let e = missing.check("listen[0]").unwrap_err();
        assert_eq!(e.key, "listen[0].tls.cert");
        assert!(e.message.contains("/nonexistent/c.pem"), "{e}");
    }
}
