//! Everything people do to the gateway's data — register, import, replace and
//! remove meters; check-in phones; absences; threshold overrides; acknowledge,
//! resolve and close alerts; replies to texts — as one set of actions.
//!
//! Each action takes an [`Actor`] (who, in what role, through which channel),
//! checks the role may do it, validates its input exactly as the configuration
//! file would, makes its changes in one transaction (`Store::write`) and
//! writes an audit record there too. The CLI only parses and prints; the HTTP
//! side only maps requests here; the demo uses the same functions.

pub mod absences;
pub mod alerts;
pub mod households;
pub mod meters;
pub mod readings;
pub mod replies;
pub mod rules;
pub mod tokens;

use thiserror::Error;

use crate::domain::{Actor, Role};
use crate::store::tx::Stamp;
use crate::store::StoreError;

/// Why an action did not happen.
#[derive(Debug, Error)]
pub enum ActionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{name} ({role}) may not {what}")]
    NotAllowed {
        name: String,
        role: Role,
        what: &'static str,
    },
    #[error("meter {0} is not registered")]
    NotRegistered(String),
    #[error("meter {meter} is already registered (household of {resident})")]
    AlreadyRegistered {
        row: usize,
        meter: String,
        resident: String,
    },
    #[error("alert {id} is already {state}")]
    AlreadyDone { id: i64, state: String },
    #[error("there is no alert {0}")]
    NoSuchAlert(i64),
    #[error("there is no current absence #{0}")]
    NoSuchAbsence(i64),
    #[error("{0}")]
    Invalid(String),
}

/// What each role may do, by the action's name.
fn may(role: Role, what: &str) -> bool {
    match role {
        Role::Admin | Role::System => true,
        Role::Operator => {
            !what.starts_with("meters.")
                && !what.starts_with("tokens.")
                && (!what.starts_with("households.") || what == "households.read")
                && what != "personal.read"
        }
        Role::Installer => {
            what.starts_with("meters.")
                || what.starts_with("households.")
                || what == "personal.read"
        }
        Role::Monitor => {
            what.starts_with("alerts.") || what == "households.read" || what == "personal.read"
        }
        Role::Resident => what == "alerts.safe",
    }
}

/// Whether `actor` may see residents' and contacts' names, addresses and
/// phones in full (monitoring teams call them, installers enter them);
/// others see them masked.
pub fn sees_personal_data(actor: &Actor) -> bool {
    may(actor.role, "personal.read")
}

/// Refuses an action the actor's role does not allow.
pub fn require(actor: &Actor, what: &'static str) -> Result<(), ActionError> {
    if may(actor.role, what) {
        Ok(())
    } else {
        Err(ActionError::NotAllowed {
            name: actor.name.clone(),
            role: actor.role,
            what,
        })
    }
}

fn stamp(actor: &Actor, now: i64) -> Stamp<'_> {
    Stamp { at: now, actor }
}

#[cfg(test)]
mod tests;
