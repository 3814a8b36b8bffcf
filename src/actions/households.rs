//! Editing a registered household: the resident's details, the contacts in
//! escalation order, the check-in phone. An edit is checked exactly as an
//! installation CSV row is (every problem at once, by field), and the audit
//! log records each changed field as old → new, personal data masked.

use super::{require, stamp, ActionError};
use crate::config::RegistryDefaults;
use crate::domain::{mask_address, mask_name, mask_phone, Actor, NewHousehold};
use crate::registry::{HouseholdFields, RowError};
use crate::store::tx::HouseholdRecord;
use crate::store::Store;

/// The fields an edit changes; `None` keeps what is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HouseholdEdit {
    pub resident_name: Option<String>,
    pub address: Option<String>,
    pub category: Option<String>,
    pub timezone: Option<String>,
    pub reporting_interval_min: Option<String>,
    pub notes: Option<String>,
    /// `Some("")` stops asking the resident first.
    pub check_in_phone: Option<String>,
    /// The whole list, in escalation order (step 1 first).
    pub contacts: Option<Vec<(String, String)>>,
}

/// Why an edit did not happen.
#[derive(Debug)]
pub enum EditError {
    /// Every problem with the edited fields; nothing was changed.
    Fields(Vec<RowError>),
    Action(ActionError),
}

impl From<crate::store::StoreError> for EditError {
    fn from(error: crate::store::StoreError) -> Self {
        EditError::Action(error.into())
    }
}

impl From<ActionError> for EditError {
    fn from(error: ActionError) -> Self {
        EditError::Action(error)
    }
}

/// Applies `edit` to the household `meter` is registered to; returns how
/// many fields changed.
pub fn update(
    store: &Store,
    actor: &Actor,
    meter: &str,
    edit: &HouseholdEdit,
    defaults: &RegistryDefaults,
    now: i64,
) -> Result<usize, EditError> {
    require(actor, "households.update")?;
    store.write(|tx| {
        let before = tx
            .household(meter)?
            .ok_or_else(|| ActionError::NotRegistered(meter.to_string()))?;
        let fields = merged(meter, &before, edit);
        let household = fields.validate(0, defaults).map_err(EditError::Fields)?;
        let changes = changes(&before, &household);
        if changes.is_empty() {
            return Ok(0);
        }
        tx.update_household(before.id, &household)?;
        for (field, old, new) in &changes {
            tx.audit(
                stamp(actor, now),
                "household.update",
                meter,
                &format!("{field}: {old} → {new}"),
            )?;
        }
        Ok(changes.len())
    })
}

/// The stored household with the edit laid over it, as text to validate.
fn merged(meter: &str, before: &HouseholdRecord, edit: &HouseholdEdit) -> HouseholdFields {
    let pick = |edited: &Option<String>, stored: &str| {
        edited.clone().unwrap_or_else(|| stored.to_string())
    };
    HouseholdFields {
        meter_id: meter.to_string(),
        resident_name: pick(&edit.resident_name, &before.resident_name),
        address: pick(&edit.address, &before.address),
        category: pick(&edit.category, &before.category),
        timezone: pick(&edit.timezone, &before.timezone),
        reporting_interval_min: pick(
            &edit.reporting_interval_min,
            &before.reporting_interval_min.to_string(),
        ),
        contacts: edit
            .contacts
            .clone()
            .unwrap_or_else(|| before.contacts.clone()),
        notes: pick(&edit.notes, &before.notes),
        check_in_phone: pick(
            &edit.check_in_phone,
            before.check_in_phone.as_deref().unwrap_or(""),
        ),
        imei: String::new(),
        platform_device_id: String::new(),
    }
}

/// Each changed field as (name, old, new), personal data masked.
fn changes(before: &HouseholdRecord, after: &NewHousehold) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut field = |name: &str, old: &str, new: &str, mask: fn(&str) -> String| {
        if old != new {
            out.push((name.to_string(), shown(old, mask), shown(new, mask)));
        }
    };
    field(
        "resident_name",
        &before.resident_name,
        &after.resident_name,
        mask_name,
    );
    field("address", &before.address, &after.address, mask_address);
    field("category", &before.category, &after.category, plain);
    field("timezone", &before.timezone, after.timezone.name(), plain);
    field(
        "reporting_interval_min",
        &before.reporting_interval_min.to_string(),
        &after.reporting_interval_min.to_string(),
        plain,
    );
    // Free text may name anyone: the log says only that it changed.
    field("notes", &before.notes, &after.notes, withheld);
    field(
        "check_in_phone",
        before.check_in_phone.as_deref().unwrap_or(""),
        after.check_in_phone.as_ref().map_or("", |p| p.as_str()),
        mask_phone,
    );
    let old: Vec<(&str, &str)> = before
        .contacts
        .iter()
        .map(|(name, phone)| (name.as_str(), phone.as_str()))
        .collect();
    let new: Vec<(&str, &str)> = after
        .contacts
        .iter()
        .map(|c| (c.name.as_str(), c.phone.as_str()))
        .collect();
    if old != new {
        let listed = |contacts: &[(&str, &str)]| {
            contacts
                .iter()
                .map(|(name, phone)| format!("{} {}", mask_name(name), mask_phone(phone)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(("contacts".into(), listed(&old), listed(&new)));
    }
    out
}

fn withheld(_: &str) -> String {
    "…".into()
}

fn plain(text: &str) -> String {
    text.to_string()
}

/// A value as the audit log shows it: masked, or `(none)`.
pub(super) fn shown(text: &str, mask: fn(&str) -> String) -> String {
    if text.is_empty() {
        "(none)".into()
    } else {
        mask(text)
    }
}
