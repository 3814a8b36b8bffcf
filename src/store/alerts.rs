//! Alerts, their history, the notification outbox, reply codes and absences.
//!
//! The alert engine works inside one [`AlertTx`] per meter evaluation or tick,
//! so an alert and the notifications it causes commit together (the outbox).
//! Operators' actions (acknowledge, resolve, close) and the notifier's delivery
//! records are plain [`Store`] methods.

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::chunk;
use super::{Store, StoreError};
use crate::domain::{StoredReading, Timestamp};

/// What the engine needs to evaluate one meter.
#[derive(Debug, Clone)]
pub struct MeterWork {
    pub evaluated_through: Option<i64>,
    /// Meter clock of the meter's newest reading.
    pub newest: i64,
    /// Readings from the history horizon up to the newest, sorted.
    pub readings: Vec<StoredReading>,
    /// `None` when the meter has no active registration (its readings never alarm).
    pub household: Option<HouseholdInfo>,
}

/// A household as alerts see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdInfo {
    pub id: i64,
    pub resident_name: String,
    pub address: String,
    pub category: String,
    pub timezone: String,
    pub reporting_interval_min: u32,
    pub check_in_phone: Option<String>,
    /// (step, name, phone), in escalation order.
    pub contacts: Vec<(u32, String, String)>,
}

/// An open or acknowledged alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveAlert {
    pub id: i64,
    pub meter_id: String,
    pub household_id: Option<i64>,
    pub kind: String,
    pub severity: String,
    pub state: String,
    pub since: i64,
    pub opened_at: i64,
    pub notified_step: u32,
    pub last_notified_at: Option<i64>,
    pub reminders: u32,
    pub check_in_until: Option<i64>,
    /// Meter clock since which the condition has been absent (a maintenance
    /// alert waiting out its hold before it resolves).
    pub clear_since: Option<i64>,
}

/// A new alert.
#[derive(Debug, Clone)]
pub struct NewAlert<'a> {
    pub meter_id: &'a str,
    pub household_id: Option<i64>,
    pub kind: &'a str,
    pub severity: &'a str,
    pub since: i64,
    pub opened_at: i64,
    pub detail: &'a str,
    pub created_at: i64,
}

/// A text to queue: the rendered text and what it was rendered from.
#[derive(Debug, Clone)]
pub struct QueuedText<'a> {
    pub alert_id: i64,
    pub phone: &'a str,
    pub recipient: &'a str,
    pub step: u32,
    /// `alert`, `check_in`, `resolved` or `reminder`.
    pub purpose: &'a str,
    pub text: &'a str,
    pub idempotency_key: &'a str,
    /// `<kind>.<purpose>`.
    pub template: &'a str,
    /// The template's values, JSON.
    pub template_values: &'a str,
}

/// The end of one delivery attempt, as the notifier decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptEnd {
    Sent,
    /// Try again at this wall time.
    Retry {
        error: String,
        at: i64,
    },
    /// Given up: the provider refused it, or it ran out of attempts.
    Failed {
        error: String,
    },
}

/// A text to send, as queued in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: i64,
    pub alert_id: i64,
    pub kind: String,
    pub phone: String,
    pub recipient: String,
    pub step: u32,
    pub purpose: String,
    pub text: String,
    pub idempotency_key: String,
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// `<kind>.<purpose>`, the template the text was rendered from.
    pub template: String,
    /// The values it was rendered with, JSON.
    pub template_values: String,
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

/// The engine's own connection.
pub struct AlertDb {
    connection: Connection,
}

pub struct AlertTx<'a> {
    tx: Transaction<'a>,
}

const ACTIVE_COLUMNS: &str =
    "id, meter_id, household_id, kind, severity, state, since, opened_at, notified_step,
     last_notified_at, reminders, check_in_until, clear_since";

fn active_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ActiveAlert> {
    Ok(ActiveAlert {
        id: row.get(0)?,
        meter_id: row.get(1)?,
        household_id: row.get(2)?,
        kind: row.get(3)?,
        severity: row.get(4)?,
        state: row.get(5)?,
        since: row.get(6)?,
        opened_at: row.get(7)?,
        notified_step: row.get(8)?,
        last_notified_at: row.get(9)?,
        reminders: row.get(10)?,
        check_in_until: row.get(11)?,
        clear_since: row.get(12)?,
    })
}

impl AlertDb {
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            connection: store.connect()?,
        })
    }

    pub fn transaction(&mut self) -> Result<AlertTx<'_>, StoreError> {
        Ok(AlertTx {
            tx: self
                .connection
                .transaction_with_behavior(TransactionBehavior::Immediate)?,
        })
    }

    /// Meters with readings newer than detection has evaluated.
    pub fn pending_meters(&self) -> Result<Vec<String>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT meter_id FROM meter_state
             WHERE last_reading_ts IS NOT NULL AND (evaluated_through IS NULL OR last_reading_ts > evaluated_through)",
        )?;
        let rows = statement.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl AlertTx<'_> {
    pub fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit()?)
    }

    /// The readings and household of `meter`, reaching `history_s` before the
    /// oldest reading not yet evaluated.
    pub fn meter_work(&self, meter: &str, history_s: i64) -> Result<Option<MeterWork>, StoreError> {
        let state: Option<(i64, Option<i64>, Option<i64>)> = self
            .tx
            .prepare_cached(
                "SELECT meter_key, evaluated_through, last_reading_ts FROM meter_state WHERE meter_id = ?1",
            )?
            .query_row([meter], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .optional()?;
        let Some((key, evaluated_through, Some(newest))) = state else {
            return Ok(None);
        };
        let household = household_of(&self.tx, meter)?;
        if household.is_none() {
            // Readings of unregistered meters never alarm: nothing to load.
            return Ok(Some(MeterWork {
                evaluated_through,
                newest,
                readings: Vec::new(),
                household,
            }));
        }
        let from = evaluated_through.unwrap_or(newest).min(newest) - history_s;
        let mut statement = self.tx.prepare_cached(
            "SELECT day, data FROM reading_chunks WHERE meter_key = ?1 AND day >= ?2 ORDER BY day",
        )?;
        let from = Timestamp::from_secs(from);
        let mut rows = statement.query(params![key, chunk::day_of(from)])?;
        let mut readings = Vec::new();
        while let Some(row) = rows.next()? {
            let day = chunk::decode(row.get(0)?, &row.get::<_, Vec<u8>>(1)?)?;
            readings.extend(day.into_iter().filter(|r| r.ts >= from));
        }
        Ok(Some(MeterWork {
            evaluated_through,
            newest,
            readings,
            household,
        }))
    }

    /// Operators' rule overrides for a household: its category's, then its own.
    pub fn rule_overrides(
        &self,
        household: &HouseholdInfo,
    ) -> Result<Vec<RuleOverride>, StoreError> {
        rule_overrides(&self.tx, &household.category, household.id)
    }

    pub fn set_evaluated_through(&self, meter: &str, ts: i64) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("UPDATE meter_state SET evaluated_through = ?2 WHERE meter_id = ?1")?
            .execute(params![meter, ts])?;
        Ok(())
    }

    pub fn active_alerts(&self, meter: &str) -> Result<Vec<ActiveAlert>, StoreError> {
        let mut statement = self.tx.prepare_cached(&format!(
            "SELECT {ACTIVE_COLUMNS} FROM alerts WHERE meter_id = ?1 AND state IN ('open', 'acknowledged')"
        ))?;
        let rows = statement.query_map([meter], active_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every open (unacknowledged) alert, for escalation and reminders.
    pub fn open_alerts(&self) -> Result<Vec<ActiveAlert>, StoreError> {
        let mut statement = self.tx.prepare_cached(&format!(
            "SELECT {ACTIVE_COLUMNS} FROM alerts WHERE state = 'open' ORDER BY id"
        ))?;
        let rows = statement.query_map([], active_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The household of an alert's meter (active registration or not).
    pub fn household(&self, household_id: i64) -> Result<Option<HouseholdInfo>, StoreError> {
        let meter: Option<String> = self
            .tx
            .query_row(
                "SELECT meter_id FROM meters WHERE household_id = ?1 ORDER BY status = 'active' DESC LIMIT 1",
                [household_id],
                |row| row.get(0),
            )
            .optional()?;
        match meter {
            Some(meter) => household_of(&self.tx, &meter),
            None => Ok(None),
        }
    }

    /// The reason of an absence covering `at`, if any.
    pub fn absence_at(&self, household_id: i64, at: i64) -> Result<Option<String>, StoreError> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT reason FROM absences WHERE household_id = ?1 AND starts_at <= ?2 AND ?2 < coalesce(ended_at, ends_at)
                 ORDER BY id LIMIT 1",
            )?
            .query_row(params![household_id, at], |row| row.get(0))
            .optional()?)
    }

    pub fn insert_alert(&self, alert: &NewAlert<'_>) -> Result<i64, StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO alerts (meter_id, household_id, kind, severity, state, since, opened_at, last_detected_at, detail, created_at)
                 VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?6, ?7, ?8)",
            )?
            .execute(params![
                alert.meter_id,
                alert.household_id,
                alert.kind,
                alert.severity,
                alert.since,
                alert.opened_at,
                alert.detail,
                alert.created_at
            ])?;
        Ok(self.tx.last_insert_rowid())
    }

    pub fn update_detection(
        &self,
        id: i64,
        severity: &str,
        at: i64,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE alerts SET severity = ?2, last_detected_at = ?3, detail = ?4 WHERE id = ?1",
            )?
            .execute(params![id, severity, at, detail])?;
        Ok(())
    }

    /// Marks which step has been texted and when.
    pub fn set_notified(
        &self,
        id: i64,
        step: u32,
        at: i64,
        reminders: u32,
        check_in_until: Option<i64>,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE alerts SET notified_step = ?2, last_notified_at = ?3, reminders = ?4, check_in_until = ?5 WHERE id = ?1",
            )?
            .execute(params![id, step, at, reminders, check_in_until])?;
        Ok(())
    }

    pub fn resolve(&self, id: i64, at: i64, by: &str, via: &str) -> Result<(), StoreError> {
        resolve(&self.tx, id, at, by, via)
    }

    /// Starts (`Some`) or cancels (`None`) an alert's hold.
    pub fn set_clear_since(&self, id: i64, clear_since: Option<i64>) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("UPDATE alerts SET clear_since = ?2 WHERE id = ?1")?
            .execute(params![id, clear_since])?;
        Ok(())
    }

    /// The grade of the meter's answered check-in cover, if one holds.
    pub fn cover(&self, meter: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT severity FROM check_in_covers WHERE meter_id = ?1")?
            .query_row([meter], |row| row.get(0))
            .optional()?)
    }

    /// Ends the meter's cover (the quiet stretch it answered is over).
    pub fn clear_cover(&self, meter: &str) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("DELETE FROM check_in_covers WHERE meter_id = ?1")?
            .execute([meter])?;
        Ok(())
    }

    /// Texts of `purpose` about the meter's alerts queued since `since` (wall
    /// clock), to recipients named `recipient` when given.
    pub fn texts_since(
        &self,
        meter: &str,
        purpose: &str,
        recipient: Option<&str>,
        since: i64,
    ) -> Result<u32, StoreError> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT count(DISTINCT n.alert_id || ':' || n.step) FROM notifications n JOIN alerts a ON a.id = n.alert_id
                 WHERE a.meter_id = ?1 AND n.purpose = ?2 AND (?3 IS NULL OR n.recipient = ?3) AND n.created_at >= ?4",
            )?
            .query_row(params![meter, purpose, recipient, since], |row| row.get(0))?)
    }

    pub fn record_event(
        &self,
        id: i64,
        at: i64,
        actor: &str,
        channel: &str,
        action: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        record_event(&self.tx, id, at, actor, channel, action, detail)
    }

    /// The reply code of `alert_id` for `phone`: the one it has, or the smallest
    /// not used by another active alert texted to that phone.
    pub fn code_for(&self, phone: &str, alert_id: i64) -> Result<i64, StoreError> {
        let mut statement = self.tx.prepare_cached(
            "SELECT c.code, c.alert_id FROM sms_codes c JOIN alerts a ON a.id = c.alert_id
             WHERE c.phone = ?1 AND a.state IN ('open', 'acknowledged') ORDER BY c.code",
        )?;
        let used: Vec<(i64, i64)> = statement
            .query_map([phone], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        if let Some((code, _)) = used.iter().find(|(_, alert)| *alert == alert_id) {
            return Ok(*code);
        }
        let code = (1..)
            .find(|code| !used.iter().any(|(used, _)| used == code))
            .expect("a free code");
        self.tx
            .prepare_cached(
                "INSERT INTO sms_codes (phone, code, alert_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (phone, code) DO UPDATE SET alert_id = excluded.alert_id",
            )?
            .execute(params![phone, code, alert_id])?;
        Ok(code)
    }

    /// Queues a text; returns false when its idempotency key was queued before.
    pub fn enqueue(&self, text: &QueuedText<'_>, now: i64) -> Result<bool, StoreError> {
        let inserted = self
            .tx
            .prepare_cached(
                "INSERT INTO notifications (alert_id, phone, recipient, step, purpose, text, idempotency_key, state, due_at, created_at,
                                            template, template_values)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8, ?9, ?10) ON CONFLICT (idempotency_key) DO NOTHING",
            )?
            .execute(params![
                text.alert_id,
                text.phone,
                text.recipient,
                text.step,
                text.purpose,
                text.text,
                text.idempotency_key,
                now,
                text.template,
                text.template_values
            ])?;
        Ok(inserted == 1)
    }

    /// Everyone texted about an alert (contacts and maintenance, not a resident's
    /// check-in), once each, with the first text they got: (phone, recipient, step, text).
    pub fn recipients(
        &self,
        alert_id: i64,
    ) -> Result<Vec<(String, String, u32, String)>, StoreError> {
        let mut statement = self.tx.prepare_cached(
            "SELECT phone, recipient, step, text FROM notifications n
             WHERE alert_id = ?1 AND purpose = 'alert' AND state IN ('pending', 'sent')
               AND id = (SELECT min(id) FROM notifications m WHERE m.alert_id = n.alert_id AND m.phone = n.phone
                         AND m.purpose = 'alert')
             ORDER BY step, phone",
        )?;
        let rows = statement.query_map([alert_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Registered meters without an active `meter_offline` alert whose newest
    /// reading (or registration, if they never reported) is older than
    /// `silent_since` (wall clock). A pre-filter: the offline rule itself lives
    /// in the alert lifecycle.
    pub fn silent_meters(&self, silent_since: i64) -> Result<Vec<SilentMeter>, StoreError> {
        let mut statement = self.tx.prepare_cached(
            "SELECT m.meter_id, m.household_id, s.last_received, m.registered_at
             FROM meters m LEFT JOIN meter_state s ON s.meter_id = m.meter_id
             WHERE m.status = 'active' AND coalesce(s.last_received, m.registered_at) < ?1
               AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.meter_id = m.meter_id AND a.kind = 'meter_offline'
                               AND a.state IN ('open', 'acknowledged'))",
        )?;
        let rows = statement.query_map(params![silent_since], |row| {
            Ok(SilentMeter {
                meter_id: row.get(0)?,
                household_id: row.get(1)?,
                last_received: row.get(2)?,
                registered_at: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A registered meter that has not reported for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilentMeter {
    pub meter_id: String,
    pub household_id: i64,
    /// Wall clock of its newest reading; `None` if it never reported.
    pub last_received: Option<i64>,
    /// Wall clock of its registration.
    pub registered_at: i64,
}

/// One rule parameter set by an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOverride {
    /// `category` or `household`.
    pub scope: String,
    pub key: String,
    pub value: String,
    pub set_by: String,
    pub set_at: i64,
}

fn rule_overrides(
    connection: &Connection,
    category: &str,
    household_id: i64,
) -> Result<Vec<RuleOverride>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT scope, key, value, set_by, set_at FROM rule_overrides
         WHERE (scope = 'category' AND target = ?1) OR (scope = 'household' AND target = ?2)
         ORDER BY scope = 'household', key",
    )?;
    let rows = statement.query_map(params![category, household_id.to_string()], |row| {
        Ok(RuleOverride {
            scope: row.get(0)?,
            key: row.get(1)?,
            value: row.get(2)?,
            set_by: row.get(3)?,
            set_at: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn household_of(connection: &Connection, meter: &str) -> Result<Option<HouseholdInfo>, StoreError> {
    let household = connection
        .prepare_cached(
            "SELECT h.id, h.resident_name, h.address, h.category, h.timezone, h.reporting_interval_min, h.check_in_phone
             FROM meters m JOIN households h ON h.id = m.household_id WHERE m.meter_id = ?1 AND m.status = 'active'",
        )?
        .query_row([meter], |row| {
            Ok(HouseholdInfo {
                id: row.get(0)?,
                resident_name: row.get(1)?,
                address: row.get(2)?,
                category: row.get(3)?,
                timezone: row.get(4)?,
                reporting_interval_min: row.get(5)?,
                check_in_phone: row.get(6)?,
                contacts: Vec::new(),
            })
        })
        .optional()?;
    let Some(mut household) = household else {
        return Ok(None);
    };
    let mut statement = connection.prepare_cached(
        "SELECT step, name, phone FROM contacts WHERE household_id = ?1 ORDER BY step, position",
    )?;
    household.contacts = statement
        .query_map([household.id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(Some(household))
}

pub(super) fn resolve(
    connection: &Connection,
    id: i64,
    at: i64,
    by: &str,
    via: &str,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "UPDATE alerts SET state = 'resolved', resolved_at = ?2, resolved_by = ?3, resolved_via = ?4
             WHERE id = ?1 AND state IN ('open', 'acknowledged')",
        )?
        .execute(params![id, at, by, via])?;
    cancel_pending(connection, id)
}

/// Pending alert texts and reminders are not sent once someone has acted.
fn cancel_pending(connection: &Connection, id: i64) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "UPDATE notifications SET state = 'cancelled'
             WHERE alert_id = ?1 AND state = 'pending' AND purpose IN ('alert', 'reminder', 'check_in')",
        )?
        .execute([id])?;
    Ok(())
}

pub(super) fn record_event(
    connection: &Connection,
    id: i64,
    at: i64,
    actor: &str,
    channel: &str,
    action: &str,
    detail: &str,
) -> Result<(), StoreError> {
    connection
        .prepare_cached("INSERT INTO alert_events (alert_id, at, actor, channel, action, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
        .execute(params![id, at, actor, channel, action, detail])?;
    Ok(())
}

/// Whom a rule override applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleScope {
    Category(String),
    /// The household of this (active) meter.
    Meter(String),
}

impl Store {
    /// The categories of actively registered households, sorted.
    pub fn categories_in_use(&self) -> Result<Vec<String>, StoreError> {
        let connection = self.connect()?;
        let mut statement = connection.prepare(
            "SELECT DISTINCT h.category FROM households h JOIN meters m ON m.household_id = h.id
             WHERE m.status = 'active' ORDER BY h.category",
        )?;
        let rows = statement.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The overrides that apply to a meter's household (category first), or to a category.
    pub fn rule_overrides(&self, scope: &RuleScope) -> Result<Vec<RuleOverride>, StoreError> {
        let connection = self.connect()?;
        match scope {
            RuleScope::Category(category) => rule_overrides(&connection, category, -1),
            RuleScope::Meter(meter) => {
                let household = household_of(&connection, meter)?
                    .ok_or_else(|| StoreError::NotRegistered(meter.clone()))?;
                rule_overrides(&connection, &household.category, household.id)
            }
        }
    }

    /// Alerts, newest first; only active ones unless `all`.
    pub fn list_alerts(&self, all: bool, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
        let filter = if all {
            ""
        } else {
            "WHERE a.state IN ('open', 'acknowledged')"
        };
        self.query_alerts(filter, params![limit as i64])
    }

    pub fn alert(&self, id: i64) -> Result<Option<AlertRecord>, StoreError> {
        Ok(self
            .query_alerts("WHERE a.id = ?2", params![1, id])?
            .into_iter()
            .next())
    }

    /// Alerts matching `filter` (which may use ?2 and on), at most ?1 of them.
    fn query_alerts(
        &self,
        filter: &str,
        parameters: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<AlertRecord>, StoreError> {
        let connection = self.connect()?;
        let mut statement = connection.prepare(&format!(
            "SELECT a.id, a.meter_id, h.resident_name, a.kind, a.severity, a.state, a.since, a.opened_at, a.detail,
                    a.acknowledged_at, a.acknowledged_by, a.acknowledged_via, a.resolved_at, a.resolved_by, a.resolved_via,
                    a.closed_at, a.closed_by, a.closed_via, a.disposition, a.note
             FROM alerts a LEFT JOIN households h ON h.id = a.household_id {filter}
             ORDER BY a.state = 'open' DESC, a.id DESC LIMIT ?1"
        ))?;
        let rows = statement.query_map(parameters, |row| {
            let triple = |at: usize| -> rusqlite::Result<Option<(i64, String, String)>> {
                Ok(match row.get::<_, Option<i64>>(at)? {
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
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn alert_events(&self, id: i64) -> Result<Vec<AlertEvent>, StoreError> {
        let connection = self.connect()?;
        let mut statement =
            connection.prepare("SELECT at, actor, channel, action, detail FROM alert_events WHERE alert_id = ?1 ORDER BY rowid")?;
        let rows = statement.query_map([id], |row| {
            Ok(AlertEvent {
                at: row.get(0)?,
                actor: row.get(1)?,
                channel: row.get(2)?,
                action: row.get(3)?,
                detail: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Texts of an alert (or all), oldest first.
    pub fn notifications(&self, alert_id: Option<i64>) -> Result<Vec<Notification>, StoreError> {
        let connection = self.connect()?;
        let mut statement = connection.prepare(&format!(
            "{NOTIFICATION_QUERY} WHERE ?1 IS NULL OR n.alert_id = ?1 ORDER BY n.id"
        ))?;
        let rows = statement.query_map([alert_id], notification_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Pending texts due by `now` (wall clock), oldest first.
    pub fn due_notifications(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        let connection = self.connect()?;
        let mut statement = connection.prepare(&format!(
            "{NOTIFICATION_QUERY} WHERE n.state = 'pending' AND n.due_at <= ?1 ORDER BY n.due_at, n.id LIMIT ?2"
        ))?;
        let rows = statement.query_map(params![now, limit as i64], notification_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the next pending text is due (wall clock), if any.
    pub fn next_due(&self) -> Result<Option<i64>, StoreError> {
        let connection = self.connect()?;
        Ok(connection.query_row(
            "SELECT min(due_at) FROM notifications WHERE state = 'pending'",
            [],
            |row| row.get(0),
        )?)
    }

    /// Records one delivery attempt: sent, to retry at `retry_at_ms`, or failed for good.
    /// When a text was queued (wall clock).
    pub fn notification_queued_at(&self, id: i64) -> Result<i64, StoreError> {
        let connection = self.connect()?;
        Ok(connection.query_row(
            "SELECT created_at FROM notifications WHERE id = ?1",
            [id],
            |row| row.get(0),
        )?)
    }

    /// Records how an attempt ended. A text that failed for good also goes
    /// into its alert's history, so the timeline shows who was never reached.
    pub fn record_attempt(&self, id: i64, end: &AttemptEnd, now: i64) -> Result<(), StoreError> {
        let mut connection = self.connect()?;
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (label, error) = match end {
            AttemptEnd::Sent => ("sent", None),
            AttemptEnd::Retry { error, .. } => ("retry", Some(error.as_str())),
            AttemptEnd::Failed { error } => ("failed", Some(error.as_str())),
        };
        let changed = match end {
            AttemptEnd::Sent => tx.execute(
                "UPDATE notifications SET state = 'sent', attempts = attempts + 1, sent_at = ?2 WHERE id = ?1 AND state = 'pending'",
                params![id, now],
            )?,
            AttemptEnd::Retry { error, at } => tx.execute(
                "UPDATE notifications SET attempts = attempts + 1, last_error = ?2, due_at = ?3 WHERE id = ?1 AND state = 'pending'",
                params![id, error, at],
            )?,
            AttemptEnd::Failed { error } => tx.execute(
                "UPDATE notifications SET state = 'failed', attempts = attempts + 1, last_error = ?2 WHERE id = ?1 AND state = 'pending'",
                params![id, error],
            )?,
        };
        tx.execute(
            "INSERT INTO notification_attempts (notification_id, at, outcome, error) VALUES (?1, ?2, ?3, ?4)",
            params![id, now, if changed == 0 { "sent_after_cancel" } else { label }, error],
        )?;
        if let (AttemptEnd::Failed { error }, 1) = (end, changed) {
            let (alert_id, phone, attempts): (i64, String, u32) = tx.query_row(
                "SELECT alert_id, phone, attempts FROM notifications WHERE id = ?1",
                [id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )?;
            record_event(
                &tx,
                alert_id,
                now,
                "stillwater",
                "sms",
                "text_failed",
                &format!(
                    "the text to {} was not delivered after {} attempt(s): {error}",
                    crate::domain::mask_phone(&phone),
                    attempts
                ),
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every delivery attempt of a text: (wall clock, outcome, error).
    pub fn notification_attempts(
        &self,
        id: i64,
    ) -> Result<Vec<(i64, String, Option<String>)>, StoreError> {
        let connection = self.connect()?;
        let mut statement = connection.prepare(
            "SELECT at, outcome, error FROM notification_attempts WHERE notification_id = ?1 ORDER BY rowid",
        )?;
        let rows = statement.query_map([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The active alert a reply code stands for, for a phone: (alert id, state).
    pub fn alert_for_code(
        &self,
        phone: &str,
        code: i64,
    ) -> Result<Option<(i64, String)>, StoreError> {
        let connection = self.connect()?;
        Ok(connection
            .query_row(
                "SELECT a.id, a.state FROM sms_codes c JOIN alerts a ON a.id = c.alert_id WHERE c.phone = ?1 AND c.code = ?2",
                params![phone, code],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?)
    }

    /// The name a phone number has among a household's contacts (or as its resident's check-in phone).
    pub fn contact_name(&self, phone: &str) -> Result<Option<String>, StoreError> {
        let connection = self.connect()?;
        Ok(connection
            .query_row(
                "SELECT name FROM contacts WHERE phone = ?1
                 UNION ALL SELECT resident_name FROM households WHERE check_in_phone = ?1 LIMIT 1",
                [phone],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Is `phone` the check-in phone of the alert's household?
    pub fn is_check_in_phone(&self, alert_id: i64, phone: &str) -> Result<bool, StoreError> {
        let connection = self.connect()?;
        Ok(connection.query_row(
            "SELECT EXISTS (SELECT 1 FROM alerts a JOIN households h ON h.id = a.household_id
                            WHERE a.id = ?1 AND h.check_in_phone = ?2)",
            params![alert_id, phone],
            |row| row.get(0),
        )?)
    }

    /// Active meters of a category (or all).
    pub fn active_meters(&self, category: Option<&str>) -> Result<Vec<String>, StoreError> {
        let connection = self.connect()?;
        let mut statement = connection.prepare(
            "SELECT m.meter_id FROM meters m JOIN households h ON h.id = m.household_id
             WHERE m.status = 'active' AND (?1 IS NULL OR h.category = ?1) ORDER BY m.meter_id",
        )?;
        let rows = statement.query_map([category], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Absences not yet over at `now` (or all), newest first.
    pub fn absences(&self, all: bool, now: i64) -> Result<Vec<Absence>, StoreError> {
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

/// Selects the columns `notification_from_row` reads.
const NOTIFICATION_QUERY: &str =
    "SELECT n.id, n.alert_id, a.kind, n.phone, n.recipient, n.step, n.purpose, n.text, n.idempotency_key, n.state,
            n.attempts, n.last_error, n.template, n.template_values
     FROM notifications n JOIN alerts a ON a.id = n.alert_id";

fn notification_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Notification> {
    Ok(Notification {
        id: row.get(0)?,
        alert_id: row.get(1)?,
        kind: row.get(2)?,
        phone: row.get(3)?,
        recipient: row.get(4)?,
        step: row.get(5)?,
        purpose: row.get(6)?,
        text: row.get(7)?,
        idempotency_key: row.get(8)?,
        state: row.get(9)?,
        attempts: row.get(10)?,
        last_error: row.get(11)?,
        template: row.get(12)?,
        template_values: row.get(13)?,
    })
}
