//! TLS to an upstream (`https://` urls): the certificate is verified by default against the
//! system's roots, or against `ca` alone when given; `cert` and `key` present a client
//! certificate (mTLS); `sni` names the host to ask for and to verify instead of the url's.
//! `verify: false` is the only way to accept a certificate unverified, and says so in the log.

use std::path::PathBuf;
use std::sync::Arc;

use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::utils::tls::{CertKey, WrappedX509};
use rustls::pki_types::PrivateKeyDer;
use serde::{Deserialize, Serialize};

use super::certs::{load_pair, read_certificates, PairProblem};
use crate::error::InvalidKey;

/// The `tls:` settings of an upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// CA certificates (PEM) the upstream's certificate must chain to, instead of the
    /// system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// A client certificate chain (PEM) to present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// The name sent as SNI and verified, instead of the url's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Whether the upstream's certificate is verified (on unless set to `false`).
    #[serde(default = "crate::units::on")]
    pub verify: bool,
}

/// What the files of an upstream's `tls:` hold, read.
pub struct UpstreamTlsMaterial {
    ca: Option<Arc<[WrappedX509]>>,
    client: Option<Arc<CertKey>>,
}

impl UpstreamTls {
    /// Checks the settings and reads their files; the key at fault is under `prefix`
    /// (`primary.tls`).
    pub fn load(&self, prefix: &str, url_is_tls: bool) -> Result<UpstreamTlsMaterial, InvalidKey> {
        let fail = |key: &str, message: String| InvalidKey::new(format!("{prefix}.{key}"), message);
        if !url_is_tls {
            return Err(InvalidKey::new(
                prefix,
                "is for https:// urls; this one is http:// (plaintext)",
            ));
        }
        if let Some(sni) = &self.sni {
            rustls::pki_types::ServerName::try_from(sni.as_str())
                .map_err(|_| fail("sni", format!("{sni:?} is not a host name or address")))?;
        }
        let ca = match &self.ca {
            Some(path) => {
                let certs = read_certificates(path).map_err(|m| fail("ca", m.0))?;
                let wrapped: Vec<WrappedX509> = certs
                    .into_iter()
                    .map(|c| WrappedX509::new(c.to_vec(), pingora_core::utils::tls::parse_x509))
                    .collect();
                Some(Arc::from(wrapped))
            }
            None => None,
        };
        let client = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let pair = load_pair(cert, key).map_err(|problem| match problem {
                    PairProblem::Cert(m) => fail("cert", m),
                    PairProblem::Key(m) | PairProblem::Mismatch(m) => fail("key", m),
                })?;
                let key_der = super::certs::read_key(key).map_err(|m| fail("key", m.0))?;
                let chain = pair.certified.cert.iter().map(|c| c.to_vec()).collect();
                Some(Arc::new(CertKey::new(chain, key_bytes(key_der))))
            }
            (Some(_), None) => return Err(fail("key", "is required with cert".into())),
            (None, Some(_)) => return Err(fail("cert", "is required with key".into())),
            (None, None) => None,
        };
        Ok(UpstreamTlsMaterial { ca, client })
    }

    /// Sets up `peer` (already made for the url's host) with these settings and `material`.
    pub fn apply(&self, material: UpstreamTlsMaterial, peer: &mut HttpPeer, describe: &str) {
        if let Some(sni) = &self.sni {
            peer.sni = sni.clone();
        }
        if !self.verify {
            log::warn!(
                "{describe}: tls.verify is false: its certificate is accepted without verification"
            );
            peer.options.verify_cert = false;
            peer.options.verify_hostname = false;
        }
        peer.options.ca = material.ca;
        peer.client_cert_key = material.client;
    }
}

/// A key's DER bytes, whatever its encoding.
fn key_bytes(key: PrivateKeyDer<'static>) -> Vec<u8> {
    key.secret_der().to_vec()
}

/// A failed upstream handshake in one line, as the client is told it: what rustls said
/// (`invalid peer certificate: UnknownIssuer`) and the name asked for.
pub fn explain(error: &pingora_error::Error) -> String {
    let text = match &error.context {
        Some(context) => context.to_string(),
        None => error.etype().as_str().to_string(),
    };
    // Pingora nests the rustls error as the innermost cause: that is the part that explains.
    let innermost = text
        .rfind("cause: ")
        .map_or(text.as_str(), |at| &text[at + 7..]);
    innermost.trim().replace(['\n', '\r'], " ")
}
