//! Threshold overrides set by operators for every household, a category or
//! one household. The same checks as the configuration file: bounded values,
//! and the thresholds every household concerned would run with must hold
//! together (for a global change, those of every category).

use super::{require, stamp, ActionError};
use crate::config::RulesConfig;
use crate::domain::{Actor, Category};
use crate::policy::{Key, Setting};
use crate::store::prelude::*;
use crate::store::rules::{RuleOverride, RuleScope};
use crate::store::Store;

/// Sets thresholds; returns warnings (a category no household has yet).
pub fn set(
    store: &Store,
    actor: &Actor,
    rules: &RulesConfig,
    scope: &RuleScope,
    settings: &[Setting],
    now: i64,
) -> Result<Vec<String>, ActionError> {
    require(actor, "rules.set")?;
    let mut warnings = Vec::new();
    // The categories whose households the change reaches.
    let categories = match scope {
        RuleScope::Global => {
            let mut all = store.categories_in_use()?;
            all.extend(rules.categories.keys().cloned());
            all.push(Category::DEFAULT.to_string());
            all.sort();
            all.dedup();
            all
        }
        RuleScope::Category(category) => {
            Category::parse(category).map_err(|e| ActionError::Invalid(e.to_string()))?;
            let in_use = store.categories_in_use()?;
            if !in_use.contains(category) {
                warnings.push(format!(
                    "no registered household has category {category:?} (in use: {}); the setting waits for one",
                    if in_use.is_empty() {
                        "none".to_string()
                    } else {
                        in_use.join(", ")
                    }
                ));
            }
            vec![category.clone()]
        }
        RuleScope::Meter(meter) => vec![store
            .meter_details(meter, 0)?
            .and_then(|d| d.registration)
            .map(|r| r.category)
            .ok_or_else(|| ActionError::NotRegistered(meter.clone()))?],
    };
    // The thresholds the households concerned would run with.
    let scope_name = scope_name(scope);
    for category in &categories {
        let mut stored = match scope {
            RuleScope::Global => store.rule_overrides(&RuleScope::Category(category.clone()))?,
            _ => store.rule_overrides(scope)?,
        };
        for setting in settings {
            stored.retain(|r| !(r.scope == scope_name && r.key == setting.key.as_str()));
            stored.push(RuleOverride {
                scope: scope_name.into(),
                key: setting.key.as_str().into(),
                value: setting.formatted_value(),
                set_by: actor.name.clone(),
                set_at: now,
            });
        }
        // The store's order: global, category, household.
        stored.sort_by_key(|r| match r.scope.as_str() {
            "global" => 0,
            "category" => 1,
            _ => 2,
        });
        let resolved = crate::thresholds::in_force(rules, category, &stored);
        if let Some(problem) = resolved.skipped.first() {
            let problem = problem.replace("ignored the settings", "the settings would not hold:");
            return Err(ActionError::Invalid(match scope {
                RuleScope::Global => format!("for category {category}: {problem}"),
                _ => problem,
            }));
        }
    }
    write(
        store,
        actor,
        scope,
        settings.iter().map(|s| (s.key, Some(s.formatted_value()))),
        now,
    )?;
    Ok(warnings)
}

/// Goes back to the configured values for `keys`.
pub fn unset(
    store: &Store,
    actor: &Actor,
    scope: &RuleScope,
    keys: &[Key],
    now: i64,
) -> Result<(), ActionError> {
    require(actor, "rules.set")?;
    write(store, actor, scope, keys.iter().map(|k| (*k, None)), now)
}

fn scope_name(scope: &RuleScope) -> &'static str {
    match scope {
        RuleScope::Global => "global",
        RuleScope::Category(_) => "category",
        RuleScope::Meter(_) => "household",
    }
}

fn write(
    store: &Store,
    actor: &Actor,
    scope: &RuleScope,
    changes: impl Iterator<Item = (Key, Option<String>)>,
    now: i64,
) -> Result<(), ActionError> {
    store.write(|tx| {
        let target = match scope {
            RuleScope::Global => "*".to_string(),
            RuleScope::Category(category) => category.clone(),
            RuleScope::Meter(meter) => tx
                .active_registration(meter)?
                .ok_or_else(|| ActionError::NotRegistered(meter.clone()))?
                .0
                .to_string(),
        };
        let name = scope_name(scope);
        for (key, value) in changes {
            let before = tx.set_rule(
                name,
                &target,
                key.as_str(),
                value.as_deref(),
                stamp(actor, now),
            )?;
            tx.audit(
                stamp(actor, now),
                "rules.set",
                &format!("{name} {target}"),
                &format!(
                    "{key}: {} → {}",
                    before.as_deref().unwrap_or("(default)"),
                    value.as_deref().unwrap_or("(default)")
                ),
            )?;
        }
        Ok(())
    })
}
