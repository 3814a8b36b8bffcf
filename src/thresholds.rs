//! The thresholds in force for one household: the global `[rules]`, its
//! category's `[rules.categories.NAME]`, then what operators set for its
//! category and for the household (`stillwater rules set`), last wins.
//!
//! The one place this is worked out: the alert engine, `rules show` and
//! `rules set` all call [`in_force`].

use crate::config::RulesConfig;
use crate::domain::{Category, Timestamp};
use crate::policy::{resolve, Layer, Resolved, Setting, Source};
use crate::store::rules::RuleOverride;

/// The policy of a household in `category`, given the operators' stored
/// overrides (everyone's, its category's, then its own). A stored value that
/// no longer parses, or a layer that would make the policy inconsistent, is
/// left out and named in `skipped`.
pub fn in_force(rules: &RulesConfig, category: &str, stored: &[RuleOverride]) -> Resolved {
    let category = Category::parse(category).unwrap_or_else(|_| Category::general());
    let config_category = rules
        .categories
        .get(category.as_str())
        .map(|settings| Layer {
            source: Source::ConfigCategory(category.clone()),
            settings: settings.clone(),
        });
    layered(rules, &category, config_category, stored)
}

/// The policy every household starts from: the file's `[rules]` and the
/// operators' global overrides, before any category's.
pub fn global(rules: &RulesConfig, stored: &[RuleOverride]) -> Resolved {
    let global: Vec<RuleOverride> = stored
        .iter()
        .filter(|rule| rule.scope == "global")
        .cloned()
        .collect();
    layered(rules, &Category::general(), None, &global)
}

/// The more particular wins: the file's `[rules]`, then operators' global
/// overrides, the file's category (`config_category`), the category's
/// overrides, the household's.
fn layered(
    rules: &RulesConfig,
    category: &Category,
    config_category: Option<Layer>,
    stored: &[RuleOverride],
) -> Resolved {
    let (global, particular): (Vec<&RuleOverride>, Vec<&RuleOverride>) =
        stored.iter().partition(|rule| rule.scope == "global");
    let mut layers = Vec::new();
    let mut unreadable = Vec::new();
    let mut add = |rule: &RuleOverride, layers: &mut Vec<Layer>| {
        let at = Timestamp::from_secs(rule.set_at);
        let by = rule.set_by.clone();
        let source = match rule.scope.as_str() {
            "global" => Source::StoredGlobal { by, at },
            "category" => Source::StoredCategory {
                category: category.clone(),
                by,
                at,
            },
            _ => Source::StoredHousehold { by, at },
        };
        match Setting::parse(&rule.key, &rule.value) {
            Ok(setting) => layers.push(Layer {
                source,
                settings: vec![setting],
            }),
            Err(problem) => unreadable.push(format!("ignored a stored setting: {problem}")),
        }
    };
    for rule in global {
        add(rule, &mut layers);
    }
    layers.extend(config_category);
    for rule in particular {
        add(rule, &mut layers);
    }
    let mut resolved = resolve(&rules.global, &layers);
    resolved.skipped.extend(unreadable);
    resolved
}

/// The thresholds in force for `scope`: every household's starting point,
/// a category's, or one household's.
pub fn for_scope(
    store: &crate::store::Store,
    rules: &RulesConfig,
    scope: &crate::store::rules::RuleScope,
) -> Result<Resolved, crate::store::StoreError> {
    use crate::store::prelude::*;
    use crate::store::rules::RuleScope;
    let stored = store.rule_overrides(scope)?;
    Ok(match scope {
        RuleScope::Global => global(rules, &stored),
        RuleScope::Category(category) => in_force(rules, category, &stored),
        RuleScope::Meter(meter) => {
            let category = store
                .household(meter)?
                .ok_or_else(|| crate::store::StoreError::NotRegistered(meter.clone()))?
                .category;
            in_force(rules, &category, &stored)
        }
    })
}
