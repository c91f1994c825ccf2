//! `twinpeak report --state PATH|URL [--from T] [--to T]`: a proxy snapshot read straight from
//! the state store (an SQLite file, or PostgreSQL with the password from a file or the
//! environment, as in the proxy's configuration), every replica's rows merged exactly.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{bail, Context};
use clap::Args;
use twinpeak_core::digest::hex_sha256;
use twinpeak_core::timestamp::parse_rfc3339;
use twinpeak_proxy::state::{Location, PostgresConfig, Settings, Store};
use twinpeak_reports::report::Input;

/// Where the state store is and which period to read.
#[derive(Debug, Args)]
pub struct StateInput {
    /// The proxy's state store: an SQLite file, or a `postgresql://USER@HOST/DB` URL.
    #[arg(long, value_name = "PATH|URL")]
    pub state: Option<String>,
    /// A file whose first line is the PostgreSQL password.
    #[arg(long, value_name = "PATH", requires = "state")]
    pub state_password_file: Option<PathBuf>,
    /// An environment variable holding the PostgreSQL password.
    #[arg(long, value_name = "NAME", requires = "state")]
    pub state_password_env: Option<String>,
    /// A PEM file of authorities trusted for the PostgreSQL server's certificate.
    #[arg(long, value_name = "PATH", requires = "state")]
    pub state_ca_file: Option<PathBuf>,
    /// Start of the period (RFC 3339); default: since the store began.
    #[arg(long, value_name = "TIME", requires = "state")]
    pub from: Option<String>,
    /// End of the period (RFC 3339); default: the last flush.
    #[arg(long, value_name = "TIME", requires = "state")]
    pub to: Option<String>,
}

fn time(text: &Option<String>, flag: &str) -> anyhow::Result<Option<SystemTime>> {
    text.as_deref()
        .map(|t| {
            parse_rfc3339(t).with_context(|| {
                format!("{flag} {t:?} is not an RFC 3339 time (2026-01-31T09:00:00Z)")
            })
        })
        .transpose()
}

impl StateInput {
    /// The store's snapshot of the period, as one more input; none without `--state`.
    pub fn read(&self) -> anyhow::Result<Option<(PathBuf, Input)>> {
        let Some(state) = &self.state else {
            return Ok(None);
        };
        let (from, to) = (time(&self.from, "--from")?, time(&self.to, "--to")?);
        let location = if state.starts_with("postgres://") || state.starts_with("postgresql://") {
            let config = PostgresConfig {
                url: Some(state.clone()),
                password_file: self.state_password_file.clone(),
                password_env: self.state_password_env.clone(),
                ca_file: self.state_ca_file.clone(),
                ..PostgresConfig::default()
            };
            Location::Postgres(Box::new(config.target()?))
        } else {
            let path = PathBuf::from(state);
            if !path.is_file() {
                bail!("--state {}: no such state store", path.display());
            }
            Location::Sqlite(path)
        };
        let described = location.describe();
        let mut store = Store::open(&location, Settings::default())?;
        let view = store.read_view(from, to, None)?;
        if view.replicas.is_empty() {
            bail!("{described}: nothing was flushed there for that period");
        }
        let snapshot = view.snapshot(&hex_sha256(described.as_bytes()));
        Ok(Some((PathBuf::from(described), Input::Snapshot(snapshot))))
    }
}
