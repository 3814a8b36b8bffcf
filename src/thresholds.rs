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
/// overrides (its category's, then its own). A stored value that no longer
/// parses, or a layer that would make the policy inconsistent, is left out
/// and named in `skipped`.
pub fn in_force(rules: &RulesConfig, category: &str, stored: &[RuleOverride]) -> Resolved {
    let mut layers = Vec::new();
    let mut unreadable = Vec::new();
    let category = Category::parse(category).unwrap_or_else(|_| Category::general());
    if let Some(settings) = rules.categories.get(category.as_str()) {
        layers.push(Layer {
            source: Source::ConfigCategory(category.clone()),
            settings: settings.clone(),
        });
    }
    // Stored rules come category first, then household (the store's order).
    for rule in stored {
        let at = Timestamp::from_secs(rule.set_at);
        let by = rule.set_by.clone();
        let source = if rule.scope == "category" {
            Source::StoredCategory {
                category: category.clone(),
                by,
                at,
            }
        } else {
            Source::StoredHousehold { by, at }
        };
        match Setting::parse(&rule.key, &rule.value) {
            Ok(setting) => layers.push(Layer {
                source,
                settings: vec![setting],
            }),
            Err(problem) => unreadable.push(format!("ignored a stored setting: {problem}")),
        }
    }
    let mut resolved = resolve(&rules.global, &layers);
    resolved.skipped.extend(unreadable);
    resolved
}
