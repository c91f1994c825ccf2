//! Certificates and keys read from PEM files: a chain and the key that goes with it, checked
//! to match, with the names the leaf is valid for (SNI chooses by them) and its expiry.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Largest PEM file read: a chain of a few certificates is a few KiB.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// Why a pair could not be used, naming the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairProblem {
    /// The certificate file.
    #[error("{0}")]
    Cert(String),
    /// The key file.
    #[error("{0}")]
    Key(String),
    /// The key is not the certificate's.
    #[error("{0}")]
    Mismatch(String),
}

/// A chain and its key, ready to serve.
#[derive(Debug, Clone)]
pub struct LoadedPair {
    /// What rustls serves.
    pub certified: Arc<CertifiedKey>,
    /// The DNS names the leaf is valid for (its subject alternative names, else its common
    /// name), lower-cased; `*.example.com` for wildcards.
    pub names: Vec<String>,
    /// The leaf's not-after time, in seconds since the Unix epoch.
    pub not_after: i64,
}

impl LoadedPair {
    /// The name it is known by in metrics and logs: its first name, or `unnamed`.
    pub fn label(&self) -> &str {
        self.names.first().map_or("unnamed", String::as_str)
    }
}

/// Reads a file of at most [`MAX_PEM_BYTES`].
fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .len();
    if len > MAX_PEM_BYTES {
        return Err(format!(
            "{shown} is {len} bytes, more than a PEM file of certificates or a key can be ({MAX_PEM_BYTES})"
        ));
    }
    std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))
}

/// Why a PEM file gave no certificate or key: its path and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PemProblem(pub String);

/// Every certificate in a PEM file, in order; fails when there is none.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemProblem> {
    certificates_in(path).map_err(PemProblem)
}

fn certificates_in(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_capped(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file ({e})", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    for cert in &certs {
        X509Certificate::from_der(cert.as_ref())
            .map_err(|e| format!("{}: a certificate does not parse ({e})", path.display()))?;
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemProblem> {
    let pem = read_capped(path).map_err(PemProblem)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| PemProblem(format!("{}: no private key in it ({e})", path.display())))
}

/// Reads a chain and its key and checks that they belong together.
pub fn load_pair(cert: &Path, key: &Path) -> Result<LoadedPair, PairProblem> {
    let chain = read_certificates(cert).map_err(|e| PairProblem::Cert(e.0))?;
    let private = read_key(key).map_err(|e| PairProblem::Key(e.0))?;
    let (names, not_after) = describe(&chain[0]).map_err(PairProblem::Cert)?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, private, &provider).map_err(|e| {
        PairProblem::Mismatch(format!(
            "{} does not go with {} ({e})",
            key.display(),
            cert.display()
        ))
    })?;
    Ok(LoadedPair {
        certified: Arc::new(certified),
        names,
        not_after,
    })
}

/// The names a leaf certificate is valid for and its not-after time.
fn describe(leaf: &CertificateDer<'_>) -> Result<(Vec<String>, i64), String> {
    let (_, cert) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| format!("the leaf certificate does not parse ({e})"))?;
    let mut names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    Ok((names, cert.validity().not_after.timestamp()))
}

/// What a file looks like on disk: a change in any of these means it is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
    device: u64,
}

impl FileStamp {
    /// The stamp of `path` now; `None` when it cannot be looked at.
    pub fn of(path: &Path) -> Option<FileStamp> {
        // Followed through symbolic links: a Kubernetes secret volume swaps a link.
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: meta.ino(),
            device: meta.dev(),
        })
    }
}
