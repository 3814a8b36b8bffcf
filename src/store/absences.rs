//! Declared absences and the meters they cover.

use super::db::{args, Db};

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

/// Periods a household's routine does not learn from (`[start, end)`,
/// meter clock): its declared absences (`declared`), and the quiet stretches
/// of `no_usage` alerts a monitor closed as `away` or `hospitalised`
/// (`closed_away`; an alert closed as `safe` is how this home lives, and is
/// learned).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotRoutine {
    pub declared: Vec<(i64, i64)>,
    pub closed_away: Vec<(i64, i64)>,
}

impl NotRoutine {
    /// Every period, declared first.
    pub fn all(&self) -> Vec<(i64, i64)> {
        self.declared
            .iter()
            .chain(&self.closed_away)
            .copied()
            .collect()
    }
}

/// [`NotRoutine`] of a household, on any connection (the store's or the engine's transaction).
pub(crate) fn not_routine(db: &dyn Db, household_id: i64) -> Result<NotRoutine, StoreError> {
    let periods = |sql: &str| -> Result<Vec<(i64, i64)>, StoreError> {
        db.query_all(sql, args![household_id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
    };
    Ok(NotRoutine {
        declared: periods(
            "SELECT starts_at, coalesce(ended_at, ends_at) FROM absences WHERE household_id = ?1 ORDER BY starts_at",
        )?,
        closed_away: periods(
            "SELECT since, last_detected_at + 1 FROM alerts
             WHERE household_id = ?1 AND kind = 'no_usage' AND disposition IN ('away', 'hospitalised')
             ORDER BY since",
        )?,
    })
}

impl AbsenceStore for Store {
    fn not_routine(&self, household_id: i64) -> Result<NotRoutine, StoreError> {
        not_routine(&self.db()?, household_id)
    }

    fn absences(&self, all: bool, now: i64) -> Result<Vec<Absence>, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_all(
            "SELECT a.id, a.household_id, h.resident_name, a.reason, a.starts_at, a.ends_at, a.declared_by, a.ended_at,
                    (SELECT string_agg(m.meter_id, ', ') FROM meters m WHERE m.household_id = h.id AND m.status = 'active')
             FROM absences a JOIN households h ON h.id = a.household_id
             WHERE ?1 OR coalesce(a.ended_at, a.ends_at) > ?2 ORDER BY a.id DESC",
            args![all, now],
            |row| {
            Ok(Absence {
                id: row.get(0)?,
                household_id: row.get(1)?,
                resident_name: row.get(2)?,
                reason: row.get(3)?,
                starts_at: row.get(4)?,
                ends_at: row.get(5)?,
                declared_by: row.get(6)?,
                ended_at: row.get(7)?,
                meters: row.get::<Option<String>>(8)?.unwrap_or_default(),
            })
        },
        )
    }
}
