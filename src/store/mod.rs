//! The SQLite store: the only module that knows SQL.
//!
//! One writer thread (`writer`) owns the connection that records readings;
//! everything else opens short-lived connections through [`Store`]. The file
//! runs in WAL mode with `synchronous=NORMAL`: a committed transaction survives a
//! crash of the process, and readers never block the writer. Migrations
//! (`schema`) run when the store is opened. Readings are kept compactly, one row
//! per meter and UTC day (`chunk`); per-meter state is updated in the same
//! transaction as the readings, so a restart recovers everything from disk.
//! Every write transaction begins IMMEDIATE (takes the write lock first), so
//! writers queue on the busy timeout instead of failing a read-to-write upgrade.
//!
//! The store stores and reads; it decides nothing. Its seams for another backend
//! (PostgreSQL): the read traits (`traits`), the write primitives of one
//! transaction (`tx::Tx`), the engine's transaction (`engine::EngineTx`) and the
//! writer (`traits::ReadingWriter`). By aggregate: `engine` (what the alert
//! engine reads and writes), `alerts`, `outbox`, `absences`, `rules`, meters
//! (`registry`); readings here.

pub mod absences;
pub mod alerts;
pub mod chunk;
mod conn;
pub(crate) mod db;
pub mod engine;
mod gate;
mod log;
pub mod migrate;
pub mod outbox;
mod pg;
mod pg_schema;
mod registry;
pub mod report;
pub mod rules;
mod schema;
mod sessions;
pub mod system;
pub mod tokens;
pub mod traits;
pub mod tx;
pub mod writer;

/// The store's traits, for `use crate::store::prelude::*`.
pub mod prelude {
    pub use super::traits::{
        AbsenceStore, AlertStore, OutboxStore, ReadingStore, ReadingWriter, RegistryStore,
        ReportStore, RuleStore, SystemStore, TokenStore,
    };
}

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use thiserror::Error;

pub use crate::domain::shown_url;
pub(crate) use conn::{Conn, TxConn};
use db::{args, Db};

use crate::config::{StoreConfig, StoreLocation};
pub use crate::domain::StoredReading;
use crate::domain::Timestamp;
pub use traits::{AbsenceStore, AlertStore, OutboxStore, ReadingStore, RegistryStore, RuleStore};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database {path} has schema version {found}, newer than this stillwater knows ({known}); upgrade stillwater")]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("{0}")]
    Corrupt(#[from] chunk::ChunkError),
    #[error("meter {0} is not registered")]
    NotRegistered(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the directory {path} does not exist; create it, or choose another database path (--db or [store] path)")]
    NoDirectory { path: PathBuf },
    #[error("{path} already exists; a backup is written to a new file")]
    Exists { path: PathBuf },
    #[error("there is no database at {path}; check --db or [store] path (`stillwater serve` or `stillwater meters import` creates one)")]
    Missing { path: PathBuf },
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    #[error("unexpected column: {0}")]
    Column(String),
}

/// A handle to the database: a SQLite file, or a PostgreSQL server. Cheap
/// to clone; every call takes its own connection (SQLite opens one,
/// PostgreSQL takes one from the pool).
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// Write transactions of this process take turns here (see `gate`).
    gate: Arc<gate::WriteGate>,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(PathBuf),
    Postgres(Arc<pg::Pool>),
}

/// What `meters list` shows for each registered meter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterSummary {
    pub meter_id: String,
    pub resident_name: String,
    pub address: String,
    pub category: String,
    pub status: String,
    pub last_reading_ts: Option<i64>,
    /// Wall clock: the last message naming it.
    pub last_message: Option<i64>,
    pub last_battery_pct: Option<u8>,
    /// The status flags of its newest reading.
    pub last_status: u16,
    /// Readings its own counter says never arrived.
    pub missing: i64,
    pub rejected: i64,
    pub registered_at: i64,
    /// Minutes between the household's readings, as registered.
    pub reporting_interval_min: u32,
}

/// A meter's registration and the state recovered from its readings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterDetails {
    pub meter_id: String,
    /// `None` for a meter that has reported but was never registered.
    pub registration: Option<Registration>,
    pub state: Option<MeterState>,
    pub recent: Vec<StoredReading>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub household_id: i64,
    pub status: String,
    pub registered_at: i64,
    pub replaced_by: Option<String>,
    pub resident_name: String,
    pub address: String,
    pub category: String,
    pub timezone: String,
    pub reporting_interval_min: u32,
    pub notes: String,
    /// The resident's own phone, asked first (E.164).
    pub check_in_phone: Option<String>,
    /// (step, name, phone)
    pub contacts: Vec<(u32, String, String)>,
}

/// The per-meter state row: the three timestamps kept apart, and the register.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeterState {
    pub first_seen: i64,
    /// Wall clock: the last message naming this meter, valid or not.
    pub last_message: i64,
    /// Meter clock: the newest valid reading.
    pub last_reading_ts: Option<i64>,
    /// Meter clock: the newest reading whose register rose.
    pub last_consumption_ts: Option<i64>,
    pub last_total_l: Option<i64>,
    pub last_battery_pct: Option<u8>,
    pub last_status: u16,
    pub readings: i64,
    pub register_resets: i64,
    pub rejected: i64,
    /// Meter clock: the newest reading the alert engine has evaluated.
    pub evaluated_through: Option<i64>,
    /// The learned routine as the engine stored it (`detect::Routine::encode`).
    pub routine: Option<Vec<u8>>,
    /// Readings the meter's own counter (`seq`) says never arrived.
    pub missing: i64,
}

/// A meter that has published but is not (or no longer) registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnregisteredMeter {
    pub meter_id: String,
    pub first_seen: i64,
    pub last_message: i64,
    pub readings: i64,
    /// `replaced` or `removed` when it once was registered.
    pub former_status: Option<String>,
    /// How a carrier platform names it, when one pushed for it.
    pub platform: Option<PlatformDevice>,
}

/// A meter as a carrier platform names it, and what the platform last said
/// of its presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformDevice {
    pub platform: String,
    pub product_id: String,
    pub device_id: String,
    pub imei: Option<String>,
    /// (online, when) of the last online/offline report.
    pub presence: Option<(bool, i64)>,
}

fn platform_device_from(row: &db::Row, at: usize) -> Result<Option<PlatformDevice>, StoreError> {
    let Some(platform) = row.get::<Option<String>>(at)? else {
        return Ok(None);
    };
    let online: Option<bool> = row.get(at + 4)?;
    let presence_at: Option<i64> = row.get(at + 5)?;
    Ok(Some(PlatformDevice {
        platform,
        product_id: row.get(at + 1)?,
        device_id: row.get(at + 2)?,
        imei: row.get(at + 3)?,
        presence: online.zip(presence_at),
    }))
}

/// A message the gateway could not use, as kept for installers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedMessage {
    pub received_at: i64,
    pub topic: String,
    pub meter_id: Option<String>,
    pub reason: String,
    pub detail: String,
    pub payload: String,
}

impl Store {
    /// Opens the database, creating the file if needed — but only in a
    /// directory that exists: a mistyped path is an error, not a new empty
    /// database — and runs pending migrations.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(StoreError::NoDirectory {
                    path: parent.to_path_buf(),
                });
            }
        }
        let store = Self {
            backend: Backend::Sqlite(path.clone()),
            gate: Arc::default(),
        };
        let mut connection = store.connect()?;
        schema::migrate(&mut connection, &path)?;
        Ok(store)
    }

    /// Connects to PostgreSQL at `url` (`postgres://user@host:port/database`;
    /// `password`, when given, wins over one in the URL) and runs pending
    /// migrations.
    pub fn open_postgres(url: &str, password: Option<&str>) -> Result<Self, StoreError> {
        Self::on_pool(pg::Pool::new(url, password)?)
    }

    /// A store on `pool`, its migrations run.
    fn on_pool(pool: pg::Pool) -> Result<Self, StoreError> {
        let pool = Arc::new(pool);
        pg_schema::migrate(&pool)?;
        Ok(Self {
            backend: Backend::Postgres(pool),
            gate: Arc::default(),
        })
    }

    /// Opens the store the configuration names (see [`Store::open`]). On
    /// PostgreSQL a transaction left idle longer than the lease is ended by
    /// the server, so a stuck gateway cannot hold the cluster's locks.
    pub fn from_config(config: &StoreConfig) -> Result<Self, StoreError> {
        match &config.location {
            StoreLocation::Sqlite(path) => Self::open(path),
            StoreLocation::Postgres { url, password } => {
                let mut pool = pg::Pool::new(url, password.as_ref().map(|p| p.expose()))?;
                pool.end_idle_transactions_after(config.lease);
                Self::on_pool(pool)
            }
        }
    }

    /// Opens the store the configuration names, which must exist already
    /// (a SQLite file; a PostgreSQL database is created by its administrator).
    pub fn existing_from_config(config: &StoreConfig) -> Result<Self, StoreError> {
        if let StoreLocation::Sqlite(path) = &config.location {
            if !path.is_file() {
                return Err(StoreError::Missing { path: path.clone() });
            }
        }
        Self::from_config(config)
    }

    /// Where the data is, for messages: the file, or the server's URL
    /// without its password.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Sqlite(path) => path.display().to_string(),
            Backend::Postgres(pool) => pool.shown().to_string(),
        }
    }

    /// A connection outside any transaction.
    pub(crate) fn db(&self) -> Result<Conn, StoreError> {
        Ok(match &self.backend {
            Backend::Sqlite(_) => Conn::Sqlite(self.connect()?),
            Backend::Postgres(pool) => Conn::Postgres(pool.connect()?),
        })
    }

    /// Runs `work` in one write transaction, in this process's turn:
    /// committed when it returns `Ok`, rolled back when it returns an error.
    pub(crate) fn transact<T, E: From<StoreError>>(
        &self,
        work: impl FnOnce(&dyn db::Db) -> Result<T, E>,
    ) -> Result<T, E> {
        let _turn = self.turn();
        match &self.backend {
            Backend::Sqlite(_) => {
                let mut connection = self.connect()?;
                let tx = connection
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(StoreError::from)?;
                let value = work(&*tx)?;
                tx.commit().map_err(StoreError::from)?;
                Ok(value)
            }
            Backend::Postgres(pool) => {
                let connection = pool.begin_write()?;
                let value = work(&connection)?;
                connection.commit()?;
                Ok(value)
            }
        }
    }

    /// Writes a consistent copy of the database to `to` (a new file) while
    /// readers and writers go on: SQLite's `VACUUM INTO`, one read
    /// transaction. The copy is a complete database, compacted.
    pub fn backup_to(&self, to: &Path) -> Result<(), StoreError> {
        if to.exists() {
            return Err(StoreError::Exists {
                path: to.to_path_buf(),
            });
        }
        if let Backend::Postgres(pool) = &self.backend {
            return Err(StoreError::Postgres(format!(
                "back up {} with pg_dump (docs/operations.md); `stillwater backup` copies a SQLite file",
                pool.shown()
            )));
        }
        let connection = self.connect()?;
        connection.execute("VACUUM INTO ?1", [to.to_string_lossy()])?;
        Ok(())
    }

    /// Opens a database that must already exist (commands that read or act on
    /// what is stored).
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        Self::open(path)
    }

    /// The SQLite file, when the store is one.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(path) => Some(path),
            Backend::Postgres(_) => None,
        }
    }

    /// This process's turn to write, in the order asked for: taken before
    /// every write transaction.
    pub(crate) fn turn(&self) -> gate::Turn {
        gate::WriteGate::enter(&self.gate)
    }

    /// A new connection with the store's pragmas.
    pub(crate) fn connect(&self) -> Result<Connection, StoreError> {
        let Backend::Sqlite(path) = &self.backend else {
            return Err(StoreError::Postgres(
                "this part of stillwater does not run on PostgreSQL yet".into(),
            ));
        };
        let connection = Connection::open(path)?;
        connection.busy_timeout(Duration::from_secs(10))?;
        // Only takes effect when the file is created. Small pages: a transaction
        // writes every page it touches to the WAL, and ingest touches a few rows
        // on many pages.
        connection.pragma_update(None, "page_size", 1024)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        Ok(connection)
    }

    /// Writes everything to the main file and truncates the write-ahead log, so
    /// the file's size is the data's size. Used by backups and the benchmark.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        if let Backend::Postgres(_) = &self.backend {
            return Ok(()); // PostgreSQL checkpoints by itself.
        }
        let connection = self.connect()?;
        connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

impl ReadingStore for Store {
    fn unregistered_meters(&self) -> Result<Vec<UnregisteredMeter>, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_all(
            "SELECT s.meter_id, s.first_seen, s.last_message, s.readings, m.status,
                    p.platform, p.product_id, p.device_id, p.imei, p.online, p.presence_at
             FROM meter_state s LEFT JOIN meters m ON m.meter_id = s.meter_id
                  LEFT JOIN platform_devices p ON p.meter_id = s.meter_id
             WHERE m.status IS NULL OR m.status != 'active'
             ORDER BY s.last_message DESC, s.meter_id",
            args![],
            |row| {
                Ok(UnregisteredMeter {
                    meter_id: row.get(0)?,
                    first_seen: row.get(1)?,
                    last_message: row.get(2)?,
                    readings: row.get(3)?,
                    former_status: row.get(4)?,
                    platform: platform_device_from(row, 5)?,
                })
            },
        )
    }

    fn rejected_messages(&self, limit: usize) -> Result<Vec<RejectedMessage>, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_all(
            "SELECT received_at, topic, meter_id, reason, detail, payload FROM rejected_messages
             ORDER BY id DESC LIMIT ?1",
            args![limit],
            |row| {
                Ok(RejectedMessage {
                    received_at: row.get(0)?,
                    topic: row.get(1)?,
                    meter_id: row.get(2)?,
                    reason: row.get(3)?,
                    detail: row.get(4)?,
                    payload: String::from_utf8_lossy(&row.get::<Vec<u8>>(5)?).into_owned(),
                })
            },
        )
    }

    fn readings(&self, meter: &str, from: i64, to: i64) -> Result<Vec<StoredReading>, StoreError> {
        // One snapshot for the chunks and the log not yet folded into them.
        self.snapshot(|db| {
            let (from, to) = (Timestamp::from_secs(from), Timestamp::from_secs(to));
            let rows = db.query(
                "SELECT c.day, c.data FROM reading_chunks c JOIN meter_state s ON s.meter_key = c.meter_key
                 WHERE s.meter_id = ?1 AND c.day BETWEEN ?2 AND ?3 ORDER BY c.day",
                args![meter, chunk::day_of(from), chunk::day_of(to)],
            )?;
            let mut readings = Vec::new();
            for row in &rows {
                let day = chunk::decode(row.get(0)?, &row.get::<Vec<u8>>(1)?)?;
                readings.extend(day.into_iter().filter(|r| r.ts >= from && r.ts < to));
            }
            for reading in unfolded_readings(db, meter)? {
                if reading.ts >= from && reading.ts < to {
                    chunk::insert(&mut readings, reading);
                }
            }
            Ok(readings)
        })
    }

    fn reading_count(&self) -> Result<i64, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_value(
            "SELECT CAST(coalesce(sum(readings), 0) AS BIGINT) FROM meter_state",
            args![],
        )
    }

    fn meter_state(&self, meter: &str) -> Result<Option<MeterState>, StoreError> {
        read_state(&self.db()?, meter)
    }
}

impl Store {
    /// Runs `reads` in one read transaction: everything it reads is of one moment.
    pub(crate) fn snapshot<T>(
        &self,
        reads: impl FnOnce(&dyn Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => {
                let connection = self.connect()?;
                let snapshot = connection.unchecked_transaction()?;
                reads(&*snapshot)
            }
            Backend::Postgres(pool) => {
                let snapshot = pool.begin()?;
                let value = reads(&snapshot)?;
                snapshot.commit()?;
                Ok(value)
            }
        }
    }
}

/// The readings of `meter` committed to the reading log and not yet folded
/// into its chunks (the gateway folds within two seconds; after a crash they
/// wait for the next start), sorted.
fn unfolded_readings(db: &dyn Db, meter: &str) -> Result<Vec<StoredReading>, StoreError> {
    let rows = db.query(
        "SELECT l.data, s.meter_key FROM reading_log l, meter_state s WHERE s.meter_id = ?1 ORDER BY l.id",
        args![meter],
    )?;
    let mut readings = Vec::new();
    for row in &rows {
        let key: i64 = row.get(1)?;
        for entry in log::decode(&row.get::<Vec<u8>>(0)?)? {
            if entry.meter_key == key {
                chunk::insert(&mut readings, entry.reading);
            }
        }
    }
    Ok(readings)
}

fn read_state(db: &dyn Db, meter: &str) -> Result<Option<MeterState>, StoreError> {
    db.query_opt(
        "SELECT first_seen, last_message, last_reading_ts, last_consumption_ts, last_total_l,
                last_battery_pct, last_status, readings, register_resets, rejected, evaluated_through, routine,
                missing
         FROM meter_state WHERE meter_id = ?1",
        args![meter],
        |row| {
            Ok(MeterState {
                first_seen: row.get(0)?,
                last_message: row.get(1)?,
                last_reading_ts: row.get(2)?,
                last_consumption_ts: row.get(3)?,
                last_total_l: row.get(4)?,
                last_battery_pct: row.get(5)?,
                last_status: row.get(6)?,
                readings: row.get(7)?,
                register_resets: row.get(8)?,
                rejected: row.get(9)?,
                evaluated_through: row.get(10)?,
                routine: row.get(11)?,
                missing: row.get(12)?,
            })
        },
    )
}

#[cfg(test)]
pub(crate) mod tests;
