//! Scoring alerts against ground truth: which incidents were found, how fast
//! the first action (a check-in to the resident or a text to a contact) and
//! the first text to a contact came, and how many alerts and texts households
//! without an incident got.
//!
//! Pure: the caller loads the alerts, texts and absences (`stillwater evaluate`
//! reads them from the database). Times are the gateway's: alerts open in
//! meter time, texts are queued on the gateway's clock — which, for an
//! accelerated simulation, must be the simulation's clock.
//!
//! Ground truth is JSON lines, one incident each:
//! `{"meter": "ZS-0001", "kind": "incapacitation", "start": "2026-11-23T08:00:00+08:00"}`,
//! with an optional `"end"` and, for trips, `"declared": true` when the
//! absence was declared.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How long after an incident starts an alert still counts as finding it.
pub const FIND_WITHIN_S: i64 = 72 * 3600;

/// One incident of the ground truth.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Incident {
    pub meter: String,
    pub kind: String,
    #[serde(deserialize_with = "rfc3339")]
    pub start: i64,
    #[serde(default, deserialize_with = "optional_rfc3339")]
    pub end: Option<i64>,
    #[serde(default)]
    pub declared: bool,
}

fn rfc3339<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let text = String::deserialize(d)?;
    chrono::DateTime::parse_from_rfc3339(&text)
        .map(|t| t.timestamp())
        .map_err(|e| serde::de::Error::custom(format!("{text:?} is not RFC 3339: {e}")))
}

fn optional_rfc3339<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    rfc3339(d).map(Some)
}

impl Incident {
    /// The alert kinds that find this incident; empty for incidents that are
    /// not emergencies (trips, hospital stays), during which any alert is false.
    pub fn found_by(&self) -> &'static [&'static str] {
        match self.kind.as_str() {
            "incapacitation" | "decline" => &["no_usage"],
            "shower_collapse" | "tap_running" => &["continuous_flow"],
            "burst" => &["continuous_flow", "high_usage", "leak"],
            "silent_meter" => &["meter_offline"],
            _ => &[],
        }
    }

    /// Whether the resident cannot answer a phone during it.
    pub fn helpless(&self) -> bool {
        matches!(self.kind.as_str(), "incapacitation" | "shower_collapse")
    }

    fn covers(&self, at: i64) -> bool {
        at >= self.start && at <= self.end.unwrap_or(self.start + FIND_WITHIN_S)
    }
}

/// An alert as the score needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoredAlert {
    pub id: i64,
    pub meter: String,
    pub kind: String,
    pub severity: String,
    /// Meter time.
    pub opened_at: i64,
    /// When it was resolved or closed; `None` while active.
    pub ended_at: Option<i64>,
}

/// Who a text went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Resident,
    Contact,
    Maintenance,
}

/// A text as the score needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoredText {
    pub alert: i64,
    pub to: Audience,
    /// The gateway's clock.
    pub queued_at: i64,
}

/// A declared absence: alerts inside it are counted apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredAbsence {
    pub meter: String,
    pub start: i64,
    pub end: i64,
}

/// The score of one kind of incident.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KindScore {
    pub incidents: usize,
    pub found: usize,
    /// Seconds from the incident's start to the alert opening (meter time).
    pub to_alert_s: Vec<i64>,
    /// … to the first action: a check-in or a text to a contact.
    pub to_first_action_s: Vec<i64>,
    /// … to the first text to a contact.
    pub to_contact_s: Vec<i64>,
    /// The incidents no alert found.
    pub missed: Vec<Missed>,
}

/// An incident no alert found: which meter, from when (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missed {
    pub meter: String,
    pub start: i64,
}

/// The whole score.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evaluation {
    pub household_days: f64,
    pub by_incident: BTreeMap<String, KindScore>,
    /// Alerts that match no incident, by `kind (severity)`.
    pub false_alerts: BTreeMap<String, usize>,
    /// Alerts that opened inside a declared absence (welfare alerts are silent
    /// there; leaks, faults and offline meters are not).
    pub during_absences: usize,
    pub resident_prompts: usize,
    pub contact_texts: usize,
    /// Texts to contacts about false alerts: what a monitoring team gets for nothing.
    pub false_contact_texts: usize,
    /// False alerts that reached a contact (at least one text): what the
    /// contacts' false-alarm rate counts, however many phones each went to.
    pub false_contact_alerts: usize,
    pub maintenance_texts: usize,
}

impl Evaluation {
    pub fn per_household_day(&self, n: usize) -> f64 {
        if self.household_days > 0.0 {
            n as f64 / self.household_days
        } else {
            0.0
        }
    }
}

/// Median and 95th percentile of a list of seconds, in hours.
pub fn median_and_p95_h(seconds: &[i64]) -> Option<(f64, f64)> {
    if seconds.is_empty() {
        return None;
    }
    let mut sorted = seconds.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64 / 3600.0;
    Some((at(0.5), at(0.95)))
}

/// Scores `alerts` and `texts` against `incidents` over `household_days`.
pub fn evaluate(
    incidents: &[Incident],
    alerts: &[ScoredAlert],
    texts: &[ScoredText],
    absences: &[DeclaredAbsence],
    household_days: f64,
) -> Evaluation {
    let mut evaluation = Evaluation {
        household_days,
        ..Evaluation::default()
    };
    let texts_of = |alert: i64| texts.iter().filter(move |t| t.alert == alert);
    let mut matched = std::collections::HashSet::new();
    for incident in incidents {
        let score = evaluation
            .by_incident
            .entry(incident.kind.clone())
            .or_default();
        score.incidents += 1;
        let found_by = incident.found_by();
        // An alert opening during the incident finds it; so does one already
        // open when it began (the resident was quiet before falling) that
        // acts — a check-in or a text to contacts — during it. The moment it
        // finds it is its opening, or that first action.
        let acts_during = |alert: &ScoredAlert| {
            texts_of(alert.id)
                .filter(|t| t.to != Audience::Maintenance && incident.covers(t.queued_at))
                .map(|t| t.queued_at)
                .min()
        };
        let finding = alerts
            .iter()
            .filter(|a| a.meter == incident.meter && found_by.contains(&a.kind.as_str()))
            .filter_map(|a| {
                if incident.covers(a.opened_at) {
                    Some((a, a.opened_at))
                } else if a.opened_at < incident.start
                    && a.ended_at.is_none_or(|end| end > incident.start)
                {
                    acts_during(a).map(|at| (a, at))
                } else {
                    None
                }
            })
            .min_by_key(|(_, at)| *at);
        // Every alert inside a non-emergency incident or matching this one is
        // accounted for here, not as a false alert elsewhere.
        for alert in alerts.iter().filter(|a| a.meter == incident.meter) {
            if !found_by.is_empty() && incident.covers(alert.opened_at) {
                matched.insert(alert.id);
            }
        }
        let Some((alert, found_at)) = finding else {
            if !found_by.is_empty() {
                score.missed.push(Missed {
                    meter: incident.meter.clone(),
                    start: incident.start,
                });
            }
            continue;
        };
        matched.insert(alert.id);
        score.found += 1;
        score.to_alert_s.push(found_at - incident.start);
        let first = |audiences: &[Audience]| {
            texts_of(alert.id)
                .filter(|t| audiences.contains(&t.to) && t.queued_at >= incident.start)
                .map(|t| t.queued_at)
                .min()
        };
        if let Some(at) = first(&[Audience::Resident, Audience::Contact]) {
            score.to_first_action_s.push(at - incident.start);
        }
        if let Some(at) = first(&[Audience::Contact]) {
            score.to_contact_s.push(at - incident.start);
        }
    }
    for text in texts {
        match text.to {
            Audience::Resident => evaluation.resident_prompts += 1,
            Audience::Contact => evaluation.contact_texts += 1,
            Audience::Maintenance => evaluation.maintenance_texts += 1,
        }
    }
    for alert in alerts.iter().filter(|a| !matched.contains(&a.id)) {
        let absent = absences
            .iter()
            .any(|a| a.meter == alert.meter && (a.start..a.end).contains(&alert.opened_at))
            || incidents.iter().any(|i| {
                i.declared
                    && i.meter == alert.meter
                    && i.found_by().is_empty()
                    && i.covers(alert.opened_at)
            });
        if absent {
            evaluation.during_absences += 1;
            continue;
        }
        *evaluation
            .false_alerts
            .entry(format!("{} ({})", alert.kind, alert.severity))
            .or_default() += 1;
        let to_contacts = texts_of(alert.id)
            .filter(|t| t.to == Audience::Contact)
            .count();
        evaluation.false_contact_texts += to_contacts;
        evaluation.false_contact_alerts += usize::from(to_contacts > 0);
    }
    evaluation
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_363_200;
    const HOUR: i64 = 3600;

    fn incident(meter: &str, kind: &str, start: i64) -> Incident {
        Incident {
            meter: meter.into(),
            kind: kind.into(),
            start,
            end: None,
            declared: false,
        }
    }

    fn alert(id: i64, meter: &str, kind: &str, severity: &str, opened_at: i64) -> ScoredAlert {
        ScoredAlert {
            id,
            meter: meter.into(),
            kind: kind.into(),
            severity: severity.into(),
            opened_at,
            ended_at: None,
        }
    }

    fn text(alert: i64, to: Audience, queued_at: i64) -> ScoredText {
        ScoredText {
            alert,
            to,
            queued_at,
        }
    }

    #[test]
    fn an_alert_already_open_when_the_resident_fell_finds_it_when_it_acts() {
        // A quiet evening opened a warning at T0 - 2 h; she fell at T0; the
        // warning went on to text her contacts at T0 + 5 h.
        let incidents = [
            incident("A", "incapacitation", T0),
            incident("B", "incapacitation", T0),
        ];
        let alerts = [
            alert(1, "A", "no_usage", "urgent", T0 - 2 * HOUR),
            // On B the quiet evening's warning ended before she fell: it finds nothing.
            ScoredAlert {
                ended_at: Some(T0 - HOUR),
                ..alert(2, "B", "no_usage", "warning", T0 - 3 * HOUR)
            },
        ];
        let texts = [
            text(1, Audience::Resident, T0 - 2 * HOUR),
            text(1, Audience::Contact, T0 + 5 * HOUR),
            text(2, Audience::Contact, T0 - 2 * HOUR),
        ];
        let score = evaluate(&incidents, &alerts, &texts, &[], 2.0);
        let found = &score.by_incident["incapacitation"];
        assert_eq!((found.incidents, found.found), (2, 1));
        assert_eq!(found.to_alert_s, [5 * HOUR]);
        assert_eq!(
            found.to_first_action_s,
            [5 * HOUR],
            "the check-in before she fell does not count"
        );
        assert_eq!(found.to_contact_s, [5 * HOUR]);
        assert_eq!(
            found.missed,
            [Missed {
                meter: "B".into(),
                start: T0
            }]
        );
        assert_eq!(
            score.false_alerts.values().sum::<usize>(),
            1,
            "B's warning was false"
        );
    }

    #[test]
    fn hand_made_cases_are_scored_as_a_person_would() {
        let incidents = [
            // Found: a warning with a check-in after 12 h, contacts after 13 h.
            incident("A", "incapacitation", T0),
            // Missed: nothing opened on B.
            incident("B", "incapacitation", T0),
            // A declared trip on D: its alert is counted apart.
            Incident {
                end: Some(T0 + 48 * HOUR),
                declared: true,
                ..incident("D", "trip", T0)
            },
        ];
        let alerts = [
            alert(1, "A", "no_usage", "warning", T0 + 12 * HOUR),
            // A false alert on C, texted to two contacts.
            alert(2, "C", "no_usage", "urgent", T0 + 30 * HOUR),
            alert(3, "D", "no_usage", "warning", T0 + 20 * HOUR),
            // An alert on A before its incident is false.
            alert(4, "A", "no_usage", "warning", T0 - 30 * HOUR),
        ];
        let texts = [
            text(1, Audience::Resident, T0 + 12 * HOUR + 60),
            text(1, Audience::Contact, T0 + 13 * HOUR),
            text(2, Audience::Contact, T0 + 30 * HOUR),
            text(2, Audience::Contact, T0 + 30 * HOUR),
            text(4, Audience::Resident, T0 - 30 * HOUR),
        ];
        let evaluation = evaluate(&incidents, &alerts, &texts, &[], 10.0);
        let score = &evaluation.by_incident["incapacitation"];
        assert_eq!((score.incidents, score.found), (2, 1));
        assert_eq!(score.to_alert_s, [12 * HOUR]);
        assert_eq!(score.to_first_action_s, [12 * HOUR + 60]);
        assert_eq!(score.to_contact_s, [13 * HOUR]);
        assert_eq!(evaluation.false_alerts["no_usage (urgent)"], 1);
        assert_eq!(evaluation.false_alerts["no_usage (warning)"], 1);
        assert_eq!(evaluation.during_absences, 1);
        assert_eq!(evaluation.false_contact_texts, 2);
        assert_eq!(evaluation.false_contact_alerts, 1);
        assert_eq!(
            (evaluation.resident_prompts, evaluation.contact_texts),
            (2, 3)
        );
        assert!((evaluation.per_household_day(2) - 0.2).abs() < 1e-9);
    }

    #[test]
    fn a_declared_absence_in_the_database_counts_an_alert_apart() {
        let alerts = [alert(1, "A", "no_usage", "urgent", T0 + HOUR)];
        let absences = [DeclaredAbsence {
            meter: "A".into(),
            start: T0,
            end: T0 + 2 * HOUR,
        }];
        let evaluation = evaluate(&[], &alerts, &[], &absences, 1.0);
        assert_eq!(evaluation.during_absences, 1);
        assert!(evaluation.false_alerts.is_empty());
    }

    #[test]
    fn truth_lines_read_as_written() {
        let line = r#"{"meter": "ZS-0001", "kind": "trip", "start": "2026-11-23T08:00:00+08:00", "end": "2026-11-24T08:00:00+08:00", "declared": true}"#;
        let incident: Incident = serde_json::from_str(line).unwrap();
        assert_eq!(incident.start, 1_795_392_000);
        assert_eq!(incident.end, Some(1_795_392_000 + 86_400));
        assert!(incident.declared && incident.found_by().is_empty());
        assert!(serde_json::from_str::<Incident>(
            r#"{"meter": "A", "kind": "x", "start": "yesterday"}"#
        )
        .is_err());
        assert_eq!(median_and_p95_h(&[3600, 7200, 36_000]), Some((2.0, 10.0)));
    }
}
