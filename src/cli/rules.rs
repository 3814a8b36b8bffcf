//! `stillwater rules`: show, set and unset thresholds per category or household.

use std::process::ExitCode;

use stillwater::config::Config;

use stillwater::policy::Setting;

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
            let resolved = stillwater::thresholds::in_force(
                &config.rules,
                &category,
                &store.rule_overrides(&scope)?,
            );
            for key in stillwater::policy::Key::ALL {
                out!(
                    "{:<20} {:<8} {}",
                    key.as_str(),
                    key.format(resolved.policy.get(key)),
                    resolved.source(key)
                );
            }
            for problem in &resolved.skipped {
                eprintln!("warning: {problem}");
            }
        }
        RulesCommand::Set { target, settings } => {
            let scope = target.scope();
            let mut parsed = Vec::new();
            for text in &settings {
                match Setting::parse_assignment(text) {
                    Ok(setting) => parsed.push(setting),
                    Err(problem) => {
                        eprintln!("error: {problem}");
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
            // The same checks as the configuration file, on the thresholds the
            // households concerned would run with.
            let in_use = store.categories_in_use()?;
            let categories: Vec<String> = match &scope {
                RuleScope::Category(category) => {
                    if let Err(problem) = stillwater::domain::Category::parse(category) {
                        eprintln!("error: {problem}");
                        return Ok(ExitCode::FAILURE);
                    }
                    if !in_use.contains(category) {
                        eprintln!(
                            "warning: no registered household has category {category:?} (in use: {}); the setting waits for one",
                            if in_use.is_empty() { "none".to_string() } else { in_use.join(", ") }
                        );
                    }
                    vec![category.clone()]
                }
                RuleScope::Meter(meter) => {
                    match store.meter_details(meter, 0)?.and_then(|d| d.registration) {
                        Some(registration) => vec![registration.category],
                        None => {
                            eprintln!("error: meter {meter} is not registered");
                            return Ok(ExitCode::FAILURE);
                        }
                    }
                }
            };
            let mut stored = store.rule_overrides(&scope)?;
            for setting in &parsed {
                let scope_name = match &scope {
                    RuleScope::Category(_) => "category",
                    RuleScope::Meter(_) => "household",
                };
                stored.retain(|r| !(r.scope == scope_name && r.key == setting.key.as_str()));
                stored.push(stillwater::store::alerts::RuleOverride {
                    scope: scope_name.into(),
                    key: setting.key.as_str().into(),
                    value: setting.formatted_value(),
                    set_by: actor(),
                    set_at: now,
                });
            }
            for category in &categories {
                let resolved = stillwater::thresholds::in_force(&config.rules, category, &stored);
                if let Some(problem) = resolved.skipped.first() {
                    eprintln!(
                        "error: {}",
                        problem.replace("ignored the settings", "the settings would be ignored:")
                    );
                    return Ok(ExitCode::FAILURE);
                }
            }
            let changes: Vec<(String, Option<String>)> = parsed
                .iter()
                .map(|s| (s.key.as_str().to_string(), Some(s.formatted_value())))
                .collect();
            store.set_rule_overrides(&scope, &changes, &actor(), now)?;
            out!(
                "set {} for {}; the running gateway uses it from the next reading",
                parsed
                    .iter()
                    .map(|s| format!("{}={}", s.key, s.formatted_value()))
                    .collect::<Vec<_>>()
                    .join(" "),
                match &scope {
                    RuleScope::Category(category) => format!("category {category}"),
                    RuleScope::Meter(meter) => format!("the household of meter {meter}"),
                }
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
