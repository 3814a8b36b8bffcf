//! `stillwater migrate`: copies a SQLite store into a PostgreSQL one, table
//! by table in the order their references need, in chunks of rows. Each
//! chunk is inserted and its progress recorded in one PostgreSQL
//! transaction (`migrate_progress`), so an interrupted copy resumes where it
//! stopped and never copies a row twice. Ids are copied as they are (an
//! alert keeps its number, a text its idempotency key), and the target's id
//! sequences are moved past them. At the end every table's rows are counted
//! on both sides.

use std::sync::Arc;

use rusqlite::Connection;

use super::db::{args, Cell, Db, Row};
use super::pg::{PgConn, Pool};
use super::{Backend, Store, StoreError};

/// The tables copied, parents before the tables that refer to them. The
/// writer's reading log is folded into the chunks before copying; leases
/// belong to the gateways that hold them.
const TABLES: &[&str] = &[
    "households",
    "contacts",
    "meters",
    "meter_state",
    "reading_chunks",
    "meter_events",
    "rejected_messages",
    "audit_log",
    "alerts",
    "alert_events",
    "notifications",
    "notification_attempts",
    "sms_codes",
    "absences",
    "rule_overrides",
    "check_in_covers",
    "mqtt_sessions",
    "meter_logins",
    "watch",
    "platform_devices",
    "api_tokens",
];

/// Rows per chunk (one transaction on the target).
const CHUNK: usize = 1000;
/// Rows per INSERT statement (PostgreSQL takes at most 65,535 parameters).
const ROWS_PER_INSERT: usize = 200;

/// One table's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    /// Rows in the source.
    pub source: i64,
    /// Rows in the target after the copy.
    pub target: i64,
    /// Rows this run copied (0 for a table an earlier run finished).
    pub copied: i64,
}

impl TableCount {
    pub fn matches(&self) -> bool {
        self.source == self.target
    }
}

/// Copies the SQLite store `from` into the PostgreSQL store `to`, resuming
/// an earlier run; `progress` hears about each table as it is done.
pub fn copy(
    from: &Store,
    to: &Store,
    progress: &mut dyn FnMut(&TableCount),
) -> Result<Vec<TableCount>, StoreError> {
    copy_in_chunks(from, to, CHUNK, progress)
}

/// [`copy`] with `chunk` rows per transaction.
pub fn copy_in_chunks(
    from: &Store,
    to: &Store,
    chunk: usize,
    progress: &mut dyn FnMut(&TableCount),
) -> Result<Vec<TableCount>, StoreError> {
    let source = from.connect()?;
    let Backend::Postgres(pool) = &to.backend else {
        return Err(StoreError::Postgres(
            "the target of a migration is a PostgreSQL database (postgres://…)".into(),
        ));
    };
    prepare_target(pool)?;
    let mut counts = Vec::new();
    for table in TABLES {
        let copied = copy_table(&source, pool, table, chunk.max(1))?;
        let count = TableCount {
            table,
            source: (&source as &dyn Db)
                .query_value(&format!("SELECT count(*) FROM {table}"), args![])?,
            target: (&pool.connect()? as &dyn Db)
                .query_value(&format!("SELECT count(*) FROM {table}"), args![])?,
            copied,
        };
        progress(&count);
        counts.push(count);
    }
    move_sequences(pool)?;
    Ok(counts)
}

/// Makes the progress table, and refuses a target holding data that no
/// migration put there.
fn prepare_target(pool: &Arc<Pool>) -> Result<(), StoreError> {
    let db = pool.connect()?;
    db.batch_execute(
        "CREATE TABLE IF NOT EXISTS migrate_progress (
             table_name TEXT PRIMARY KEY,
             last_key   BIGINT NOT NULL,
             done       BIGINT NOT NULL DEFAULT 0
         )",
    )?;
    let db: &dyn Db = &db;
    let started: i64 = db.query_value("SELECT count(*) FROM migrate_progress", args![])?;
    let households: i64 = db.query_value("SELECT count(*) FROM households", args![])?;
    let readings: i64 = db.query_value("SELECT count(*) FROM meter_state", args![])?;
    if started == 0 && households + readings > 0 {
        return Err(StoreError::Postgres(format!(
            "the target already holds {households} household(s) and {readings} meter(s) that no migration copied; migrate into an empty database"
        )));
    }
    Ok(())
}

/// The target's columns of `table`, in order.
fn target_columns(db: &dyn Db, table: &str) -> Result<Vec<String>, StoreError> {
    db.query_all(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = ?1 ORDER BY ordinal_position",
        args![table],
        |row| row.get(0),
    )
}

/// What the source selects for the target's `columns`: the same column,
/// or its rowid for an `id` the SQLite table keeps as its rowid.
fn source_columns(
    source: &Connection,
    table: &str,
    columns: &[String],
) -> Result<Vec<String>, StoreError> {
    let present: Vec<String> = (source as &dyn Db).query_all(
        "SELECT name FROM pragma_table_info(?1)",
        args![table],
        |row| row.get(0),
    )?;
    columns
        .iter()
        .map(|column| {
            if present.contains(column) {
                Ok(column.clone())
            } else if column == "id" {
                Ok("rowid".into())
            } else {
                Err(StoreError::Postgres(format!(
                    "the source's {table} has no column {column}: upgrade it first (open it once with this stillwater)"
                )))
            }
        })
        .collect()
}

/// Copies one table from where an earlier run stopped; returns the rows copied.
fn copy_table(
    source: &Connection,
    pool: &Arc<Pool>,
    table: &str,
    chunk: usize,
) -> Result<i64, StoreError> {
    let target = pool.connect()?;
    let (last_key, done): (i64, i64) = (&target as &dyn Db)
        .query_opt(
            "SELECT last_key, done FROM migrate_progress WHERE table_name = ?1",
            args![table],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?
        .unwrap_or((i64::MIN, 0));
    if done == 1 {
        return Ok(0);
    }
    let columns = target_columns(&target, table)?;
    drop(target);
    let selected = source_columns(source, table, &columns)?.join(", ");
    // Tables without a rowid are small (settings, covers): one chunk, keyed 0.
    let has_rowid = source
        .prepare(&format!("SELECT rowid FROM {table} LIMIT 0"))
        .is_ok();
    let mut copied = 0;
    let mut from = last_key;
    loop {
        let rows: Vec<Row> = if has_rowid {
            (source as &dyn Db).query(
                &format!(
                    "SELECT rowid, {selected} FROM {table} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2"
                ),
                args![from, chunk],
            )?
        } else {
            (source as &dyn Db).query(&format!("SELECT 0, {selected} FROM {table}"), args![])?
        };
        let last = rows.last().map(|row| row.get::<i64>(0)).transpose()?;
        let finished = !has_rowid || rows.len() < chunk;
        let tx = pool.begin()?;
        insert_rows(&tx, table, &columns, &rows)?;
        (&tx as &dyn Db).execute(
            "INSERT INTO migrate_progress (table_name, last_key, done) VALUES (?1, ?2, ?3)
             ON CONFLICT (table_name) DO UPDATE SET last_key = excluded.last_key, done = excluded.done",
            args![table, last.unwrap_or(from), i64::from(finished)],
        )?;
        tx.commit()?;
        copied += rows.len() as i64;
        if finished {
            return Ok(copied);
        }
        from = last.unwrap_or(from);
    }
}

/// Inserts `rows` (their first cell is the source's key, not copied).
fn insert_rows(
    tx: &PgConn,
    table: &str,
    columns: &[String],
    rows: &[Row],
) -> Result<(), StoreError> {
    let width = columns.len();
    for group in rows.chunks(ROWS_PER_INSERT) {
        let values: Vec<String> = (0..group.len())
            .map(|row| {
                let cells: Vec<String> = (1..=width)
                    .map(|column| format!("?{}", row * width + column))
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES {} ON CONFLICT DO NOTHING",
            columns.join(", "),
            values.join(", ")
        );
        let cells: Vec<&Cell> = group.iter().flat_map(|row| &row.0[1..]).collect();
        let params: Vec<&dyn super::db::Param> = cells
            .iter()
            .map(|cell| *cell as &dyn super::db::Param)
            .collect();
        (tx as &dyn Db).execute(&sql, &params)?;
    }
    Ok(())
}

/// Moves every identity sequence past the largest id copied, so the next
/// alert or text gets a new number.
fn move_sequences(pool: &Arc<Pool>) -> Result<(), StoreError> {
    let db = pool.connect()?;
    let identities: Vec<(String, String)> = (&db as &dyn Db).query_all(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND is_identity = 'YES'",
        args![],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    for (table, column) in identities {
        (&db as &dyn Db).query_all(
            &format!(
                "SELECT setval(pg_get_serial_sequence(?1, ?2), coalesce(max({column}), 0) + 1, false) FROM {table}"
            ),
            args![table, column],
            |_| Ok(()),
        )?;
    }
    Ok(())
}
