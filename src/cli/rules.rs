//! `stillwater rules`: show, set and unset thresholds per category or household.

use std::process::ExitCode;

use stillwater::config::Config;

use super::*;
use crate::*;

pub(crate) fn rules(config: &Config, command: RulesCommand) -> anyhow::Result<ExitCode> {
    let store = Store::open_existing(&config.store.path)?;
    let now = chrono::Utc::now().timestamp();
    match command {
        RulesCommand::Show { target } => {
            let scope = target.scope();
            let category = match &scope {
                RuleScope::Category(category) => category.clone(),
                RuleScope::Meter(meter) => {
                    match store.meter_details(meter, 0)?.and_then(|d| d.registration) {
                        Some(registration) => registration.category,
                        None => {
                            eprintln!("error: meter {meter} is not registered");
                            return Ok(ExitCode::FAILURE);
                        }
                    }
                }
            };
            let mut policy = config.rules.policy_for(&category);
            let mut sources: std::collections::HashMap<String, String> = config
                .rules
                .categories
                .get(&category)
                .into_iter()
                .flatten()
                .map(|setting| {
                    (
                        setting.key.as_str().to_string(),
                        format!("config, category {category}"),
                    )
                })
                .collect();
            for rule in store.rule_overrides(&scope)? {
                if policy.set(&rule.key, &rule.value).is_ok() {
                    let scope_name = if rule.scope == "category" {
                        format!("category {category}")
                    } else {
                        "this household".into()
                    };
                    sources.insert(
                        rule.key,
                        format!(
                            "set for {scope_name} by {} {}",
                            rule.set_by,
                            format_time(rule.set_at, config.registry.timezone)
                        ),
                    );
                }
            }
            for key in stillwater::policy::Key::ALL.map(|key| key.as_str()) {
                out!(
                    "{key:<20} {:<8} {}",
                    policy.text(key).unwrap_or_default(),
                    sources.get(key).map(String::as_str).unwrap_or("default")
                );
            }
        }
        RulesCommand::Set { target, settings } => {
            let mut scratch = config.rules.global.clone();
            let mut changes = Vec::new();
            for setting in &settings {
                let Some((key, value)) = setting.split_once('=') else {
                    eprintln!("error: {setting:?} must be KEY=VALUE, e.g. warning_window=8h");
                    return Ok(ExitCode::FAILURE);
                };
                if let Err(problem) = scratch.set(key.trim(), value.trim()) {
                    eprintln!("error: {problem}");
                    return Ok(ExitCode::FAILURE);
                }
                changes.push((key.trim().to_string(), Some(value.trim().to_string())));
            }
            store.set_rule_overrides(&target.scope(), &changes, &actor(), now)?;
            out!(
                "set {} for {:?}; the running gateway uses it from the next reading",
                settings.join(" "),
                target.scope()
            );
        }
        RulesCommand::Unset { target, keys } => {
            let mut changes = Vec::new();
            for key in keys {
                if let Err(problem) = stillwater::policy::Key::parse(&key) {
                    eprintln!("error: {problem}");
                    return Ok(ExitCode::FAILURE);
                }
                changes.push((key, None));
            }
            store.set_rule_overrides(&target.scope(), &changes, &actor(), now)?;
            out!("back to the configured values");
        }
    }
    Ok(ExitCode::SUCCESS)
}
