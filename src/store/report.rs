//! What a month's report is made of, read from the database: the registry
//! as it stood, the meters that reported, every alert and text of the month.
//! The report itself (`crate::report`) is computed from these rows. And the
//! audit log: every change people made, newest first.

use super::db::{args, Db};
use super::traits::*;
use super::{Store, StoreError};

/// One alert opened in the month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertFact {
    pub kind: String,
    pub severity: String,
    /// Whether it is about the gateway itself (`system`, `system/…`).
    pub system: bool,
    /// Wall clock.
    pub created_at: i64,
    pub acknowledged_at: Option<i64>,
    pub disposition: Option<String>,
}

/// One text queued in the month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextFact {
    pub purpose: String,
    pub state: String,
    pub provider: Option<String>,
    pub segments: Option<u32>,
    pub delivery: Option<String>,
}

/// One line of the audit log: who changed what, when, through which channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: i64,
    pub actor: String,
    pub role: String,
    pub channel: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

/// A month's rows, for `crate::report::monthly`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonthFacts {
    /// Households with a meter registered at some point of the month.
    pub households_covered: u64,
    /// Meters registered during the month.
    pub meters_installed: u64,
    /// Registered meters with at least one reading in the month.
    pub meters_reporting: u64,
    pub alerts: Vec<AlertFact>,
    pub texts: Vec<TextFact>,
}

impl ReportStore for Store {
    fn audit_log(&self, since: i64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let db = self.db()?;
        (&db as &dyn Db).query_all(
            "SELECT at, actor, role, channel, action, subject, detail FROM audit_log
             WHERE at >= ?1 ORDER BY id DESC LIMIT ?2",
            args![since, limit],
            |row| {
                Ok(AuditEntry {
                    at: row.get(0)?,
                    actor: row.get(1)?,
                    role: row.get(2)?,
                    channel: row.get(3)?,
                    action: row.get(4)?,
                    subject: row.get(5)?,
                    detail: row.get(6)?,
                })
            },
        )
    }

    fn month_facts(&self, from: i64, to: i64) -> Result<MonthFacts, StoreError> {
        self.snapshot(|db| {
            let count = |sql: &str| -> Result<u64, StoreError> {
                db.query_value(sql, args![from, to])
            };
            let households_covered = count(
                "SELECT count(DISTINCT household_id) FROM meters
                 WHERE registered_at < ?2 AND (ended_at IS NULL OR ended_at >= ?1)",
            )?;
            let meters_installed = count(
                "SELECT count(*) FROM meters WHERE registered_at >= ?1 AND registered_at < ?2",
            )?;
            // Readings are kept per UTC day: the days that overlap the month.
            let meters_reporting = count(
                "SELECT count(DISTINCT s.meter_id) FROM reading_chunks c
                 JOIN meter_state s ON s.meter_key = c.meter_key
                 JOIN meters m ON m.meter_id = s.meter_id
                 WHERE c.day >= ?1 / 86400 AND c.day <= (?2 - 1) / 86400",
            )?;
            let alerts = db.query_all(
                "SELECT kind, severity, meter_id, created_at, acknowledged_at, disposition FROM alerts
                 WHERE created_at >= ?1 AND created_at < ?2 AND kind != 'heartbeat' ORDER BY id",
                args![from, to],
                |row| {
                    let meter: String = row.get(2)?;
                    Ok(AlertFact {
                        kind: row.get(0)?,
                        severity: row.get(1)?,
                        system: super::system::is_system_meter(&meter),
                        created_at: row.get(3)?,
                        acknowledged_at: row.get(4)?,
                        disposition: row.get(5)?,
                    })
                },
            )?;
            let texts = db.query_all(
                "SELECT purpose, state, provider, segments, delivery FROM notifications
                 WHERE created_at >= ?1 AND created_at < ?2 ORDER BY id",
                args![from, to],
                |row| {
                    Ok(TextFact {
                        purpose: row.get(0)?,
                        state: row.get(1)?,
                        provider: row.get(2)?,
                        segments: row.get(3)?,
                        delivery: row.get(4)?,
                    })
                },
            )?;
            Ok(MonthFacts {
                households_covered,
                meters_installed,
                meters_reporting,
                alerts,
                texts,
            })
        })
    }
}
