//! `stillwater report` and `stillwater audit`: the monthly report for the
//! civil-affairs bureau, and who changed what.

use std::process::ExitCode;

use stillwater::config::Config;

use super::*;
use crate::*;

/// `stillwater report --month 2026-11 --format json|csv|html`.
pub(crate) fn report(config: &Config, month: &str, format: &str) -> anyhow::Result<ExitCode> {
    let month = match stillwater::report::Month::parse(month) {
        Ok(month) => month,
        Err(problem) => {
            eprintln!("error: --month {problem}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let zone = config.registry.timezone;
    let (from, to) = month.bounds(zone);
    let store = Store::open_existing(&config.store.path)?;
    let facts = store.month_facts(from, to)?;
    let report = stillwater::report::monthly(month, zone, &facts);
    match format {
        "json" => print_text(&format!("{}\n", serde_json::to_string_pretty(&report)?)),
        "csv" => print_text(&stillwater::report::csv(&report)),
        "html" => print_text(&stillwater::report::html(&report, config.sms.language)),
        other => {
            eprintln!("error: --format {other:?}: must be json, csv or html");
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `stillwater audit [--since DATE] [--limit N]`.
pub(crate) fn audit(
    config: &Config,
    since: Option<&str>,
    limit: usize,
) -> anyhow::Result<ExitCode> {
    let zone = config.registry.timezone;
    let since = match since.map(|text| super::absences::parse_when(text, zone)) {
        None => 0,
        Some(Ok(at)) => at,
        Some(Err(problem)) => {
            eprintln!("error: --since {problem}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let store = Store::open_existing(&config.store.path)?;
    let entries = store.audit_log(since, limit)?;
    if entries.is_empty() {
        out!("no changes recorded");
    }
    for entry in entries {
        out!(
            "{}  {:<20} {:<24} by {} ({}, via {})  {}",
            format_time(entry.at, zone),
            entry.action,
            entry.subject,
            entry.actor,
            entry.role,
            entry.channel,
            entry.detail
        );
    }
    Ok(ExitCode::SUCCESS)
}
