//! A connection or a write transaction of either backend, as one [`Db`].

use rusqlite::Connection;

use super::{db, pg, StoreError};

/// A connection of either backend, outside any transaction.
pub(crate) enum Conn {
    Sqlite(Connection),
    Postgres(pg::PgConn),
}

/// A write transaction of either backend.
pub(crate) enum TxConn<'c> {
    Sqlite(rusqlite::Transaction<'c>),
    Postgres(pg::PgConn),
}

impl TxConn<'_> {
    pub(crate) fn commit(self) -> Result<(), StoreError> {
        match self {
            TxConn::Sqlite(tx) => Ok(tx.commit()?),
            TxConn::Postgres(tx) => tx.commit(),
        }
    }
}

impl db::Db for TxConn<'_> {
    fn dialect(&self) -> db::Dialect {
        match self {
            TxConn::Sqlite(_) => db::Dialect::Sqlite,
            TxConn::Postgres(_) => db::Dialect::Postgres,
        }
    }

    fn execute(&self, sql: &str, params: &[&dyn db::Param]) -> Result<u64, StoreError> {
        match self {
            TxConn::Sqlite(c) => db::Db::execute(&**c, sql, params),
            TxConn::Postgres(c) => c.execute(sql, params),
        }
    }

    fn query(&self, sql: &str, params: &[&dyn db::Param]) -> Result<Vec<db::Row>, StoreError> {
        match self {
            TxConn::Sqlite(c) => db::Db::query(&**c, sql, params),
            TxConn::Postgres(c) => c.query(sql, params),
        }
    }
}

impl db::Db for Conn {
    fn dialect(&self) -> db::Dialect {
        match self {
            Conn::Sqlite(c) => c.dialect(),
            Conn::Postgres(c) => c.dialect(),
        }
    }

    fn execute(&self, sql: &str, params: &[&dyn db::Param]) -> Result<u64, StoreError> {
        match self {
            Conn::Sqlite(c) => db::Db::execute(c, sql, params),
            Conn::Postgres(c) => c.execute(sql, params),
        }
    }

    fn query(&self, sql: &str, params: &[&dyn db::Param]) -> Result<Vec<db::Row>, StoreError> {
        match self {
            Conn::Sqlite(c) => db::Db::query(c, sql, params),
            Conn::Postgres(c) => c.query(sql, params),
        }
    }
}
