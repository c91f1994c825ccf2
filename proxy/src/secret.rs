//! Secrets the operator gives the proxy (the admin token, the canary force secret): read from
//! a file or an environment variable at start, never written inline in the configuration, never
//! printed, and compared in constant time. Also the reading of text that may carry a credential
//! (a webhook's URL, a database URL or password) from the one place it is given: inline, a file
//! or an environment variable.

use std::fmt;
use std::path::{Path, PathBuf};

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

    /// The source given by the two keys as the configuration holds them (either, both or
    /// neither: [`SecretSource::resolve`] says which is wrong).
    pub fn of(file: Option<PathBuf>, env: Option<String>) -> Self {
        SecretSource {
            file,
            env,
            value: None,
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
            (Some(path), None) => first_line(path).map_err(|e| (Some("file"), e))?,
            (None, Some(name)) => env_text(name).map_err(|e| (Some("env"), e))?,
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

/// The first line of a file, without surrounding whitespace; an error says why it could not
/// be read or that it is empty.
fn first_line(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or_default().trim();
    match line.is_empty() {
        true => Err(format!("{} is empty", path.display())),
        false => Ok(line.to_string()),
    }
}

/// An environment variable's value, without surrounding whitespace; an error when it is not
/// set or blank.
fn env_text(name: &str) -> Result<String, String> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value.trim().to_string()),
        _ => Err(format!("the environment variable {name} is not set")),
    }
}

/// Text given in exactly one of three places: inline as `NAME`, in a file as `NAME_file` (its
/// first line) or in an environment variable as `NAME_env`, under `parent` (`state.postgres`).
#[derive(Debug, Clone, Copy)]
pub struct OneOf<'a> {
    /// Where the three keys live, for errors.
    pub parent: &'a str,
    /// The inline key's name (`url`).
    pub name: &'a str,
    /// The value given inline.
    pub inline: Option<&'a str>,
    /// The file given.
    pub file: Option<&'a Path>,
    /// The environment variable given.
    pub env: Option<&'a str>,
}

/// Text read by [`OneOf::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenText {
    /// The text.
    pub text: String,
    /// The key it was given under (`state.postgres.url_file`).
    pub key: String,
    /// Whether it was given inline, in the configuration itself (rather than kept apart in a
    /// file or the environment, as a credential should be).
    pub inline: bool,
}

impl OneOf<'_> {
    /// Reads the text from the one place given: `None` when none is; an error naming the key
    /// when more than one is, or the file or variable cannot be read.
    pub fn read(&self) -> Result<Option<GivenText>, InvalidKey> {
        let key = |suffix: &str| format!("{}.{}{suffix}", self.parent, self.name);
        let given = |text, key, inline| Ok(Some(GivenText { text, key, inline }));
        match (self.inline, self.file, self.env) {
            (None, None, None) => Ok(None),
            (Some(text), None, None) => given(text.trim().to_string(), key(""), true),
            (None, Some(path), None) => {
                let key = key("_file");
                let text = first_line(path).map_err(|e| InvalidKey::new(&key, e))?;
                given(text, key, false)
            }
            (None, None, Some(name)) => {
                let key = key("_env");
                let text = env_text(name).map_err(|e| InvalidKey::new(&key, e))?;
                given(text, key, false)
            }
            _ => Err(InvalidKey::new(
                key(""),
                format!(
                    "give one of {name}, {name}_file and {name}_env",
                    name = self.name
                ),
            )),
        }
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

    #[test]
    fn text_is_read_from_the_one_place_it_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("url");
        std::fs::write(&path, " postgresql://tp:pw@db/tp \nmore\n").unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let place = |inline, file, env| OneOf {
            parent: "state.postgres",
            name: "url",
            inline,
            file,
            env,
        };
        assert_eq!(place(None, None, None).read().unwrap(), None);
        let inline = place(Some("postgresql://db/tp"), None, None)
            .read()
            .unwrap();
        let inline = inline.unwrap();
        assert_eq!(
            (inline.key.as_str(), inline.inline),
            ("state.postgres.url", true)
        );
        let file = place(None, Some(&path), None).read().unwrap().unwrap();
        assert_eq!(file.text, "postgresql://tp:pw@db/tp");
        assert_eq!(
            (file.key.as_str(), file.inline),
            ("state.postgres.url_file", false)
        );
        std::env::set_var("TWINPEAK_TEST_ONE_OF", " postgresql://env/tp ");
        let env = place(None, None, Some("TWINPEAK_TEST_ONE_OF"))
            .read()
            .unwrap();
        assert_eq!(env.unwrap().text, "postgresql://env/tp");

        let both = place(Some("a"), Some(&path), None).read().unwrap_err();
        assert_eq!(both.key, "state.postgres.url");
        assert_eq!(both.message, "give one of url, url_file and url_env");
        let blank = place(None, Some(&empty), None).read().unwrap_err();
        assert_eq!(blank.key, "state.postgres.url_file");
        assert!(blank.message.ends_with("is empty"), "{}", blank.message);
        let unset = place(None, None, Some("TWINPEAK_TEST_ONE_OF_UNSET")).read();
        let unset = unset.unwrap_err();
        assert_eq!(unset.key, "state.postgres.url_env");
        assert!(unset.message.contains("is not set"), "{}", unset.message);
    }
}
