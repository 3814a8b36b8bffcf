//! Alerts as operators see them: listings, one alert with its history, and
//! the look-ups a reply needs (codes, contact names, check-in phones).

use super::db::{args, Db, Param};

use super::traits::*;
use super::{Store, StoreError};

/// Which alerts a list shows: `None` is any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertFilter {
    /// Resolved and closed ones too (a `state` implies it).
    pub all: bool,
    pub meter: Option<String>,
    pub kind: Option<String>,
    pub state: Option<String>,
}

/// An alert as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    pub id: i64,
    pub meter_id: String,
    pub resident_name: Option<String>,
    pub kind: String,
    pub severity: String,
    pub state: String,
    pub since: i64,
    pub opened_at: i64,
    pub detail: String,
    pub acknowledged: Option<(i64, String, String)>,
    pub resolved: Option<(i64, String, String)>,
    pub closed: Option<(i64, String, String)>,
    pub disposition: Option<String>,
    pub note: Option<String>,
}

/// One line of an alert's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertEvent {
    pub at: i64,
    pub actor: String,
    pub channel: String,
    pub action: String,
    pub detail: String,
}

pub(super) fn record_event(
    db: &dyn Db,
    id: i64,
    at: i64,
    actor: &str,
    channel: &str,
    action: &str,
    detail: &str,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO alert_events (alert_id, at, actor, channel, action, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![id, at, actor, channel, action, detail],
    )?;
    Ok(())
}

impl Store {
    /// Alerts matching `filter` (which may use ?2 and on), at most ?1 of them.
    fn query_alerts(
        &self,
        filter: &str,
        parameters: &[&dyn Param],
    ) -> Result<Vec<AlertRecord>, StoreError> {
        let db = self.db()?;
        let sql = format!(
            "SELECT a.id, a.meter_id, h.resident_name, a.kind, a.severity, a.state, a.since, a.opened_at, a.detail,
                    a.acknowledged_at, a.acknowledged_by, a.acknowledged_via, a.resolved_at, a.resolved_by, a.resolved_via,
                    a.closed_at, a.closed_by, a.closed_via, a.disposition, a.note
             FROM alerts a LEFT JOIN households h ON h.id = a.household_id {filter}
             ORDER BY a.state = 'open' DESC, a.id DESC LIMIT ?1"
        );
        (&db as &dyn Db).query_all(&sql, parameters, |row| {
            let triple = |at: usize| -> Result<Option<(i64, String, String)>, StoreError> {
                Ok(match row.get::<Option<i64>>(at)? {
                    Some(when) => Some((when, row.get(at + 1)?, row.get(at + 2)?)),
                    None => None,
                })
            };
            Ok(AlertRecord {
                id: row.get(0)?,
                meter_id: row.get(1)?,
                resident_name: row.get(2)?,
                kind: row.get(3)?,
                severity: row.get(4)?,
                state: row.get(5)?,
                since: row.get(6)?,
                opened_at: row.get(7)?,
                detail: row.get(8)?,
                acknowledged: triple(9)?,
                resolved: triple(12)?,
                closed: triple(15)?,
                disposition: row.get(18)?,
                note: row.get(19)?,
            })
        })
    }
}

impl AlertStore for Store {
    fn list_alerts(&self, all: bool, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
        self.find_alerts(
            &AlertFilter {
                all,
                ..AlertFilter::default()
            },
            limit,
        )
    }

    fn find_alerts(
        &self,
        filter: &AlertFilter,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        // Each condition's value is a parameter (?2, ?3, ?4), bound or NULL.
        let mut conditions = vec![
            "(CAST(?2 AS TEXT) IS NULL OR a.meter_id = ?2)",
            "(CAST(?3 AS TEXT) IS NULL OR a.kind = ?3)",
            "(CAST(?4 AS TEXT) IS NULL OR a.state = ?4)",
        ];
        if !filter.all && filter.state.is_none() {
            conditions.push("a.state IN ('open', 'acknowledged')");
        }
        self.query_alerts(
            &format!("WHERE {}", conditions.join(" AND ")),
            args![limit, filter.meter, filter.kind, filter.state],
        )
    }

    fn alert(&self, id: i64) -> Result<Option<AlertRecord>, StoreError> {
        Ok(self
            .query_alerts("WHERE a.id = ?2", args![1, id])?
            .into_iter()
            .next())
    }

    fn alert_events(&self, id: i64) -> Result<Vec<AlertEvent>, StoreError> {
        let db = self.db()?;
        let db: &dyn Db = &db;
        db.query_all(
            db.pick(
                "SELECT at, actor, channel, action, detail FROM alert_events WHERE alert_id = ?1 ORDER BY rowid",
                "SELECT at, actor, channel, action, detail FROM alert_events WHERE alert_id = ?1 ORDER BY id",
            ),
            args![id],
            |row| {
                Ok(AlertEvent {
                    at: row.get(0)?,
                    actor: row.get(1)?,
                    channel: row.get(2)?,
                    action: row.get(3)?,
                    detail: row.get(4)?,
                })
            },
        )
    }

    fn alert_for_code(&self, phone: &str, code: i64) -> Result<Option<(i64, String)>, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_opt(
            "SELECT a.id, a.state FROM sms_codes c JOIN alerts a ON a.id = c.alert_id WHERE c.phone = ?1 AND c.code = ?2",
            args![phone, code],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
    }

    fn contact_name(&self, phone: &str) -> Result<Option<String>, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_opt(
            "SELECT name FROM contacts WHERE phone = ?1
             UNION ALL SELECT resident_name FROM households WHERE check_in_phone = ?1 LIMIT 1",
            args![phone],
            |row| row.get(0),
        )
    }

    fn is_check_in_phone(&self, alert_id: i64, phone: &str) -> Result<bool, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_value(
            "SELECT EXISTS (SELECT 1 FROM alerts a JOIN households h ON h.id = a.household_id
                            WHERE a.id = ?1 AND h.check_in_phone = ?2)",
            args![alert_id, phone],
        )
    }
}
