//! The little the store needs of a database, so its logic is written once for SQLite and
//! PostgreSQL: statements with `$1`-style parameters, rows of integers and texts, and
//! transactions. Every column the store writes is a 64-bit integer or a text, so both drivers
//! map values the same way.

use std::collections::HashMap;

use super::config::PostgresTarget;
use super::error::DbError;

/// A parameter or a column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// A 64-bit integer.
    Int(i64),
    /// A text.
    Text(String),
    /// SQL NULL (only ever read, from aggregates over no rows).
    Null,
}

impl Value {
    /// The integer, or `None` for NULL or a text.
    pub(crate) fn int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// Takes the text out, or `None`.
    pub(crate) fn into_text(self) -> Option<String> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

/// One result row.
pub(crate) type Row = Vec<Value>;

/// The two databases the store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Starts a write transaction (SQLite takes its write lock at once, so two writers never
    /// deadlock upgrading a read lock).
    pub(crate) fn begin(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }

    /// The database's clock in Unix milliseconds: every replica reads the same clock for the
    /// lease.
    pub(crate) fn now_ms(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SELECT CAST(unixepoch('subsec') * 1000 AS INTEGER)",
            Dialect::Postgres => {
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
            }
        }
    }
}

/// A connection the store can run statements on.
pub(crate) trait Conn: Send {
    /// Which database it is.
    fn dialect(&self) -> Dialect;
    /// Runs one statement; returns the rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError>;
    /// Runs one query; returns its rows.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError>;
    /// Runs statements without parameters, separated by `;`.
    fn batch(&mut self, sql: &str) -> Result<(), DbError>;
    /// Starts a transaction.
    fn begin(&mut self) -> Result<(), DbError> {
        let begin = self.dialect().begin();
        self.batch(begin)
    }
    /// Commits the transaction begun.
    fn commit(&mut self) -> Result<(), DbError> {
        self.batch("COMMIT")
    }
    /// Rolls the transaction begun back.
    fn rollback(&mut self) -> Result<(), DbError> {
        self.batch("ROLLBACK")
    }
}

/// Runs `work` in one transaction: committed when it returns `Ok`, rolled back otherwise.
pub(crate) fn transaction<T, E: From<DbError>>(
    conn: &mut dyn Conn,
    work: impl FnOnce(&mut dyn Conn) -> Result<T, E>,
) -> Result<T, E> {
    conn.begin()?;
    match work(conn) {
        Ok(value) => {
            conn.commit()?;
            Ok(value)
        }
        Err(e) => {
            // The rollback can fail only with the connection gone, which rolls back too.
            let _ = conn.rollback();
            Err(e)
        }
    }
}

/// An SQLite file: WAL, `synchronous=NORMAL` (a commit survives a process crash; a power
/// loss may lose the last commits, never corrupt the file).
pub(crate) struct SqliteConn {
    conn: rusqlite::Connection,
}

impl SqliteConn {
    /// Opens (creating) the file and sets it up.
    pub(crate) fn open(path: &std::path::Path) -> Result<Self, DbError> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Self::set_wal(&conn)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(SqliteConn { conn })
    }

    /// Puts the file in WAL mode. Switching a new file takes a lock that SQLite's busy handler
    /// does not wait for, so two processes making the same file at once (replicas starting
    /// together) would see "database is locked": the switch is tried again for up to 5 s.
    fn set_wal(conn: &rusqlite::Connection) -> Result<(), rusqlite::Error> {
        const RETRY: std::time::Duration = std::time::Duration::from_millis(20);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match conn.pragma_update(None, "journal_mode", "WAL") {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(RETRY);
                }
                result => return result,
            }
        }
    }

    /// `$1` → `?1`: SQLite's numbered parameters.
    fn numbered(sql: &str) -> String {
        let mut out = String::with_capacity(sql.len());
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                out.push('?');
            } else {
                out.push(c);
            }
        }
        out
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

impl Conn for SqliteConn {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut statement = self.conn.prepare_cached(&Self::numbered(sql))?;
        Ok(statement.execute(rusqlite::params_from_iter(params))? as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        use rusqlite::types::ValueRef;
        let mut statement = self.conn.prepare_cached(&Self::numbered(sql))?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i)? {
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Null => Value::Null,
                    ValueRef::Real(_) | ValueRef::Blob(_) => {
                        return Err(column_error(i, sql));
                    }
                });
            }
            out.push(values);
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.conn.execute_batch(sql)?)
    }
}

fn column_error(column: usize, sql: &str) -> DbError {
    DbError::Column {
        column,
        query: sql.chars().take(60).collect(),
    }
}

/// Prepared statements kept per connection; past this many the cache starts over.
const MAX_PREPARED: usize = 128;

/// A PostgreSQL connection, made again on the next call once it broke, but never inside a
/// transaction: the rest of it would run on the new connection outside any transaction, and
/// a part of it would be committed as if it were the whole.
pub(crate) struct PostgresConn {
    config: postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    client: Option<postgres::Client>,
    prepared: HashMap<String, postgres::Statement>,
    /// Between a BEGIN that succeeded and its COMMIT or ROLLBACK.
    in_transaction: bool,
}

impl PostgresConn {
    /// Connects now, so a wrong address, password or certificate is reported at start.
    pub(crate) fn connect(target: PostgresTarget) -> Result<Self, DbError> {
        let mut conn = PostgresConn {
            tls: super::tls::connector(&target.tls).map_err(DbError::Tls)?,
            config: target.config,
            client: None,
            prepared: HashMap::new(),
            in_transaction: false,
        };
        conn.client()?;
        Ok(conn)
    }

    /// Whether the connection is gone (never made, or broken).
    fn lost(&self) -> bool {
        self.client.as_ref().is_none_or(postgres::Client::is_closed)
    }

    fn client(&mut self) -> Result<&mut postgres::Client, DbError> {
        if self.lost() {
            self.prepared.clear();
            self.client = None;
            if self.in_transaction {
                return Err(DbError::LostInTransaction);
            }
            self.client = Some(self.config.connect(self.tls.clone())?);
        }
        Ok(self.client.as_mut().expect("connected just above"))
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, DbError> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client()?.prepare(sql)?;
        if self.prepared.len() >= MAX_PREPARED {
            self.prepared.clear();
        }
        self.prepared.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    /// Forgets a connection that failed, so the next call connects again.
    fn on_error(&mut self, e: postgres::Error) -> DbError {
        if e.is_closed() || e.as_db_error().is_none() {
            self.client = None;
        }
        e.into()
    }

    fn params(params: &[Value]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
        const NULL: Option<i64> = None;
        params
            .iter()
            .map(|p| match p {
                Value::Int(v) => v as &(dyn postgres::types::ToSql + Sync),
                Value::Text(t) => t as &(dyn postgres::types::ToSql + Sync),
                Value::Null => &NULL as &(dyn postgres::types::ToSql + Sync),
            })
            .collect()
    }
}

impl Drop for PostgresConn {
    /// The driver closes a connection by blocking on its own runtime, which panics on a
    /// thread that drives async tasks: there, it is closed on a thread of its own.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                std::thread::spawn(move || drop(client));
            }
        }
    }
}

impl Conn for PostgresConn {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let statement = self.statement(sql)?;
        let result = self.client()?.execute(&statement, &Self::params(params));
        result.map_err(|e| self.on_error(e))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        use postgres::types::Type;
        let statement = self.statement(sql)?;
        let result = self.client()?.query(&statement, &Self::params(params));
        let rows = result.map_err(|e| self.on_error(e))?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        let ty = row.columns()[i].type_();
                        let value = if *ty == Type::INT8 {
                            row.try_get::<_, Option<i64>>(i)?.map(Value::Int)
                        } else if *ty == Type::INT4 {
                            row.try_get::<_, Option<i32>>(i)?
                                .map(|v| Value::Int(v.into()))
                        } else if *ty == Type::TEXT || *ty == Type::VARCHAR {
                            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
                        } else {
                            return Err(column_error(i, sql));
                        };
                        Ok(value.unwrap_or(Value::Null))
                    })
                    .collect()
            })
            .collect()
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        let result = self.client()?.batch_execute(sql);
        result.map_err(|e| self.on_error(e))
    }

    fn begin(&mut self) -> Result<(), DbError> {
        self.batch(Dialect::Postgres.begin())?;
        self.in_transaction = true;
        Ok(())
    }

    fn commit(&mut self) -> Result<(), DbError> {
        let committed = self.batch("COMMIT");
        self.in_transaction = false;
        committed
    }

    fn rollback(&mut self) -> Result<(), DbError> {
        // A lost connection took its transaction with it: there is nothing to roll back.
        let rolled_back = if self.lost() {
            Ok(())
        } else {
            self.batch("ROLLBACK")
        };
        self.in_transaction = false;
        rolled_back
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_runs_numbered_parameters_and_rolls_back_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = SqliteConn::open(&dir.path().join("t.db")).unwrap();
        conn.batch("CREATE TABLE t (a BIGINT NOT NULL, b TEXT NOT NULL)")
            .unwrap();
        conn.execute("INSERT INTO t VALUES ($1, $2)", &[7.into(), "x".into()])
            .unwrap();
        let failed: Result<(), DbError> = transaction(&mut conn, |c| {
            c.execute("INSERT INTO t VALUES ($1, $2)", &[8.into(), "y".into()])?;
            c.execute("INSERT INTO nowhere VALUES (1)", &[])?;
            Ok(())
        });
        assert!(failed.is_err());
        let rows = conn
            .query(
                "SELECT a, b, MAX(a) FILTER (WHERE a > $1) FROM t",
                &[100.into()],
            )
            .unwrap();
        assert_eq!(rows, vec![vec![Value::Int(7), "x".into(), Value::Null]]);
        let mode = conn.query("PRAGMA journal_mode", &[]).unwrap();
        assert_eq!(mode[0][0], Value::Text("wal".into()));
        assert_eq!(
            SqliteConn::numbered("a = $1 AND b = $12 OR '$x'"),
            "a = ?1 AND b = ?12 OR '$x'"
        );
    }
}
