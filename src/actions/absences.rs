//! Declared absences (a hospital stay, a visit to family): while one covers a
//! household, its welfare alerts stay silent.

use super::{require, stamp, ActionError};
use crate::domain::{Actor, MAX_ABSENCE_DAYS};
use crate::store::Store;

/// Declares one absence per household of `meters`; returns how many.
pub fn declare(
    store: &Store,
    actor: &Actor,
    meters: &[String],
    reason: &str,
    starts_at: i64,
    ends_at: i64,
    now: i64,
) -> Result<usize, ActionError> {
    require(actor, "absences.declare")?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ActionError::Invalid(
            "an absence needs a reason (hospital, visiting family, …)".into(),
        ));
    }
    if ends_at <= starts_at {
        return Err(ActionError::Invalid(
            "an absence must end after it starts".into(),
        ));
    }
    if ends_at - starts_at > MAX_ABSENCE_DAYS * 86_400 {
        return Err(ActionError::Invalid(format!(
            "an absence lasts at most {MAX_ABSENCE_DAYS} days; declare a new one when it ends"
        )));
    }
    if meters.is_empty() {
        return Err(ActionError::Invalid("no household chosen".into()));
    }
    store.write(|tx| {
        for meter in meters {
            let (household, _) = tx
                .active_registration(meter)?
                .ok_or_else(|| ActionError::NotRegistered(meter.clone()))?;
            let id = tx.insert_absence(household, reason, starts_at, ends_at, stamp(actor, now))?;
            tx.audit(
                stamp(actor, now),
                "absence.declare",
                meter,
                &format!("(none) → #{id} {reason} {starts_at}..{ends_at}"),
            )?;
        }
        Ok(meters.len())
    })
}

/// Ends a current absence early.
pub fn end(store: &Store, actor: &Actor, id: i64, now: i64) -> Result<(), ActionError> {
    require(actor, "absences.end")?;
    store.write(|tx| {
        if !tx.end_absence(id, now)? {
            return Err(ActionError::NoSuchAbsence(id));
        }
        tx.audit(
            stamp(actor, now),
            "absence.end",
            &id.to_string(),
            &format!("current → ended at {now}"),
        )?;
        Ok(())
    })
}
