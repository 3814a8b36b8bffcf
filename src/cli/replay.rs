//! `stillwater replay`: what the stored readings would have caused with other
//! thresholds — per household and in total, against the current settings.
//! It reads only: nothing is stored, nothing is sent.

use std::process::ExitCode;

use stillwater::alert::lifecycle::Settings;
use stillwater::alert::replay::Tally;
use stillwater::alert::what_if::WhatIf;
use stillwater::config::Config;
use stillwater::policy::Setting;

use super::absences::parse_when;
use crate::*;

/// Which households and period, and what to try.
pub(crate) struct Scope {
    pub from: String,
    pub to: Option<String>,
    pub settings: Vec<String>,
    pub meters: Vec<String>,
    pub category: Option<String>,
}

pub(crate) fn replay(config: &Config, scope: Scope) -> anyhow::Result<ExitCode> {
    let store = Store::existing_from_config(&config.store)?;
    let zone = config.registry.timezone;
    let from = parse_when(&scope.from, zone)?;
    let to = match &scope.to {
        Some(text) => parse_when(text, zone)?,
        None => chrono::Utc::now().timestamp(),
    };
    if to <= from {
        eprintln!("error: --to must be after --from");
        return Ok(ExitCode::FAILURE);
    }
    let mut what_if = Vec::new();
    for text in &scope.settings {
        match Setting::parse_assignment(text) {
            Ok(setting) => what_if.push(setting),
            Err(problem) => {
                eprintln!("error: {problem}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    let meters = if scope.meters.is_empty() {
        store.active_meters(scope.category.as_deref())?
    } else {
        scope.meters.clone()
    };
    let settings = Settings::new(&config.alerts, &config.rules);
    let (mut before, mut after) = (Tally::default(), Tally::default());
    let mut households = 0;
    out!(
        "{:<16} {:<10} {:>16} {:>16} {:>14}",
        "meter",
        "resident",
        "alerts now→then",
        "contacts texted",
        "prompts"
    );
    let replayed = stillwater::alert::what_if::what_if_each(
        &store,
        &config.rules,
        &settings,
        &meters,
        &what_if,
        from,
        to,
    );
    let results = meters
        .iter()
        .zip(replayed)
        .map(|(meter, result)| match result {
            Ok(WhatIf::Replayed(resident, now, then)) => {
                Outcome::Replayed(meter.clone(), resident, now, then)
            }
            Ok(WhatIf::Unregistered) => Outcome::Unregistered(meter.clone()),
            Ok(WhatIf::Refused(problem)) => Outcome::Refused(problem),
            Err(error) => Outcome::Failed(error),
        });
    for result in results {
        let (meter, resident, now, then) = match result {
            Outcome::Replayed(meter, resident, now, then) => (meter, resident, now, then),
            Outcome::Unregistered(meter) => {
                eprintln!("warning: meter {meter} is not registered; skipped");
                continue;
            }
            Outcome::Refused(problem) => {
                eprintln!("error: {problem}");
                return Ok(ExitCode::FAILURE);
            }
            Outcome::Failed(error) => return Err(error.into()),
        };
        households += 1;
        if now != then || now.alert_count() > 0 {
            out!(
                "{:<16} {:<10} {:>16} {:>16} {:>14}",
                meter,
                resident,
                format!("{} → {}", now.alert_count(), then.alert_count()),
                format!("{} → {}", now.contact_texts, then.contact_texts),
                format!("{} → {}", now.resident_prompts, then.resident_prompts),
            );
        }
        before.add(&now);
        after.add(&then);
    }
    let days = ((to - from) as f64 / 86_400.0).max(1.0 / 24.0);
    let household_days = households as f64 * days;
    out!("");
    out!(
        "{} over {:.1} days ({:.0} household-days), {} → {}:",
        count(households, "household", "households"),
        days,
        household_days,
        "current settings",
        if what_if.is_empty() {
            "the same".to_string()
        } else {
            what_if
                .iter()
                .map(|s| format!("{}={}", s.key, s.formatted_value()))
                .collect::<Vec<_>>()
                .join(" ")
        }
    );
    let kinds = before.kinds(&after);
    for (kind, severity) in kinds {
        let (a, b) = (
            before.alerts.get(&(kind, severity)).copied().unwrap_or(0),
            after.alerts.get(&(kind, severity)).copied().unwrap_or(0),
        );
        out!(
            "  {:<24} {a:>5} → {b:<5} ({:.3} → {:.3} per household-day)",
            format!("{kind} ({severity})"),
            a as f64 / household_days,
            b as f64 / household_days
        );
    }
    out!(
        "  {:<24} {:>5} → {:<5} ({:.3} → {:.3} per household-day)",
        "texts to contacts",
        before.contact_texts,
        after.contact_texts,
        before.contact_texts as f64 / household_days,
        after.contact_texts as f64 / household_days
    );
    out!(
        "  {:<24} {:>5} → {:<5}",
        "check-ins to residents",
        before.resident_prompts,
        after.resident_prompts
    );
    out!(
        "  {:<24} {:>5} → {:<5}",
        "maintenance texts",
        before.maintenance_texts,
        after.maintenance_texts
    );
    out!("nothing was stored or sent");
    Ok(ExitCode::SUCCESS)
}

/// One household's replay, or why there is none.
enum Outcome {
    Replayed(String, String, Tally, Tally),
    Unregistered(String),
    Refused(String),
    Failed(stillwater::store::StoreError),
}
