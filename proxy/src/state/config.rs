//! The `state:` section: where the store lives (an SQLite file by default, or PostgreSQL for a
//! fleet), which replica this proxy is, how often it writes, and how long windows are kept.
//!
//! ```yaml
//! state:
//!   sqlite: /var/lib/twinpeak/state.sqlite3      # or: postgres: {url: ..., password_file: ...}
//!   replica: proxy-0                              # default: $HOSTNAME (the pod name)
//!   flush_interval: 5s
//!   coarsen_after: 24h
//!   retention: 35d
//!   max_buffered_bytes: 16MiB
//! ```
//!
//! A PostgreSQL password is never taken inline: a URL that carries one is refused unless the
//! URL itself comes from a file or the environment (`url_file`, `url_env`, as a Kubernetes
//! Secret provides it); otherwise it comes from `password_file` or `password_env`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use twinpeak_core::units::{Bytes, HumanDuration};

use super::error::StateError;
use crate::secret::OneOf;

/// The `state:` section; absent, every default (an SQLite file beside the configuration).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// An SQLite file (the default, beside the configuration file when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite: Option<PathBuf>,
    /// A PostgreSQL database shared by every replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresConfig>,
    /// Keep nothing: state lives in memory only and is lost on restart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub off: bool,
    /// This replica's name in the store; default `$HOSTNAME` (a pod's name), else the host
    /// name, else `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// How often what was learned is written (one transaction each); `kill -9` loses at most
    /// this much.
    #[serde(default = "default_flush_interval")]
    pub flush_interval: HumanDuration,
    /// Age after which per-minute windows are merged into per-hour ones.
    #[serde(default = "default_coarsen_after")]
    pub coarsen_after: HumanDuration,
    /// Age after which windows are deleted.
    #[serde(default = "default_retention")]
    pub retention: HumanDuration,
    /// Bytes of unwritten deltas kept while the database cannot be reached; deltas beyond it
    /// are dropped and counted (`twinpeak_state_dropped_total`).
    #[serde(default = "default_max_buffered_bytes")]
    pub max_buffered_bytes: Bytes,
}

/// PostgreSQL: the URL (inline without a password, or from a file or the environment) and,
/// when the URL carries none, where the password comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgresql://user@host:5432/db` (or libpq `key=value` form), without a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A file whose first line is the URL (it may carry a password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// An environment variable holding the URL (it may carry a password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// A file whose first line is the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// A PEM file of certificate authorities trusted for the server's certificate, besides
    /// the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Whether the server's certificate is verified (against `ca_file` and the system's
    /// authorities, and its name against the host's). Turn off only for a test server.
    #[serde(default = "crate::units::on", skip_serializing_if = "is_on")]
    pub verify_certificate: bool,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            url: None,
            url_file: None,
            url_env: None,
            password_file: None,
            password_env: None,
            ca_file: None,
            verify_certificate: true,
        }
    }
}

impl<'de> Deserialize<'de> for PostgresConfig {
    /// Either a URL (`postgres: postgresql://twinpeak@db/twinpeak`) or the full form.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            #[serde(default)]
            url: Option<String>,
            #[serde(default)]
            url_file: Option<PathBuf>,
            #[serde(default)]
            url_env: Option<String>,
            #[serde(default)]
            password_file: Option<PathBuf>,
            #[serde(default)]
            password_env: Option<String>,
            #[serde(default)]
            ca_file: Option<PathBuf>,
            #[serde(default = "crate::units::on")]
            verify_certificate: bool,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Url(String),
            Full(Full),
        }
        Ok(match Raw::deserialize(deserializer)? {
            Raw::Url(url) => PostgresConfig {
                url: Some(url),
                ..PostgresConfig::default()
            },
            Raw::Full(f) => PostgresConfig {
                url: f.url,
                url_file: f.url_file,
                url_env: f.url_env,
                password_file: f.password_file,
                password_env: f.password_env,
                ca_file: f.ca_file,
                verify_certificate: f.verify_certificate,
            },
        })
    }
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            sqlite: None,
            postgres: None,
            off: false,
            replica: None,
            flush_interval: default_flush_interval(),
            coarsen_after: default_coarsen_after(),
            retention: default_retention(),
            max_buffered_bytes: default_max_buffered_bytes(),
        }
    }
}

fn is_on(value: &bool) -> bool {
    *value
}

fn default_flush_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}

fn default_coarsen_after() -> HumanDuration {
    HumanDuration(Duration::from_secs(24 * 3600))
}

fn default_retention() -> HumanDuration {
    HumanDuration(Duration::from_secs(35 * 24 * 3600))
}

fn default_max_buffered_bytes() -> Bytes {
    Bytes(16 << 20)
}

/// Where the store lives, settled: what [`super::Store::open`] opens.
#[derive(Clone)]
pub enum Location {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database; the password, if any, is inside the connection settings and
    /// never printed.
    Postgres(Box<PostgresTarget>),
}

/// A PostgreSQL database to connect to: the connection settings and how TLS is verified.
#[derive(Clone)]
pub struct PostgresTarget {
    /// Host, port, user, password, database, `sslmode` and timeouts.
    pub config: postgres::Config,
    /// How the server's certificate is checked when TLS is used (`sslmode=prefer`, the
    /// default, or `require`).
    pub tls: TlsSettings,
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Authorities trusted besides the system's (a PEM file).
    pub ca_file: Option<PathBuf>,
    /// Whether the certificate is verified at all.
    pub verify_certificate: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            ca_file: None,
            verify_certificate: true,
        }
    }
}

impl PostgresTarget {
    /// Connection settings with the default TLS verification (the system's authorities).
    pub fn new(config: postgres::Config) -> Self {
        PostgresTarget {
            config,
            tls: TlsSettings::default(),
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Location {
    /// The location in words, without any password: `sqlite /path` or
    /// `postgres user@host:port/db`.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(path) => format!("sqlite {}", path.display()),
            Location::Postgres(target) => {
                let config = &target.config;
                let host = config
                    .get_hosts()
                    .iter()
                    .map(|h| match h {
                        postgres::config::Host::Tcp(name) => name.clone(),
                        postgres::config::Host::Unix(path) => path.display().to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                let ports = config
                    .get_ports()
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                format!(
                    "postgres {}@{}:{}/{}",
                    config.get_user().unwrap_or("?"),
                    host,
                    if ports.is_empty() { "5432" } else { &ports },
                    config
                        .get_dbname()
                        .or(config.get_user())
                        .unwrap_or_default()
                )
            }
        }
    }
}

impl StateConfig {
    /// The SQLite file used when none is configured: beside the configuration file, named
    /// after it (`proxy.yaml` keeps its state in `proxy.state.sqlite3`), so two proxies run
    /// from two configurations never share one.
    pub fn default_sqlite_path(config_file: &Path) -> PathBuf {
        let stem = config_file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "twinpeak".into());
        config_file
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(format!("{stem}.state.sqlite3"))
    }

    /// Where the store lives, `None` when state is `off`; reads a URL or password from its
    /// file or variable. `config_file` places the default SQLite file.
    pub fn location(&self, config_file: &Path) -> Result<Option<Location>, StateError> {
        let invalid = |message: String| StateError::Config { message };
        match (self.off, &self.sqlite, &self.postgres) {
            (true, None, None) => Ok(None),
            (true, _, _) => Err(invalid(
                "state.off cannot be combined with state.sqlite or state.postgres".into(),
            )),
            (false, Some(_), Some(_)) => Err(invalid(
                "give either state.sqlite or state.postgres, not both".into(),
            )),
            (false, Some(path), None) => Ok(Some(Location::Sqlite(path.clone()))),
            (false, None, None) => Ok(Some(Location::Sqlite(Self::default_sqlite_path(
                config_file,
            )))),
            (false, None, Some(pg)) => Ok(Some(Location::Postgres(Box::new(pg.target()?)))),
        }
    }

    /// This replica's name: the configured one, else `$HOSTNAME`, else the host name, else
    /// `local`.
    pub fn replica_name(&self) -> String {
        let configured = self.replica.clone().filter(|r| !r.trim().is_empty());
        configured
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
            })
            .unwrap_or_else(|| "local".into())
    }

    /// The settings the store runs by.
    pub fn settings(&self) -> Settings {
        Settings {
            replica: self.replica_name(),
            coarsen_after: self.coarsen_after.0,
            retention: self.retention.0,
            max_buffered_bytes: usize::try_from(self.max_buffered_bytes.0).unwrap_or(usize::MAX),
            ..Settings::default()
        }
    }
}

/// What a [`super::Store`] runs by, settled from [`StateConfig`] (tests build it directly).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// This replica's name: the key of every row it writes.
    pub replica: String,
    /// Age after which per-minute windows are merged into per-hour ones.
    pub coarsen_after: Duration,
    /// Age after which windows are deleted.
    pub retention: Duration,
    /// Bytes of unwritten deltas kept while the database cannot be reached.
    pub max_buffered_bytes: usize,
    /// Longest wait between two attempts to write after a failure (attempts back off from
    /// one second, doubling).
    pub max_retry_backoff: Duration,
    /// Canary decisions and audit entries kept (the oldest are deleted past it).
    pub max_history: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            replica: "local".into(),
            coarsen_after: default_coarsen_after().0,
            retention: default_retention().0,
            max_buffered_bytes: default_max_buffered_bytes().0 as usize,
            max_retry_backoff: Duration::from_secs(30),
            max_history: 10_000,
        }
    }
}

impl PostgresConfig {
    /// The connection settings and the TLS verification ([`PostgresConfig::connect_config`]).
    pub fn target(&self) -> Result<PostgresTarget, StateError> {
        Ok(PostgresTarget {
            config: self.connect_config()?,
            tls: TlsSettings {
                ca_file: self.ca_file.clone(),
                verify_certificate: self.verify_certificate,
            },
        })
    }

    /// The connection settings: the URL from where it is given, the password from its file
    /// or variable. Refuses an inline URL that carries a password.
    pub fn connect_config(&self) -> Result<postgres::Config, StateError> {
        let invalid = |message: String| StateError::Config { message };
        let read = |given: OneOf<'_>| {
            given
                .read()
                .map_err(|e| invalid(format!("{}: {}", e.key, e.message)))
        };
        let url = read(OneOf {
            parent: "state.postgres",
            name: "url",
            inline: self.url.as_deref(),
            file: self.url_file.as_deref(),
            env: self.url_env.as_deref(),
        })?
        .ok_or_else(|| invalid("state.postgres needs url, url_file or url_env".into()))?;
        let (url, url_is_secret) = (url.text, !url.inline);
        let mut config: postgres::Config = url.parse().map_err(|e| {
            invalid(format!(
                "state.postgres: not a PostgreSQL URL or connection string ({e})"
            ))
        })?;
        if config.get_password().is_some() && !url_is_secret {
            return Err(invalid(
                "state.postgres.url carries a password: give the password with password_file or \
                 password_env (or the whole URL with url_file or url_env), never inline"
                    .into(),
            ));
        }
        let password = read(OneOf {
            parent: "state.postgres",
            name: "password",
            inline: None,
            file: self.password_file.as_deref(),
            env: self.password_env.as_deref(),
        })?
        .map(|password| password.text);
        if let Some(password) = password {
            config.password(password);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(3));
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("twinpeak");
        }
        config.keepalives_idle(Duration::from_secs(30));
        if config.get_options().is_none() {
            // A lock wait or a stalled server never holds a flush for long.
            config.options("-c statement_timeout=10000");
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> StateConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults_put_an_sqlite_file_beside_the_configuration() {
        let config = parse("{}");
        assert_eq!(config.flush_interval.0, Duration::from_secs(5));
        assert_eq!(config.coarsen_after.0, Duration::from_secs(86_400));
        assert_eq!(config.retention.0, Duration::from_secs(35 * 86_400));
        let location = config.location(Path::new("/etc/tp/proxy.yaml")).unwrap();
        assert!(
            matches!(&location, Some(Location::Sqlite(p)) if p == Path::new("/etc/tp/proxy.state.sqlite3")),
            "{location:?}"
        );
        assert!(parse("off: true")
            .location(Path::new("c.yaml"))
            .unwrap()
            .is_none());
        let replica = parse("replica: proxy-7").settings().replica;
        assert_eq!(replica, "proxy-7");
    }

    #[test]
    fn a_password_inline_is_refused_and_one_from_a_file_is_taken() {
        let inline = parse("postgres: postgresql://tp:hunter2@db.internal/tp");
        let err = inline
            .location(Path::new("c.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("carries a password"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret-value\n").unwrap();
        let config = parse(&format!(
            "postgres: {{url: 'postgresql://tp@db.internal:6432/tp', password_file: {}}}",
            file.display()
        ));
        let Some(Location::Postgres(pg)) = config.location(Path::new("c.yaml")).unwrap() else {
            panic!("not postgres");
        };
        assert_eq!(pg.config.get_password(), Some(&b"s3cret-value"[..]));
        assert!(pg.tls.verify_certificate);
        let described = Location::Postgres(pg).describe();
        assert_eq!(described, "postgres tp@db.internal:6432/tp");

        let url_file = dir.path().join("url");
        std::fs::write(&url_file, "postgresql://tp:pw@db/tp\n").unwrap();
        let config = parse(&format!("postgres: {{url_file: {}}}", url_file.display()));
        assert!(config.location(Path::new("c.yaml")).is_ok());
    }

    #[test]
    fn conflicting_or_missing_settings_are_named() {
        let both = parse("{sqlite: a.db, postgres: 'postgresql://tp@db/tp'}");
        assert!(both.location(Path::new("c.yaml")).is_err());
        let missing_env =
            parse("postgres: {url: 'postgresql://tp@db/tp', password_env: TP_NO_SUCH_VAR_9}");
        let err = missing_env
            .location(Path::new("c.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("TP_NO_SUCH_VAR_9"), "{err}");
        assert!(serde_yaml::from_str::<StateConfig>("sqlite: a\nbogus: 1").is_err());
    }
}
