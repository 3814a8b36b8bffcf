//! `stillwater alerts`: list, acknowledge, resolve and close alerts.

use std::process::ExitCode;

use stillwater::config::Config;

use super::*;
use crate::*;
use stillwater::actions;
use stillwater::domain::Disposition;

pub(crate) fn alerts(config: &Config, command: AlertsCommand) -> anyhow::Result<ExitCode> {
    let store = Store::existing_from_config(&config.store)?;
    let now = chrono::Utc::now().timestamp();
    let zone = config.registry.timezone;
    let done = |result: Result<(), ActionError>, what: &str, id: i64| match result {
        Ok(()) => {
            out!("alert {id} {what}");
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => refused(error),
    };
    match command {
        AlertsCommand::List { all, limit } => {
            let alerts = store.list_alerts(all, limit)?;
            if alerts.is_empty() {
                out!("{}", if all { "no alerts" } else { "no active alerts" });
            }
            for alert in alerts {
                out!(
                    "#{:<5} {:<12} {:<15} {:<11} {:<12} {}  since {}  {}",
                    alert.id,
                    alert.state,
                    alert.kind,
                    alert.severity,
                    alert.meter_id,
                    who(&alert, "?"),
                    format_time(alert.since, zone),
                    alert.detail
                );
            }
        }
        AlertsCommand::Show { id } => {
            let Some(alert) = store.alert(id)? else {
                eprintln!("error: alert {id} does not exist");
                return Ok(ExitCode::FAILURE);
            };
            out!(
                "alert #{} {} ({}) — {}",
                alert.id,
                alert.kind,
                alert.severity,
                alert.state
            );
            out!(
                "  meter:    {} ({})",
                alert.meter_id,
                who(&alert, "not registered")
            );
            out!("  since:    {}", format_time(alert.since, zone));
            out!("  detected: {}", format_time(alert.opened_at, zone));
            out!("  detail:   {}", alert.detail);
            if let Some(disposition) = &alert.disposition {
                out!(
                    "  closed as {disposition}: {}",
                    alert.note.as_deref().unwrap_or("")
                );
            }
            out!("  history:");
            for event in store.alert_events(id)? {
                out!(
                    "    {}  {:<20} by {} via {}  {}",
                    format_time(event.at, zone),
                    event.action,
                    event.actor,
                    event.channel,
                    event.detail
                );
            }
            out!("  texts:");
            for text in store.notifications(Some(id))? {
                out!(
                    "    {:<9} {:<8} step {} to {} {}{}{}",
                    text.state,
                    text.purpose,
                    text.step,
                    text.recipient,
                    mask_phone(&text.phone),
                    text.provider
                        .as_deref()
                        .map(|p| format!(" via {p}"))
                        .unwrap_or_default(),
                    text.delivery
                        .as_deref()
                        .map(|d| format!(" — {d}"))
                        .unwrap_or_default(),
                );
                for attempt in store.notification_attempts(text.id)? {
                    out!(
                        "      attempt {}  {}{}{}",
                        format_time(attempt.at, zone),
                        attempt.outcome,
                        attempt
                            .provider
                            .map(|p| format!(" ({p})"))
                            .unwrap_or_default(),
                        attempt.error.map(|e| format!(" — {e}")).unwrap_or_default()
                    );
                }
            }
        }
        AlertsCommand::Ack { id, by } => {
            return done(
                actions::alerts::acknowledge(&store, &actor_named(by), id, now),
                "acknowledged",
                id,
            )
        }
        AlertsCommand::Resolve { id, by } => {
            return done(
                actions::alerts::resolve(&store, &actor_named(by), id, now),
                "resolved",
                id,
            )
        }
        AlertsCommand::Close {
            id,
            disposition,
            note,
            by,
        } => {
            let Some(disposition) = Disposition::parse(&disposition) else {
                eprintln!(
                    "error: --disposition {disposition:?} must be one of {}",
                    Disposition::names()
                );
                return Ok(ExitCode::FAILURE);
            };
            return done(
                actions::alerts::close(&store, &actor_named(by), id, disposition, &note, now),
                "closed",
                id,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whose alert it is: the resident, the gateway itself for a system alert,
/// or `unknown`.
fn who<'a>(alert: &'a stillwater::store::alerts::AlertRecord, unknown: &'a str) -> &'a str {
    match &alert.resident_name {
        Some(name) => name,
        None if stillwater::store::system::is_system_meter(&alert.meter_id) => "the gateway itself",
        None => unknown,
    }
}
