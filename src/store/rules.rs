//! Operators' threshold overrides as stored.

use super::db::{args, Db};
use super::engine::household_of;
use super::traits::*;
use super::{Store, StoreError};

/// One rule parameter set by an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOverride {
    /// `global`, `category` or `household`.
    pub scope: String,
    pub key: String,
    pub value: String,
    pub set_by: String,
    pub set_at: i64,
}

pub(super) fn rule_overrides(
    db: &dyn Db,
    category: &str,
    household_id: i64,
) -> Result<Vec<RuleOverride>, StoreError> {
    db.query_all(
        "SELECT scope, key, value, set_by, set_at FROM rule_overrides
         WHERE scope = 'global' OR (scope = 'category' AND target = ?1)
            OR (scope = 'household' AND target = ?2)
         ORDER BY CASE scope WHEN 'global' THEN 0 WHEN 'category' THEN 1 ELSE 2 END, key",
        args![category, household_id.to_string()],
        |row| {
            Ok(RuleOverride {
                scope: row.get(0)?,
                key: row.get(1)?,
                value: row.get(2)?,
                set_by: row.get(3)?,
                set_at: row.get(4)?,
            })
        },
    )
}

/// Whom a rule override applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleScope {
    /// Every household (over the configuration file's `[rules]`).
    Global,
    Category(String),
    /// The household of this (active) meter.
    Meter(String),
}

impl RuleStore for Store {
    fn rule_overrides(&self, scope: &RuleScope) -> Result<Vec<RuleOverride>, StoreError> {
        let db = self.db()?;
        match scope {
            // No category is named `*`: only the global overrides.
            RuleScope::Global => rule_overrides(&db, "*", -1),
            RuleScope::Category(category) => rule_overrides(&db, category, -1),
            RuleScope::Meter(meter) => {
                let household = household_of(&db, meter)?
                    .ok_or_else(|| StoreError::NotRegistered(meter.clone()))?;
                rule_overrides(&db, &household.category, household.id)
            }
        }
    }
}
