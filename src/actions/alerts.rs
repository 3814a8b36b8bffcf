//! Acknowledging, resolving and closing alerts: which states each moves
//! between, and what else happens (pending texts are cancelled once someone
//! has acted).

use super::{require, stamp, ActionError};
use crate::domain::{Actor, Disposition};
use crate::store::tx::Tx;
use crate::store::Store;

/// The states an alert may be acknowledged, resolved or closed from.
const ACKNOWLEDGE_FROM: [&str; 1] = ["open"];
const RESOLVE_FROM: [&str; 2] = ["open", "acknowledged"];
const CLOSE_FROM: [&str; 3] = ["open", "acknowledged", "resolved"];

/// Acknowledges an open alert: its escalation and reminders stop.
pub fn acknowledge(store: &Store, actor: &Actor, id: i64, now: i64) -> Result<(), ActionError> {
    require(actor, "alerts.acknowledge")?;
    store.write(|tx| {
        transition(tx, actor, id, &ACKNOWLEDGE_FROM, "acknowledged", now)?;
        tx.cancel_pending_texts(id)?;
        tx.record_event(id, stamp(actor, now), "acknowledged", "")?;
        Ok(())
    })
}

/// Resolves an open or acknowledged alert by hand. A `no_usage` alert's
/// quiet stretch is then covered as if the resident had answered (see
/// [`cover_quiet`]).
pub fn resolve(store: &Store, actor: &Actor, id: i64, now: i64) -> Result<(), ActionError> {
    require(actor, "alerts.resolve")?;
    store.write(|tx| {
        let alert = tx.alert(id)?.ok_or(ActionError::NoSuchAlert(id))?;
        resolve_in(tx, actor, id, "", now)?;
        cover_quiet(tx, &alert, now)
    })
}

/// Someone found out about a `no_usage` alert's resident and ended it while
/// the home may still be quiet: like a resident's answer, that covers the
/// quiet stretch at the alert's grade for a day (`lifecycle::COVER_S`), so
/// the next quiet hour does not open the same alert again; stronger evidence
/// still does, and so does quiet that goes on past the day.
fn cover_quiet(
    tx: &mut dyn Tx,
    alert: &crate::store::tx::AlertHead,
    now: i64,
) -> Result<(), ActionError> {
    if alert.kind == "no_usage" && RESOLVE_FROM.contains(&alert.state.as_str()) {
        tx.set_cover(&alert.meter_id, &alert.severity, now)?;
    }
    Ok(())
}

/// Closes an alert with what was found; one still active is resolved first.
pub fn close(
    store: &Store,
    actor: &Actor,
    id: i64,
    disposition: Disposition,
    note: &str,
    now: i64,
) -> Result<(), ActionError> {
    require(actor, "alerts.close")?;
    store.write(|tx| {
        let alert = tx.alert(id)?.ok_or(ActionError::NoSuchAlert(id))?;
        close_in(tx, actor, id, disposition, note, now)?;
        cover_quiet(tx, &alert, now)
    })
}

/// The resident answered a check-in: the alert closes as `safe`, and the
/// answer covers the quiet stretch at the alert's grade (no new prompt for
/// it unless the evidence grows).
pub fn safe(store: &Store, actor: &Actor, id: i64, now: i64) -> Result<(), ActionError> {
    require(actor, "alerts.safe")?;
    store.write(|tx| {
        let alert = tx.alert(id)?.ok_or(ActionError::NoSuchAlert(id))?;
        close_in(
            tx,
            actor,
            id,
            Disposition::Safe,
            "the resident replied to the check-in",
            now,
        )?;
        cover_quiet(tx, &alert, now)
    })
}

/// Resolves an active alert inside a caller's transaction (a meter removed or
/// replaced resolves its alerts this way too).
pub(super) fn resolve_in(
    tx: &mut dyn Tx,
    actor: &Actor,
    id: i64,
    why: &str,
    now: i64,
) -> Result<(), ActionError> {
    transition(tx, actor, id, &RESOLVE_FROM, "resolved", now)?;
    tx.cancel_pending_texts(id)?;
    tx.record_event(id, stamp(actor, now), "resolved", why)?;
    Ok(())
}

fn close_in(
    tx: &mut dyn Tx,
    actor: &Actor,
    id: i64,
    disposition: Disposition,
    note: &str,
    now: i64,
) -> Result<(), ActionError> {
    let alert = tx.alert(id)?.ok_or(ActionError::NoSuchAlert(id))?;
    if RESOLVE_FROM.contains(&alert.state.as_str()) {
        transition(tx, actor, id, &RESOLVE_FROM, "resolved", now)?;
        tx.cancel_pending_texts(id)?;
    }
    transition(tx, actor, id, &CLOSE_FROM, "closed", now)?;
    tx.set_disposition(id, disposition.as_str(), note)?;
    tx.record_event(
        id,
        stamp(actor, now),
        "closed",
        &format!("{}: {note}", disposition.as_str()),
    )?;
    Ok(())
}

/// Moves an alert from one of `from` to `to`, or says why not.
fn transition(
    tx: &mut dyn Tx,
    actor: &Actor,
    id: i64,
    from: &[&str],
    to: &str,
    now: i64,
) -> Result<(), ActionError> {
    let before = tx.alert(id)?;
    if tx.set_alert_state(id, from, to, stamp(actor, now))? {
        let (meter, was) = before
            .map(|alert| (alert.meter_id, alert.state))
            .unwrap_or_default();
        tx.audit(
            stamp(actor, now),
            &format!("alert.{to}"),
            &format!("alert {id} ({meter})"),
            &format!("{was} → {to}"),
        )?;
        return Ok(());
    }
    match tx.alert(id)? {
        None => Err(ActionError::NoSuchAlert(id)),
        Some(alert) => Err(ActionError::AlreadyDone {
            id,
            state: alert.state,
        }),
    }
}
