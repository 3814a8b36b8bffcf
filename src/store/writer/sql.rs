//! The writer's SQL: its prepared statements, a meter's first state row, the
//! duplicate check against a stored chunk, and the fold.

use rusqlite::{params, CachedStatement, Connection, OptionalExtension};

use super::memory::{Cursor, Meters, Unfolded};
use crate::domain::{MeterId, StoredReading, Timestamp};
use crate::store::{chunk, StoreError};

/// The statements the writer uses per reading or per meter, prepared once per
/// transaction (looking each up in the statement cache hashed its whole SQL
/// text, per reading).
pub(super) struct Statements<'t> {
    chunk: CachedStatement<'t>,
    upsert_chunk: CachedStatement<'t>,
    state: CachedStatement<'t>,
    pub(super) append_log: CachedStatement<'t>,
    delete_log: CachedStatement<'t>,
}

impl<'t> Statements<'t> {
    pub(super) fn new(tx: &'t Connection) -> Result<Self, StoreError> {
        Ok(Self {
            chunk: tx.prepare_cached(
                "SELECT data FROM reading_chunks WHERE meter_key = ?1 AND day = ?2",
            )?,
            upsert_chunk: tx.prepare_cached(
                "INSERT INTO reading_chunks (meter_key, day, data) VALUES (?1, ?2, ?3)
                 ON CONFLICT (meter_key, day) DO UPDATE SET data = excluded.data",
            )?,
            // ?3 is the newest reading's time when the fold has one: its
            // columns move only then.
            state: tx.prepare_cached(
                "UPDATE meter_state SET
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
                 WHERE meter_key = ?1",
            )?,
            append_log: tx
                .prepare_cached("INSERT INTO reading_log (readings, data) VALUES (?1, ?2)")?,
            delete_log: tx.prepare_cached("DELETE FROM reading_log WHERE id BETWEEN ?1 AND ?2")?,
        })
    }
}

/// The slot of `meter`; a meter never seen before gets its state row and a
/// slot at the end.
pub(super) fn slot_for(
    tx: &Connection,
    meters: &mut Meters,
    meter: &MeterId,
    received_at: Timestamp,
) -> Result<u32, StoreError> {
    if let Some(slot) = meters.slots.get(meter) {
        return Ok(*slot);
    }
    tx.prepare_cached(
        "INSERT INTO meter_state (meter_id, first_seen, last_message) VALUES (?1, ?2, ?2)",
    )?
    .execute(params![meter.as_str(), received_at.secs()])?;
    meters.push(meter.clone(), Cursor::new(tx.last_insert_rowid()));
    Ok((meters.ids.len() - 1) as u32)
}

/// Every meter's cursor as the database has it.
pub(super) fn load_meters(connection: &Connection) -> Result<Meters, StoreError> {
    let mut meters = Meters::default();
    let mut statement = connection.prepare(
        "SELECT meter_key, meter_id, last_reading_ts, last_total_l, last_seq, missing FROM meter_state",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        meters.push(
            MeterId::parse(&row.get::<_, String>(1)?)
                .map_err(|_| chunk::ChunkError("a meter id in meter_state is not valid"))?,
            Cursor {
                key: row.get(0)?,
                last_reading_ts: row.get::<_, Option<i64>>(2)?.map(Timestamp::from_secs),
                last_total_l: row.get(3)?,
                last_seq: row.get::<_, Option<i64>>(4)?.map(|seq| seq as u64),
                missing: row.get(5)?,
            },
        );
    }
    Ok(meters)
}

/// The stored readings of (`key`, `day`), sorted; empty when there are none.
fn stored_chunk(
    st: &mut Statements<'_>,
    key: i64,
    day: i64,
) -> Result<Vec<StoredReading>, StoreError> {
    let data: Option<Vec<u8>> = st
        .chunk
        .query_row(params![key, day], |row| row.get(0))
        .optional()?;
    Ok(match data {
        Some(data) => chunk::decode(day, &data)?,
        None => Vec::new(),
    })
}

/// Whether the stored chunk of (`key`, `day`) has a reading at `ts`.
pub(super) fn chunk_holds(
    st: &mut Statements<'_>,
    key: i64,
    day: i64,
    ts: Timestamp,
) -> Result<bool, StoreError> {
    Ok(stored_chunk(st, key, day)?
        .binary_search_by_key(&ts, |r| r.ts)
        .is_ok())
}

/// Writes `unfolded` into the chunks, the meters' state rows and their
/// events, and deletes the reading-log rows that held it.
pub(super) fn fold(
    tx: &Connection,
    st: &mut Statements<'_>,
    unfolded: &Unfolded,
) -> Result<(), StoreError> {
    for (&(key, day), readings) in &unfolded.chunks {
        let mut merged = stored_chunk(st, key, day)?;
        for reading in readings {
            chunk::insert(&mut merged, *reading);
        }
        st.upsert_chunk
            .execute(params![key, day, chunk::encode(day, &merged)])?;
    }
    // Only the gateway's writer appends to the log: its rows are one run of ids.
    if let (Some(first), Some(last)) = (unfolded.log_rows.first(), unfolded.log_rows.last()) {
        st.delete_log.execute([first, last])?;
    }
    for (&key, change) in &unfolded.meters {
        let newest = change.newest.as_ref();
        let (counted, seq, missing) = match change.counted {
            Some((seq, missing)) => (
                true,
                seq.map(|seq| seq.min(i64::MAX as u64) as i64),
                missing,
            ),
            None => (false, None, 0),
        };
        st.state.execute(params![
            key,
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
        ])?;
        for (ts, before, after) in &change.resets {
            tx.prepare_cached(
                "INSERT INTO meter_events (meter_key, ts, kind, detail) VALUES (?1, ?2, 'register_reset', ?3)",
            )?
            .execute(params![
                key,
                ts.secs(),
                format!("register went from {before} L to {after} L")
            ])?;
        }
    }
    Ok(())
}
