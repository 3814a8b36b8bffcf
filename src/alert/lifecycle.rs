//! The alert lifecycle as pure decisions: from what is known at one moment to
//! the list of [`Change`]s the engine applies in one transaction.
//!
//! Nothing here reads the clock or the store. [`on_reading`] judges one
//! evaluation point (an [`Assessment`] in event time, with the wall time it is
//! judged at); [`on_timer`] judges one open alert at a wall time (check-in
//! wait, escalation, reminders); [`offline`] judges a silent meter.
//!
//! Rules, in one place:
//! - one active alert per (meter, kind); re-detection updates it;
//! - a welfare alert resolves as soon as its condition is absent; a maintenance
//!   alert (leak, device fault) only once it has stayed absent for its hold, so a
//!   flag that comes and goes keeps one alert open instead of opening many;
//! - a declared absence silences new welfare alerts;
//! - `no_usage` asks the resident first when the household has a check-in phone
//!   (at most `check_ins_per_day`); an answered check-in covers the quiet stretch
//!   at the grade it answered, for at most a day: quiet that goes on asks
//!   again (someone fine at noon may fall at two); an unanswered one always
//!   goes to the contacts;
//! - a warning texts the contacts only when `notify_warning`; an urgent
//!   `no_usage` texts every step at once, also when it was an acknowledged
//!   warning; other kinds start at step 1 and
//!   escalate a step each `escalate_after`; everyone texted is reminded each
//!   `repeat_after` until someone acknowledges;
//! - an acknowledged `no_usage` alert gives way to a new one (it resolves
//!   without a "resolved" text) when a quiet stretch begun after the
//!   acknowledgement is itself abnormal;
//! - maintenance texts about one meter are capped per day.
//!
//! Longer than our usual files on purpose: every rule of the lifecycle is here,
//! so what happens to an alert can be read in one place.

use crate::config::{AlertsConfig, RulesConfig};
use crate::detect::{Assessment, Condition, Kind, Severity};
use crate::notify::templates::Purpose;
use crate::store::engine::{ActiveAlert, HouseholdInfo};

/// Kinds judged from readings (`meter_offline` is judged from the wall clock).
pub const READING_KINDS: [Kind; 6] = [
    Kind::NoUsage,
    Kind::ContinuousFlow,
    Kind::Leak,
    Kind::HighUsage,
    Kind::DeviceFault,
    Kind::ReadingsLost,
];

/// How often an unacknowledged maintenance alert is reminded, at most.
pub const MAINTENANCE_REMINDER_S: i64 = 86_400;

/// The lifecycle's settings, in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub notify_warning: bool,
    pub check_in_wait_s: i64,
    pub escalate_after_s: i64,
    pub repeat_after_s: i64,
    pub leak_hold_s: i64,
    pub device_fault_hold_s: i64,
    /// `readings_lost`: the share of a day's readings that may go missing,
    /// in thousandths.
    pub readings_lost_permille: u32,
    /// `meter_offline`: the least silence that counts, whatever the interval.
    pub offline_at_least_s: i64,
    pub check_ins_per_day: u32,
    pub maintenance_texts_per_day: u32,
    /// Whether any maintenance phone is configured.
    pub maintenance_phones: bool,
}

impl Settings {
    pub fn new(alerts: &AlertsConfig, rules: &RulesConfig) -> Self {
        let secs = |d: std::time::Duration| d.as_secs() as i64;
        Self {
            notify_warning: alerts.notify_warning,
            check_in_wait_s: secs(alerts.check_in_wait),
            escalate_after_s: secs(alerts.escalate_after),
            repeat_after_s: secs(alerts.repeat_after),
            leak_hold_s: secs(alerts.leak_hold),
            device_fault_hold_s: secs(alerts.device_fault_hold),
            readings_lost_permille: (alerts.readings_lost_share * 1000.0).round() as u32,
            offline_at_least_s: rules.offline_at_least_s,
            check_ins_per_day: alerts.check_ins_per_day,
            maintenance_texts_per_day: alerts.maintenance_texts_per_day,
            maintenance_phones: !alerts.maintenance.is_empty(),
        }
    }

    /// The silence after which a meter reading every `interval_min` minutes
    /// is offline: three intervals, and at least `offline_at_least_s`.
    pub fn offline_after_s(&self, interval_min: u32) -> i64 {
        (3 * 60 * i64::from(interval_min)).max(self.offline_at_least_s)
    }

    /// How long a kind's condition must stay absent before its alert resolves.
    pub fn hold_s(&self, kind: Kind) -> i64 {
        match kind {
            Kind::Leak => self.leak_hold_s,
            // A lossy link comes and goes: held as long as a faulty device.
            Kind::DeviceFault | Kind::ReadingsLost => self.device_fault_hold_s,
            _ => 0,
        }
    }
}

/// Kinds a reading that arrives late can still open: what it shows happened
/// then, whatever the readings after it say.
pub const LATE_KINDS: [Kind; 3] = [Kind::ContinuousFlow, Kind::HighUsage, Kind::DeviceFault];

/// A reading that arrived after detection had passed its time (an NB-IoT
/// batch behind a newer stream reading), judged at its own time: it can open
/// an alert of a [`LATE_KINDS`] kind that is not active, and changes nothing
/// else — the readings after it were judged already, and the next reading
/// judged sees it in its history (the engine judges the newest reading again
/// when nothing newer came, so a quiet stretch the batch shows is not left
/// waiting).
pub fn on_late_reading(
    active: &[ActiveAlert],
    assessment: &Assessment,
    facts: &Facts<'_>,
    settings: &Settings,
    wall: i64,
) -> Vec<Change> {
    let conditions: Vec<Condition> = assessment
        .conditions
        .iter()
        .filter(|c| {
            LATE_KINDS.contains(&c.kind()) && !active.iter().any(|a| kind_of(a) == Some(c.kind()))
        })
        .cloned()
        .collect();
    if conditions.is_empty() {
        return Vec::new();
    }
    let late = Assessment {
        conditions,
        ..assessment.clone()
    };
    on_reading(&[], &late, facts, settings, wall)
        .into_iter()
        .filter(|change| !matches!(change, Change::EndCover))
        .collect()
}

/// Adds `readings_lost` to `assessment` when the household's meter has lost
/// more of the day's readings than `settings` allow (judged from the readings
/// and the meter's schedule; the detectors do not know the schedule).
pub fn add_readings_lost(
    assessment: &mut Assessment,
    readings: &[crate::domain::StoredReading],
    at: usize,
    household: &HouseholdInfo,
    settings: &Settings,
) {
    let share = f64::from(settings.readings_lost_permille) / 1000.0;
    let interval_min = household.reporting_interval_min;
    let offline_s = settings.offline_after_s(interval_min);
    if let Some(lost) = crate::detect::readings_lost(readings, at, interval_min, share, offline_s) {
        assessment.conditions.push(lost);
    }
}

/// Whether judging `assessment` can open an alert: a condition holds whose
/// kind has no active alert, or only one that [`renews`]. Only then does
/// [`on_reading`] read the absence and the day's text counts of its
/// [`Facts`], so callers may skip loading them.
pub fn may_open(active: &[ActiveAlert], assessment: &Assessment) -> bool {
    assessment.conditions.iter().any(|c| {
        !active
            .iter()
            .any(|a| kind_of(a) == Some(c.kind()) && !renews(a, assessment))
    })
}

/// An acknowledged `no_usage` alert gives way to a new one when the
/// household's routine finds a quiet stretch abnormal that began after the
/// acknowledgement: someone took the first silence in hand, but water was
/// used since (the resident came back from a stay, used a little — less than
/// the fixed rule's `min_litres`, so its quiet never ended — and fell). A
/// silence that simply goes on stays with whoever acknowledged it.
pub fn renews(alert: &ActiveAlert, assessment: &Assessment) -> bool {
    kind_of(alert) == Some(Kind::NoUsage)
        && alert.state == "acknowledged"
        && alert
            .acknowledged_at
            .zip(assessment.abnormal_quiet_since)
            .is_some_and(|(acknowledged, quiet_since)| quiet_since > acknowledged)
}

/// How long a resident's answer covers a quiet stretch: past this, quiet that
/// has gone on asks again.
pub const COVER_S: i64 = 24 * 3600;

/// The cover an answer given at `answered_at` gives at `now`: its grade, for
/// [`COVER_S`].
pub fn cover(grade: Option<Severity>, answered_at: i64, now: i64) -> Option<Severity> {
    grade.filter(|_| now - answered_at < COVER_S)
}

/// What is known about a meter at an evaluation point, besides its alerts.
/// `absent`, `check_ins_today` and `maintenance_texts_today` are read only
/// when [`may_open`] holds.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub household: &'a HouseholdInfo,
    /// A declared absence covers the evaluation point.
    pub absent: bool,
    /// The grade an answered check-in covers, while its quiet stretch lasts
    /// and for at most [`COVER_S`] after the answer (see [`cover`]).
    pub cover: Option<Severity>,
    /// Check-in texts to this resident in the last 24 h.
    pub check_ins_today: u32,
    /// Maintenance texts about this meter in the last 24 h.
    pub maintenance_texts_today: u32,
}

/// The alert a change is about: one already stored, or the n-th opened by
/// this same list of changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Stored(i64),
    Opened(usize),
}

/// Who a text goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipients {
    /// The household's check-in phone.
    Resident,
    /// The household's contacts with `above < step <= up_to`.
    Contacts { above: u32, up_to: u32 },
    /// The configured maintenance phones.
    Maintenance,
    /// Everyone texted about the alert so far (not the resident).
    AlreadyTexted,
}

/// What a text says besides who it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextFacts {
    /// When the condition began (event time, Unix seconds).
    pub since: i64,
    pub hours: i64,
    pub litres: i64,
    pub flags: String,
    /// Why the household's routine found it (learned `no_usage` only).
    pub habit: Option<crate::detect::Habit>,
}

/// One thing the engine is to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Open {
        kind: Kind,
        severity: Severity,
        since: i64,
        opened_at: i64,
        channel: &'static str,
        detail: String,
    },
    /// The condition was seen again at `at` (event time).
    Detected {
        alert: Target,
        severity: Severity,
        at: i64,
        detail: String,
    },
    /// Starts (`Some`, event time) or cancels (`None`) an alert's hold.
    Hold {
        alert: Target,
        clear_since: Option<i64>,
    },
    Resolve {
        alert: Target,
        channel: &'static str,
    },
    Event {
        alert: Target,
        channel: &'static str,
        action: &'static str,
        detail: String,
    },
    Text {
        alert: Target,
        kind: Kind,
        purpose: Purpose,
        to: Recipients,
        facts: TextFacts,
    },
    /// The n-th reminder to everyone texted so far.
    Reminder { alert: Target, kind: Kind, n: u32 },
    Notified {
        alert: Target,
        step: u32,
        reminders: u32,
        check_in_until: Option<i64>,
    },
    /// The meter's answered check-in no longer covers anything.
    EndCover,
}

fn kind_of(alert: &ActiveAlert) -> Option<Kind> {
    Kind::parse(&alert.kind)
}

fn severity_of(alert: &ActiveAlert) -> Severity {
    Severity::parse(&alert.severity).unwrap_or(Severity::Warning)
}

/// What an alert's history says about a condition.
pub fn describe(condition: &Condition, at: i64, background_mlph: i64) -> String {
    match condition {
        Condition::NoUsage {
            severity,
            since,
            used_l,
            habit,
        } => {
            let quiet = (at - since.secs()).max(0);
            let why = match habit {
                None => String::new(),
                Some(crate::detect::Habit::NotUpYet { usual_by_min }) => format!(
                    "; not up yet: usually uses water by {:02}:{:02}",
                    usual_by_min / 60,
                    usual_by_min % 60
                ),
                Some(crate::detect::Habit::Rare { once_in_days }) => format!(
                    "; by its routine this home is this quiet at this time about once in {once_in_days} days"
                ),
            };
            format!(
                "{} L used in {}h{:02}m of quiet (background {:.1} L/h){why}; {}",
                used_l,
                quiet / 3600,
                quiet % 3600 / 60,
                background_mlph as f64 / 1000.0,
                severity.as_str()
            )
        }
        Condition::ContinuousFlow { since, litres } => format!(
            "{litres} L in {} min of continuous flow",
            (at - since.secs()) / 60
        ),
        Condition::Leak { since, litres } => format!(
            "{litres} L, some in every hour for {} h",
            (at - since.secs()) / 3600
        ),
        Condition::HighUsage { litres, .. } => format!("{litres} L in 24 h"),
        Condition::DeviceFault { flags } => format!("meter reports {flags}"),
        Condition::ReadingsLost { received, expected } => {
            format!("{received} of the {expected} readings of the last 24 h arrived")
        }
    }
}

fn text_facts(condition: &Condition, at: i64) -> TextFacts {
    let habit = match condition {
        Condition::NoUsage { habit, .. } => *habit,
        _ => None,
    };
    let (since, litres, flags) = match condition {
        Condition::NoUsage { since, used_l, .. } => (since.secs(), *used_l, String::new()),
        Condition::ContinuousFlow { since, litres }
        | Condition::Leak { since, litres }
        | Condition::HighUsage { since, litres } => (since.secs(), *litres, String::new()),
        Condition::DeviceFault { flags } => (at, 0, flags.to_string()),
        Condition::ReadingsLost { received, expected } => {
            (at - 86_400, 0, format!("{received}/{expected}"))
        }
    };
    TextFacts {
        since,
        hours: (at - since).max(0) / 3600,
        litres,
        flags,
        habit,
    }
}

/// The changes one evaluation point causes. `active` are the meter's open and
/// acknowledged alerts; `wall` is the wall time it is judged at.
pub fn on_reading(
    active: &[ActiveAlert],
    assessment: &Assessment,
    facts: &Facts<'_>,
    settings: &Settings,
    wall: i64,
) -> Vec<Change> {
    let at = assessment.at.secs();
    let mut changes = Vec::new();
    let find = |kind: Kind| active.iter().find(|a| kind_of(a) == Some(kind));
    // A valid reading: the meter reports again.
    if let Some(offline) = find(Kind::MeterOffline) {
        let alert = Target::Stored(offline.id);
        changes.extend(resolution(
            alert,
            Kind::MeterOffline,
            "the meter reports again",
            wall,
        ));
    }
    let no_usage = assessment.condition(Kind::NoUsage);
    if no_usage.is_none() && facts.cover.is_some() {
        changes.push(Change::EndCover);
    }
    let mut opened = 0;
    for kind in READING_KINDS {
        let condition = assessment.condition(kind);
        let mut existing = find(kind);
        if let (Some(_), Some(old)) = (condition, existing) {
            if renews(old, assessment) {
                let alert = Target::Stored(old.id);
                changes.push(Change::Resolve {
                    alert,
                    channel: "detector",
                });
                changes.push(event(
                    alert,
                    "detector",
                    "renewed",
                    "water was used after it was acknowledged, and a new quiet stretch is abnormal; a new alert asks again",
                ));
                existing = None;
            }
        }
        match (condition, existing) {
            (Some(condition), None) => {
                if kind.is_welfare() && facts.absent {
                    continue; // a declared absence silences welfare alerts
                }
                let severity = condition.severity();
                if kind == Kind::NoUsage && facts.cover.is_some_and(|c| c >= severity) {
                    continue; // the resident answered for this quiet stretch
                }
                let alert = Target::Opened(opened);
                opened += 1;
                let detail = describe(condition, at, assessment.background_mlph);
                changes.push(Change::Open {
                    kind,
                    severity,
                    since: text_facts(condition, at).since,
                    opened_at: at,
                    channel: "detector",
                    detail,
                });
                let text = text_facts(condition, at);
                if kind.is_welfare() {
                    welfare_texts(
                        &mut changes,
                        alert,
                        kind,
                        severity,
                        None,
                        facts,
                        settings,
                        text,
                        wall,
                        false,
                    );
                } else {
                    maintenance_texts(&mut changes, alert, kind, facts, settings, text);
                }
            }
            (Some(condition), Some(existing)) => {
                let alert = Target::Stored(existing.id);
                let severity = condition.severity().max(severity_of(existing));
                if existing.clear_since.is_some() {
                    changes.push(Change::Hold {
                        alert,
                        clear_since: None,
                    });
                    changes.push(event(
                        alert,
                        "detector",
                        "recurred",
                        "seen again within the hold",
                    ));
                }
                changes.push(Change::Detected {
                    alert,
                    severity,
                    at,
                    detail: describe(condition, at, assessment.background_mlph),
                });
                let upgraded =
                    severity_of(existing) == Severity::Warning && severity == Severity::Urgent;
                // While the resident's check-in is pending, the timer texts
                // the contacts. An acknowledged warning that turns urgent is
                // news to every contact, the one who acknowledged it too: it
                // stays acknowledged (someone is on it), and everyone hears.
                let renotified;
                let existing = if existing.state == "acknowledged" {
                    renotified = ActiveAlert {
                        notified_step: 0,
                        ..existing.clone()
                    };
                    &renotified
                } else {
                    existing
                };
                if upgraded && existing.check_in_until.is_none() {
                    changes.push(event(
                        alert,
                        "detector",
                        "urgent",
                        "no use for the urgent window",
                    ));
                    welfare_texts(
                        &mut changes,
                        alert,
                        kind,
                        severity,
                        Some(existing),
                        facts,
                        settings,
                        text_facts(condition, at),
                        wall,
                        false,
                    );
                }
            }
            (None, Some(existing)) => {
                let alert = Target::Stored(existing.id);
                let hold = settings.hold_s(kind);
                match existing.clear_since {
                    _ if hold == 0 => {}
                    None => {
                        changes.push(Change::Hold {
                            alert,
                            clear_since: Some(at),
                        });
                        changes.push(event(
                            alert,
                            "detector",
                            "clearing",
                            &format!(
                                "not seen; resolves if still absent after {}",
                                crate::domain::format_duration(hold)
                            ),
                        ));
                        continue;
                    }
                    Some(clear_since) if at - clear_since < hold => continue,
                    Some(_) => {}
                }
                changes.extend(resolution(alert, kind, "the condition cleared", wall));
            }
            (None, None) => {}
        }
    }
    changes
}

/// The changes an open alert's timer causes at wall time `now`.
pub fn on_timer(
    alert: &ActiveAlert,
    household: &HouseholdInfo,
    settings: &Settings,
    now: i64,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let Some(kind) = kind_of(alert) else {
        return changes;
    };
    let target = Target::Stored(alert.id);
    let facts = TextFacts {
        since: alert.since,
        hours: (now - alert.since).max(0) / 3600,
        litres: 0,
        flags: String::new(),
        habit: None,
    };
    if let Some(until) = alert.check_in_until {
        if now < until {
            return changes;
        }
        // Silence from someone who was asked is itself evidence: the contacts
        // are told, whatever the grade.
        changes.push(event(
            target,
            "timer",
            "check_in_unanswered",
            "the resident did not reply; texting the contacts",
        ));
        changes.push(Change::Notified {
            alert: target,
            step: 0,
            reminders: 0,
            check_in_until: None,
        });
        let fresh = ActiveAlert {
            check_in_until: None,
            ..alert.clone()
        };
        let situation = Facts {
            household,
            absent: false,
            cover: None,
            check_ins_today: 0,
            maintenance_texts_today: 0,
        };
        welfare_texts(
            &mut changes,
            target,
            kind,
            severity_of(alert),
            Some(&fresh),
            &situation,
            settings,
            facts,
            now,
            true,
        );
        return changes;
    }
    if alert.notified_step == 0 {
        return changes; // recorded and shown only
    }
    let last = alert.last_notified_at.unwrap_or(now);
    let next_step = household
        .contacts
        .iter()
        .map(|c| c.0)
        .filter(|step| *step > alert.notified_step)
        .min();
    if let (true, Some(step)) = (kind.is_welfare(), next_step) {
        if now - last >= settings.escalate_after_s {
            changes.push(Change::Text {
                alert: target,
                kind,
                purpose: Purpose::Alert,
                to: Recipients::Contacts {
                    above: step - 1,
                    up_to: step,
                },
                facts,
            });
            changes.push(Change::Notified {
                alert: target,
                step,
                reminders: alert.reminders,
                check_in_until: None,
            });
            changes.push(event(
                target,
                "escalation",
                "escalated",
                &format!("step {step}"),
            ));
        }
        return changes;
    }
    // Maintenance is reminded at most daily: a leak left for a week must not
    // become dozens of texts.
    let repeat_after = if kind.is_welfare() {
        settings.repeat_after_s
    } else {
        settings.repeat_after_s.max(MAINTENANCE_REMINDER_S)
    };
    if now - last >= repeat_after {
        let n = alert.reminders + 1;
        changes.push(Change::Reminder {
            alert: target,
            kind,
            n,
        });
        changes.push(Change::Notified {
            alert: target,
            step: alert.notified_step,
            reminders: n,
            check_in_until: None,
        });
        changes.push(event(
            target,
            "escalation",
            "reminded",
            &format!("reminder {n}"),
        ));
    }
    changes
}

/// How long a registered meter has been silent (wall clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Silence {
    pub silent_s: i64,
    /// The meter's reporting interval.
    pub interval_min: u32,
    /// Its newest reading's receipt (or now, if it never reported).
    pub since: i64,
    pub never_reported: bool,
}

/// The changes opening a silent meter's `meter_offline` alert once it has been
/// silent for [`Settings::offline_after_s`]; none before.
pub fn offline(silence: &Silence, facts: &Facts<'_>, settings: &Settings, now: i64) -> Vec<Change> {
    let mut changes = Vec::new();
    let since = silence.since;
    if silence.silent_s < settings.offline_after_s(silence.interval_min) {
        return changes;
    }
    let detail = if silence.never_reported {
        "no reading since registration"
    } else {
        "no valid reading"
    };
    changes.push(Change::Open {
        kind: Kind::MeterOffline,
        severity: Severity::Maintenance,
        since,
        opened_at: now,
        channel: "timer",
        detail: detail.to_string(),
    });
    let facts_text = TextFacts {
        since,
        hours: (now - since).max(0) / 3600,
        litres: 0,
        flags: String::new(),
        habit: None,
    };
    maintenance_texts(
        &mut changes,
        Target::Opened(0),
        Kind::MeterOffline,
        facts,
        settings,
        facts_text,
    );
    changes
}

fn event(alert: Target, channel: &'static str, action: &'static str, detail: &str) -> Change {
    Change::Event {
        alert,
        channel,
        action,
        detail: detail.to_string(),
    }
}

/// An alert resolving by itself: the change, its history line, and the
/// "resolved" text to everyone who was texted.
fn resolution(alert: Target, kind: Kind, why: &str, wall: i64) -> [Change; 3] {
    [
        Change::Resolve {
            alert,
            channel: "detector",
        },
        event(alert, "detector", "resolved", why),
        resolved_text(alert, kind, wall),
    ]
}

fn resolved_text(alert: Target, kind: Kind, wall: i64) -> Change {
    Change::Text {
        alert,
        kind,
        purpose: Purpose::Resolved,
        to: Recipients::AlreadyTexted,
        facts: TextFacts {
            since: wall,
            hours: 0,
            litres: 0,
            flags: String::new(),
            habit: None,
        },
    }
}

/// The first texts of a welfare alert (or of one that became urgent): the
/// resident's check-in, or the contacts. `existing` is the alert as stored when
/// it was open before; `force` texts the contacts even for a warning (an
/// unanswered check-in).
#[allow(clippy::too_many_arguments)]
fn welfare_texts(
    changes: &mut Vec<Change>,
    alert: Target,
    kind: Kind,
    severity: Severity,
    existing: Option<&ActiveAlert>,
    facts: &Facts<'_>,
    settings: &Settings,
    text: TextFacts,
    wall: i64,
    force: bool,
) {
    let household = facts.household;
    if existing.is_none() && kind == Kind::NoUsage && household.check_in_phone.is_some() {
        if facts.check_ins_today < settings.check_ins_per_day {
            changes.push(Change::Text {
                alert,
                kind,
                purpose: Purpose::CheckIn,
                to: Recipients::Resident,
                facts: text,
            });
            changes.push(Change::Notified {
                alert,
                step: 0,
                reminders: 0,
                check_in_until: Some(wall + settings.check_in_wait_s),
            });
            changes.push(event(
                alert,
                "detector",
                "check_in",
                "asked the resident to reply",
            ));
            return;
        }
        changes.push(event(
            alert,
            "detector",
            "check_in_skipped",
            &format!(
                "the resident was asked {} times in 24 h; texting the contacts",
                facts.check_ins_today
            ),
        ));
    } else if severity == Severity::Warning && !settings.notify_warning && !force {
        return; // recorded and shown; contacts are texted when it becomes urgent
    }
    contact_texts(changes, alert, kind, severity, existing, household, text);
}

/// Texts the contacts not yet texted, up to the first step (or every step for
/// an urgent `no_usage`).
fn contact_texts(
    changes: &mut Vec<Change>,
    alert: Target,
    kind: Kind,
    severity: Severity,
    existing: Option<&ActiveAlert>,
    household: &HouseholdInfo,
    text: TextFacts,
) {
    let urgent = kind == Kind::NoUsage && severity == Severity::Urgent;
    let already = existing.map_or(0, |alert| alert.notified_step);
    let steps = household.contacts.iter().map(|c| c.0);
    let (first, last) = (steps.clone().min(), steps.max());
    let (Some(first), Some(last)) = (first, last) else {
        return;
    };
    let up_to = if urgent { last } else { first };
    if up_to <= already {
        return;
    }
    changes.push(Change::Text {
        alert,
        kind,
        purpose: Purpose::Alert,
        to: Recipients::Contacts {
            above: already,
            up_to,
        },
        facts: text,
    });
    changes.push(Change::Notified {
        alert,
        step: up_to,
        reminders: existing.map_or(0, |alert| alert.reminders),
        check_in_until: None,
    });
    changes.push(event(
        alert,
        "detector",
        "notified",
        &format!("steps up to {up_to}"),
    ));
}

fn maintenance_texts(
    changes: &mut Vec<Change>,
    alert: Target,
    kind: Kind,
    facts: &Facts<'_>,
    settings: &Settings,
    text: TextFacts,
) {
    if !settings.maintenance_phones {
        changes.push(event(
            alert,
            "detector",
            "not_notified",
            "no [alerts] maintenance phones configured",
        ));
        return;
    }
    if facts.maintenance_texts_today >= settings.maintenance_texts_per_day {
        changes.push(event(
            alert,
            "detector",
            "not_notified",
            &format!(
                "{} maintenance texts about this meter in 24 h already (maintenance_texts_per_day)",
                facts.maintenance_texts_today
            ),
        ));
        return;
    }
    changes.push(Change::Text {
        alert,
        kind,
        purpose: Purpose::Alert,
        to: Recipients::Maintenance,
        facts: text,
    });
    changes.push(Change::Notified {
        alert,
        step: 1,
        reminders: 0,
        check_in_until: None,
    });
}

/// A household for tests: two contacts, and a check-in phone if asked.
#[cfg(test)]
pub(crate) fn test_household(check_in: bool) -> HouseholdInfo {
    HouseholdInfo {
        id: 1,
        resident_name: "张桂芳".into(),
        address: "民生路12号".into(),
        category: "elderly_alone".into(),
        timezone: "Asia/Shanghai".into(),
        reporting_interval_min: 60,
        check_in_phone: check_in.then(|| "+8613500135000".to_string()),
        contacts: vec![
            (1, "李敏".into(), "+8613800138000".into()),
            (2, "张伟".into(), "+8613900139000".into()),
        ],
    }
}

#[cfg(test)]
mod tests;
