//! `stillwater absences`: declare, list and end absences.

use std::process::ExitCode;

use stillwater::config::Config;

use super::*;
use crate::*;
use stillwater::actions;

/// Parses RFC 3339, or a date (midnight in `zone`).
pub(crate) fn parse_when(text: &str, zone: chrono_tz::Tz) -> anyhow::Result<i64> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp());
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| anyhow::anyhow!("{text:?} is not a date (2026-01-28) or an RFC 3339 time"))?;
    zone.from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight"))
        .earliest()
        .map(|time| time.timestamp())
        .ok_or_else(|| anyhow::anyhow!("{text:?} does not exist in {zone}"))
}

pub(crate) fn absences(config: &Config, command: AbsencesCommand) -> anyhow::Result<ExitCode> {
    let store = Store::existing_from_config(&config.store)?;
    let now = chrono::Utc::now().timestamp();
    let zone = config.registry.timezone;
    match command {
        AbsencesCommand::Add {
            meters,
            category,
            all,
            reason,
            from,
            until,
        } => {
            let starts_at = match &from {
                Some(text) => parse_when(text, zone).context("--from")?,
                None => now,
            };
            let ends_at = parse_when(&until, zone).context("--until")?;
            let meters = if all {
                store.active_meters(None)?
            } else if let Some(category) = &category {
                store.active_meters(Some(category))?
            } else {
                meters
            };
            if meters.is_empty() {
                eprintln!("error: no household chosen: give --meter ID, --category NAME or --all");
                return Ok(ExitCode::FAILURE);
            }
            let count = match actions::absences::declare(
                &store,
                &actor(),
                &meters,
                &reason,
                starts_at,
                ends_at,
                now,
            ) {
                Ok(count) => count,
                Err(error) => return refused(error),
            };
            out!(
                "absence declared for {}, {} to {}",
                stillwater::domain::count(count, "household", "households"),
                format_time(starts_at, zone),
                format_time(ends_at, zone)
            );
        }
        AbsencesCommand::List { all } => {
            let absences = store.absences(all, now)?;
            if absences.is_empty() {
                out!("no absences");
            }
            for absence in absences {
                out!(
                    "#{:<5} {} ({})  {} → {}  {}  (by {}){}",
                    absence.id,
                    absence.resident_name,
                    if absence.meters.is_empty() {
                        "no active meter"
                    } else {
                        &absence.meters
                    },
                    format_time(absence.starts_at, zone),
                    format_time(absence.ends_at, zone),
                    absence.reason,
                    absence.declared_by,
                    absence
                        .ended_at
                        .map(|at| format!(", ended {}", format_time(at, zone)))
                        .unwrap_or_default()
                );
            }
        }
        AbsencesCommand::End { id } => {
            if let Err(error) = actions::absences::end(&store, &actor(), id, now) {
                return refused(error);
            }
            out!("absence {id} ended");
        }
    }
    Ok(ExitCode::SUCCESS)
}
