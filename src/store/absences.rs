//! Declared absences and the meters they cover.

use rusqlite::params;

use super::traits::*;
use super::{Store, StoreError};

/// A declared absence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Absence {
    pub id: i64,
    pub household_id: i64,
    pub resident_name: String,
    pub reason: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub declared_by: String,
    pub ended_at: Option<i64>,
    /// The household's active meters, comma-separated (households with the
    /// same name are told apart by these).
    pub meters: String,
}

impl AbsenceStore for Store {
    fn absences(&self, all: bool, now: i64) -> Result<Vec<Absence>, StoreError> {
        let connection = self.connect()?;
        let mut statement = connection.prepare(
            "SELECT a.id, a.household_id, h.resident_name, a.reason, a.starts_at, a.ends_at, a.declared_by, a.ended_at,
                    (SELECT group_concat(m.meter_id, ', ') FROM meters m WHERE m.household_id = h.id AND m.status = 'active')
             FROM absences a JOIN households h ON h.id = a.household_id
             WHERE ?1 OR coalesce(a.ended_at, a.ends_at) > ?2 ORDER BY a.id DESC",
        )?;
        let rows = statement.query_map(params![all, now], |row| {
            Ok(Absence {
                id: row.get(0)?,
                household_id: row.get(1)?,
                resident_name: row.get(2)?,
                reason: row.get(3)?,
                starts_at: row.get(4)?,
                ends_at: row.get(5)?,
                declared_by: row.get(6)?,
                ended_at: row.get(7)?,
                meters: row.get::<_, Option<String>>(8)?.unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
