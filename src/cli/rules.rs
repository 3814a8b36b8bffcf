//! `stillwater rules`: show, set and unset thresholds per category or household.

use std::process::ExitCode;

use stillwater::config::Config;

use stillwater::policy::Setting;

use crate::*;
use stillwater::actions;

pub(crate) fn rules(config: &Config, command: RulesCommand) -> anyhow::Result<ExitCode> {
    let store = Store::existing_from_config(&config.store)?;
    let now = chrono::Utc::now().timestamp();
    match command {
        RulesCommand::Show { target } => {
            let scope = target.scope();
            let resolved = match stillwater::thresholds::for_scope(&store, &config.rules, &scope) {
                Ok(resolved) => resolved,
                Err(stillwater::store::StoreError::NotRegistered(meter)) => {
                    eprintln!("error: meter {meter} is not registered");
                    return Ok(ExitCode::FAILURE);
                }
                Err(error) => return Err(error.into()),
            };
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
            match actions::rules::set(&store, &actor(), &config.rules, &scope, &parsed, now) {
                Ok(warnings) => {
                    for warning in warnings {
                        eprintln!("warning: {warning}");
                    }
                }
                Err(error) => return refused(error),
            }
            out!(
                "set {} for {}; the running gateway uses it from the next reading",
                parsed
                    .iter()
                    .map(|s| format!("{}={}", s.key, s.formatted_value()))
                    .collect::<Vec<_>>()
                    .join(" "),
                match &scope {
                    RuleScope::Global => "every household".to_string(),
                    RuleScope::Category(category) => format!("category {category}"),
                    RuleScope::Meter(meter) => format!("the household of meter {meter}"),
                }
            );
        }
        RulesCommand::Unset { target, keys } => {
            let mut parsed = Vec::new();
            for key in keys {
                match stillwater::policy::Key::parse(&key) {
                    Ok(key) => parsed.push(key),
                    Err(problem) => {
                        eprintln!("error: {problem}");
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
            if let Err(error) =
                actions::rules::unset(&store, &actor(), &target.scope(), &parsed, now)
            {
                return refused(error);
            }
            out!("back to the configured values");
        }
    }
    Ok(ExitCode::SUCCESS)
}
