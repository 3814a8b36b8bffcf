//! The outbox as the notifier and operators see it: texts due, delivery
//! attempts and their outcome.

use rusqlite::{params, TransactionBehavior};

use super::alerts::record_event;
use super::traits::*;
use super::{Store, StoreError};

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
    /// When it was queued (wall clock: the gateway's injected clock).
    pub queued_at: i64,
}

/// Selects the columns `notification_from_row` reads.
const NOTIFICATION_QUERY: &str =
    "SELECT n.id, n.alert_id, a.kind, n.phone, n.recipient, n.step, n.purpose, n.text, n.idempotency_key, n.state,
            n.attempts, n.last_error, n.template, n.template_values, n.created_at
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
        queued_at: row.get(14)?,
    })
}

impl OutboxStore for Store {
    fn notifications(&self, alert_id: Option<i64>) -> Result<Vec<Notification>, StoreError> {
        let connection = self.connect()?;
        let mut statement = connection.prepare(&format!(
            "{NOTIFICATION_QUERY} WHERE ?1 IS NULL OR n.alert_id = ?1 ORDER BY n.id"
        ))?;
        let rows = statement.query_map([alert_id], notification_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn due_notifications(&self, now: i64, limit: usize) -> Result<Vec<Notification>, StoreError> {
        let connection = self.connect()?;
        let mut statement = connection.prepare(&format!(
            "{NOTIFICATION_QUERY} WHERE n.state = 'pending' AND n.due_at <= ?1 ORDER BY n.due_at, n.id LIMIT ?2"
        ))?;
        let rows = statement.query_map(params![now, limit as i64], notification_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn next_due(&self) -> Result<Option<i64>, StoreError> {
        let connection = self.connect()?;
        Ok(connection.query_row(
            "SELECT min(due_at) FROM notifications WHERE state = 'pending'",
            [],
            |row| row.get(0),
        )?)
    }

    fn notification_queued_at(&self, id: i64) -> Result<i64, StoreError> {
        let connection = self.connect()?;
        Ok(connection.query_row(
            "SELECT created_at FROM notifications WHERE id = ?1",
            [id],
            |row| row.get(0),
        )?)
    }

    fn record_attempt(&self, id: i64, end: &AttemptEnd, now: i64) -> Result<(), StoreError> {
        let _turn = self.turn();
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

    fn notification_attempts(
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
}
