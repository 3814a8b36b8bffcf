//! The outbox as the notifier and operators see it: texts due, delivery
//! attempts and their outcome.

use super::alerts::record_event;
use super::db::{args, Db, Row};
use super::traits::*;
use super::{Store, StoreError};

/// The end of one delivery attempt, as the notifier decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptEnd {
    /// A provider took it.
    Sent {
        provider: String,
        /// The provider's id for the text, which its receipt names.
        reference: Option<String>,
        segments: u32,
    },
    /// Try again at this wall time; through `pin` only, when the provider
    /// may already have taken it.
    Retry {
        error: String,
        at: i64,
        pin: Option<String>,
    },
    /// Given up: the provider refused it, or it ran out of attempts.
    Failed { error: String },
}

/// One delivery attempt: the providers that could not take the text and
/// handed it on, then the last one tried and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// (provider, why it could not send) for each provider that handed on.
    pub failovers: Vec<(String, String)>,
    /// The provider tried last, when one was.
    pub provider: Option<String>,
    pub end: AttemptEnd,
}

impl Attempt {
    /// An attempt through one provider, without failover.
    pub fn through(provider: &str, end: AttemptEnd) -> Self {
        Self {
            failovers: Vec::new(),
            provider: Some(provider.to_string()),
            end,
        }
    }
}

/// Who takes texts to send, and for how long: another gateway may take a
/// text whose claim ran out (its sender died with it), never one claimed
/// and still in time. The same holder takes its own claims again (a
/// restarted gateway resumes at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The gateway's name (its MQTT client id).
    pub holder: String,
    /// How long the claim lasts, seconds.
    pub lease_s: i64,
}

/// One row of a text's delivery history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub at: i64,
    /// sent, retry, failed, failover, sent_after_cancel
    pub outcome: String,
    pub error: Option<String>,
    pub provider: Option<String>,
}

/// A delivery receipt as a provider posted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub provider: &'static str,
    /// The provider's id for the text (Aliyun BizId, Tencent sid, Twilio MessageSid).
    pub reference: Option<String>,
    /// Our idempotency key, when the provider echoes it (Aliyun `out_id`).
    pub key: Option<String>,
    pub delivered: bool,
    /// The provider's words: a status or error code and its text.
    pub detail: String,
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
    /// The provider that took it, or the only one it may go through.
    pub provider: Option<String>,
    pub provider_ref: Option<String>,
    /// `delivered` or `undelivered` once a receipt came.
    pub delivery: Option<String>,
}

/// Selects the columns `notification_from_row` reads.
const NOTIFICATION_QUERY: &str =
    "SELECT n.id, n.alert_id, a.kind, n.phone, n.recipient, n.step, n.purpose, n.text, n.idempotency_key, n.state,
            n.attempts, n.last_error, n.template, n.template_values, n.created_at,
            n.provider, n.provider_ref, n.delivery
     FROM notifications n JOIN alerts a ON a.id = n.alert_id";

fn notification_from_row(row: &Row) -> Result<Notification, StoreError> {
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
        provider: row.get(15)?,
        provider_ref: row.get(16)?,
        delivery: row.get(17)?,
    })
}

impl OutboxStore for Store {
    fn notifications(&self, alert_id: Option<i64>) -> Result<Vec<Notification>, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_all(
            &format!(
                "{NOTIFICATION_QUERY} WHERE CAST(?1 AS BIGINT) IS NULL OR n.alert_id = ?1 ORDER BY n.id"
            ),
            args![alert_id],
            notification_from_row,
        )
    }

    fn claim_due(
        &self,
        now: i64,
        limit: usize,
        claim: &Claim,
    ) -> Result<Vec<Notification>, StoreError> {
        let db = self.db()?;
        let db: &dyn Db = &db;
        // One statement, committed at once: another gateway's claim skips
        // these rows (PostgreSQL skips rows being claimed as it looks).
        let claimed: Vec<i64> = db.query_all(
            &format!(
                "UPDATE notifications SET claimed_by = ?3, claimed_until = ?1 + ?4
                 WHERE id IN (SELECT id FROM notifications
                              WHERE state = 'pending' AND due_at <= ?1
                                AND (claimed_until IS NULL OR claimed_until <= ?1 OR claimed_by = ?3)
                              ORDER BY due_at, id LIMIT ?2{})
                 RETURNING id",
                db.pick("", " FOR UPDATE SKIP LOCKED")
            ),
            args![now, limit, claim.holder, claim.lease_s],
            |row| row.get(0),
        )?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let list = claimed
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        db.query_all(
            &format!("{NOTIFICATION_QUERY} WHERE n.id IN ({list}) ORDER BY n.due_at, n.id"),
            args![],
            notification_from_row,
        )
    }

    fn renew_claim(&self, id: i64, claim: &Claim, now: i64) -> Result<bool, StoreError> {
        let db = self.db()?;
        let renewed: Option<i64> = (&db as &dyn Db).query_opt(
            "UPDATE notifications SET claimed_until = CAST(?3 AS BIGINT) + ?4
             WHERE id = ?1 AND claimed_by = ?2 AND state = 'pending'
             RETURNING id",
            args![id, claim.holder, now, claim.lease_s],
            |row| row.get(0),
        )?;
        Ok(renewed.is_some())
    }

    fn next_due(&self) -> Result<Option<i64>, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_value(
            "SELECT min(due_at) FROM notifications WHERE state = 'pending'",
            args![],
        )
    }

    fn notification_queued_at(&self, id: i64) -> Result<i64, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_value(
            "SELECT created_at FROM notifications WHERE id = ?1",
            args![id],
        )
    }

    fn record_attempt(&self, id: i64, attempt: &Attempt, now: i64) -> Result<(), StoreError> {
        self.transact(|tx| {
            for (provider, error) in &attempt.failovers {
                tx.execute(
                    "INSERT INTO notification_attempts (notification_id, at, outcome, error, provider) VALUES (?1, ?2, 'failover', ?3, ?4)",
                    args![id, now, error, provider],
                )?;
            }
            let end = &attempt.end;
            let (label, error) = match end {
                AttemptEnd::Sent { .. } => ("sent", None),
                AttemptEnd::Retry { error, .. } => ("retry", Some(error.as_str())),
                AttemptEnd::Failed { error } => ("failed", Some(error.as_str())),
            };
            let changed = match end {
                AttemptEnd::Sent { provider, reference, segments } => tx.execute(
                    "UPDATE notifications SET state = 'sent', attempts = attempts + 1, sent_at = ?2,
                            provider = ?3, provider_ref = ?4, segments = ?5, claimed_until = NULL
                     WHERE id = ?1 AND state = 'pending'",
                    args![id, now, provider, reference, segments],
                )?,
                AttemptEnd::Retry { error, at, pin } => tx.execute(
                    "UPDATE notifications SET attempts = attempts + 1, last_error = ?2, due_at = ?3,
                            provider = coalesce(?4, provider), claimed_until = NULL
                     WHERE id = ?1 AND state = 'pending'",
                    args![id, error, at, pin],
                )?,
                AttemptEnd::Failed { error } => tx.execute(
                    "UPDATE notifications SET state = 'failed', attempts = attempts + 1, last_error = ?2, claimed_until = NULL WHERE id = ?1 AND state = 'pending'",
                    args![id, error],
                )?,
            };
            let outcome = if changed == 0 { "sent_after_cancel" } else { label };
            tx.execute(
                "INSERT INTO notification_attempts (notification_id, at, outcome, error, provider) VALUES (?1, ?2, ?3, ?4, ?5)",
                args![id, now, outcome, error, attempt.provider],
            )?;
            if let (AttemptEnd::Failed { error }, 1) = (end, changed) {
                let (alert_id, phone, attempts): (i64, String, u32) = tx
                    .query_opt(
                        "SELECT alert_id, phone, attempts FROM notifications WHERE id = ?1",
                        args![id],
                        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                    )?
                    .ok_or_else(|| StoreError::NotFound(format!("no text {id}")))?;
                record_event(
                    tx,
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
            Ok(())
        })
    }

    fn notification_attempts(&self, id: i64) -> Result<Vec<AttemptRecord>, StoreError> {
        let db = self.db()?;
        let db: &dyn Db = &db;
        db.query_all(
            db.pick(
                "SELECT at, outcome, error, provider FROM notification_attempts WHERE notification_id = ?1 ORDER BY rowid",
                "SELECT at, outcome, error, provider FROM notification_attempts WHERE notification_id = ?1 ORDER BY id",
            ),
            args![id],
            |row| {
                Ok(AttemptRecord {
                    at: row.get(0)?,
                    outcome: row.get(1)?,
                    error: row.get(2)?,
                    provider: row.get(3)?,
                })
            },
        )
    }

    fn texts_sent_since(
        &self,
        provider: &str,
        phone: &str,
        template: &str,
        since: i64,
    ) -> Result<u32, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_value(
            "SELECT count(*) FROM notifications
             WHERE phone = ?1 AND state = 'sent' AND sent_at >= ?2 AND provider = ?3 AND template = ?4",
            args![phone, since, provider, template],
        )
    }

    fn record_receipt(&self, receipt: &Receipt, now: i64) -> Result<Option<i64>, StoreError> {
        self.transact(|tx| {
            // By the provider's id, then by our key: each look-up has its index.
            let row = |row: &Row| -> Result<(i64, i64, String, Option<String>), StoreError> {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            };
            let by_reference = tx.query_opt(
                "SELECT id, alert_id, phone, delivery FROM notifications
                 WHERE provider = ?1 AND provider_ref = ?2 ORDER BY id LIMIT 1",
                args![receipt.provider, receipt.reference],
                row,
            )?;
            let found = match by_reference {
                Some(found) => Some(found),
                None => tx.query_opt(
                    "SELECT id, alert_id, phone, delivery FROM notifications WHERE idempotency_key = ?1",
                    args![receipt.key],
                    row,
                )?,
            };
            let Some((id, alert_id, phone, before)) = found else {
                return Ok(None);
            };
            let delivery = if receipt.delivered {
                "delivered"
            } else {
                "undelivered"
            };
            // A provider may post a receipt twice; the history says it once.
            if before.as_deref() != Some(delivery) {
                tx.execute(
                    "UPDATE notifications SET delivery = ?2, delivered_at = ?3 WHERE id = ?1",
                    args![id, delivery, now],
                )?;
                let who = crate::domain::mask_phone(&phone);
                record_event(
                    tx,
                    alert_id,
                    now,
                    receipt.provider,
                    "sms",
                    if receipt.delivered {
                        "text_delivered"
                    } else {
                        "text_undelivered"
                    },
                    &if receipt.delivered {
                        format!(
                            "{} reports the text to {who} delivered ({})",
                            receipt.provider, receipt.detail
                        )
                    } else {
                        format!(
                            "{} reports the text to {who} NOT delivered: {}",
                            receipt.provider, receipt.detail
                        )
                    },
                )?;
            }
            Ok(Some(alert_id))
        })
    }

    fn awaiting_receipts(
        &self,
        provider: &str,
        from: i64,
        to: i64,
    ) -> Result<(u32, u32), StoreError> {
        let db = self.db()?;
        (&db as &dyn Db)
            .query_opt(
                "SELECT count(*), count(delivery) FROM notifications
                 WHERE provider = ?1 AND state = 'sent' AND sent_at >= ?2 AND sent_at < ?3",
                args![provider, from, to],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map(Option::unwrap_or_default)
    }
}
