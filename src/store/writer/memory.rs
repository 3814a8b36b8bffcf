//! What the writer keeps in memory: every meter's cursor by slot, one
//! transaction's decisions until it commits, and the readings committed to the
//! reading log and not yet folded. No SQL here.

use std::time::Instant;

use super::{HashMap, HashSet};
use crate::domain::{MeterId, StoredReading, Timestamp};
use crate::store::chunk;

/// What the writer keeps per meter to decide on each reading.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cursor {
    pub(super) key: i64,
    pub(super) last_reading_ts: Option<Timestamp>,
    pub(super) last_total_l: Option<i64>,
    /// The meter's counter on its newest reading, when it sends one.
    pub(super) last_seq: Option<u64>,
    /// Readings the meter's counter says were lost (`meter_state.missing`).
    pub(super) missing: i64,
}

impl Cursor {
    pub(super) fn new(key: i64) -> Self {
        Self {
            key,
            last_reading_ts: None,
            last_total_l: None,
            last_seq: None,
            missing: 0,
        }
    }
}

/// Every meter that has ever published: its id and cursor, by slot.
#[derive(Default)]
pub(super) struct Meters {
    pub(super) ids: Vec<MeterId>,
    pub(super) cursors: Vec<Cursor>,
    pub(super) slots: HashMap<MeterId, u32>,
}

impl Meters {
    pub(super) fn push(&mut self, id: MeterId, cursor: Cursor) {
        self.slots.insert(id.clone(), self.ids.len() as u32);
        self.ids.push(id);
        self.cursors.push(cursor);
    }
}

/// What readings not yet folded change in one meter's state row.
#[derive(Debug, Default)]
pub(super) struct MeterChange {
    pub(super) last_message: Option<Timestamp>,
    /// The newest reading and when it came.
    pub(super) newest: Option<(StoredReading, Timestamp)>,
    pub(super) last_consumption: Option<Timestamp>,
    pub(super) readings: i64,
    /// (meter time, register before, register after).
    pub(super) resets: Vec<(Timestamp, i64, i64)>,
    /// The meter's counter and its missing readings after these readings.
    pub(super) counted: Option<(Option<u64>, i64)>,
    pub(super) late_from: Option<Timestamp>,
}

/// Accepted readings not yet in their chunks, and what they change.
#[derive(Default)]
pub(super) struct Unfolded {
    /// (meter key, day) → readings, sorted, unique by second.
    pub(super) chunks: HashMap<(i64, i64), Vec<StoredReading>>,
    pub(super) meters: HashMap<i64, MeterChange>,
    /// The slots of meters with a new reading.
    pub(super) touched: HashSet<u32>,
    pub(super) readings: usize,
    /// The reading log's rows that hold them.
    pub(super) log_rows: Vec<i64>,
    /// When the oldest of them was committed.
    pub(super) oldest: Option<Instant>,
}

impl Unfolded {
    pub(super) fn is_empty(&self) -> bool {
        self.meters.is_empty() && self.log_rows.is_empty()
    }

    pub(super) fn holds(&self, key: i64, day: i64, ts: Timestamp) -> bool {
        self.chunks
            .get(&(key, day))
            .is_some_and(|readings| readings.binary_search_by_key(&ts, |r| r.ts).is_ok())
    }

    /// The change to meter `key`'s state row.
    pub(super) fn change(&mut self, key: i64) -> &mut MeterChange {
        self.meters.entry(key).or_default()
    }

    /// Adds an accepted reading of the meter in `slot`.
    pub(super) fn add(&mut self, slot: u32, key: i64, reading: StoredReading) {
        let readings = self
            .chunks
            .entry((key, chunk::day_of(reading.ts)))
            .or_default();
        // Mostly the newest of its day: appended.
        if readings.last().is_none_or(|last| last.ts < reading.ts) {
            readings.push(reading);
        } else {
            chunk::insert(readings, reading);
        }
        self.readings += 1;
        self.touched.insert(slot);
    }
}

/// Everything the writer keeps in memory. After a transaction fails part way
/// it may be ahead of the database: the writer then loads it afresh.
#[derive(Default)]
pub(super) struct Memory {
    pub(super) meters: Meters,
    pub(super) unfolded: Unfolded,
}
