//! `stillwater report`, `stillwater audit` and `stillwater tokens`: the
//! monthly report for the civil-affairs bureau, who changed what, and who
//! may use the API.

use std::process::ExitCode;

use clap::Subcommand;
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
    let store = Store::existing_from_config(&config.store)?;
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
    let store = Store::existing_from_config(&config.store)?;
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

#[derive(Subcommand)]
pub(crate) enum TokensCommand {
    /// Create a token for someone: admin, operator, installer or monitor.
    Add {
        /// Who holds it (shown in the audit log).
        #[arg(long)]
        name: String,
        #[arg(long)]
        role: String,
    },
    /// Every token (never its secret).
    List,
    /// Revoke a token by its id.
    Revoke { id: i64 },
}

/// `stillwater tokens add | list | revoke`.
pub(crate) fn tokens(config: &Config, command: TokensCommand) -> anyhow::Result<ExitCode> {
    use stillwater::actions::tokens;
    let now = chrono::Utc::now().timestamp();
    match command {
        TokensCommand::Add { name, role } => {
            let store = Store::from_config(&config.store)?;
            let added = tokens::parse_role(&role)
                .and_then(|role| tokens::add(&store, &actor(), &name, role, now));
            match added {
                Ok((id, secret)) => {
                    out!("token {id} for {name} ({role}):");
                    out!("  {secret}");
                    out!(
                        "It is shown only now: give it to {name}; the gateway keeps only its hash."
                    );
                }
                Err(problem) => {
                    eprintln!("error: {problem}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        TokensCommand::List => {
            let store = Store::existing_from_config(&config.store)?;
            let all = store.tokens()?;
            if all.is_empty() {
                out!("no tokens");
            }
            for token in all {
                out!(
                    "#{:<4} {:<24} {:<10} created {}{}",
                    token.id,
                    token.name,
                    token.role,
                    format_time(token.created_at, config.registry.timezone),
                    token
                        .revoked_at
                        .map(|at| format!(
                            "  REVOKED {}",
                            format_time(at, config.registry.timezone)
                        ))
                        .unwrap_or_default()
                );
            }
        }
        TokensCommand::Revoke { id } => {
            let store = Store::existing_from_config(&config.store)?;
            if let Err(problem) = tokens::revoke(&store, &actor(), id, now) {
                eprintln!("error: {problem}");
                return Ok(ExitCode::FAILURE);
            }
            out!("token {id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}
