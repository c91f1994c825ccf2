//! Secrets the operator gives the proxy (the admin token, the canary force secret): read from
//! a file or an environment variable at start, never written inline in the configuration, never
//! printed, and compared in constant time.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::InvalidKey;

/// Where a secret comes from: a file (its first line) or an environment variable. Read once,
/// when the configuration is loaded ([`SecretSource::resolve`]); only the source is ever
/// printed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// A file holding the secret on its first line (surrounding whitespace ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// An environment variable holding the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The secret, once read.
    #[serde(skip)]
    value: Option<Secret>,
}

/// Shortest secret accepted: anything shorter is guessable.
pub const MIN_SECRET_BYTES: usize = 16;

impl SecretSource {
    /// Whether a source is given at all.
    pub fn is_set(&self) -> bool {
        self.file.is_some() || self.env.is_some()
    }

    /// A source that is a file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        SecretSource {
            file: Some(path.into()),
            ..SecretSource::default()
        }
    }

    /// A source that is an environment variable.
    pub fn env(name: impl Into<String>) -> Self {
        SecretSource {
            env: Some(name.into()),
            ..SecretSource::default()
        }
    }

    /// Reads the secret from its source (nothing when no source is given); `key` names the
    /// setting (`admin.token`). On failure returns the key at fault and why.
    pub fn resolve(&mut self, key: &str) -> Result<(), InvalidKey> {
        self.value = self.read().map_err(|(sub, message)| match sub {
            Some(sub) => InvalidKey::new(format!("{key}.{sub}"), message),
            None => InvalidKey::new(key, message),
        })?;
        Ok(())
    }

    /// The secret read by [`SecretSource::resolve`].
    pub fn secret(&self) -> Option<&Secret> {
        self.value.as_ref()
    }

    /// Reads the secret; on failure returns the sub-key at fault (`file`, `env`) and why.
    fn read(&self) -> Result<Option<Secret>, (Option<&'static str>, String)> {
        let text = match (&self.file, &self.env) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err((None, "give either file or env, not both".into()));
            }
            (Some(path), None) => std::fs::read_to_string(path)
                .map_err(|e| (Some("file"), format!("cannot read {}: {e}", path.display())))?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
            (None, Some(name)) => std::env::var(name)
                .map_err(|_| {
                    (
                        Some("env"),
                        format!("the environment variable {name} is not set"),
                    )
                })?
                .trim()
                .to_string(),
        };
        if text.len() < MIN_SECRET_BYTES {
            return Err((
                None,
                format!(
                    "the secret must be at least {MIN_SECRET_BYTES} characters, got {}",
                    text.len()
                ),
            ));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err((
                None,
                "the secret must be printable ASCII without spaces (it is sent in a header)".into(),
            ));
        }
        Ok(Some(Secret(text.into_bytes())))
    }
}

/// A loaded secret. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Whether `presented` is the secret, in time that depends only on the lengths.
    pub fn matches(&self, presented: &[u8]) -> bool {
        if presented.len() != self.0.len() {
            return false;
        }
        presented
            .iter()
            .zip(&self.0)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// The secret itself, for sending it on (a webhook's `Authorization` header); never log
    /// or print it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(mut source: SecretSource) -> Result<Option<Secret>, InvalidKey> {
        source.resolve("admin.token")?;
        Ok(source.secret().cloned())
    }

    #[test]
    fn a_secret_is_read_from_a_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  0123456789abcdef0123\nsecond line\n").unwrap();
        let secret = resolved(SecretSource::file(&path)).unwrap().unwrap();
        assert!(secret.matches(b"0123456789abcdef0123"));
        assert!(!secret.matches(b"0123456789abcdef012"));
        assert!(!secret.matches(b"0123456789abcdef0124"));
        assert_eq!(format!("{secret:?}"), "Secret(..)");

        std::env::set_var("TWINPEAK_TEST_SECRET_SOURCE", "fedcba9876543210fedcba");
        let secret = resolved(SecretSource::env("TWINPEAK_TEST_SECRET_SOURCE"));
        assert!(secret.unwrap().unwrap().matches(b"fedcba9876543210fedcba"));
        assert_eq!(resolved(SecretSource::default()).unwrap(), None);
        // Only the source is ever printed.
        let yaml = serde_yaml::to_string(&SecretSource::file(&path)).unwrap();
        assert!(!yaml.contains("0123456789abcdef"), "{yaml}");
    }

    #[test]
    fn bad_sources_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "abc\n").unwrap();
        let InvalidKey { key, message } =
            resolved(SecretSource::file(dir.path().join("missing"))).unwrap_err();
        assert_eq!(key, "admin.token.file");
        assert!(message.starts_with("cannot read"), "{message}");
        let InvalidKey { key, message } = resolved(SecretSource::file(&short)).unwrap_err();
        assert_eq!(key, "admin.token");
        assert!(
            message.contains("at least 16 characters, got 3"),
            "{message}"
        );
        let both = SecretSource {
            env: Some("X".into()),
            ..SecretSource::file(&short)
        };
        assert!(resolved(both).unwrap_err().message.contains("not both"));
        let InvalidKey { key, message } =
            resolved(SecretSource::env("TWINPEAK_TEST_SECRET_UNSET")).unwrap_err();
        assert_eq!(key, "admin.token.env");
        assert_eq!(
            message,
            "the environment variable TWINPEAK_TEST_SECRET_UNSET is not set"
        );
    }
}
