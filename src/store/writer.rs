//! The writer thread: the one connection that records readings.
//!
//! It takes whatever messages are queued (group commit: it never waits to fill
//! a batch), stores them in one transaction, and only after the commit runs each
//! message's acknowledgement. If a commit fails the batch is retried, never
//! acknowledged half-done: the broker keeps what was not acknowledged.
//!
//! Per message: readings go into their (meter, day) chunk, unless the same
//! meter already has a reading at that second (a duplicate, ignored). A reading
//! newer than the meter's newest moves the meter's state on; an older one is
//! stored and leaves the state alone; a register lower than the one before it is
//! recorded as a register reset, never as negative consumption.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, CachedStatement, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::mpsc;

use super::chunk;
use super::{Store, StoreError};
use crate::domain::{MeterId, Reading, StoredReading, Timestamp};
use crate::metrics::Metrics;
use crate::pipeline::{BatchOutcome, Decoded, Message, TouchedMeters, REJECTED_PAYLOAD_BYTES};

/// The writer's maps, keyed by meter ids it chose itself: a fast hash (SipHash
/// was a tenth of the writer's instructions).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Largest number of messages committed in one transaction.
pub const MAX_BATCH: usize = 4096;

/// What the writer keeps in memory per meter to decide on each reading.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    key: i64,
    last_reading_ts: Option<Timestamp>,
    last_total_l: Option<i64>,
    /// The meter's counter on its newest reading, when it sends one.
    last_seq: Option<u64>,
}

pub struct Writer {
    connection: Connection,
    store: Store,
    /// Where the meters of each commit go (the alert engine).
    listener: Option<Arc<TouchedMeters>>,
    /// Every meter that has ever published, recovered from disk at start.
    cursors: HashMap<MeterId, Cursor>,
    rejected_keep: u32,
    metrics: Arc<Metrics>,
}

impl Writer {
    /// Opens the write connection and recovers every meter's state from disk.
    pub fn open(
        store: &Store,
        rejected_keep: u32,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        let connection = store.connect()?;
        // The writer touches a few rows on many pages: keep the hot pages cached
        // (128 MiB) and checkpoint the WAL in larger steps (16 MiB).
        connection.pragma_update(None, "cache_size", -131_072)?;
        connection.pragma_update(None, "wal_autocheckpoint", 16_384)?;
        let mut cursors = HashMap::default();
        {
            let mut statement = connection.prepare(
                "SELECT meter_key, meter_id, last_reading_ts, last_total_l, last_seq FROM meter_state",
            )?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                cursors.insert(
                    MeterId::parse(&row.get::<_, String>(1)?)
                        .map_err(|_| chunk::ChunkError("a meter id in meter_state is not valid"))?,
                    Cursor {
                        key: row.get(0)?,
                        last_reading_ts: row.get::<_, Option<i64>>(2)?.map(Timestamp::from_secs),
                        last_total_l: row.get(3)?,
                        last_seq: row.get::<_, Option<i64>>(4)?.map(|seq| seq as u64),
                    },
                );
            }
        }
        metrics
            .meters_known
            .store(cursors.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(Self {
            connection,
            store: store.clone(),
            listener: None,
            cursors,
            rejected_keep,
            metrics,
        })
    }

    /// Names the meters of every commit to `listener`.
    pub fn with_listener(mut self, listener: Arc<TouchedMeters>) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Number of meters the writer knows.
    pub fn meters_known(&self) -> usize {
        self.cursors.len()
    }

    /// Receives until the channel closes: each time, everything queued goes into
    /// one transaction, then its acknowledgements run.
    pub fn run(mut self, inbox: mpsc::Receiver<Message>) {
        self.receive(inbox);
        if let Some(listener) = &self.listener {
            listener.close();
        }
    }

    fn receive(&mut self, mut inbox: mpsc::Receiver<Message>) {
        while let Some(first) = inbox.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match inbox.try_recv() {
                    Ok(message) => batch.push(message),
                    Err(_) => break,
                }
            }
            let mut backoff = Duration::from_millis(100);
            loop {
                match self.write_batch(&batch) {
                    Ok(_) => break,
                    Err(error) => {
                        self.metrics
                            .store_errors
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::error!(%error, messages = batch.len(), "could not commit readings; retrying, nothing was acknowledged");
                        if inbox.is_closed() {
                            return;
                        }
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            for message in batch {
                if let Some(ack) = message.ack {
                    ack();
                }
            }
        }
    }

    /// Stores a batch in one transaction. On error nothing is stored and the
    /// in-memory state is as before.
    pub fn write_batch(&mut self, batch: &[Message]) -> Result<BatchOutcome, StoreError> {
        let mut pending = Pending::default();
        let mut outcome = BatchOutcome::default();
        let _turn = self.store.turn();
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut st = Statements::new(&tx)?;
        for message in batch {
            outcome.messages += 1;
            let Decoded {
                meter,
                readings,
                rejections,
            } = &message.decoded;
            for reading in readings {
                let cursor = cursor_for(
                    &tx,
                    &self.cursors,
                    &mut pending,
                    &reading.meter,
                    message.received_at,
                )?;
                record_reading(
                    &tx,
                    &mut st,
                    &mut pending,
                    cursor,
                    reading,
                    message.received_at,
                    &mut outcome,
                )?;
            }
            if !rejections.is_empty() {
                let payload =
                    &message.payload_head[..message.payload_head.len().min(REJECTED_PAYLOAD_BYTES)];
                for rejection in rejections {
                    tx.prepare_cached(
                        "INSERT INTO rejected_messages (received_at, topic, meter_id, reason, detail, payload)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![
                        message.received_at.secs(),
                        message.topic,
                        meter.as_ref().map(MeterId::as_str),
                        rejection.reason.as_str(),
                        rejection.detail,
                        payload
                    ])?;
                }
                outcome.rejected += rejections.len() as u64;
                if let Some(meter) = meter {
                    let cursor =
                        cursor_for(&tx, &self.cursors, &mut pending, meter, message.received_at)?;
                    tx.prepare_cached(
                        "UPDATE meter_state SET rejected = rejected + ?2, last_message = max(last_message, ?3)
                         WHERE meter_key = ?1",
                    )?
                    .execute(params![cursor.key, rejections.len() as i64, message.received_at.secs()])?;
                }
            }
        }
        for ((key, day), readings) in &pending.chunks {
            if readings.changed {
                st.upsert_chunk.execute(params![
                    key,
                    day,
                    chunk::encode(*day, &readings.readings)
                ])?;
            }
        }
        drop(st);
        if outcome.rejected > 0 {
            tx.prepare_cached(
                "DELETE FROM rejected_messages WHERE id <= (SELECT max(id) FROM rejected_messages) - ?1",
            )?
            .execute([i64::from(self.rejected_keep)])?;
        }
        tx.commit()?;
        if let Some(listener) = &self.listener {
            if !pending.touched.is_empty() {
                listener.add(pending.touched.drain());
            }
        }
        let new_meters = pending
            .cursors
            .keys()
            .filter(|id| !self.cursors.contains_key(*id))
            .count();
        self.cursors.extend(pending.cursors);
        self.metrics
            .record_batch(&outcome, batch, new_meters as u64);
        Ok(outcome)
    }
}

impl super::traits::ReadingWriter for Writer {
    fn write_batch(&mut self, batch: &[Message]) -> Result<BatchOutcome, StoreError> {
        Writer::write_batch(self, batch)
    }
}

/// The statements every reading uses, prepared once per transaction (looking
/// each up in the statement cache hashed its whole SQL text, per reading).
struct Statements<'t> {
    chunk: CachedStatement<'t>,
    upsert_chunk: CachedStatement<'t>,
    duplicate: CachedStatement<'t>,
    late: CachedStatement<'t>,
    newest: CachedStatement<'t>,
}

impl<'t> Statements<'t> {
    fn new(tx: &'t Connection) -> Result<Self, StoreError> {
        Ok(Self {
            chunk: tx.prepare_cached(
                "SELECT data FROM reading_chunks WHERE meter_key = ?1 AND day = ?2",
            )?,
            upsert_chunk: tx.prepare_cached(
                "INSERT INTO reading_chunks (meter_key, day, data) VALUES (?1, ?2, ?3)
                 ON CONFLICT (meter_key, day) DO UPDATE SET data = excluded.data",
            )?,
            duplicate: tx.prepare_cached(
                "UPDATE meter_state SET last_message = max(last_message, ?2) WHERE meter_key = ?1",
            )?,
            late: tx.prepare_cached(
                "UPDATE meter_state SET readings = readings + 1, last_message = max(last_message, ?2),
                    missing = max(missing - ?3, 0), late_from = min(coalesce(late_from, ?4), ?4)
                 WHERE meter_key = ?1",
            )?,
            newest: tx.prepare_cached(
                "UPDATE meter_state SET
                    last_message = max(last_message, ?2), last_reading_ts = ?3, last_received = ?2,
                    last_total_l = ?4, last_flow_lph = ?5, last_battery_pct = ?6, last_status = ?7,
                    last_consumption_ts = CASE WHEN ?8 THEN ?3 ELSE last_consumption_ts END,
                    readings = readings + 1, register_resets = register_resets + ?9,
                    last_seq = coalesce(?10, last_seq), missing = missing + ?11
                 WHERE meter_key = ?1",
            )?,
        })
    }
}

/// Changes made by the current transaction, applied to memory only after commit.
#[derive(Default)]
struct Pending {
    cursors: HashMap<MeterId, Cursor>,
    /// Meters with a new reading in this transaction.
    touched: HashSet<MeterId>,
    chunks: HashMap<(i64, i64), PendingChunk>,
}

struct PendingChunk {
    readings: Vec<StoredReading>,
    changed: bool,
}

fn cursor_for(
    tx: &Connection,
    cursors: &HashMap<MeterId, Cursor>,
    pending: &mut Pending,
    meter: &MeterId,
    received_at: Timestamp,
) -> Result<Cursor, StoreError> {
    if let Some(cursor) = pending.cursors.get(meter).or_else(|| cursors.get(meter)) {
        return Ok(*cursor);
    }
    tx.prepare_cached(
        "INSERT INTO meter_state (meter_id, first_seen, last_message) VALUES (?1, ?2, ?2)",
    )?
    .execute(params![meter.as_str(), received_at.secs()])?;
    let cursor = Cursor {
        key: tx.last_insert_rowid(),
        last_reading_ts: None,
        last_total_l: None,
        last_seq: None,
    };
    pending.cursors.insert(meter.clone(), cursor);
    Ok(cursor)
}

fn record_reading(
    tx: &Connection,
    st: &mut Statements<'_>,
    pending: &mut Pending,
    cursor: Cursor,
    reading: &Reading,
    received_at: Timestamp,
    outcome: &mut BatchOutcome,
) -> Result<(), StoreError> {
    let day = chunk::day_of(reading.ts);
    let chunk = match pending.chunks.entry((cursor.key, day)) {
        std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
        std::collections::hash_map::Entry::Vacant(entry) => {
            let data: Option<Vec<u8>> = st
                .chunk
                .query_row(params![cursor.key, day], |row| row.get(0))
                .optional()?;
            let readings = match data {
                Some(data) => chunk::decode(day, &data)?,
                None => Vec::new(),
            };
            entry.insert(PendingChunk {
                readings,
                changed: false,
            })
        }
    };
    let newest = cursor.last_reading_ts.is_none_or(|last| reading.ts > last);
    let register_reset = newest
        && cursor
            .last_total_l
            .is_some_and(|last| reading.total.get() < last);
    let stored = StoredReading {
        ts: reading.ts,
        total_l: reading.total.get(),
        flow_lph: reading.flow_lph,
        battery_pct: reading.battery_pct,
        status: reading.status.bits(),
        register_reset,
    };
    if !chunk::insert(&mut chunk.readings, stored) {
        outcome.duplicates += 1;
        st.duplicate
            .execute(params![cursor.key, received_at.secs()])?;
        return Ok(());
    }
    chunk.changed = true;
    outcome.accepted += 1;
    pending.touched.insert(reading.meter.clone());
    if !newest {
        outcome.out_of_order += 1;
        // A late reading from inside a counted gap is no longer missing.
        let found = matches!((cursor.last_seq, reading.seq), (Some(last), Some(seq)) if seq < last);
        st.late.execute(params![
            cursor.key,
            received_at.secs(),
            i64::from(found),
            reading.ts.secs()
        ])?;
        return Ok(());
    }
    let consumed = cursor
        .last_total_l
        .is_some_and(|last| reading.total.get() > last);
    // Readings the meter's counter says it sent between its newest stored one
    // and this one (a counter that went back was reset: nothing counted).
    let missing = match (cursor.last_seq, reading.seq) {
        (Some(last), Some(seq)) if seq > last + 1 => (seq - last - 1).min(i64::MAX as u64) as i64,
        _ => 0,
    };
    outcome.missing += missing as u64;
    if register_reset {
        outcome.register_resets += 1;
        tx.prepare_cached("INSERT INTO meter_events (meter_key, ts, kind, detail) VALUES (?1, ?2, 'register_reset', ?3)")?
            .execute(params![
                cursor.key,
                reading.ts.secs(),
                format!("register went from {} L to {} L", cursor.last_total_l.unwrap_or(0), reading.total.get())
            ])?;
    }
    st.newest.execute(params![
        cursor.key,
        received_at.secs(),
        reading.ts.secs(),
        reading.total.get(),
        reading.flow_lph,
        reading.battery_pct,
        reading.status.bits(),
        consumed,
        i64::from(register_reset),
        reading.seq.map(|seq| seq.min(i64::MAX as u64) as i64),
        missing
    ])?;
    pending.cursors.insert(
        reading.meter.clone(),
        Cursor {
            key: cursor.key,
            last_reading_ts: Some(reading.ts),
            last_total_l: Some(reading.total.get()),
            last_seq: reading.seq.or(cursor.last_seq),
        },
    );
    Ok(())
}
