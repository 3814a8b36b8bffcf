//! System alerts: the gateway watching itself (`watch`). They live beside the
//! meters' alerts — `alerts list` shows them, a reply code acknowledges them —
//! with `meter_id` naming what they are about (`system`, or `system/<provider>`)
//! and no household, so the meters' alert engine leaves them alone. Their
//! texts go to the administrators through the same outbox; a heartbeat text is
//! pinned to the provider it tests.

use super::alerts::record_event;
use super::db::{args, Db};
use super::traits::*;
use super::{Store, StoreError};

/// A text for an administrator, rendered by the caller with its reply code.
pub struct AdminText {
    pub phone: String,
    pub text: String,
    pub template: &'static str,
    pub values: String,
    /// Only through this provider (a heartbeat).
    pub provider: Option<String>,
    pub idempotency_key: String,
}

/// A system alert that is open or acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSystemAlert {
    pub id: i64,
    pub kind: String,
    pub subject: String,
}

/// Whether an alert's `meter_id` is a system alert's (`system`, `system/…`).
pub fn is_system_meter(meter_id: &str) -> bool {
    meter_id == "system" || meter_id.starts_with("system/")
}

/// What `meter_id` a system alert about `subject` has.
pub fn system_meter(subject: &str) -> String {
    if subject.is_empty() {
        "system".into()
    } else {
        format!("system/{subject}")
    }
}

impl SystemStore for Store {
    fn active_system_alerts(&self) -> Result<Vec<ActiveSystemAlert>, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_all(
            "SELECT id, kind, meter_id FROM alerts
             WHERE household_id IS NULL AND (meter_id = 'system' OR meter_id LIKE 'system/%')
               AND state IN ('open', 'acknowledged') ORDER BY id",
            args![],
            |row| {
                let meter: String = row.get(2)?;
                Ok(ActiveSystemAlert {
                    id: row.get(0)?,
                    kind: row.get(1)?,
                    subject: meter.strip_prefix("system/").unwrap_or("").to_string(),
                })
            },
        )
    }

    fn open_system_alert(
        &self,
        kind: &str,
        subject: &str,
        detail: &str,
        now: i64,
        texts: &dyn Fn(i64, &dyn Fn(&str) -> Result<u32, StoreError>) -> Vec<AdminText>,
    ) -> Result<Option<i64>, StoreError> {
        self.transact(|tx| {
            let meter = system_meter(subject);
            let active: Option<i64> = tx.query_opt(
                "SELECT id FROM alerts WHERE meter_id = ?1 AND kind = ?2 AND state IN ('open', 'acknowledged')",
                args![meter, kind],
                |row| row.get(0),
            )?;
            if let Some(id) = active {
                tx.execute(
                    "UPDATE alerts SET last_detected_at = ?2, detail = ?3 WHERE id = ?1",
                    args![id, now, detail],
                )?;
                return Ok(None);
            }
            let id = tx.insert(
                "INSERT INTO alerts (meter_id, household_id, kind, severity, state, since, opened_at, last_detected_at, detail, created_at)
                 VALUES (?1, NULL, ?2, 'urgent', 'open', ?3, ?3, ?3, ?4, ?3) RETURNING id",
                args![meter, kind, now, detail],
            )?;
            record_event(tx, id, now, "stillwater", "watch", "opened", detail)?;
            // Each administrator's reply code: the smallest free one on that phone.
            let code_for = |phone: &str| -> Result<u32, StoreError> {
                let used: Vec<u32> = tx.query_all(
                    "SELECT c.code FROM sms_codes c JOIN alerts a ON a.id = c.alert_id
                     WHERE c.phone = ?1 AND a.state IN ('open', 'acknowledged') ORDER BY c.code",
                    args![phone],
                    |row| row.get(0),
                )?;
                let code = (1..).find(|c| !used.contains(c)).expect("a free code");
                tx.execute(
                    "INSERT INTO sms_codes (phone, code, alert_id) VALUES (?1, ?2, ?3)
                     ON CONFLICT (phone, code) DO UPDATE SET alert_id = excluded.alert_id",
                    args![phone, code, id],
                )?;
                Ok(code)
            };
            for text in texts(id, &code_for) {
                enqueue(tx, id, &text, now)?;
            }
            Ok(Some(id))
        })
    }

    fn resolve_system_alert(&self, id: i64, detail: &str, now: i64) -> Result<(), StoreError> {
        self.transact(|tx| {
            let changed = tx.execute(
                "UPDATE alerts SET state = 'resolved', resolved_at = ?2, resolved_by = 'stillwater', resolved_via = 'watch'
                 WHERE id = ?1 AND state IN ('open', 'acknowledged')",
                args![id, now],
            )?;
            if changed == 1 {
                record_event(tx, id, now, "stillwater", "watch", "resolved", detail)?;
                tx.execute(
                    "UPDATE notifications SET state = 'cancelled' WHERE alert_id = ?1 AND state = 'pending'",
                    args![id],
                )?;
            }
            Ok(())
        })
    }

    fn queue_heartbeat(
        &self,
        day: &str,
        detail: &str,
        texts: &[AdminText],
        now: i64,
    ) -> Result<bool, StoreError> {
        self.transact(|tx| {
            let meter = format!("system/heartbeat-{day}");
            let done: bool = tx.query_value(
                "SELECT EXISTS (SELECT 1 FROM alerts WHERE meter_id = ?1 AND kind = 'heartbeat')",
                args![meter],
            )?;
            if done {
                return Ok(false);
            }
            let id = tx.insert(
                "INSERT INTO alerts (meter_id, household_id, kind, severity, state, since, opened_at, last_detected_at, detail, created_at,
                                     resolved_at, resolved_by, resolved_via)
                 VALUES (?1, NULL, 'heartbeat', 'info', 'resolved', ?2, ?2, ?2, ?3, ?2, ?2, 'stillwater', 'watch')
                 RETURNING id",
                args![meter, now, detail],
            )?;
            record_event(tx, id, now, "stillwater", "watch", "heartbeat", detail)?;
            for text in texts {
                enqueue(tx, id, text, now)?;
            }
            Ok(true)
        })
    }

    fn record_past_system_alert(
        &self,
        kind: &str,
        detail: &str,
        since: i64,
        until: i64,
    ) -> Result<i64, StoreError> {
        self.transact(|tx| {
            let id = tx.insert(
                "INSERT INTO alerts (meter_id, household_id, kind, severity, state, since, opened_at, last_detected_at, detail, created_at,
                                     resolved_at, resolved_by, resolved_via)
                 VALUES ('system', NULL, ?1, 'urgent', 'resolved', ?2, ?2, ?3, ?4, ?3, ?3, 'stillwater', 'watch')
                 RETURNING id",
                args![kind, since, until, detail],
            )?;
            record_event(tx, id, since, "stillwater", "watch", "opened", detail)?;
            record_event(
                tx,
                id,
                until,
                "stillwater",
                "watch",
                "resolved",
                "the condition has cleared",
            )?;
            Ok(id)
        })
    }

    fn mark_writable(&self, now: i64) -> Result<(), StoreError> {
        self.transact(|tx| {
            tx.execute(
                "INSERT INTO watch (name, at) VALUES ('writable', ?1) ON CONFLICT (name) DO UPDATE SET at = excluded.at",
                args![now],
            )
        })?;
        Ok(())
    }
}

fn enqueue(tx: &dyn Db, alert_id: i64, text: &AdminText, now: i64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO notifications (alert_id, phone, recipient, step, purpose, text, idempotency_key, state, due_at, created_at,
                                    template, template_values, provider)
         VALUES (?1, ?2, 'administrator', 1, 'alert', ?3, ?4, 'pending', ?5, ?5, ?6, ?7, ?8)
         ON CONFLICT (idempotency_key) DO NOTHING",
        args![
            alert_id,
            text.phone,
            text.text,
            text.idempotency_key,
            now,
            text.template,
            text.values,
            text.provider
        ],
    )?;
    Ok(())
}
