//! The store's SQL, written once for both backends: a statement is run through
//! [`Db`], which SQLite (`rusqlite`) and PostgreSQL (`postgres`, in `pg`)
//! implement. Statements number their parameters `?1`, `?2`… (PostgreSQL's
//! `$1`, `$2`… are made from them), take [`Param`]s and give [`Row`]s of
//! plain values. Where the two dialects differ a statement says so with
//! [`Db::dialect`]; everything else is the SQL both understand (`RETURNING`,
//! `ON CONFLICT`, `coalesce`, `string_agg`).

use rusqlite::types::{ToSqlOutput, ValueRef};

use super::StoreError;

/// Which SQL a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A value bound to a statement.
#[derive(Debug, Clone, Copy)]
pub enum Bound<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
    /// Arrays, for PostgreSQL's `unnest` and `= ANY`: one statement for a
    /// whole batch instead of one a row.
    Ints(&'a [Option<i64>]),
    Texts(&'a [String]),
    Blobs(&'a [Vec<u8>]),
}

/// A value read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// Something a statement can take as a parameter.
pub trait Param {
    fn bound(&self) -> Bound<'_>;
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl Param for $t {
            fn bound(&self) -> Bound<'_> {
                Bound::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_param!(i64, i32, u32, u16, u8, usize, u64);

impl Param for bool {
    fn bound(&self) -> Bound<'_> {
        Bound::Int(i64::from(*self))
    }
}

impl Param for f64 {
    fn bound(&self) -> Bound<'_> {
        Bound::Real(*self)
    }
}

impl Param for str {
    fn bound(&self) -> Bound<'_> {
        Bound::Text(self)
    }
}

impl Param for String {
    fn bound(&self) -> Bound<'_> {
        Bound::Text(self)
    }
}

impl Param for [u8] {
    fn bound(&self) -> Bound<'_> {
        Bound::Blob(self)
    }
}

impl Param for Vec<u8> {
    fn bound(&self) -> Bound<'_> {
        Bound::Blob(self)
    }
}

impl Param for Vec<Option<i64>> {
    fn bound(&self) -> Bound<'_> {
        Bound::Ints(self)
    }
}

impl Param for Vec<String> {
    fn bound(&self) -> Bound<'_> {
        Bound::Texts(self)
    }
}

impl Param for Vec<Vec<u8>> {
    fn bound(&self) -> Bound<'_> {
        Bound::Blobs(self)
    }
}

impl Param for Cell {
    fn bound(&self) -> Bound<'_> {
        match self {
            Cell::Null => Bound::Null,
            Cell::Int(value) => Bound::Int(*value),
            Cell::Real(value) => Bound::Real(*value),
            Cell::Text(value) => Bound::Text(value),
            Cell::Blob(value) => Bound::Blob(value),
        }
    }
}

impl<T: Param + ?Sized> Param for &T {
    fn bound(&self) -> Bound<'_> {
        (**self).bound()
    }
}

impl<T: Param> Param for Option<T> {
    fn bound(&self) -> Bound<'_> {
        self.as_ref().map_or(Bound::Null, Param::bound)
    }
}

/// Parameters for a statement: `args![a, b, c]`.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        &[$(&$value as &dyn $crate::store::db::Param),*] as &[&dyn $crate::store::db::Param]
    };
}
pub(crate) use args;

/// One row of a result.
#[derive(Debug, Clone)]
pub struct Row(pub(super) Vec<Cell>);

impl Row {
    /// Column `index` as a `T`; an error naming the column when it is not one.
    pub fn get<T: FromCell>(&self, index: usize) -> Result<T, StoreError> {
        let cell = self.0.get(index).unwrap_or(&Cell::Null);
        T::from_cell(cell).ok_or_else(|| {
            StoreError::Column(format!("column {index} holds {cell:?}, not {}", T::NAME))
        })
    }
}

/// A type a column can be read as.
pub trait FromCell: Sized {
    const NAME: &'static str;
    fn from_cell(cell: &Cell) -> Option<Self>;
}

macro_rules! int_cell {
    ($($t:ty),*) => {$(
        impl FromCell for $t {
            const NAME: &'static str = stringify!($t);
            fn from_cell(cell: &Cell) -> Option<Self> {
                match cell {
                    Cell::Int(value) => <$t>::try_from(*value).ok(),
                    _ => None,
                }
            }
        }
    )*};
}
int_cell!(i64, i32, u32, u16, u8, usize, u64);

impl FromCell for bool {
    const NAME: &'static str = "bool";
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Int(value) => Some(*value != 0),
            _ => None,
        }
    }
}

impl FromCell for f64 {
    const NAME: &'static str = "f64";
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Real(value) => Some(*value),
            Cell::Int(value) => Some(*value as f64),
            _ => None,
        }
    }
}

impl FromCell for String {
    const NAME: &'static str = "text";
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Text(text) => Some(text.clone()),
            _ => None,
        }
    }
}

impl FromCell for Vec<u8> {
    const NAME: &'static str = "bytes";
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Blob(bytes) => Some(bytes.clone()),
            Cell::Text(text) => Some(text.clone().into_bytes()),
            _ => None,
        }
    }
}

impl<T: FromCell> FromCell for Option<T> {
    const NAME: &'static str = T::NAME;
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Null => Some(None),
            cell => T::from_cell(cell).map(Some),
        }
    }
}

/// A connection or a transaction of either backend.
pub trait Db {
    fn dialect(&self) -> Dialect;

    /// Runs a statement; the number of rows it changed.
    fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<u64, StoreError>;

    /// Runs a query; every row.
    fn query(&self, sql: &str, params: &[&dyn Param]) -> Result<Vec<Row>, StoreError>;
}

impl dyn Db + '_ {
    /// Picks the statement of this connection's dialect.
    pub fn pick<'s>(&self, sqlite: &'s str, postgres: &'s str) -> &'s str {
        match self.dialect() {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        }
    }

    /// The first row, made into a `T`, if there is one.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        make: impl FnOnce(&Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        self.query(sql, params)?.first().map(make).transpose()
    }

    /// The first row's first column (a query that always gives a row).
    pub fn query_value<T: FromCell>(
        &self,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<T, StoreError> {
        match self.query(sql, params)?.first() {
            Some(row) => row.get(0),
            None => Err(StoreError::Column(format!("no row from: {sql}"))),
        }
    }

    /// Every row, each made into a `T`.
    pub fn query_all<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        make: impl FnMut(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.query(sql, params)?.iter().map(make).collect()
    }

    /// Runs an `INSERT … RETURNING id`; the new row's id.
    pub fn insert(&self, sql: &str, params: &[&dyn Param]) -> Result<i64, StoreError> {
        self.query_value(sql, params)
    }
}

impl rusqlite::ToSql for Bound<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Bound::Null => ValueRef::Null,
            Bound::Int(value) => ValueRef::Integer(value),
            Bound::Real(value) => ValueRef::Real(value),
            Bound::Text(text) => ValueRef::Text(text.as_bytes()),
            Bound::Blob(bytes) => ValueRef::Blob(bytes),
            Bound::Ints(_) | Bound::Texts(_) | Bound::Blobs(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    "arrays are bound on PostgreSQL only".into(),
                ))
            }
        }))
    }
}

fn sqlite_cell(value: ValueRef<'_>) -> Cell {
    match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(value) => Cell::Int(value),
        ValueRef::Real(value) => Cell::Real(value),
        ValueRef::Text(text) => Cell::Text(String::from_utf8_lossy(text).into_owned()),
        ValueRef::Blob(bytes) => Cell::Blob(bytes.to_vec()),
    }
}

impl Db for rusqlite::Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<u64, StoreError> {
        let bound: Vec<Bound<'_>> = params.iter().map(|p| p.bound()).collect();
        let mut statement = self.prepare_cached(sql)?;
        Ok(statement.execute(rusqlite::params_from_iter(bound.iter()))? as u64)
    }

    fn query(&self, sql: &str, params: &[&dyn Param]) -> Result<Vec<Row>, StoreError> {
        let bound: Vec<Bound<'_>> = params.iter().map(|p| p.bound()).collect();
        let mut statement = self.prepare_cached(sql)?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(bound.iter()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut cells = Vec::with_capacity(columns);
            for index in 0..columns {
                cells.push(sqlite_cell(row.get_ref(index)?));
            }
            out.push(Row(cells));
        }
        Ok(out)
    }
}

/// `sql` with `?N` parameters written as PostgreSQL's `$N` (quoted text is
/// left alone).
pub fn postgres_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => out.push('$'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_numbered_for_postgres_outside_quotes() {
        assert_eq!(
            postgres_sql("SELECT a FROM t WHERE b = ?1 AND c = '?' AND d = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $12"
        );
    }

    #[test]
    fn a_column_of_the_wrong_type_is_an_error_naming_it() {
        let row = Row(vec![Cell::Text("x".into()), Cell::Int(300)]);
        assert_eq!(row.get::<String>(0).unwrap(), "x");
        assert!(row.get::<u8>(1).is_err());
        assert_eq!(row.get::<Option<i64>>(2).unwrap(), None);
        let error = row.get::<i64>(0).unwrap_err().to_string();
        assert!(error.contains("column 0"), "{error}");
    }
}
