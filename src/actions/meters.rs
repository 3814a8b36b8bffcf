//! Registering households and their meters, swapping and removing meters, and
//! the resident's check-in phone.

use super::households::shown;
use super::{require, stamp, ActionError};
use crate::config::RegistryDefaults;
use crate::domain::{mask_phone, Actor, PhoneNumber};
use crate::registry::{self, NewHousehold, RowError};
use crate::store::prelude::*;
use crate::store::tx::Tx;
use crate::store::Store;

/// Why an import did not happen.
#[derive(Debug)]
pub enum ImportError {
    /// Every problem of every row; nothing was imported.
    Rows(Vec<RowError>),
    Action(ActionError),
}

impl From<ActionError> for ImportError {
    fn from(error: ActionError) -> Self {
        ImportError::Action(error)
    }
}

/// Registers households, all or none. A meter that is already registered
/// refuses the whole batch.
pub fn register(
    store: &Store,
    actor: &Actor,
    households: &[NewHousehold],
    now: i64,
) -> Result<(), ActionError> {
    require(actor, "meters.register")?;
    store.write(|tx| {
        for household in households {
            if let Some((_, resident)) = tx.active_registration(household.meter.as_str())? {
                return Err(ActionError::AlreadyRegistered {
                    row: household.row,
                    meter: household.meter.to_string(),
                    resident,
                });
            }
            let id = tx.insert_household(household, now)?;
            tx.attach_meter(household.meter.as_str(), id, now)?;
            tx.set_device_ids(
                household.meter.as_str(),
                household.imei.as_deref(),
                household.platform_device_id.as_deref(),
            )?;
            tx.audit(
                stamp(actor, now),
                "meter.register",
                household.meter.as_str(),
                &format!("(none) → household {id}"),
            )?;
        }
        Ok(())
    })
}

/// Imports an installation CSV as it came from disk: every problem of every
/// row (including meters already registered) is reported at once, and nothing
/// is imported unless there is none. Returns how many households.
pub fn import(
    store: &Store,
    actor: &Actor,
    bytes: &[u8],
    defaults: &RegistryDefaults,
    now: i64,
) -> Result<usize, ImportError> {
    require(actor, "meters.register")?;
    let registered = store
        .registered_residents()
        .map_err(|e| ImportError::Action(e.into()))?;
    let households = registry::import_csv(bytes, defaults, |meter| {
        registered.get(meter.as_str()).cloned()
    })
    .map_err(ImportError::Rows)?;
    register(store, actor, &households, now)?;
    Ok(households.len())
}

/// Moves a household from meter `old` to its replacement `new`. The old
/// meter's active alerts are resolved: they were about a device that is gone.
pub fn replace(
    store: &Store,
    actor: &Actor,
    old: &str,
    new: &str,
    now: i64,
) -> Result<(), ActionError> {
    require(actor, "meters.replace")?;
    store.write(|tx| {
        let (household, _) = tx
            .active_registration(old)?
            .ok_or_else(|| ActionError::NotRegistered(old.to_string()))?;
        if let Some((_, resident)) = tx.active_registration(new)? {
            return Err(ActionError::AlreadyRegistered {
                row: 0,
                meter: new.to_string(),
                resident,
            });
        }
        tx.end_meter(old, Some(new), now)?;
        tx.attach_meter(new, household, now)?;
        resolve_alerts_of(tx, actor, old, &format!("meter replaced by {new}"), now)?;
        tx.audit(
            stamp(actor, now),
            "meter.replace",
            old,
            &format!("active → replaced by {new}"),
        )?;
        Ok(())
    })
}

/// Ends a meter's registration (its readings are kept); its active alerts are resolved.
pub fn remove(store: &Store, actor: &Actor, meter: &str, now: i64) -> Result<(), ActionError> {
    require(actor, "meters.remove")?;
    store.write(|tx| {
        tx.active_registration(meter)?
            .ok_or_else(|| ActionError::NotRegistered(meter.to_string()))?;
        tx.end_meter(meter, None, now)?;
        resolve_alerts_of(tx, actor, meter, "meter removed", now)?;
        tx.audit(stamp(actor, now), "meter.remove", meter, "active → removed")?;
        Ok(())
    })
}

/// Gives `meter` its own MQTT login (username: the meter id) and returns the
/// password, the only time it is shown; a new one replaces the old. With
/// `[mqtt] meter_logins` on, a client logged in with it may publish only this
/// meter's readings.
pub fn new_login(
    store: &Store,
    actor: &Actor,
    meter: &str,
    now: i64,
) -> Result<String, ActionError> {
    require(actor, "meters.login")?;
    let password = random_password()?;
    let hash = crate::domain::login_hash(meter, &password);
    store.write(|tx| {
        tx.active_registration(meter)?
            .ok_or_else(|| ActionError::NotRegistered(meter.to_string()))?;
        tx.set_meter_login(meter, Some(&hash), now)?;
        tx.audit(stamp(actor, now), "meter.login", meter, "new password")?;
        Ok::<_, ActionError>(())
    })?;
    Ok(password)
}

/// Takes `meter`'s own MQTT login away (its clients can no longer log in).
pub fn remove_login(
    store: &Store,
    actor: &Actor,
    meter: &str,
    now: i64,
) -> Result<(), ActionError> {
    require(actor, "meters.login")?;
    store.write(|tx| {
        tx.set_meter_login(meter, None, now)?;
        tx.audit(stamp(actor, now), "meter.login", meter, "removed")?;
        Ok(())
    })
}

/// 26 characters from an alphabet without look-alikes: 130 random bits.
fn random_password() -> Result<String, ActionError> {
    use ring::rand::SecureRandom;
    const ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz23456789A";
    let mut bytes = [0u8; 26];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| {
            ActionError::Invalid("the system has no randomness to make a password".into())
        })?;
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
        .collect())
}

/// Asks the resident first (`Some`) or stops asking (`None`).
pub fn set_check_in_phone(
    store: &Store,
    actor: &Actor,
    meter: &str,
    phone: Option<&PhoneNumber>,
    now: i64,
) -> Result<(), ActionError> {
    require(actor, "meters.check_in")?;
    store.write(|tx| {
        let household = tx
            .household(meter)?
            .ok_or_else(|| ActionError::NotRegistered(meter.to_string()))?;
        tx.set_check_in_phone(household.id, phone.map(PhoneNumber::as_str))?;
        let detail = format!(
            "check_in_phone: {} → {}",
            shown(
                household.check_in_phone.as_deref().unwrap_or(""),
                mask_phone
            ),
            shown(phone.map_or("", PhoneNumber::as_str), mask_phone)
        );
        tx.audit(stamp(actor, now), "household.check_in", meter, &detail)?;
        Ok(())
    })
}

fn resolve_alerts_of(
    tx: &mut dyn Tx,
    actor: &Actor,
    meter: &str,
    why: &str,
    now: i64,
) -> Result<(), ActionError> {
    for alert in tx.active_alerts(meter)? {
        super::alerts::resolve_in(tx, actor, alert.id, why, now)?;
    }
    Ok(())
}
