//! The writer's SQL, behind [`WriteOps`]: SQLite's prepared statements
//! ([`SqliteOps`]) and the same work in either dialect through [`Db`]
//! ([`PortableOps`], PostgreSQL's). Also a meter's first state row, the
//! duplicate check against a stored chunk, and the fold.

use std::collections::HashMap;

use rusqlite::{params, CachedStatement, Connection, OptionalExtension};

use super::memory::{Cursor, MeterChange, Meters, Unfolded};
use crate::domain::{MeterId, StoredReading, Timestamp};
use crate::pipeline::Message;
use crate::store::db::{args, Db};
use crate::store::{chunk, StoreError};

/// A rejected message as stored.
pub(super) struct Rejected<'a> {
    pub(super) received_at: i64,
    pub(super) topic: &'a str,
    pub(super) meter: Option<&'a str>,
    pub(super) reason: &'a str,
    pub(super) detail: &'a str,
    pub(super) payload: &'a [u8],
}

/// What the writer does to the database inside one transaction.
pub(super) trait WriteOps {
    /// A state row for a meter never seen before; its key.
    fn new_meter(&mut self, meter: &MeterId, received_at: Timestamp) -> Result<i64, StoreError>;
    /// The stored readings of (`key`, `day`), sorted; empty when there are none.
    fn stored_chunk(&mut self, key: i64, day: i64) -> Result<Vec<StoredReading>, StoreError>;
    fn upsert_chunk(&mut self, key: i64, day: i64, data: &[u8]) -> Result<(), StoreError>;
    /// The transaction, for the statements both backends send alike.
    fn db(&self) -> &dyn Db;
    fn reject(&mut self, r: &Rejected<'_>) -> Result<(), StoreError> {
        self.db().execute(
            INSERT_REJECTED,
            args![
                r.received_at,
                r.topic,
                r.meter,
                r.reason,
                r.detail,
                r.payload
            ],
        )?;
        Ok(())
    }

    /// Counts `n` rejections against meter `key`, one received at `at`.
    fn count_rejected(&mut self, key: i64, n: i64, at: i64) -> Result<(), StoreError> {
        let larger = self.db().pick("max", "greatest");
        self.db().execute(
            &format!(
                "UPDATE meter_state SET rejected = rejected + ?2, last_message = {larger}(last_message, ?3)
                 WHERE meter_key = ?1"
            ),
            args![key, n, at],
        )?;
        Ok(())
    }

    /// Keeps only the newest `keep` rejected messages.
    fn trim_rejected(&mut self, keep: i64) -> Result<(), StoreError> {
        self.db().execute(TRIM_REJECTED, args![keep])?;
        Ok(())
    }

    /// Applies what unfolded readings change in meter `key`'s state row.
    fn update_state(&mut self, key: i64, change: &MeterChange) -> Result<(), StoreError>;
    fn meter_event(&mut self, key: i64, ts: i64, detail: &str) -> Result<(), StoreError> {
        self.db().execute(METER_EVENT, args![key, ts, detail])?;
        Ok(())
    }

    /// Appends a reading-log row; its id.
    fn append_log(&mut self, entries: i64, data: &[u8]) -> Result<i64, StoreError>;
    fn delete_log(&mut self, first: i64, last: i64) -> Result<(), StoreError>;
    /// The transaction, when writers on other gateways share the database
    /// (their cursors must then be read and locked per batch).
    fn shared(&self) -> Option<&dyn Db>;
    /// Reads the stored chunks of `keys` at once, ahead of a fold.
    fn prefetch_chunks(&mut self, keys: &[(i64, i64)]) -> Result<(), StoreError> {
        let _ = keys;
        Ok(())
    }
    /// Writes what the operations held back to send at once.
    fn finish(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The state row's columns of a change, as bound: (last message, newest
/// reading's time, when it came, its register, flow, battery, status, last
/// consumption, readings, resets, counted?, seq, missing, late from).
type StateArgs = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<u8>,
    Option<u16>,
    Option<i64>,
    i64,
    i64,
    bool,
    Option<i64>,
    i64,
    Option<i64>,
);

fn state_args(change: &MeterChange) -> StateArgs {
    let newest = change.newest.as_ref();
    let (counted, seq, missing) = match change.counted {
        Some((seq, missing)) => (
            true,
            seq.map(|seq| seq.min(i64::MAX as u64) as i64),
            missing,
        ),
        None => (false, None, 0),
    };
    (
        change.last_message.map(Timestamp::secs),
        newest.map(|(r, _)| r.ts.secs()),
        newest.map(|(_, received)| received.secs()),
        newest.map(|(r, _)| r.total_l),
        newest.and_then(|(r, _)| r.flow_lph),
        newest.and_then(|(r, _)| r.battery_pct),
        newest.map(|(r, _)| r.status),
        change.last_consumption.map(Timestamp::secs),
        change.readings,
        change.resets.len() as i64,
        counted,
        seq,
        missing,
        change.late_from.map(Timestamp::secs),
    )
}

/// The state update in both dialects: ?3 is the newest reading's time when
/// the fold has one (its columns move only then).
const UPDATE_STATE: &str = "UPDATE meter_state SET
        last_message = max(last_message, coalesce(?2, last_message)),
        last_reading_ts = coalesce(?3, last_reading_ts),
        last_received = CASE WHEN ?3 IS NULL THEN last_received ELSE ?4 END,
        last_total_l = CASE WHEN ?3 IS NULL THEN last_total_l ELSE ?5 END,
        last_flow_lph = CASE WHEN ?3 IS NULL THEN last_flow_lph ELSE ?6 END,
        last_battery_pct = CASE WHEN ?3 IS NULL THEN last_battery_pct ELSE ?7 END,
        last_status = CASE WHEN ?3 IS NULL THEN last_status ELSE ?8 END,
        last_consumption_ts = coalesce(?9, last_consumption_ts),
        readings = readings + ?10, register_resets = register_resets + ?11,
        last_seq = CASE WHEN ?12 THEN ?13 ELSE last_seq END,
        missing = CASE WHEN ?12 THEN ?14 ELSE missing END,
        late_from = CASE WHEN ?15 IS NULL THEN late_from
                         ELSE min(coalesce(late_from, ?15), ?15) END
     WHERE meter_key = ?1";

/// [`UPDATE_STATE`] for a batch of meters on PostgreSQL: column `n` of
/// `u` is the single statement's `?n`, one array a column.
const UPDATE_STATES: &str = "UPDATE meter_state SET
        last_message = greatest(last_message, coalesce(u.a2, last_message)),
        last_reading_ts = coalesce(u.a3, last_reading_ts),
        last_received = CASE WHEN u.a3 IS NULL THEN last_received ELSE u.a4 END,
        last_total_l = CASE WHEN u.a3 IS NULL THEN last_total_l ELSE u.a5 END,
        last_flow_lph = CASE WHEN u.a3 IS NULL THEN last_flow_lph ELSE u.a6 END,
        last_battery_pct = CASE WHEN u.a3 IS NULL THEN last_battery_pct ELSE u.a7 END,
        last_status = CASE WHEN u.a3 IS NULL THEN last_status ELSE u.a8 END,
        last_consumption_ts = coalesce(u.a9, last_consumption_ts),
        readings = readings + u.a10, register_resets = register_resets + u.a11,
        last_seq = CASE WHEN u.a12 <> 0 THEN u.a13 ELSE last_seq END,
        missing = CASE WHEN u.a12 <> 0 THEN u.a14 ELSE missing END,
        late_from = CASE WHEN u.a15 IS NULL THEN late_from
                         ELSE least(coalesce(late_from, u.a15), u.a15) END
     FROM unnest(CAST(?1 AS BIGINT[]), CAST(?2 AS BIGINT[]), CAST(?3 AS BIGINT[]),
                 CAST(?4 AS BIGINT[]), CAST(?5 AS BIGINT[]), CAST(?6 AS BIGINT[]),
                 CAST(?7 AS BIGINT[]), CAST(?8 AS BIGINT[]), CAST(?9 AS BIGINT[]),
                 CAST(?10 AS BIGINT[]), CAST(?11 AS BIGINT[]), CAST(?12 AS BIGINT[]),
                 CAST(?13 AS BIGINT[]), CAST(?14 AS BIGINT[]), CAST(?15 AS BIGINT[]))
          AS u(k, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15)
     WHERE meter_key = u.k";

const SELECT_CHUNK: &str = "SELECT data FROM reading_chunks WHERE meter_key = ?1 AND day = ?2";
const UPSERT_CHUNK: &str = "INSERT INTO reading_chunks (meter_key, day, data) VALUES (?1, ?2, ?3)
     ON CONFLICT (meter_key, day) DO UPDATE SET data = excluded.data";
const INSERT_REJECTED: &str =
    "INSERT INTO rejected_messages (received_at, topic, meter_id, reason, detail, payload)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const TRIM_REJECTED: &str =
    "DELETE FROM rejected_messages WHERE id <= (SELECT max(id) FROM rejected_messages) - ?1";
const METER_EVENT: &str =
    "INSERT INTO meter_events (meter_key, ts, kind, detail) VALUES (?1, ?2, 'register_reset', ?3)";

/// SQLite's statements, prepared once per transaction (looking each up in
/// the statement cache hashed its whole SQL text, per reading).
pub(super) struct SqliteOps<'t> {
    tx: &'t Connection,
    chunk: CachedStatement<'t>,
    upsert_chunk: CachedStatement<'t>,
    state: CachedStatement<'t>,
    append_log: CachedStatement<'t>,
    delete_log: CachedStatement<'t>,
}

impl<'t> SqliteOps<'t> {
    pub(super) fn new(tx: &'t Connection) -> Result<Self, StoreError> {
        Ok(Self {
            tx,
            chunk: tx.prepare_cached(SELECT_CHUNK)?,
            upsert_chunk: tx.prepare_cached(UPSERT_CHUNK)?,
            state: tx.prepare_cached(UPDATE_STATE)?,
            append_log: tx
                .prepare_cached("INSERT INTO reading_log (readings, data) VALUES (?1, ?2)")?,
            delete_log: tx.prepare_cached("DELETE FROM reading_log WHERE id BETWEEN ?1 AND ?2")?,
        })
    }
}

impl WriteOps for SqliteOps<'_> {
    fn db(&self) -> &dyn Db {
        self.tx
    }

    fn new_meter(&mut self, meter: &MeterId, received_at: Timestamp) -> Result<i64, StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO meter_state (meter_id, first_seen, last_message) VALUES (?1, ?2, ?2)",
            )?
            .execute(params![meter.as_str(), received_at.secs()])?;
        Ok(self.tx.last_insert_rowid())
    }

    fn stored_chunk(&mut self, key: i64, day: i64) -> Result<Vec<StoredReading>, StoreError> {
        let data: Option<Vec<u8>> = self
            .chunk
            .query_row(params![key, day], |row| row.get(0))
            .optional()?;
        Ok(match data {
            Some(data) => chunk::decode(day, &data)?,
            None => Vec::new(),
        })
    }

    fn upsert_chunk(&mut self, key: i64, day: i64, data: &[u8]) -> Result<(), StoreError> {
        self.upsert_chunk.execute(params![key, day, data])?;
        Ok(())
    }

    fn update_state(&mut self, key: i64, change: &MeterChange) -> Result<(), StoreError> {
        let a = state_args(change);
        self.state.execute(params![
            key, a.0, a.1, a.2, a.3, a.4, a.5, a.6, a.7, a.8, a.9, a.10, a.11, a.12, a.13
        ])?;
        Ok(())
    }

    fn append_log(&mut self, entries: i64, data: &[u8]) -> Result<i64, StoreError> {
        self.append_log.execute(params![entries, data])?;
        Ok(self.tx.last_insert_rowid())
    }

    fn delete_log(&mut self, first: i64, last: i64) -> Result<(), StoreError> {
        self.delete_log.execute([first, last])?;
        Ok(())
    }

    fn shared(&self) -> Option<&dyn Db> {
        None
    }
}

/// The writer's work in either dialect, through [`Db`] (PostgreSQL's).
/// The writer's work on PostgreSQL, through [`Db`]: a batch's stored chunks
/// are read in one statement, and its chunks and state rows written in one
/// statement each when the fold finishes (round trips are what a batch
/// costs there).
pub(super) struct PortableOps<'t> {
    db: &'t dyn Db,
    /// Stored chunks read ahead (`None`: no such chunk), and those written since.
    chunks: HashMap<(i64, i64), Option<Vec<u8>>>,
    /// Chunks to write.
    pending_chunks: PendingChunks,
    /// State changes to write: one array a column of [`UPDATE_STATES`].
    pending_states: [Vec<Option<i64>>; 15],
}

/// Chunks to write, a column each: meter keys, days, data.
#[derive(Default)]
struct PendingChunks {
    keys: Vec<Option<i64>>,
    days: Vec<Option<i64>>,
    data: Vec<Vec<u8>>,
}

impl<'t> PortableOps<'t> {
    pub(super) fn new(db: &'t dyn Db) -> Self {
        Self {
            db,
            chunks: HashMap::new(),
            pending_chunks: Default::default(),
            pending_states: Default::default(),
        }
    }
}

impl WriteOps for PortableOps<'_> {
    fn db(&self) -> &dyn Db {
        self.db
    }

    fn new_meter(&mut self, meter: &MeterId, received_at: Timestamp) -> Result<i64, StoreError> {
        self.db.insert(
            "INSERT INTO meter_state (meter_id, first_seen, last_message) VALUES (?1, ?2, ?2)
             RETURNING meter_key",
            args![meter.as_str(), received_at.secs()],
        )
    }

    fn stored_chunk(&mut self, key: i64, day: i64) -> Result<Vec<StoredReading>, StoreError> {
        let data = match self.chunks.get(&(key, day)) {
            Some(data) => data.clone(),
            None => self
                .db
                .query_opt(SELECT_CHUNK, args![key, day], |row| row.get(0))?,
        };
        Ok(match data {
            Some(data) => chunk::decode(day, &data)?,
            None => Vec::new(),
        })
    }

    fn upsert_chunk(&mut self, key: i64, day: i64, data: &[u8]) -> Result<(), StoreError> {
        self.chunks.insert((key, day), Some(data.to_vec()));
        let pending = &mut self.pending_chunks;
        pending.keys.push(Some(key));
        pending.days.push(Some(day));
        pending.data.push(data.to_vec());
        Ok(())
    }

    fn update_state(&mut self, key: i64, change: &MeterChange) -> Result<(), StoreError> {
        let a = state_args(change);
        let row = [
            Some(key),
            a.0,
            a.1,
            a.2,
            a.3,
            a.4,
            a.5.map(i64::from),
            a.6.map(i64::from),
            a.7,
            Some(a.8),
            Some(a.9),
            Some(i64::from(a.10)),
            a.11,
            Some(a.12),
            a.13,
        ];
        for (column, value) in self.pending_states.iter_mut().zip(row) {
            column.push(value);
        }
        Ok(())
    }

    fn append_log(&mut self, entries: i64, data: &[u8]) -> Result<i64, StoreError> {
        self.db.insert(
            "INSERT INTO reading_log (readings, data) VALUES (?1, ?2) RETURNING id",
            args![entries, data],
        )
    }

    fn delete_log(&mut self, first: i64, last: i64) -> Result<(), StoreError> {
        self.db.execute(
            "DELETE FROM reading_log WHERE id BETWEEN ?1 AND ?2",
            args![first, last],
        )?;
        Ok(())
    }

    fn shared(&self) -> Option<&dyn Db> {
        Some(self.db)
    }

    fn prefetch_chunks(&mut self, keys: &[(i64, i64)]) -> Result<(), StoreError> {
        let wanted: Vec<(i64, i64)> = keys
            .iter()
            .filter(|key| !self.chunks.contains_key(key))
            .copied()
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let meters: Vec<Option<i64>> = wanted.iter().map(|(key, _)| Some(*key)).collect();
        let days: Vec<Option<i64>> = wanted.iter().map(|(_, day)| Some(*day)).collect();
        for key in wanted {
            self.chunks.insert(key, None);
        }
        for row in self.db.query(
            "SELECT c.meter_key, c.day, c.data FROM reading_chunks c
             JOIN unnest(CAST(?1 AS BIGINT[]), CAST(?2 AS BIGINT[])) AS k(meter_key, day)
               ON c.meter_key = k.meter_key AND c.day = k.day",
            args![meters, days],
        )? {
            self.chunks
                .insert((row.get(0)?, row.get(1)?), Some(row.get(2)?));
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), StoreError> {
        let PendingChunks { keys, days, data } = std::mem::take(&mut self.pending_chunks);
        if !keys.is_empty() {
            self.db.execute(
                "INSERT INTO reading_chunks (meter_key, day, data)
                 SELECT * FROM unnest(CAST(?1 AS BIGINT[]), CAST(?2 AS BIGINT[]), CAST(?3 AS BYTEA[]))
                 ON CONFLICT (meter_key, day) DO UPDATE SET data = excluded.data",
                args![keys, days, data],
            )?;
        }
        let states = std::mem::take(&mut self.pending_states);
        if !states[0].is_empty() {
            let [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15] = states;
            self.db.execute(
                UPDATE_STATES,
                args![a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15],
            )?;
        }
        Ok(())
    }
}

/// The slot of `meter`; a meter never seen before gets its state row and a
/// slot at the end.
pub(super) fn slot_for(
    ops: &mut dyn WriteOps,
    meters: &mut Meters,
    meter: &MeterId,
    received_at: Timestamp,
) -> Result<u32, StoreError> {
    if let Some(slot) = meters.slots.get(meter) {
        return Ok(*slot);
    }
    let key = ops.new_meter(meter, received_at)?;
    meters.push(meter.clone(), Cursor::new(key));
    Ok((meters.ids.len() - 1) as u32)
}

const CURSOR_COLUMNS: &str =
    "meter_key, meter_id, last_reading_ts, last_total_l, last_seq, missing";

fn push_cursor(meters: &mut Meters, row: &crate::store::db::Row) -> Result<(), StoreError> {
    meters.push(
        MeterId::parse(&row.get::<String>(1)?)
            .map_err(|_| chunk::ChunkError("a meter id in meter_state is not valid"))?,
        Cursor {
            key: row.get(0)?,
            last_reading_ts: row.get::<Option<i64>>(2)?.map(Timestamp::from_secs),
            last_total_l: row.get(3)?,
            last_seq: row.get::<Option<i64>>(4)?.map(|seq| seq as u64),
            missing: row.get(5)?,
        },
    );
    Ok(())
}

/// Every meter's cursor as the database has it.
pub(super) fn load_meters(db: &dyn Db) -> Result<Meters, StoreError> {
    let mut meters = Meters::default();
    for row in db.query(
        &format!("SELECT {CURSOR_COLUMNS} FROM meter_state"),
        args![],
    )? {
        push_cursor(&mut meters, &row)?;
    }
    Ok(meters)
}

/// The cursors of the meters `batch` names as the database has them now, each state row
/// created when missing and locked until the transaction ends (in the order
/// of their ids, so that writers on several gateways never wait on each
/// other in a circle).
pub(super) fn lock_meters(db: &dyn Db, batch: &[Message]) -> Result<(Meters, u64), StoreError> {
    let received_at = batch_time(batch);
    let ids: Vec<String> = batch_meters(batch)
        .into_iter()
        .map(|id| id.as_str().to_string())
        .collect();
    let mut meters = Meters::default();
    if ids.is_empty() {
        return Ok((meters, 0));
    }
    let created = db.execute(
        "INSERT INTO meter_state (meter_id, first_seen, last_message)
         SELECT id, ?2, ?2 FROM unnest(CAST(?1 AS TEXT[])) AS t(id) ORDER BY id
         ON CONFLICT (meter_id) DO NOTHING",
        args![ids, received_at.secs()],
    )?;
    // Locked as the rows come, in id order.
    for row in db.query(
        &format!(
            "SELECT {CURSOR_COLUMNS} FROM meter_state WHERE meter_id = ANY(CAST(?1 AS TEXT[]))
             ORDER BY meter_id FOR UPDATE"
        ),
        args![ids],
    )? {
        push_cursor(&mut meters, &row)?;
    }
    Ok((meters, created))
}

/// Every meter a batch names, each once, sorted.
fn batch_meters(batch: &[Message]) -> Vec<&MeterId> {
    let mut ids: Vec<&MeterId> = batch
        .iter()
        .flat_map(|m| {
            m.decoded
                .readings
                .iter()
                .map(|r| &r.meter)
                .chain(&m.decoded.meter)
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// When a batch's first message came (a new meter's first sight).
fn batch_time(batch: &[Message]) -> Timestamp {
    batch
        .first()
        .map_or(Timestamp::from_secs(0), |m| m.received_at)
}

/// Whether the stored chunk of (`key`, `day`) has a reading at `ts`.
pub(super) fn chunk_holds(
    ops: &mut dyn WriteOps,
    key: i64,
    day: i64,
    ts: Timestamp,
) -> Result<bool, StoreError> {
    Ok(ops
        .stored_chunk(key, day)?
        .binary_search_by_key(&ts, |r| r.ts)
        .is_ok())
}

/// Writes `unfolded` into the chunks, the meters' state rows and their
/// events, and deletes the reading-log rows that held it.
pub(super) fn fold(ops: &mut dyn WriteOps, unfolded: &Unfolded) -> Result<(), StoreError> {
    let keys: Vec<(i64, i64)> = unfolded.chunks.keys().copied().collect();
    ops.prefetch_chunks(&keys)?;
    for (&(key, day), readings) in &unfolded.chunks {
        let mut merged = ops.stored_chunk(key, day)?;
        for reading in readings {
            chunk::insert(&mut merged, *reading);
        }
        ops.upsert_chunk(key, day, &chunk::encode(day, &merged))?;
    }
    // Only the gateway's writer appends to the log: its rows are one run of ids.
    if let (Some(first), Some(last)) = (unfolded.log_rows.first(), unfolded.log_rows.last()) {
        ops.delete_log(*first, *last)?;
    }
    for (&key, change) in &unfolded.meters {
        ops.update_state(key, change)?;
        for (ts, before, after) in &change.resets {
            ops.meter_event(
                key,
                ts.secs(),
                &format!("register went from {before} L to {after} L"),
            )?;
        }
    }
    ops.finish()
}
