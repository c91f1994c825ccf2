//! Errors of starting a testbed, and of the store while serving.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::Build;

/// Why a [`crate::Testbed`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// The temporary directory for a fresh database could not be made.
    #[error("cannot create a temporary directory for the database: {0}")]
    TempDir(#[source] io::Error),
    /// SQLite failed while opening, creating or seeding the database.
    #[error("cannot prepare the database {path}: {source}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The file holds the other build's database (its indexes and journal mode differ).
    #[error("{path} holds a {found} database; start the {found} build on it, or give the {wanted} build another file")]
    WrongBuild {
        /// The database file.
        path: PathBuf,
        /// The build that created it.
        found: String,
        /// The build asked to serve it.
        wanted: Build,
    },
    /// The file is an SQLite database with tables, but not one a testbed made.
    #[error("{path} is not a testbed database (it has tables but no testbed metadata); give an empty or new file")]
    Foreign {
        /// The database file.
        path: PathBuf,
    },
    /// The runtime stopped while the database was being prepared.
    #[error("stopped while preparing the database")]
    Interrupted,
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

/// Why the store could not answer a request; the API turns it into a 500.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The blocking task running the query died (it panicked or the runtime is stopping).
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A stored value is not what the schema allows.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}
