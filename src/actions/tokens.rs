//! API tokens: created (the secret shown once, only its SHA-256 kept),
//! listed, revoked — by administrators, each change in the audit log — and
//! the token presented to the API turned back into who is acting.

use super::{require, stamp, ActionError};
use crate::domain::{Actor, Channel, Role};
use crate::store::prelude::*;
use crate::store::Store;

/// What a presented token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    Valid(Actor),
    Revoked,
    Unknown,
}

fn digest(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

/// The roles a token may have: people's roles, not the gateway's own.
pub fn parse_role(text: &str) -> Result<Role, ActionError> {
    match Role::parse(text) {
        Some(role @ (Role::Admin | Role::Operator | Role::Installer | Role::Monitor)) => Ok(role),
        _ => Err(ActionError::Invalid(format!(
            "role {text:?}: must be admin, operator, installer or monitor"
        ))),
    }
}

/// Creates a token for `name` in `role`: its id and the secret, which is
/// never stored and cannot be shown again.
pub fn add(
    store: &Store,
    actor: &Actor,
    name: &str,
    role: Role,
    now: i64,
) -> Result<(i64, String), ActionError> {
    require(actor, "tokens.add")?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ActionError::Invalid(
            "a token's name must be 1 to 64 characters (who holds it)".into(),
        ));
    }
    let random = crate::domain::random_hex(24)
        .ok_or_else(|| ActionError::Invalid("the system's random source failed".into()))?;
    let secret = format!("sw_{random}");
    let id = store.add_token(name, role.as_str(), &digest(&secret), now)?;
    store.write(|tx| {
        tx.audit(
            stamp(actor, now),
            "token.add",
            &id.to_string(),
            &format!("(none) → {name} ({role}), active"),
        )?;
        Ok::<_, ActionError>(())
    })?;
    Ok((id, secret))
}

/// Revokes token `id`.
pub fn revoke(store: &Store, actor: &Actor, id: i64, now: i64) -> Result<(), ActionError> {
    require(actor, "tokens.revoke")?;
    if !store.revoke_token(id, now)? {
        return Err(ActionError::Invalid(format!(
            "there is no active token {id}"
        )));
    }
    store.write(|tx| {
        tx.audit(
            stamp(actor, now),
            "token.revoke",
            &id.to_string(),
            "active → revoked",
        )?;
        Ok::<_, ActionError>(())
    })
}

/// Who a presented token is: its holder in its role, acting through the API.
pub fn presented(store: &Store, token: &str) -> Result<Presented, ActionError> {
    Ok(match store.token_by_hash(&digest(token))? {
        None => Presented::Unknown,
        Some(record) if record.revoked_at.is_some() => Presented::Revoked,
        Some(record) => match Role::parse(&record.role) {
            Some(role) => Presented::Valid(Actor::new(record.name, role, Channel::Api)),
            None => Presented::Unknown,
        },
    })
}
