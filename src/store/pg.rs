//! The PostgreSQL backend's connections: a small pool of `postgres` clients,
//! each with its prepared statements, and the [`Db`] they give the store's SQL.
//!
//! Every integer column is a `BIGINT` and every blob a `BYTEA`, so a value
//! crosses as it does with SQLite; a parameter is sent as whatever type the
//! server inferred for it. Write transactions take one advisory lock, so
//! they follow each other as SQLite's do (whatever gateway runs them); the
//! reading writer instead locks the state rows of the meters in its batch.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use postgres::types::{FromSql, IsNull, ToSql, Type};
use postgres::{Client, NoTls, Statement};

use super::db::{postgres_sql, Bound, Cell, Db, Dialect, Param, Row};
use super::StoreError;

/// The advisory lock every write transaction takes (a number of our own).
const WRITE_LOCK: i32 = 0x5357_5752; // "SWWR"

/// Takes one of Stillwater's advisory locks until the transaction ends. The
/// lock is the schema's: installations sharing a database in schemas of
/// their own never wait on each other.
pub(super) const SCHEMA_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtext(current_schema()), CAST(?1 AS INTEGER))";

/// Idle connections kept for reuse.
const IDLE_KEPT: usize = 8;

/// A client and its prepared statements, by their SQL.
struct Connection {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// The pool: how to connect, and the idle connections.
pub struct Pool {
    config: postgres::Config,
    /// The URL without its password, for messages.
    shown: String,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("url", &self.shown).finish()
    }
}

impl Pool {
    /// A pool for `url` (`postgres://user@host:port/db`); `password`, when
    /// given, wins over one in the URL.
    pub fn new(url: &str, password: Option<&str>) -> Result<Self, StoreError> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Postgres(format!("the PostgreSQL URL {url:?}: {e}")))?;
        if let Some(password) = password {
            config.password(password);
        }
        config.connect_timeout(Duration::from_secs(10));
        config.application_name("stillwater");
        Ok(Self {
            shown: crate::domain::shown_url(url),
            config,
            idle: Mutex::default(),
        })
    }

    /// Asks the server to end any of this pool's sessions whose transaction
    /// sits idle longer than `limit` (its locks go with it).
    pub fn end_idle_transactions_after(&mut self, limit: Duration) {
        let setting = format!(
            "-c idle_in_transaction_session_timeout={}",
            limit.as_millis().max(1)
        );
        let options = match self.config.get_options() {
            Some(options) if !options.is_empty() => format!("{options} {setting}"),
            _ => setting,
        };
        self.config.options(&options);
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn checkout(self: &Arc<Self>) -> Result<Box<Connection>, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if let Some(connection) = idle.filter(|c| !c.client.is_closed()) {
            return Ok(Box::new(connection));
        }
        let client = blocking(|| self.config.connect(NoTls)).map_err(|e| {
            StoreError::Postgres(format!(
                "cannot connect to {}: {}",
                self.shown,
                source_of(&e)
            ))
        })?;
        Ok(Box::new(Connection {
            client,
            statements: HashMap::new(),
        }))
    }

    fn checkin(&self, connection: Box<Connection>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if connection.client.is_closed() || idle.len() >= IDLE_KEPT {
            drop(idle);
            blocking(|| drop(connection)); // a client's drop says goodbye to the server
            return;
        }
        idle.push(*connection);
    }

    /// A connection for reads and single statements.
    pub fn connect(self: &Arc<Self>) -> Result<PgConn, StoreError> {
        Ok(PgConn {
            pool: self.clone(),
            connection: RefCell::new(Some(self.checkout()?)),
            open: RefCell::new(false),
        })
    }

    /// A connection inside a write transaction: begun, and holding the write
    /// lock. Rolled back when dropped without [`PgConn::commit`].
    pub fn begin_write(self: &Arc<Self>) -> Result<PgConn, StoreError> {
        let connection = self.begin()?;
        connection.execute(SCHEMA_LOCK, &[&WRITE_LOCK])?;
        Ok(connection)
    }

    /// A connection inside a transaction that takes no lock of its own.
    pub fn begin(self: &Arc<Self>) -> Result<PgConn, StoreError> {
        let connection = self.connect()?;
        connection.batch("BEGIN")?;
        *connection.open.borrow_mut() = true;
        Ok(connection)
    }
}

/// Runs a call of the `postgres` client, which blocks on a runtime of its
/// own: tokio refuses that on a worker thread of another runtime, so there
/// the call first moves the worker's other tasks away (`block_in_place`).
/// A current-thread runtime cannot do that: a store on PostgreSQL is used
/// from a multi-thread runtime (the gateway's), its blocking pool, or plain
/// threads.
fn blocking<T>(call: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}

/// The innermost cause of a client error (the server's message, or why the
/// connection failed).
fn source_of(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{}: {}", db.code().code(), db.message());
    }
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text = inner.to_string();
        source = inner.source();
    }
    text
}

/// A pooled connection, perhaps inside a transaction.
pub struct PgConn {
    pool: Arc<Pool>,
    connection: RefCell<Option<Box<Connection>>>,
    /// A transaction is open (rolled back on drop).
    open: RefCell<bool>,
}

impl PgConn {
    fn batch(&self, sql: &str) -> Result<(), StoreError> {
        let mut slot = self.connection.borrow_mut();
        let connection = slot
            .as_mut()
            .expect("a pooled connection is present until dropped");
        blocking(|| connection.client.batch_execute(sql)).map_err(|e| self.error(&e, sql))
    }

    /// Runs `sql` as it is (DDL, several statements).
    pub fn batch_execute(&self, sql: &str) -> Result<(), StoreError> {
        self.batch(sql)
    }

    /// Commits the open transaction.
    pub fn commit(self) -> Result<(), StoreError> {
        self.batch("COMMIT")?;
        *self.open.borrow_mut() = false;
        Ok(())
    }

    fn error(&self, error: &postgres::Error, sql: &str) -> StoreError {
        let first = sql.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
        StoreError::Postgres(format!(
            "{} (in `{first} …` on {})",
            source_of(error),
            self.pool.shown
        ))
    }

    fn run<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        work: impl FnOnce(&mut Client, &Statement, &[&(dyn ToSql + Sync)]) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut slot = self.connection.borrow_mut();
        let connection = slot
            .as_mut()
            .expect("a pooled connection is present until dropped");
        blocking(|| {
            let statement = match connection.statements.get(sql) {
                Some(statement) => statement.clone(),
                None => {
                    let statement = connection
                        .client
                        .prepare(&postgres_sql(sql))
                        .map_err(|e| self.error(&e, sql))?;
                    connection
                        .statements
                        .insert(sql.to_string(), statement.clone());
                    statement
                }
            };
            let bound: Vec<Bound<'_>> = params.iter().map(|p| p.bound()).collect();
            let refs: Vec<&(dyn ToSql + Sync)> =
                bound.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
            work(&mut connection.client, &statement, &refs).map_err(|e| self.error(&e, sql))
        })
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        let Some(mut connection) = self.connection.borrow_mut().take() else {
            return;
        };
        if *self.open.borrow() && blocking(|| connection.client.batch_execute("ROLLBACK")).is_err()
        {
            blocking(|| drop(connection));
            return;
        }
        self.pool.checkin(connection);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        blocking(|| drop(idle));
    }
}

impl Db for PgConn {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<u64, StoreError> {
        self.run(sql, params, |client, statement, refs| {
            client.execute(statement, refs)
        })
    }

    fn query(&self, sql: &str, params: &[&dyn Param]) -> Result<Vec<Row>, StoreError> {
        let rows = self.run(sql, params, |client, statement, refs| {
            client.query(statement, refs)
        })?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|index| {
                        row.try_get::<_, Cell>(index).map_err(|e| {
                            StoreError::Column(format!("column {index}: {}", source_of(&e)))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Row)
            })
            .collect()
    }
}

impl ToSql for Bound<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match *self {
            Bound::Null => Ok(IsNull::Yes),
            Bound::Int(value) => match *ty {
                Type::INT8 => value.to_sql(ty, out),
                Type::INT4 => i32::try_from(value)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(value)?.to_sql(ty, out),
                Type::BOOL => (value != 0).to_sql(ty, out),
                Type::FLOAT8 => (value as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => value.to_string().as_str().to_sql(ty, out),
                _ => Err(format!("an integer cannot be sent as {ty}").into()),
            },
            Bound::Real(value) => match *ty {
                Type::FLOAT8 => value.to_sql(ty, out),
                Type::FLOAT4 => (value as f32).to_sql(ty, out),
                _ => Err(format!("a number cannot be sent as {ty}").into()),
            },
            Bound::Text(text) => match *ty {
                Type::BYTEA => text.as_bytes().to_sql(ty, out),
                _ => text.to_sql(ty, out),
            },
            Bound::Blob(bytes) => bytes.to_sql(ty, out),
            Bound::Ints(values) => values.to_sql(ty, out),
            Bound::Texts(values) => values.to_sql(ty, out),
            Bound::Blobs(values) => values.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => Cell::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Cell::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Cell::Int(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Cell::Int(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Cell::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Cell::Real(f32::from_sql(ty, raw)?.into()),
            Type::BYTEA => Cell::Blob(Vec::<u8>::from_sql(ty, raw)?),
            _ => Cell::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Cell::Null)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8
                | Type::INT4
                | Type::INT2
                | Type::BOOL
                | Type::FLOAT8
                | Type::FLOAT4
                | Type::BYTEA
                | Type::TEXT
                | Type::VARCHAR
                | Type::NAME
                | Type::BPCHAR
        )
    }
}
