//! The alert engine's transaction: what it reads to judge a meter and what it
//! writes for the lifecycle's changes — alerts, their history, reply codes and
//! the outbox — all in one [`AlertTx`], so an alert and the texts it causes
//! commit together. Plain reads and writes: the decisions are the lifecycle's.
//!
//! Long on purpose: the engine's transaction trait and its implementation
//! (one, for both backends), method by method, read best side by side.

use rusqlite::Connection;

use super::alerts::record_event;
use super::chunk;
use super::db::{args, Db, Row};
use super::rules::{rule_overrides, RuleOverride};
use super::{pg, Backend, Store, StoreError, TxConn};
use crate::domain::{StoredReading, Timestamp};

/// What the engine needs to evaluate one meter.
#[derive(Debug, Clone)]
pub struct MeterWork {
    pub evaluated_through: Option<i64>,
    /// The earliest reading stored after detection had passed its time, when
    /// it is within the history loaded.
    pub late_from: Option<i64>,
    /// Meter clock of the meter's newest reading.
    pub newest: i64,
    /// Readings from the history horizon up to the newest, sorted.
    pub readings: Vec<StoredReading>,
    /// `None` when the meter has no active registration (its readings never alarm).
    pub household: Option<HouseholdInfo>,
    /// The meter's learned routine as stored (`detect::Routine::encode`).
    pub routine: Option<Vec<u8>>,
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
    /// Wall clock when someone acknowledged it, if they did.
    pub acknowledged_at: Option<i64>,
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

/// The engine's own connection (SQLite), or the pool it takes one from.
pub struct AlertDb {
    connection: EngineConnection,
    store: Store,
}

enum EngineConnection {
    Sqlite(Connection),
    Postgres(std::sync::Arc<pg::Pool>),
}

pub struct AlertTx<'a> {
    // Declared first: the transaction ends before the turn is given up.
    tx: TxConn<'a>,
    _turn: super::gate::Turn,
}

const ACTIVE_COLUMNS: &str =
    "id, meter_id, household_id, kind, severity, state, since, opened_at, notified_step,
     last_notified_at, reminders, check_in_until, clear_since, acknowledged_at";

fn active_from_row(row: &Row) -> Result<ActiveAlert, StoreError> {
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
        acknowledged_at: row.get(13)?,
    })
}

impl AlertDb {
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        let connection = match &store.backend {
            Backend::Sqlite(_) => EngineConnection::Sqlite(store.connect()?),
            Backend::Postgres(pool) => EngineConnection::Postgres(pool.clone()),
        };
        Ok(Self {
            connection,
            store: store.clone(),
        })
    }

    pub fn transaction(&mut self) -> Result<AlertTx<'_>, StoreError> {
        let turn = self.store.turn();
        let tx = match &mut self.connection {
            EngineConnection::Sqlite(connection) => TxConn::Sqlite(
                connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?,
            ),
            EngineConnection::Postgres(pool) => TxConn::Postgres(pool.begin_write()?),
        };
        Ok(AlertTx { tx, _turn: turn })
    }

    /// Whether other gateways may share the database (PostgreSQL): then
    /// meters another gateway committed are looked for on every timer run.
    pub fn shared(&self) -> bool {
        matches!(self.connection, EngineConnection::Postgres(_))
    }

    /// Meters with readings detection has not evaluated (newer ones, or late
    /// ones from before its cursor).
    pub fn pending_meters(&self) -> Result<Vec<String>, StoreError> {
        const PENDING: &str = "SELECT meter_id FROM meter_state
             WHERE last_reading_ts IS NOT NULL
               AND (evaluated_through IS NULL OR last_reading_ts > evaluated_through OR late_from IS NOT NULL)";
        match &self.connection {
            EngineConnection::Sqlite(connection) => {
                (connection as &dyn Db).query_all(PENDING, args![], |row| row.get(0))
            }
            EngineConnection::Postgres(pool) => {
                (&pool.connect()? as &dyn Db).query_all(PENDING, args![], |row| row.get(0))
            }
        }
    }
}

impl AlertTx<'_> {
    pub fn commit(self) -> Result<(), StoreError> {
        self.tx.commit()
    }

    fn db(&self) -> &dyn Db {
        &self.tx
    }
}

/// The engine's transaction: what it reads to judge meters and what it writes
/// for the lifecycle's changes. [`AlertTx`] implements it on either backend.
pub trait EngineTx {
    /// Takes or renews the lease `name` for `holder` until `now + lease_s`;
    /// false while another holder's lease runs.
    fn hold_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        lease_s: i64,
    ) -> Result<bool, StoreError>;

    /// The readings and household of `meter`, reaching `history_s` before the
    /// oldest reading not yet evaluated.
    fn meter_work(&self, meter: &str, history_s: i64) -> Result<Option<MeterWork>, StoreError>;

    /// Operators' rule overrides for a household: its category's, then its own.
    fn rule_overrides(&self, household: &HouseholdInfo) -> Result<Vec<RuleOverride>, StoreError>;

    /// Records that the meter's readings up to `ts` are evaluated, and the
    /// routine learned from them (unchanged when `None`).
    fn set_evaluated_through(
        &self,
        meter: &str,
        ts: i64,
        routine: Option<&[u8]>,
    ) -> Result<(), StoreError>;

    /// The periods the household's routine does not learn from: declared
    /// absences (an absence ended early ends then) and alerts closed as away
    /// or hospitalised.
    fn not_routine(&self, household_id: i64) -> Result<super::absences::NotRoutine, StoreError>;

    fn active_alerts(&self, meter: &str) -> Result<Vec<ActiveAlert>, StoreError>;

    /// Every open (unacknowledged) alert, for escalation and reminders.
    fn open_alerts(&self) -> Result<Vec<ActiveAlert>, StoreError>;

    /// The household of an alert's meter (active registration or not).
    fn household(&self, household_id: i64) -> Result<Option<HouseholdInfo>, StoreError>;

    /// The reason of an absence covering `at`, if any.
    fn absence_at(&self, household_id: i64, at: i64) -> Result<Option<String>, StoreError>;

    fn insert_alert(&self, alert: &NewAlert<'_>) -> Result<i64, StoreError>;

    fn update_detection(
        &self,
        id: i64,
        severity: &str,
        at: i64,
        detail: &str,
    ) -> Result<(), StoreError>;

    /// Marks which step has been texted and when.
    fn set_notified(
        &self,
        id: i64,
        step: u32,
        at: i64,
        reminders: u32,
        check_in_until: Option<i64>,
    ) -> Result<(), StoreError>;

    fn resolve(&self, id: i64, at: i64, by: &str, via: &str) -> Result<(), StoreError>;

    /// Starts (`Some`) or cancels (`None`) an alert's hold.
    fn set_clear_since(&self, id: i64, clear_since: Option<i64>) -> Result<(), StoreError>;

    /// The grade of the meter's answered check-in cover, if one holds.
    fn cover(&self, meter: &str) -> Result<Option<(String, i64)>, StoreError>;

    /// Ends the meter's cover (the quiet stretch it answered is over).
    fn clear_cover(&self, meter: &str) -> Result<(), StoreError>;

    /// Texts of `purpose` about the meter's alerts queued since `since` (wall
    /// clock), to recipients named `recipient` when given.
    fn texts_since(
        &self,
        meter: &str,
        purpose: &str,
        recipient: Option<&str>,
        since: i64,
    ) -> Result<u32, StoreError>;

    fn record_event(
        &self,
        id: i64,
        at: i64,
        actor: &str,
        channel: &str,
        action: &str,
        detail: &str,
    ) -> Result<(), StoreError>;

    /// The reply codes `phone` holds for active alerts: (code, alert).
    fn codes_in_use(&self, phone: &str) -> Result<Vec<(u32, i64)>, StoreError>;

    /// Gives `phone`'s reply `code` to `alert_id` (taking it from a finished alert).
    fn assign_code(&self, phone: &str, code: u32, alert_id: i64) -> Result<(), StoreError>;

    /// Queues a text; returns false when its idempotency key was queued before.
    fn enqueue(&self, text: &QueuedText<'_>, now: i64) -> Result<bool, StoreError>;

    /// Everyone texted about an alert (contacts and maintenance, not a resident's
    /// check-in), once each, with the first text they got: (phone, recipient, step, text).
    fn recipients(&self, alert_id: i64) -> Result<Vec<(String, String, u32, String)>, StoreError>;

    /// Registered meters without an active `meter_offline` alert that have
    /// been silent (no reading, or none since registration) at `now` (wall
    /// clock) for three of their reporting intervals and at least
    /// `at_least_s`. A pre-filter: the offline rule itself lives in the alert
    /// lifecycle.
    fn silent_meters(&self, now: i64, at_least_s: i64) -> Result<Vec<SilentMeter>, StoreError>;
}

impl EngineTx for AlertTx<'_> {
    fn hold_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        lease_s: i64,
    ) -> Result<bool, StoreError> {
        let held: Option<String> = self.db().query_opt(
            "INSERT INTO leases (name, holder, until_ts) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ts = excluded.until_ts
             WHERE leases.holder = excluded.holder OR leases.until_ts <= ?4
             RETURNING holder",
            args![name, holder, now + lease_s, now],
            |row| row.get(0),
        )?;
        Ok(held.is_some())
    }

    fn meter_work(&self, meter: &str, history_s: i64) -> Result<Option<MeterWork>, StoreError> {
        type State = (i64, Option<i64>, Option<i64>, Option<Vec<u8>>, Option<i64>);
        let state: Option<State> = self.db().query_opt(
            "SELECT meter_key, evaluated_through, last_reading_ts, routine, late_from
             FROM meter_state WHERE meter_id = ?1",
            args![meter],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            },
        )?;
        let Some((key, evaluated_through, Some(newest), routine, late_from)) = state else {
            return Ok(None);
        };
        // A late reading is judged at its own time when it is no older than
        // the history a judgement reads (older ones are history only).
        let late_from = late_from.filter(|late| {
            evaluated_through
                .is_some_and(|through| *late <= through && *late >= through - history_s)
        });
        let household = household_of(self.db(), meter)?;
        if household.is_none() {
            // Readings of unregistered meters never alarm: nothing to load.
            return Ok(Some(MeterWork {
                evaluated_through,
                late_from: None,
                newest,
                readings: Vec::new(),
                household,
                routine,
            }));
        }
        let from = evaluated_through
            .unwrap_or(newest)
            .min(newest)
            .min(late_from.unwrap_or(i64::MAX))
            - history_s;
        let from = Timestamp::from_secs(from);
        let rows = self.db().query(
            "SELECT day, data FROM reading_chunks WHERE meter_key = ?1 AND day >= ?2 ORDER BY day",
            args![key, chunk::day_of(from)],
        )?;
        let mut readings = Vec::new();
        for row in &rows {
            let day = chunk::decode(row.get(0)?, &row.get::<Vec<u8>>(1)?)?;
            readings.extend(day.into_iter().filter(|r| r.ts >= from));
        }
        Ok(Some(MeterWork {
            evaluated_through,
            late_from,
            newest,
            readings,
            household,
            routine,
        }))
    }

    fn rule_overrides(&self, household: &HouseholdInfo) -> Result<Vec<RuleOverride>, StoreError> {
        rule_overrides(self.db(), &household.category, household.id)
    }

    fn set_evaluated_through(
        &self,
        meter: &str,
        ts: i64,
        routine: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE meter_state SET evaluated_through = ?2, routine = coalesce(?3, routine), late_from = NULL
             WHERE meter_id = ?1",
            args![meter, ts, routine],
        )?;
        Ok(())
    }

    fn not_routine(&self, household_id: i64) -> Result<super::absences::NotRoutine, StoreError> {
        super::absences::not_routine(self.db(), household_id)
    }

    fn active_alerts(&self, meter: &str) -> Result<Vec<ActiveAlert>, StoreError> {
        self.db().query_all(
            &format!(
                "SELECT {ACTIVE_COLUMNS} FROM alerts WHERE meter_id = ?1 AND state IN ('open', 'acknowledged')"
            ),
            args![meter],
            active_from_row,
        )
    }

    fn open_alerts(&self) -> Result<Vec<ActiveAlert>, StoreError> {
        self.db().query_all(
            &format!("SELECT {ACTIVE_COLUMNS} FROM alerts WHERE state = 'open' ORDER BY id"),
            args![],
            active_from_row,
        )
    }

    fn household(&self, household_id: i64) -> Result<Option<HouseholdInfo>, StoreError> {
        let meter: Option<String> = self.db().query_opt(
            "SELECT meter_id FROM meters WHERE household_id = ?1 ORDER BY status = 'active' DESC LIMIT 1",
            args![household_id],
            |row| row.get(0),
        )?;
        match meter {
            Some(meter) => household_of(self.db(), &meter),
            None => Ok(None),
        }
    }

    fn absence_at(&self, household_id: i64, at: i64) -> Result<Option<String>, StoreError> {
        self.db().query_opt(
            "SELECT reason FROM absences WHERE household_id = ?1 AND starts_at <= ?2 AND ?2 < coalesce(ended_at, ends_at)
             ORDER BY id LIMIT 1",
            args![household_id, at],
            |row| row.get(0),
        )
    }

    fn insert_alert(&self, alert: &NewAlert<'_>) -> Result<i64, StoreError> {
        self.db().insert(
            "INSERT INTO alerts (meter_id, household_id, kind, severity, state, since, opened_at, last_detected_at, detail, created_at)
             VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?6, ?7, ?8) RETURNING id",
            args![
                alert.meter_id,
                alert.household_id,
                alert.kind,
                alert.severity,
                alert.since,
                alert.opened_at,
                alert.detail,
                alert.created_at
            ],
        )
    }

    fn update_detection(
        &self,
        id: i64,
        severity: &str,
        at: i64,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE alerts SET severity = ?2, last_detected_at = ?3, detail = ?4 WHERE id = ?1",
            args![id, severity, at, detail],
        )?;
        Ok(())
    }

    fn set_notified(
        &self,
        id: i64,
        step: u32,
        at: i64,
        reminders: u32,
        check_in_until: Option<i64>,
    ) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE alerts SET notified_step = ?2, last_notified_at = ?3, reminders = ?4, check_in_until = ?5 WHERE id = ?1",
            args![id, step, at, reminders, check_in_until],
        )?;
        Ok(())
    }

    fn resolve(&self, id: i64, at: i64, by: &str, via: &str) -> Result<(), StoreError> {
        resolve(self.db(), id, at, by, via)
    }

    fn set_clear_since(&self, id: i64, clear_since: Option<i64>) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE alerts SET clear_since = ?2 WHERE id = ?1",
            args![id, clear_since],
        )?;
        Ok(())
    }

    fn cover(&self, meter: &str) -> Result<Option<(String, i64)>, StoreError> {
        self.db().query_opt(
            "SELECT severity, answered_at FROM check_in_covers WHERE meter_id = ?1",
            args![meter],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
    }

    fn clear_cover(&self, meter: &str) -> Result<(), StoreError> {
        self.db().execute(
            "DELETE FROM check_in_covers WHERE meter_id = ?1",
            args![meter],
        )?;
        Ok(())
    }

    fn texts_since(
        &self,
        meter: &str,
        purpose: &str,
        recipient: Option<&str>,
        since: i64,
    ) -> Result<u32, StoreError> {
        self.db()
            .query_value(TEXTS_SINCE, args![meter, purpose, recipient, since])
    }

    fn record_event(
        &self,
        id: i64,
        at: i64,
        actor: &str,
        channel: &str,
        action: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        record_event(self.db(), id, at, actor, channel, action, detail)
    }

    fn codes_in_use(&self, phone: &str) -> Result<Vec<(u32, i64)>, StoreError> {
        self.db().query_all(
            "SELECT c.code, c.alert_id FROM sms_codes c JOIN alerts a ON a.id = c.alert_id
             WHERE c.phone = ?1 AND a.state IN ('open', 'acknowledged') ORDER BY c.code",
            args![phone],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
    }

    fn assign_code(&self, phone: &str, code: u32, alert_id: i64) -> Result<(), StoreError> {
        self.db().execute(
            "INSERT INTO sms_codes (phone, code, alert_id) VALUES (?1, ?2, ?3)
             ON CONFLICT (phone, code) DO UPDATE SET alert_id = excluded.alert_id",
            args![phone, code, alert_id],
        )?;
        Ok(())
    }

    fn enqueue(&self, text: &QueuedText<'_>, now: i64) -> Result<bool, StoreError> {
        let inserted = self.db().execute(
            "INSERT INTO notifications (alert_id, phone, recipient, step, purpose, text, idempotency_key, state, due_at, created_at,
                                        template, template_values)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8, ?9, ?10) ON CONFLICT (idempotency_key) DO NOTHING",
            args![
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
            ],
        )?;
        Ok(inserted == 1)
    }

    fn recipients(&self, alert_id: i64) -> Result<Vec<(String, String, u32, String)>, StoreError> {
        self.db().query_all(
            "SELECT phone, recipient, step, text FROM notifications n
             WHERE alert_id = ?1 AND purpose = 'alert' AND state IN ('pending', 'sent')
               AND id = (SELECT min(id) FROM notifications m WHERE m.alert_id = n.alert_id AND m.phone = n.phone
                         AND m.purpose = 'alert')
             ORDER BY step, phone",
            args![alert_id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
    }

    fn silent_meters(&self, now: i64, at_least_s: i64) -> Result<Vec<SilentMeter>, StoreError> {
        // The offline rule's silence (`lifecycle::offline`: three reporting
        // intervals, and at least `at_least_s`), so a tick does not load
        // every meter that reports less often than hourly.
        let db = self.db();
        let larger = db.pick("max", "greatest");
        db.query_all(
            &format!(
                "SELECT m.meter_id, m.household_id, s.last_received, m.registered_at
                 FROM meters m JOIN households h ON h.id = m.household_id
                      LEFT JOIN meter_state s ON s.meter_id = m.meter_id
                 WHERE m.status = 'active'
                   AND coalesce(s.last_received, m.registered_at) < ?1 - {larger}(?2, 180 * h.reporting_interval_min)
                   AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.meter_id = m.meter_id AND a.kind = 'meter_offline'
                                   AND a.state IN ('open', 'acknowledged'))"
            ),
            args![now, at_least_s],
            |row| {
                Ok(SilentMeter {
                    meter_id: row.get(0)?,
                    household_id: row.get(1)?,
                    last_received: row.get(2)?,
                    registered_at: row.get(3)?,
                })
            },
        )
    }
}

/// Texts of one purpose (and recipient) about a meter's alerts since a time,
/// one per alert and step.
pub(super) const TEXTS_SINCE: &str = "SELECT count(DISTINCT n.alert_id || ':' || n.step) FROM notifications n JOIN alerts a ON a.id = n.alert_id
     WHERE a.meter_id = ?1 AND n.purpose = ?2 AND (CAST(?3 AS TEXT) IS NULL OR n.recipient = ?3) AND n.created_at >= ?4";

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

pub(super) fn household_of(db: &dyn Db, meter: &str) -> Result<Option<HouseholdInfo>, StoreError> {
    let household = db.query_opt(
        "SELECT h.id, h.resident_name, h.address, h.category, h.timezone, h.reporting_interval_min, h.check_in_phone
         FROM meters m JOIN households h ON h.id = m.household_id WHERE m.meter_id = ?1 AND m.status = 'active'",
        args![meter],
        |row| {
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
        },
    )?;
    let Some(mut household) = household else {
        return Ok(None);
    };
    household.contacts = db.query_all(
        "SELECT step, name, phone FROM contacts WHERE household_id = ?1 ORDER BY step, position",
        args![household.id],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    Ok(Some(household))
}

pub(super) fn resolve(
    db: &dyn Db,
    id: i64,
    at: i64,
    by: &str,
    via: &str,
) -> Result<(), StoreError> {
    db.execute(
        "UPDATE alerts SET state = 'resolved', resolved_at = ?2, resolved_by = ?3, resolved_via = ?4
         WHERE id = ?1 AND state IN ('open', 'acknowledged')",
        args![id, at, by, via],
    )?;
    cancel_pending(db, id)
}

/// Pending alert texts and reminders are not sent once someone has acted.
fn cancel_pending(db: &dyn Db, id: i64) -> Result<(), StoreError> {
    db.execute(
        "UPDATE notifications SET state = 'cancelled'
         WHERE alert_id = ?1 AND state = 'pending' AND purpose IN ('alert', 'reminder', 'check_in')",
        args![id],
    )?;
    Ok(())
}
