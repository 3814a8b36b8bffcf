//! The store's read side, one narrow trait per aggregate. [`Store`] (SQLite)
//! implements them all; a second backend implements the same traits (and
//! [`super::tx::Tx`] and the engine's transaction) and runs the same test suite.
//! The traits take and return plain data; none of them decides anything.

use std::collections::HashMap;

use super::absences::Absence;
use super::alerts::{AlertEvent, AlertRecord};
use super::outbox::{Attempt, AttemptRecord, Notification, Receipt};
use super::report::{AuditEntry, MonthFacts};
use super::rules::{RuleOverride, RuleScope};
use super::system::{ActiveSystemAlert, AdminText};
use super::tokens::TokenRecord;
use super::*;
use crate::domain::StoredReading;
use crate::pipeline::{BatchOutcome, Message};

/// Readings and what ingest knows per meter.
pub trait ReadingStore {
    /// Meters that published but have no active registration, most recent first.
    fn unregistered_meters(&self) -> Result<Vec<UnregisteredMeter>, StoreError>;

    /// The latest rejected messages, newest first.
    fn rejected_messages(&self, limit: usize) -> Result<Vec<RejectedMessage>, StoreError>;

    /// All stored readings of a meter in `[from, to)` (meter clock, Unix seconds), oldest first.
    fn readings(&self, meter: &str, from: i64, to: i64) -> Result<Vec<StoredReading>, StoreError>;

    /// The number of stored readings over all meters, as the meters' state
    /// counts them: readings committed to the gateway's reading log count
    /// once they are folded (within two seconds; after a crash, at start).
    fn reading_count(&self) -> Result<i64, StoreError>;

    /// The per-meter state, if the meter has ever published.
    fn meter_state(&self, meter: &str) -> Result<Option<MeterState>, StoreError>;
}

/// Households, meters and their registrations, as read.
pub trait RegistryStore {
    /// The household of `meter`'s active registration, as alerts see it.
    fn household(&self, meter: &str) -> Result<Option<super::engine::HouseholdInfo>, StoreError>;

    /// Every actively registered meter and its resident's name.
    fn registered_residents(&self) -> Result<HashMap<String, String>, StoreError>;

    /// Every registered meter with its household, by meter id.
    fn list_meters(&self) -> Result<Vec<MeterSummary>, StoreError>;

    /// Everything known about one meter, registered or not; `None` if never heard of.
    fn meter_details(&self, meter: &str, recent: usize)
        -> Result<Option<MeterDetails>, StoreError>;

    /// Active meters of a category (or all).
    fn active_meters(&self, category: Option<&str>) -> Result<Vec<String>, StoreError>;

    /// The categories of actively registered households, sorted.
    fn categories_in_use(&self) -> Result<Vec<String>, StoreError>;

    /// The actively registered meter a carrier platform's device is: by the
    /// platform's device id, else by the module's IMEI.
    fn meter_for_device(
        &self,
        platform_device_id: &str,
        imei: Option<&str>,
    ) -> Result<Option<String>, StoreError>;

    /// Remembers how a platform names `meter` (and, with `presence`, its
    /// last online/offline report).
    fn note_platform_device(
        &self,
        meter: &str,
        device: &PlatformDevice,
        now: i64,
    ) -> Result<(), StoreError>;

    /// How a platform names `meter`, if one has pushed for it.
    fn platform_device(&self, meter: &str) -> Result<Option<PlatformDevice>, StoreError>;
}

/// Alerts as operators see them, and what a reply needs.
pub trait AlertStore {
    /// Alerts, newest first; only active ones unless `all`.
    fn list_alerts(&self, all: bool, limit: usize) -> Result<Vec<AlertRecord>, StoreError>;

    /// Alerts as `filter` chooses them, newest first (open ones first).
    fn find_alerts(
        &self,
        filter: &super::alerts::AlertFilter,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError>;

    /// One alert, if it exists.
    fn alert(&self, id: i64) -> Result<Option<AlertRecord>, StoreError>;

    /// An alert's history, oldest first.
    fn alert_events(&self, id: i64) -> Result<Vec<AlertEvent>, StoreError>;

    /// The active alert a reply code stands for, for a phone: (alert id, state).
    fn alert_for_code(&self, phone: &str, code: i64) -> Result<Option<(i64, String)>, StoreError>;

    /// The name a phone number has among a household's contacts (or as its resident's check-in phone).
    fn contact_name(&self, phone: &str) -> Result<Option<String>, StoreError>;

    /// Is `phone` the check-in phone of the alert's household?
    fn is_check_in_phone(&self, alert_id: i64, phone: &str) -> Result<bool, StoreError>;
}

/// The outbox: texts due, and the outcome of each attempt.
pub trait OutboxStore {
    /// Texts of an alert (or all), oldest first.
    fn notifications(&self, alert_id: Option<i64>) -> Result<Vec<Notification>, StoreError>;

    /// Claims pending texts due by `now` (wall clock), oldest first, for
    /// `claim.holder` until `now + claim.lease_s`: no other gateway takes
    /// them meanwhile. Recording an attempt ends the claim.
    fn claim_due(
        &self,
        now: i64,
        limit: usize,
        claim: &super::outbox::Claim,
    ) -> Result<Vec<Notification>, StoreError>;

    /// Renews `claim` on text `id` just before it is sent: false when
    /// another gateway has taken it over meanwhile (it must not go out twice).
    fn renew_claim(
        &self,
        id: i64,
        claim: &super::outbox::Claim,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// When the next pending text is due (wall clock), if any.
    fn next_due(&self) -> Result<Option<i64>, StoreError>;

    /// Records one delivery attempt: sent, to retry at `retry_at_ms`, or failed for good.
    /// When a text was queued (wall clock).
    fn notification_queued_at(&self, id: i64) -> Result<i64, StoreError>;

    /// Records how an attempt ended. A text that failed for good also goes
    /// into its alert's history, so the timeline shows who was never reached.
    fn record_attempt(&self, id: i64, attempt: &Attempt, now: i64) -> Result<(), StoreError>;

    /// Every delivery attempt of a text, in order.
    fn notification_attempts(&self, id: i64) -> Result<Vec<AttemptRecord>, StoreError>;

    /// Texts from `template` sent to `phone` through `provider` since `since`
    /// (a provider's daily cap).
    fn texts_sent_since(
        &self,
        provider: &str,
        phone: &str,
        template: &str,
        since: i64,
    ) -> Result<u32, StoreError>;

    /// Records a delivery receipt on its text and in the alert's history;
    /// the alert's id, or `None` when no text matches.
    fn record_receipt(&self, receipt: &Receipt, now: i64) -> Result<Option<i64>, StoreError>;

    /// Texts sent through `provider` in [from, to), and how many of them have a receipt.
    fn awaiting_receipts(
        &self,
        provider: &str,
        from: i64,
        to: i64,
    ) -> Result<(u32, u32), StoreError>;
}

/// Declared absences.
pub trait AbsenceStore {
    /// Absences not yet over at `now` (or all), newest first.
    fn absences(&self, all: bool, now: i64) -> Result<Vec<Absence>, StoreError>;

    /// The periods a household's routine does not learn from.
    fn not_routine(&self, household_id: i64) -> Result<super::absences::NotRoutine, StoreError>;
}

/// Operators' threshold overrides.
pub trait RuleStore {
    /// The overrides that apply to a meter's household (category first), or to a category.
    fn rule_overrides(&self, scope: &RuleScope) -> Result<Vec<RuleOverride>, StoreError>;
}

/// The one writer of readings: stores a batch of messages in one
/// transaction, or nothing (see `store::writer`).
pub trait ReadingWriter: Send {
    fn write_batch(&mut self, batch: &[Message]) -> Result<BatchOutcome, StoreError>;
}

/// System alerts and the heartbeat (the gateway watching itself).
pub trait SystemStore {
    /// Open or acknowledged system alerts.
    fn active_system_alerts(&self) -> Result<Vec<ActiveSystemAlert>, StoreError>;

    /// Opens a system alert of `kind` about `subject` with the administrators'
    /// texts (`texts` gets the alert's id and a function that assigns a phone
    /// its reply code); when one is already active it is only updated. The new
    /// alert's id, or `None`.
    #[allow(clippy::type_complexity)]
    fn open_system_alert(
        &self,
        kind: &str,
        subject: &str,
        detail: &str,
        now: i64,
        texts: &dyn Fn(i64, &dyn Fn(&str) -> Result<u32, StoreError>) -> Vec<AdminText>,
    ) -> Result<Option<i64>, StoreError>;

    /// Resolves a system alert whose condition has cleared; its unsent texts are cancelled.
    fn resolve_system_alert(&self, id: i64, detail: &str, now: i64) -> Result<(), StoreError>;

    /// Queues `day`'s heartbeat texts once (false when they already were).
    fn queue_heartbeat(
        &self,
        day: &str,
        detail: &str,
        texts: &[AdminText],
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Records a system alert that held from `since` to `until` but could not
    /// be stored then (the database refused writes).
    fn record_past_system_alert(
        &self,
        kind: &str,
        detail: &str,
        since: i64,
        until: i64,
    ) -> Result<i64, StoreError>;

    /// A small write, proving the database takes writes.
    fn mark_writable(&self, now: i64) -> Result<(), StoreError>;
}

/// What reports are made of.
pub trait ReportStore {
    /// The rows of the month [from, to) (wall clock, Unix seconds).
    fn month_facts(&self, from: i64, to: i64) -> Result<MonthFacts, StoreError>;

    /// The audit log since `since`, newest first, at most `limit` lines.
    fn audit_log(&self, since: i64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
}

/// API tokens, by their hash.
pub trait TokenStore {
    fn add_token(&self, name: &str, role: &str, hash: &[u8], now: i64) -> Result<i64, StoreError>;

    /// Every token, revoked ones too, oldest first.
    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Revokes a token; false when there is no such active token.
    fn revoke_token(&self, id: i64, now: i64) -> Result<bool, StoreError>;

    /// The token whose SHA-256 is `hash`, revoked or not.
    fn token_by_hash(&self, hash: &[u8]) -> Result<Option<TokenRecord>, StoreError>;
}
