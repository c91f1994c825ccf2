//! What can go wrong with the store, each saying where and why.

/// A failure of the database itself (either kind), with the driver's own error.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL reported an error, or could not be reached.
    #[error("postgres: {}", describe_postgres(.0))]
    Postgres(#[from] postgres::Error),
    /// The connection broke inside a transaction: the database rolled it back, and the rest
    /// of it is not run on a new connection.
    #[error("postgres: the connection was lost inside a transaction (rolled back)")]
    LostInTransaction,
    /// TLS could not be set up (an unreadable CA file).
    #[error("{0}")]
    Tls(String),
    /// A query returned a value of a type the store never writes there.
    #[error("unexpected value in column {column} of `{query}`")]
    Column {
        /// The column's position.
        column: usize,
        /// The start of the query.
        query: String,
    },
}

/// The server's message when there is one (it names the failing object), else the driver's.
fn describe_postgres(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The `state:` section is not usable as written.
    #[error("{message}")]
    Config {
        /// What is wrong, naming the key.
        message: String,
    },
    /// The store could not be opened (or its schema set up).
    #[error("cannot open the state store ({location}): {source}")]
    Open {
        /// Where (no password).
        location: String,
        /// What the database said.
        #[source]
        source: DbError,
    },
    /// The store was written by a newer twinpeak.
    #[error(
        "the state store ({location}) has schema version {found}, but this twinpeak knows \
         versions up to {known}: upgrade twinpeak, or point it at another store"
    )]
    SchemaTooNew {
        /// Where (no password).
        location: String,
        /// The version recorded in the store.
        found: i64,
        /// The newest version this binary knows.
        known: i64,
    },
    /// A read or write failed; the store is still usable and the call may be retried.
    #[error("state store ({location}): {source}")]
    Database {
        /// Where (no password).
        location: String,
        /// What the database said.
        #[source]
        source: DbError,
    },
    /// The canary row kept changing under a compare-and-set change.
    #[error("state store ({location}): the canary changed under every one of {attempts} attempts to change it")]
    Contended {
        /// Where (no password).
        location: String,
        /// Attempts made.
        attempts: usize,
    },
}
