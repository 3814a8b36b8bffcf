//! `stillwater evaluate`: the alerts in the database scored against ground truth.

use std::path::Path;
use std::process::ExitCode;

use stillwater::alert::lifecycle::{Recipients, Settings};
use stillwater::alert::replay::{replay_with, Assume, Residents};
use stillwater::config::Config;
use stillwater::detect::{warm_up_s, Learned};
use stillwater::evaluate::{
    evaluate as score, median_and_p95_h, Audience, DeclaredAbsence, Evaluation, Incident,
    ScoredAlert, ScoredText, FIND_WITHIN_S,
};
use stillwater::policy::Setting;

use super::absences::parse_when;
use crate::*;

/// The alerts and texts to score.
type Scored = (Vec<ScoredAlert>, Vec<ScoredText>);

/// Scoring a replay of the stored readings instead of the alerts the gateway opened.
pub(crate) struct ReplayScope {
    /// Thresholds to try, KEY=VALUE.
    pub settings: Vec<String>,
    /// Text contacts for `no_usage` warnings too.
    pub notify_warning: bool,
    /// Ask no resident first, whatever check-in phones are registered.
    pub no_check_in: bool,
    /// A contact acknowledges each alert this long after it is first texted.
    pub acknowledged_after: Option<String>,
    /// Residents answer this share of check-ins this long after, unless the
    /// ground truth has them helpless then.
    pub residents_answer: Option<(String, f64)>,
}

/// What `evaluate` scores: a period, and the households of some meters (all when empty).
pub(crate) struct Period<'a> {
    pub from: &'a str,
    pub to: Option<&'a str>,
    pub meters: &'a [String],
}

pub(crate) fn evaluate(
    config: &Config,
    truth: &Path,
    period: Period<'_>,
    json: bool,
    replay: Option<ReplayScope>,
) -> anyhow::Result<ExitCode> {
    let Period { from, to, meters } = period;
    let store = Store::existing_from_config(&config.store)?;
    let zone = config.registry.timezone;
    let now = chrono::Utc::now().timestamp();
    let from = parse_when(from, zone)?;
    let to = match to {
        Some(text) => parse_when(text, zone)?,
        None => now,
    };
    let text = std::fs::read_to_string(truth)
        .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", truth.display()))?;
    let mut incidents = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Incident>(line) {
            Ok(incident) => incidents.push(incident),
            Err(error) => problems.push(format!("line {}: {error}", index + 1)),
        }
    }
    if !problems.is_empty() {
        eprintln!(
            "{}: {}",
            truth.display(),
            count(problems.len(), "problem", "problems")
        );
        for problem in problems {
            eprintln!("  {problem}");
        }
        return Ok(ExitCode::FAILURE);
    }
    let absences: Vec<DeclaredAbsence> = store
        .absences(true, now)?
        .into_iter()
        .flat_map(|a| {
            let end = a.ended_at.unwrap_or(a.ends_at);
            a.meters
                .split(", ")
                .filter(|m| !m.is_empty())
                .map(|m| DeclaredAbsence {
                    meter: m.to_string(),
                    start: a.starts_at,
                    end,
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let (alerts, texts) = match replay {
        Some(scope) => match replayed(&store, config, &scope, &absences, &incidents, from, to)? {
            Ok(both) => both,
            Err(problem) => {
                eprintln!("error: {problem}");
                return Ok(ExitCode::FAILURE);
            }
        },
        None => stored(&store, from, to)?,
    };
    let mut households = store.active_meters(None)?.len();
    let (mut alerts, mut texts) = (alerts, texts);
    if !meters.is_empty() {
        let chosen = |meter: &String| meters.contains(meter);
        incidents.retain(|i| chosen(&i.meter));
        alerts.retain(|a| chosen(&a.meter));
        let kept: std::collections::HashSet<i64> = alerts.iter().map(|a| a.id).collect();
        texts.retain(|t| kept.contains(&t.alert));
        households = meters.len();
    }
    let household_days = households as f64 * (to - from).max(0) as f64 / 86_400.0;
    let evaluation = score(&incidents, &alerts, &texts, &absences, household_days);
    print(&evaluation, households, incidents.len(), json)
}

/// The alerts the gateway opened in the period, and their texts.
fn stored(store: &Store, from: i64, to: i64) -> anyhow::Result<Scored> {
    let alerts: Vec<ScoredAlert> = store
        .list_alerts(true, i64::MAX as usize)?
        .into_iter()
        .filter(|a| (from..=to).contains(&a.opened_at))
        .map(|a| ScoredAlert {
            id: a.id,
            meter: a.meter_id,
            kind: a.kind,
            severity: a.severity,
            opened_at: a.opened_at,
            ended_at: [a.resolved.as_ref(), a.closed.as_ref()]
                .into_iter()
                .flatten()
                .map(|(at, _, _)| *at)
                .min(),
        })
        .collect();
    let ids: std::collections::HashSet<i64> = alerts.iter().map(|a| a.id).collect();
    let texts: Vec<ScoredText> = store
        .notifications(None)?
        .into_iter()
        .filter(|t| ids.contains(&t.alert_id) && t.state != "cancelled")
        .map(|t| ScoredText {
            alert: t.alert_id,
            to: match (t.purpose.as_str(), t.recipient.as_str()) {
                ("check_in", _) => Audience::Resident,
                (_, "maintenance") => Audience::Maintenance,
                _ => Audience::Contact,
            },
            queued_at: t.queued_at,
        })
        .collect();
    Ok((alerts, texts))
}

/// What a replay of every registered household's readings would have opened
/// and texted, or the problem with the thresholds tried.
fn replayed(
    store: &Store,
    config: &Config,
    scope: &ReplayScope,
    absences: &[DeclaredAbsence],
    incidents: &[Incident],
    from: i64,
    to: i64,
) -> anyhow::Result<Result<Scored, String>> {
    let mut what_if = Vec::new();
    for text in &scope.settings {
        match Setting::parse_assignment(text) {
            Ok(setting) => what_if.push(setting),
            Err(problem) => return Ok(Err(problem.to_string())),
        }
    }
    let duration = |flag: &str, text: &str| {
        stillwater::domain::parse_duration(text)
            .map_err(|problem| format!("{flag} {text:?}: {problem}"))
    };
    let acknowledged_after_s = match scope.acknowledged_after.as_deref() {
        Some(text) => match duration("--acknowledged-after", text) {
            Ok(seconds) => Some(seconds),
            Err(problem) => return Ok(Err(problem)),
        },
        None => None,
    };
    let answer = match &scope.residents_answer {
        Some((_, rate)) if !(0.0..=1.0).contains(rate) => {
            return Ok(Err(format!("--answer-rate {rate}: a share from 0 to 1")))
        }
        Some((after, rate)) => match duration("--residents-answer-after", after) {
            Ok(seconds) => Some((seconds, *rate)),
            Err(problem) => return Ok(Err(problem)),
        },
        None => None,
    };
    let mut settings = Settings::new(&config.alerts, &config.rules);
    settings.notify_warning |= scope.notify_warning;
    let (mut alerts, mut texts) = (Vec::new(), Vec::new());
    for meter in store.active_meters(None)? {
        let Some(mut household) = store.household(&meter)? else {
            continue;
        };
        if scope.no_check_in {
            household.check_in_phone = None;
        }
        let stored = store.rule_overrides(&RuleScope::Meter(meter.clone()))?;
        let policy = stillwater::thresholds::in_force(&config.rules, &household.category, &stored)
            .policy
            .with(&what_if);
        if let Err(problem) = policy.check() {
            return Ok(Err(format!("for meter {meter}: {problem}")));
        }
        let readings = store.readings(&meter, from - warm_up_s(&policy), to)?;
        let away: Vec<(i64, i64)> = absences
            .iter()
            .filter(|a| a.meter == meter)
            .map(|a| (a.start, a.end))
            .collect();
        // Helpless: the incidents a resident cannot answer the phone in.
        let helpless: Vec<(i64, i64)> = incidents
            .iter()
            .filter(|i| i.meter == meter && i.helpless())
            .map(|i| (i.start, i.end.unwrap_or(i.start + FIND_WITHIN_S)))
            .collect();
        // The alerts of this replay are its own: none was closed as away.
        let assume = Assume {
            absences: &away,
            not_learned: &[],
            acknowledged_after_s,
            residents: answer.map(|(answer_after_s, rate)| Residents {
                answer_after_s,
                rate,
                helpless: &helpless,
            }),
            backgrounds: None,
        };
        let run = replay_with(&readings, &Learned, &policy, &settings, &household, &assume);
        let first_id = alerts.len() as i64;
        for alert in &run.alerts {
            alerts.push(ScoredAlert {
                id: alerts.len() as i64,
                meter: meter.clone(),
                kind: alert.kind.to_string(),
                severity: alert.severity.to_string(),
                opened_at: alert.opened_at,
                ended_at: alert.resolved_at,
            });
        }
        // One scored text per phone, as the gateway's outbox holds them.
        for (text, phones) in run.texts.iter().zip(run.phones_per_text(&household)) {
            let to = match text.to {
                Recipients::Resident => Audience::Resident,
                Recipients::Maintenance => Audience::Maintenance,
                _ => Audience::Contact,
            };
            for _ in 0..phones {
                texts.push(ScoredText {
                    alert: first_id + text.alert as i64,
                    to,
                    queued_at: text.at,
                });
            }
        }
    }
    alerts.retain(|a| (from..=to).contains(&a.opened_at));
    Ok(Ok((alerts, texts)))
}

fn print(
    evaluation: &Evaluation,
    households: usize,
    incidents: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if json {
        out!("{}", serde_json::to_string_pretty(&evaluation)?);
        return Ok(ExitCode::SUCCESS);
    }
    out!(
        "{} over {:.1} household-days, {}",
        count(households, "household", "households"),
        evaluation.household_days,
        count(incidents, "incident", "incidents")
    );
    let hours = |seconds: &[i64]| match median_and_p95_h(seconds) {
        Some((median, p95)) => format!("{median:.1} h / {p95:.1} h"),
        None => "—".to_string(),
    };
    out!(
        "{:<18} {:>9} {:>8} {:>20} {:>20} {:>20}",
        "incident",
        "incidents",
        "found",
        "alert (median/p95)",
        "first action",
        "first contact text"
    );
    for (kind, score) in &evaluation.by_incident {
        if score.incidents == 0 {
            continue;
        }
        out!(
            "{:<18} {:>9} {:>7.0}% {:>20} {:>20} {:>20}",
            kind,
            score.incidents,
            100.0 * score.found as f64 / score.incidents as f64,
            hours(&score.to_alert_s),
            hours(&score.to_first_action_s),
            hours(&score.to_contact_s)
        );
    }
    out!("false alerts per household-day:");
    if evaluation.false_alerts.is_empty() {
        out!("  none");
    }
    for (kind, n) in &evaluation.false_alerts {
        out!(
            "  {kind:<28} {n:>5}  ({:.4})",
            evaluation.per_household_day(*n)
        );
    }
    out!(
        "alerts inside declared absences: {}",
        evaluation.during_absences
    );
    out!(
        "per household-day: {:.4} check-ins to residents, {:.4} texts to contacts ({:.4} about false alerts), {:.4} maintenance texts",
        evaluation.per_household_day(evaluation.resident_prompts),
        evaluation.per_household_day(evaluation.contact_texts),
        evaluation.per_household_day(evaluation.false_contact_texts),
        evaluation.per_household_day(evaluation.maintenance_texts)
    );
    out!(
        "false alerts that reached contacts: {:.4} per household-day",
        evaluation.per_household_day(evaluation.false_contact_alerts)
    );
    Ok(ExitCode::SUCCESS)
}
