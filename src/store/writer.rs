//! The writer thread: the one connection that records readings.
//!
//! It takes whatever messages are queued (group commit: it never waits to fill
//! a batch), commits them in one transaction, and only then runs each
//! message's acknowledgement. If a commit fails the batch is retried, never
//! acknowledged half-done: the sender keeps what was not acknowledged.
//!
//! In the gateway ([`Writer::run`]) a commit appends the batch's accepted
//! readings to the reading log as one row (`store::log`) and keeps them in
//! memory; a later transaction folds everything unfolded into the (meter, day)
//! chunks and the meters' state rows at once and deletes the rows it folded —
//! when no message has come for 5 ms, two seconds after the oldest unfolded
//! reading, or at 400,000 readings. A burst thus costs one
//! chunk write per meter and day per fold instead of one per reading. The
//! alert engine hears of a meter after the fold. After a crash,
//! [`Writer::recover`] folds the rows left. [`Writer::write_batch`] (imports,
//! tests) folds in the same transaction. Readers merge unfolded rows in
//! (`Store::readings`), so a reading is visible from its commit.
//!
//! Per reading: a duplicate (the same meter already has a reading at that
//! second) changes nothing. A reading newer than the meter's newest moves the
//! meter's state on; an older one is stored and leaves the state alone; a
//! register lower than the one before it is recorded as a register reset,
//! never as negative consumption.

mod memory;
mod sql;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::mpsc;

use self::memory::{Cursor, Memory, MeterChange};
use self::sql::{
    chunk_holds, fold, load_meters, lock_meters, slot_for, PortableOps, Rejected, SqliteOps,
    WriteOps,
};
use super::db::{args, Db};
use super::log::{self, Entry};
use super::{chunk, pg, Backend, Store, StoreError};
use crate::domain::{Litres, MeterId, Reading, StatusFlags, StoredReading, Timestamp};
use crate::metrics::Metrics;
use crate::pipeline::{BatchOutcome, Decoded, Message, TouchedMeters, REJECTED_PAYLOAD_BYTES};

/// The writer's maps, keyed by meter ids it chose itself: a fast hash (SipHash
/// was a tenth of the writer's instructions).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Largest number of messages committed in one transaction.
pub const MAX_BATCH: usize = 4096;
/// The longest a committed reading waits for its fold (and the alert engine)
/// under sustained load: each fold writes a meter's chunk and state row once
/// for all its readings since the last (1 s gave a median ingest ratio of
/// 0.69, 2 s 0.73; docs/performance.md).
const FOLD_EVERY: Duration = Duration::from_secs(2);
/// A fold comes this soon after the last message when no other follows.
const FOLD_IDLE: Duration = Duration::from_millis(5);
/// Unfolded readings that start a fold at once.
const FOLD_READINGS: usize = 400_000;

pub struct Writer {
    db: WriterDb,
    store: Store,
    /// Where the meters of each fold go (the alert engine).
    listener: Option<Arc<TouchedMeters>>,
    /// Every meter that has ever published, and the readings not yet folded.
    memory: Memory,
    /// A transaction failed after changing `memory`: load it afresh first.
    stale: bool,
    rejected_keep: u32,
    metrics: Arc<Metrics>,
}

/// The writer's database. SQLite's writer is the only one, keeps every
/// meter's cursor in memory and commits to the reading log; PostgreSQL's may
/// be one of several gateways' writers, so it reads and locks the cursors of
/// each batch's meters and folds in the batch's own transaction.
enum WriterDb {
    Sqlite(Connection),
    Postgres(Arc<pg::Pool>),
}

impl Writer {
    /// Opens the write connection and recovers every meter's state from disk.
    /// The gateway's writer then calls [`Writer::recover`].
    pub fn open(
        store: &Store,
        rejected_keep: u32,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        let (db, meters, known) = match &store.backend {
            Backend::Sqlite(_) => {
                let connection = store.connect()?;
                // The writer touches a few rows on many pages: keep the hot pages cached
                // (128 MiB) and checkpoint the WAL in larger steps (16 MiB).
                connection.pragma_update(None, "cache_size", -131_072)?;
                connection.pragma_update(None, "wal_autocheckpoint", 16_384)?;
                let meters = load_meters(&connection)?;
                let known = meters.ids.len() as i64;
                (WriterDb::Sqlite(connection), meters, known)
            }
            Backend::Postgres(pool) => {
                let known = (&pool.connect()? as &dyn Db)
                    .query_value("SELECT count(*) FROM meter_state", args![])?;
                (
                    WriterDb::Postgres(pool.clone()),
                    memory::Meters::default(),
                    known,
                )
            }
        };
        metrics
            .meters_known
            .store(known as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(Self {
            db,
            store: store.clone(),
            listener: None,
            memory: Memory {
                meters,
                ..Memory::default()
            },
            stale: false,
            rejected_keep,
            metrics,
        })
    }

    /// Names the meters of every fold to `listener`.
    pub fn with_listener(mut self, listener: Arc<TouchedMeters>) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Number of meters the writer knows.
    pub fn meters_known(&self) -> usize {
        self.memory.meters.ids.len()
    }

    /// Folds the reading log a stopped gateway left (committed and
    /// acknowledged, not yet in chunks), judging each reading as it was judged
    /// when it came. Returns the number of readings folded.
    pub fn recover(&mut self) -> Result<usize, StoreError> {
        if self.stale {
            return self.reload();
        }
        self.fold_log()
    }

    /// Loads the meters' cursors afresh and folds the log, after a transaction
    /// failed part way. Returns the number of readings folded.
    fn reload(&mut self) -> Result<usize, StoreError> {
        let meters = match &self.db {
            WriterDb::Sqlite(connection) => load_meters(connection)?,
            // PostgreSQL's writer loads each batch's meters as it goes.
            WriterDb::Postgres(_) => memory::Meters::default(),
        };
        self.memory = Memory {
            meters,
            ..Memory::default()
        };
        self.fold_log()
    }

    /// Folds every row of the reading log into chunks and state, from the
    /// cursors in memory; memory is current once it succeeds.
    fn fold_log(&mut self) -> Result<usize, StoreError> {
        // Only SQLite's writer appends to the reading log.
        let WriterDb::Sqlite(connection) = &self.db else {
            self.stale = false;
            return Ok(0);
        };
        let rows: Vec<(i64, Vec<u8>)> = (connection as &dyn Db).query_all(
            "SELECT id, data FROM reading_log ORDER BY id",
            args![],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let (Some((first, _)), Some((last, _))) = (rows.first(), rows.last()) else {
            self.stale = false;
            return Ok(0);
        };
        let slots: HashMap<i64, u32> = (self.memory.meters.cursors.iter().enumerate())
            .map(|(slot, cursor)| (cursor.key, slot as u32))
            .collect();
        let (first, last) = (*first, *last);
        let outcome = self.transaction(|ops, memory| {
            let mut outcome = BatchOutcome::default();
            for (_, data) in &rows {
                for entry in log::decode(data)? {
                    let slot = *slots.get(&entry.meter_key).ok_or(chunk::ChunkError(
                        "the reading log names a meter that is not in meter_state",
                    ))?;
                    let reading = Reading {
                        meter: memory.meters.ids[slot as usize].clone(),
                        ts: entry.reading.ts,
                        total: Litres::new(entry.reading.total_l),
                        flow_lph: entry.reading.flow_lph,
                        battery_pct: entry.reading.battery_pct,
                        status: StatusFlags::from_bits(entry.reading.status),
                        seq: entry.seq,
                    };
                    let at = (slot, entry.received_at);
                    accept(ops, memory, at, &reading, None, &mut outcome)?;
                }
            }
            memory.unfolded.log_rows = vec![first, last];
            fold(ops, &memory.unfolded)?;
            Ok(outcome)
        })?;
        let unfolded = std::mem::take(&mut self.memory.unfolded);
        self.announce(unfolded.touched);
        tracing::info!(
            readings = outcome.accepted,
            "folded the readings a stopped gateway had committed to its log"
        );
        Ok(outcome.accepted as usize)
    }

    /// Receives until the channel closes: each time, everything queued goes into
    /// one transaction, then its acknowledgements run; folds as the module says.
    pub fn run(mut self, inbox: mpsc::Receiver<Message>) {
        match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(runtime) => self.receive(&runtime, inbox),
            Err(error) => tracing::error!(%error, "the store writer cannot wait for messages"),
        }
        if !self.memory.unfolded.is_empty() {
            // Whatever cannot be folded now stays in the log for the next start.
            if let Err(error) = self.fold_unfolded() {
                tracing::error!(%error, "could not fold the reading log at shutdown; the next start will");
            }
        }
        if let Some(listener) = &self.listener {
            listener.close();
        }
    }

    fn receive(&mut self, runtime: &tokio::runtime::Runtime, mut inbox: mpsc::Receiver<Message>) {
        let mut last_append = Instant::now();
        loop {
            let next = match self.memory.unfolded.oldest {
                None => runtime.block_on(inbox.recv()),
                Some(oldest) => {
                    let due = (oldest + FOLD_EVERY).min(last_append + FOLD_IDLE);
                    let wait = async { tokio::time::timeout_at(due.into(), inbox.recv()).await };
                    match runtime.block_on(wait) {
                        Ok(next) => next,
                        Err(_) => {
                            if !self.fold_retrying(&inbox) {
                                return;
                            }
                            continue;
                        }
                    }
                }
            };
            let Some(first) = next else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match inbox.try_recv() {
                    Ok(message) => batch.push(message),
                    Err(_) => break,
                }
            }
            let mut backoff = Duration::from_millis(100);
            while let Err(error) = self.append(&batch) {
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
            for message in batch {
                if let Some(ack) = message.ack {
                    ack();
                }
            }
            last_append = Instant::now();
            let full = self.memory.unfolded.readings >= FOLD_READINGS
                || self
                    .memory
                    .unfolded
                    .oldest
                    .is_some_and(|oldest| oldest.elapsed() >= FOLD_EVERY);
            if full && !self.fold_retrying(&inbox) {
                return;
            }
        }
    }

    /// Folds until it succeeds; false when the inbox closed meanwhile.
    fn fold_retrying(&mut self, inbox: &mpsc::Receiver<Message>) -> bool {
        let mut backoff = Duration::from_millis(100);
        while let Err(error) = self.fold_unfolded() {
            self.metrics
                .store_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(%error, readings = self.memory.unfolded.readings, "could not fold the reading log; retrying (the readings are safe in it)");
            if inbox.is_closed() {
                return false;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        true
    }

    /// Commits a batch to the reading log. On error nothing is stored, and
    /// memory is loaded afresh before the next try.
    fn append(&mut self, batch: &[Message]) -> Result<BatchOutcome, StoreError> {
        self.commit(batch, false)
    }

    /// Stores a batch and folds it in one transaction. On error nothing is
    /// stored, and memory is loaded afresh before the next try.
    pub fn write_batch(&mut self, batch: &[Message]) -> Result<BatchOutcome, StoreError> {
        self.commit(batch, true)
    }

    /// One transaction for `batch`: its readings go to the reading log, or,
    /// when `folding`, into their chunks with everything unfolded.
    fn commit(&mut self, batch: &[Message], folding: bool) -> Result<BatchOutcome, StoreError> {
        if self.stale {
            self.reload()?;
        }
        // Several gateways may write to PostgreSQL: each batch folds at once,
        // from its meters' cursors as the database has them.
        let folding = folding || matches!(self.db, WriterDb::Postgres(_));
        let rejected_keep = self.rejected_keep;
        let (outcome, new_meters, row) = self.transaction(|ops, memory| {
            let mut created = 0;
            if let Some(db) = ops.shared() {
                let (meters, new) = lock_meters(db, batch)?;
                memory.meters = meters;
                created = new;
            }
            let mut log = log::Encoder::default();
            let logging = (!folding).then_some(&mut log);
            let (outcome, new_meters) = stage(ops, memory, rejected_keep, batch, logging)?;
            let mut row = None;
            if folding {
                fold(ops, &memory.unfolded)?;
            } else if log.entries() > 0 {
                row = Some(ops.append_log(log.entries() as i64, log.bytes())?);
            }
            Ok((outcome, new_meters + created, row))
        })?;
        if folding {
            let unfolded = std::mem::take(&mut self.memory.unfolded);
            self.announce(unfolded.touched);
        } else {
            let unfolded = &mut self.memory.unfolded;
            unfolded.log_rows.extend(row);
            if !unfolded.is_empty() && unfolded.oldest.is_none() {
                unfolded.oldest = Some(Instant::now());
            }
        }
        self.metrics.record_batch(&outcome, batch, new_meters);
        Ok(outcome)
    }

    /// Folds every unfolded reading into its chunk and state row, deletes the
    /// log rows that held them, and names their meters to the listener.
    fn fold_unfolded(&mut self) -> Result<(), StoreError> {
        if self.stale {
            // Loading afresh folds the whole log.
            return self.reload().map(|_| ());
        }
        self.transaction(|ops, memory| fold(ops, &memory.unfolded))?;
        let unfolded = std::mem::take(&mut self.memory.unfolded);
        self.metrics
            .folds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.announce(unfolded.touched);
        Ok(())
    }

    /// Runs `work` in one write transaction, in the gateway's turn, and
    /// commits. Memory counts as stale until the commit succeeds.
    fn transaction<T>(
        &mut self,
        work: impl FnOnce(&mut dyn WriteOps, &mut Memory) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &mut self.db {
            WriterDb::Sqlite(connection) => {
                let _turn = self.store.turn();
                let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut ops = SqliteOps::new(&tx)?;
                self.stale = true;
                let value = work(&mut ops, &mut self.memory)?;
                drop(ops);
                tx.commit()?;
                self.stale = false;
                Ok(value)
            }
            WriterDb::Postgres(pool) => {
                let tx = pool.begin()?;
                self.stale = true;
                let value = work(&mut PortableOps::new(&tx), &mut self.memory)?;
                tx.commit()?;
                self.stale = false;
                Ok(value)
            }
        }
    }

    /// Names the meters of `slots` to the listener.
    fn announce(&self, slots: HashSet<u32>) {
        if let Some(listener) = &self.listener {
            if !slots.is_empty() {
                let ids = &self.memory.meters.ids;
                listener.add(slots.into_iter().map(|slot| ids[slot as usize].clone()));
            }
        }
    }
}

impl super::traits::ReadingWriter for Writer {
    fn write_batch(&mut self, batch: &[Message]) -> Result<BatchOutcome, StoreError> {
        Writer::write_batch(self, batch)
    }
}

/// Decides on every message of a batch inside `tx`, straight into `memory`:
/// rejections are written at once; accepted readings wait in
/// `memory.unfolded` (and in `log`, when given) to be folded. Returns what
/// the batch did and how many meters were new.
fn stage(
    ops: &mut dyn WriteOps,
    memory: &mut Memory,
    rejected_keep: u32,
    batch: &[Message],
    mut log: Option<&mut log::Encoder>,
) -> Result<(BatchOutcome, u64), StoreError> {
    let known = memory.meters.ids.len();
    let mut outcome = BatchOutcome::default();
    for message in batch {
        outcome.messages += 1;
        let Decoded {
            meter,
            readings,
            rejections,
        } = &message.decoded;
        for reading in readings {
            let slot = slot_for(ops, &mut memory.meters, &reading.meter, message.received_at)?;
            let at = (slot, message.received_at);
            accept(ops, memory, at, reading, log.as_deref_mut(), &mut outcome)?;
        }
        if !rejections.is_empty() {
            let payload =
                &message.payload_head[..message.payload_head.len().min(REJECTED_PAYLOAD_BYTES)];
            for rejection in rejections {
                ops.reject(&Rejected {
                    received_at: message.received_at.secs(),
                    topic: &message.topic,
                    meter: meter.as_ref().map(MeterId::as_str),
                    reason: rejection.reason.as_str(),
                    detail: &rejection.detail,
                    payload,
                })?;
            }
            outcome.rejected += rejections.len() as u64;
            if let Some(meter) = meter {
                let slot = slot_for(ops, &mut memory.meters, meter, message.received_at)?;
                let key = memory.meters.cursors[slot as usize].key;
                let at = message.received_at.secs();
                ops.count_rejected(key, rejections.len() as i64, at)?;
            }
        }
    }
    if outcome.rejected > 0 {
        ops.trim_rejected(i64::from(rejected_keep))?;
    }
    Ok((outcome, (memory.meters.ids.len() - known) as u64))
}

/// Decides on one reading of the meter in slot `at.0`, received at `at.1`: a
/// duplicate, a late reading or the meter's newest.
fn accept(
    ops: &mut dyn WriteOps,
    memory: &mut Memory,
    (slot, received_at): (u32, Timestamp),
    reading: &Reading,
    log: Option<&mut log::Encoder>,
    outcome: &mut BatchOutcome,
) -> Result<(), StoreError> {
    let cursor = memory.meters.cursors[slot as usize];
    let key = cursor.key;
    let day = chunk::day_of(reading.ts);
    let newest = cursor.last_reading_ts.is_none_or(|last| reading.ts > last);
    // Only a reading at or before the meter's newest can be a duplicate.
    if !newest
        && (memory.unfolded.holds(key, day, reading.ts) || chunk_holds(ops, key, day, reading.ts)?)
    {
        outcome.duplicates += 1;
        let change = memory.unfolded.change(key);
        change.last_message = change.last_message.max(Some(received_at));
        return Ok(());
    }
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
    memory.unfolded.add(slot, key, stored);
    if let Some(log) = log {
        log.push(&Entry {
            meter_key: key,
            reading: stored,
            seq: reading.seq,
            received_at,
        });
    }
    outcome.accepted += 1;
    let change = memory.unfolded.change(key);
    let next = decide(
        cursor,
        change,
        reading,
        (stored, newest),
        received_at,
        outcome,
    );
    memory.meters.cursors[slot as usize] = next;
    Ok(())
}

/// What an accepted reading (`stored`, and whether it is the meter's newest)
/// changes in its meter's state row and cursor.
fn decide(
    cursor: Cursor,
    change: &mut MeterChange,
    reading: &Reading,
    (stored, newest): (StoredReading, bool),
    received_at: Timestamp,
    outcome: &mut BatchOutcome,
) -> Cursor {
    let mut next = cursor;
    change.last_message = change.last_message.max(Some(received_at));
    change.readings += 1;
    if newest {
        // Readings the meter's counter says it sent between its newest stored
        // one and this one (a counter that went back was reset: nothing counted).
        let missing = match (cursor.last_seq, reading.seq) {
            (Some(last), Some(seq)) if seq > last + 1 => {
                (seq - last - 1).min(i64::MAX as u64) as i64
            }
            _ => 0,
        };
        outcome.missing += missing as u64;
        if stored.register_reset {
            outcome.register_resets += 1;
            change.resets.push((
                reading.ts,
                cursor.last_total_l.unwrap_or(0),
                reading.total.get(),
            ));
        }
        if cursor
            .last_total_l
            .is_some_and(|last| reading.total.get() > last)
        {
            change.last_consumption = Some(reading.ts);
        }
        change.newest = Some((stored, received_at));
        next.last_reading_ts = Some(reading.ts);
        next.last_total_l = Some(reading.total.get());
        next.last_seq = reading.seq.or(cursor.last_seq);
        next.missing = cursor.missing.saturating_add(missing);
    } else {
        outcome.out_of_order += 1;
        // A late reading from inside a counted gap is no longer missing.
        if matches!((cursor.last_seq, reading.seq), (Some(last), Some(seq)) if seq < last) {
            next.missing = (cursor.missing - 1).max(0);
        }
        change.late_from = Some(change.late_from.map_or(reading.ts, |t| t.min(reading.ts)));
    }
    change.counted = Some((next.last_seq, next.missing));
    next
}

#[cfg(test)]
mod tests;
