//! One write transaction, as the actions layer uses it: primitive reads and
//! writes on households, meters, alerts, absences, rule overrides and the audit
//! log — and no rules. What an action means (who may do it, which states it
//! moves between, what else it changes) is decided in `crate::actions`, which
//! composes these primitives inside [`Store::write`], so everything an action
//! changes commits together or not at all.
//!
//! [`Tx`] is the seam; [`SqlTx`] implements it on either backend's transaction.

use super::db::{args, Db, Row};
use super::{Store, StoreError};
use crate::domain::Actor;
use crate::domain::{NewHousehold, PhoneNumber};

/// An alert as an action sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertHead {
    pub id: i64,
    pub meter_id: String,
    pub kind: String,
    pub severity: String,
    pub state: String,
}

/// A household as it is stored: what an edit starts from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HouseholdRecord {
    pub id: i64,
    pub resident_name: String,
    pub address: String,
    pub category: String,
    pub timezone: String,
    pub reporting_interval_min: i64,
    pub notes: String,
    pub check_in_phone: Option<String>,
    /// (name, phone E.164) in escalation order.
    pub contacts: Vec<(String, String)>,
}

/// When, by whom and through what an alert changed state.
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'a> {
    pub at: i64,
    pub actor: &'a Actor,
}

/// The primitives of one write transaction.
pub trait Tx {
    /// The household id and resident of `meter`'s active registration.
    fn active_registration(&mut self, meter: &str) -> Result<Option<(i64, String)>, StoreError>;
    /// Inserts a household and its contacts; returns its id.
    fn insert_household(&mut self, household: &NewHousehold, now: i64) -> Result<i64, StoreError>;
    /// Makes `meter` the household's active meter.
    fn attach_meter(&mut self, meter: &str, household_id: i64, now: i64) -> Result<(), StoreError>;

    /// How a carrier platform names the meter: its IMEI, its device id.
    fn set_device_ids(
        &mut self,
        meter: &str,
        imei: Option<&str>,
        platform_device_id: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Ends `meter`'s registration as `replaced` (by `replaced_by`) or `removed`.
    fn end_meter(
        &mut self,
        meter: &str,
        replaced_by: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;
    fn set_check_in_phone(
        &mut self,
        household_id: i64,
        phone: Option<&str>,
    ) -> Result<(), StoreError>;

    /// The household `meter` is actively registered to, with its contacts.
    fn household(&mut self, meter: &str) -> Result<Option<HouseholdRecord>, StoreError>;

    /// Rewrites household `id`'s details and contacts (its meters stay).
    fn update_household(&mut self, id: i64, household: &NewHousehold) -> Result<(), StoreError>;

    fn alert(&mut self, id: i64) -> Result<Option<AlertHead>, StoreError>;
    /// The meter's open and acknowledged alerts.
    fn active_alerts(&mut self, meter: &str) -> Result<Vec<AlertHead>, StoreError>;
    /// Moves an alert to `to` if it is in one of `from` (compare and set);
    /// returns whether it moved. Stamps the matching `<to>_at/_by/_via`.
    fn set_alert_state(
        &mut self,
        id: i64,
        from: &[&str],
        to: &str,
        stamp: Stamp<'_>,
    ) -> Result<bool, StoreError>;
    fn set_disposition(&mut self, id: i64, disposition: &str, note: &str)
        -> Result<(), StoreError>;
    /// Cancels the alert's pending alert texts, reminders and check-ins.
    fn cancel_pending_texts(&mut self, id: i64) -> Result<(), StoreError>;
    fn record_event(
        &mut self,
        id: i64,
        stamp: Stamp<'_>,
        action: &str,
        detail: &str,
    ) -> Result<(), StoreError>;
    /// Records that the meter's resident answered a check-in at `severity`.
    fn set_cover(&mut self, meter: &str, severity: &str, now: i64) -> Result<(), StoreError>;

    fn insert_absence(
        &mut self,
        household_id: i64,
        reason: &str,
        starts_at: i64,
        ends_at: i64,
        stamp: Stamp<'_>,
    ) -> Result<i64, StoreError>;
    /// Ends a current absence early; returns whether there was one to end.
    fn end_absence(&mut self, id: i64, now: i64) -> Result<bool, StoreError>;

    /// Sets (`Some`) or removes (`None`) one rule override; returns the
    /// override it replaced.
    fn set_rule(
        &mut self,
        scope: &str,
        target: &str,
        key: &str,
        value: Option<&str>,
        stamp: Stamp<'_>,
    ) -> Result<Option<String>, StoreError>;

    fn audit(
        &mut self,
        stamp: Stamp<'_>,
        action: &str,
        subject: &str,
        detail: &str,
    ) -> Result<(), StoreError>;

    /// Sets (`Some` hash) or removes `meter`'s own MQTT login.
    fn set_meter_login(
        &mut self,
        meter: &str,
        hash: Option<&[u8]>,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Counts `meter`'s readings up to `ts` (meter clock) as evaluated, unless
    /// detection has already gone further.
    fn mark_evaluated(&mut self, meter: &str, ts: i64) -> Result<(), StoreError>;
}

/// A write transaction of either backend, as [`Tx`].
pub struct SqlTx<'a>(&'a dyn Db);

impl Store {
    /// Runs `work` in one write transaction: committed when it returns `Ok`,
    /// rolled back when it returns an error.
    pub fn write<T, E: From<StoreError>>(
        &self,
        work: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        self.transact(|db| work(&mut SqlTx(db)))
    }
}

fn head(row: &Row) -> Result<AlertHead, StoreError> {
    Ok(AlertHead {
        id: row.get(0)?,
        meter_id: row.get(1)?,
        kind: row.get(2)?,
        severity: row.get(3)?,
        state: row.get(4)?,
    })
}

impl SqlTx<'_> {
    fn write_contacts(
        &mut self,
        household_id: i64,
        contacts: &[crate::domain::Contact],
    ) -> Result<(), StoreError> {
        for (position, contact) in contacts.iter().enumerate() {
            self.0.execute(
                "INSERT INTO contacts (household_id, position, name, phone, step) VALUES (?1, ?2, ?3, ?4, ?5)",
                args![household_id, position as i64 + 1, contact.name, contact.phone.as_str(), contact.step],
            )?;
        }
        Ok(())
    }
}

impl Tx for SqlTx<'_> {
    fn active_registration(&mut self, meter: &str) -> Result<Option<(i64, String)>, StoreError> {
        self.0.query_opt(
            "SELECT h.id, h.resident_name FROM meters m JOIN households h ON h.id = m.household_id
                 WHERE m.meter_id = ?1 AND m.status = 'active'",
            args![meter],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
    }

    fn insert_household(&mut self, household: &NewHousehold, now: i64) -> Result<i64, StoreError> {
        // The row, then its details as an edit writes them.
        let id = self.0.insert(
            "INSERT INTO households (resident_name, address, category, timezone, reporting_interval_min, notes, created_at)
             VALUES ('', '', '', '', 0, '', ?1) RETURNING id",
            args![now],
        )?;
        self.update_household(id, household)?;
        Ok(id)
    }

    fn set_device_ids(
        &mut self,
        meter: &str,
        imei: Option<&str>,
        platform_device_id: Option<&str>,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE meters SET imei = ?2, platform_device_id = ?3 WHERE meter_id = ?1",
            args![meter, imei, platform_device_id],
        )?;
        Ok(())
    }

    fn attach_meter(&mut self, meter: &str, household_id: i64, now: i64) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO meters (meter_id, household_id, status, registered_at, ended_at, replaced_by)
             VALUES (?1, ?2, 'active', ?3, NULL, NULL)
             ON CONFLICT (meter_id) DO UPDATE SET household_id = excluded.household_id,
               status = 'active', registered_at = excluded.registered_at, ended_at = NULL, replaced_by = NULL",
            args![meter, household_id, now],
        )?;
        Ok(())
    }

    fn end_meter(
        &mut self,
        meter: &str,
        replaced_by: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let status = if replaced_by.is_some() {
            "replaced"
        } else {
            "removed"
        };
        self.0.execute(
            "UPDATE meters SET status = ?2, ended_at = ?3, replaced_by = ?4 WHERE meter_id = ?1",
            args![meter, status, now, replaced_by],
        )?;
        Ok(())
    }

    fn set_check_in_phone(
        &mut self,
        household_id: i64,
        phone: Option<&str>,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE households SET check_in_phone = ?2 WHERE id = ?1",
            args![household_id, phone],
        )?;
        Ok(())
    }

    fn household(&mut self, meter: &str) -> Result<Option<HouseholdRecord>, StoreError> {
        let Some(info) = super::engine::household_of(self.0, meter)? else {
            return Ok(None);
        };
        let notes = self
            .0
            .query_value("SELECT notes FROM households WHERE id = ?1", args![info.id])?;
        Ok(Some(HouseholdRecord {
            id: info.id,
            resident_name: info.resident_name,
            address: info.address,
            category: info.category,
            timezone: info.timezone,
            reporting_interval_min: i64::from(info.reporting_interval_min),
            notes,
            check_in_phone: info.check_in_phone,
            contacts: info
                .contacts
                .into_iter()
                .map(|(_, name, phone)| (name, phone))
                .collect(),
        }))
    }

    fn update_household(&mut self, id: i64, household: &NewHousehold) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE households SET resident_name = ?2, address = ?3, category = ?4, timezone = ?5,
                    reporting_interval_min = ?6, notes = ?7, check_in_phone = ?8
             WHERE id = ?1",
            args![
                id,
                household.resident_name,
                household.address,
                household.category,
                household.timezone.name(),
                household.reporting_interval_min,
                household.notes,
                household.check_in_phone.as_ref().map(PhoneNumber::as_str)
            ],
        )?;
        self.0
            .execute("DELETE FROM contacts WHERE household_id = ?1", args![id])?;
        self.write_contacts(id, &household.contacts)
    }

    fn set_meter_login(
        &mut self,
        meter: &str,
        hash: Option<&[u8]>,
        now: i64,
    ) -> Result<(), StoreError> {
        match hash {
            Some(hash) => self.0.execute(
                "INSERT INTO meter_logins (meter_id, hash, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (meter_id) DO UPDATE SET hash = ?2, created_at = ?3",
                args![meter, hash, now],
            )?,
            None => self
                .0
                .execute("DELETE FROM meter_logins WHERE meter_id = ?1", args![meter])?,
        };
        Ok(())
    }

    fn alert(&mut self, id: i64) -> Result<Option<AlertHead>, StoreError> {
        self.0.query_opt(
            "SELECT id, meter_id, kind, severity, state FROM alerts WHERE id = ?1",
            args![id],
            head,
        )
    }

    fn active_alerts(&mut self, meter: &str) -> Result<Vec<AlertHead>, StoreError> {
        self.0.query_all(
            "SELECT id, meter_id, kind, severity, state FROM alerts
             WHERE meter_id = ?1 AND state IN ('open', 'acknowledged') ORDER BY id",
            args![meter],
            head,
        )
    }

    fn set_alert_state(
        &mut self,
        id: i64,
        from: &[&str],
        to: &str,
        stamp: Stamp<'_>,
    ) -> Result<bool, StoreError> {
        let Some(current) = self.alert(id)? else {
            return Ok(false);
        };
        if !from.contains(&current.state.as_str()) {
            return Ok(false);
        }
        let columns = match to {
            "acknowledged" => "acknowledged_at = ?3, acknowledged_by = ?4, acknowledged_via = ?5",
            "resolved" => "resolved_at = ?3, resolved_by = ?4, resolved_via = ?5",
            "closed" => "closed_at = ?3, closed_by = ?4, closed_via = ?5",
            other => {
                return Err(StoreError::NotFound(format!(
                    "{other:?} is not an alert state"
                )))
            }
        };
        let changed = self.0.execute(
            &format!("UPDATE alerts SET state = ?2, {columns} WHERE id = ?1 AND state = ?6"),
            args![
                id,
                to,
                stamp.at,
                stamp.actor.name,
                stamp.actor.channel.as_str(),
                current.state
            ],
        )?;
        Ok(changed == 1)
    }

    fn set_disposition(
        &mut self,
        id: i64,
        disposition: &str,
        note: &str,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE alerts SET disposition = ?2, note = ?3 WHERE id = ?1",
            args![id, disposition, note],
        )?;
        Ok(())
    }

    fn cancel_pending_texts(&mut self, id: i64) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE notifications SET state = 'cancelled'
             WHERE alert_id = ?1 AND state = 'pending' AND purpose IN ('alert', 'reminder', 'check_in')",
            args![id],
        )?;
        Ok(())
    }

    fn record_event(
        &mut self,
        id: i64,
        stamp: Stamp<'_>,
        action: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        super::alerts::record_event(
            self.0,
            id,
            stamp.at,
            &stamp.actor.name,
            stamp.actor.channel.as_str(),
            action,
            detail,
        )
    }

    fn set_cover(&mut self, meter: &str, severity: &str, now: i64) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO check_in_covers (meter_id, severity, answered_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (meter_id) DO UPDATE SET severity = excluded.severity, answered_at = excluded.answered_at",
            args![meter, severity, now],
        )?;
        Ok(())
    }

    fn insert_absence(
        &mut self,
        household_id: i64,
        reason: &str,
        starts_at: i64,
        ends_at: i64,
        stamp: Stamp<'_>,
    ) -> Result<i64, StoreError> {
        self.0.insert(
            "INSERT INTO absences (household_id, reason, starts_at, ends_at, declared_by, declared_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            args![household_id, reason, starts_at, ends_at, stamp.actor.name, stamp.at],
        )
    }

    fn end_absence(&mut self, id: i64, now: i64) -> Result<bool, StoreError> {
        let changed = self.0.execute(
            "UPDATE absences SET ended_at = ?2 WHERE id = ?1 AND ended_at IS NULL AND ends_at > ?2",
            args![id, now],
        )?;
        Ok(changed == 1)
    }

    fn set_rule(
        &mut self,
        scope: &str,
        target: &str,
        key: &str,
        value: Option<&str>,
        stamp: Stamp<'_>,
    ) -> Result<Option<String>, StoreError> {
        let before = self.0.query_opt(
            "SELECT value FROM rule_overrides WHERE scope = ?1 AND target = ?2 AND key = ?3",
            args![scope, target, key],
            |row| row.get(0),
        )?;
        match value {
            Some(value) => self.0.execute(
                "INSERT INTO rule_overrides (scope, target, key, value, set_by, set_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (scope, target, key) DO UPDATE SET value = excluded.value, set_by = excluded.set_by,
                   set_at = excluded.set_at",
                args![scope, target, key, value, stamp.actor.name, stamp.at],
            )?,
            None => self.0.execute(
                "DELETE FROM rule_overrides WHERE scope = ?1 AND target = ?2 AND key = ?3",
                args![scope, target, key],
            )?,
        };
        Ok(before)
    }

    fn audit(
        &mut self,
        stamp: Stamp<'_>,
        action: &str,
        subject: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO audit_log (at, actor, role, channel, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            args![
                stamp.at,
                stamp.actor.name,
                stamp.actor.role.as_str(),
                stamp.actor.channel.as_str(),
                action,
                subject,
                detail
            ],
        )?;
        Ok(())
    }

    fn mark_evaluated(&mut self, meter: &str, ts: i64) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE meter_state SET evaluated_through = ?2
             WHERE meter_id = ?1 AND (evaluated_through IS NULL OR evaluated_through < ?2)",
            args![meter, ts],
        )?;
        Ok(())
    }
}
