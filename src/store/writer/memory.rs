//! What the writer keeps in memory: every meter's cursor by slot, one
//! transaction's decisions until it commits, and the readings committed to the
//! reading log and not yet folded. No SQL here.

use std::time::Instant;

use super::{HashMap, HashSet};
use crate::domain::{MeterId, StoredReading, Timestamp};
use crate::store::{chunk, log};

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

    /// Takes in a committed transaction's new meters and moved cursors.
    pub(super) fn settle(&mut self, pending: Pending) {
        for id in pending.new {
            let slot = self.ids.len() as u32;
            let cursor = pending.cursors.get(&slot).copied();
            self.push(id, cursor.unwrap_or(Cursor::new(0)));
        }
        for (slot, cursor) in pending.cursors {
            self.cursors[slot as usize] = cursor;
        }
    }
}

/// One transaction's decisions, applied to memory only after its commit.
#[derive(Default)]
pub(super) struct Pending {
    /// Cursors this transaction moved, by slot; new meters' slots follow the
    /// known ones.
    pub(super) cursors: HashMap<u32, Cursor>,
    /// Meters this transaction met first, in slot order.
    pub(super) new: Vec<MeterId>,
    pub(super) new_slots: HashMap<MeterId, u32>,
    /// Accepted readings in order: (slot, meter key, reading).
    pub(super) readings: Vec<(u32, i64, StoredReading)>,
    /// What they change, by meter key.
    pub(super) changes: HashMap<i64, MeterChange>,
    /// Their reading-log row.
    pub(super) log: log::Encoder,
}

impl Pending {
    pub(super) fn cursor(&self, meters: &Meters, slot: u32) -> Cursor {
        match self.cursors.get(&slot) {
            Some(cursor) => *cursor,
            None => meters.cursors[slot as usize],
        }
    }

    pub(super) fn holds(&self, key: i64, ts: Timestamp) -> bool {
        self.readings
            .iter()
            .any(|(_, k, reading)| *k == key && reading.ts == ts)
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

impl MeterChange {
    /// `later` happened after `self`.
    fn absorb(&mut self, later: MeterChange) {
        self.last_message = self.last_message.max(later.last_message);
        self.newest = later.newest.or(self.newest);
        self.last_consumption = later.last_consumption.or(self.last_consumption);
        self.readings += later.readings;
        self.resets.extend(later.resets);
        self.counted = later.counted.or(self.counted);
        self.late_from = match (self.late_from, later.late_from) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
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

    /// Takes in what a later transaction committed.
    pub(super) fn absorb(&mut self, later: &mut Pending) {
        if later.changes.is_empty() {
            return;
        }
        for (slot, key, reading) in later.readings.drain(..) {
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
        for (key, change) in later.changes.drain() {
            self.meters.entry(key).or_default().absorb(change);
        }
        self.oldest = self.oldest.or_else(|| Some(Instant::now()));
    }
}
