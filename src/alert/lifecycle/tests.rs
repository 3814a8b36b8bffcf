//! The lifecycle's decisions, without a database or a clock.

use super::*;
use crate::detect::Condition;
use crate::domain::{StatusFlag, StatusFlags, Timestamp};

const AT: i64 = 1_795_400_000;
const HOUR: i64 = 3600;

/// A text to the first escalation step.
const STEP_ONE: (Purpose, Recipients) =
    (Purpose::Alert, Recipients::Contacts { above: 0, up_to: 1 });

fn household(check_in: bool) -> HouseholdInfo {
    test_household(check_in)
}

fn settings() -> Settings {
    let config = crate::config::Config::default_config();
    Settings::new(&config.alerts, &config.rules)
}

fn facts(household: &HouseholdInfo) -> Facts<'_> {
    Facts {
        household,
        absent: false,
        cover: None,
        check_ins_today: 0,
        maintenance_texts_today: 0,
    }
}

fn quiet(severity: Severity, hours: i64) -> Assessment {
    Assessment {
        at: Timestamp::from_secs(AT),
        background_mlph: 0,
        conditions: vec![Condition::NoUsage {
            severity,
            since: Timestamp::from_secs(AT - hours * HOUR),
            used_l: 0,
            habit: None,
        }],
        abnormal_quiet_since: None,
    }
}

fn nothing(at: i64) -> Assessment {
    Assessment {
        at: Timestamp::from_secs(at),
        background_mlph: 0,
        conditions: Vec::new(),
        abnormal_quiet_since: None,
    }
}

fn leak(at: i64) -> Assessment {
    Assessment {
        at: Timestamp::from_secs(at),
        background_mlph: 2000,
        conditions: vec![Condition::Leak {
            since: Timestamp::from_secs(at - 24 * HOUR),
            litres: 50,
        }],
        abnormal_quiet_since: None,
    }
}

fn active(id: i64, kind: Kind, severity: Severity) -> ActiveAlert {
    ActiveAlert {
        id,
        meter_id: "ZS-0001".into(),
        household_id: Some(1),
        kind: kind.as_str().into(),
        severity: severity.as_str().into(),
        state: "open".into(),
        since: AT - 12 * HOUR,
        opened_at: AT - HOUR,
        notified_step: 0,
        last_notified_at: None,
        reminders: 0,
        check_in_until: None,
        clear_since: None,
        acknowledged_at: None,
    }
}

fn texts(changes: &[Change]) -> Vec<(Purpose, Recipients)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Text { purpose, to, .. } => Some((*purpose, *to)),
            _ => None,
        })
        .collect()
}

fn opens(changes: &[Change]) -> usize {
    changes
        .iter()
        .filter(|c| matches!(c, Change::Open { .. }))
        .count()
}

#[test]
fn a_quiet_home_with_a_check_in_phone_asks_the_resident_first() {
    let home = household(true);
    let changes = on_reading(
        &[],
        &quiet(Severity::Warning, 12),
        &facts(&home),
        &settings(),
        AT,
    );
    assert_eq!(opens(&changes), 1);
    assert_eq!(texts(&changes), [(Purpose::CheckIn, Recipients::Resident)]);
    let wait = settings().check_in_wait_s;
    assert!(changes.contains(&Change::Notified {
        alert: Target::Opened(0),
        step: 0,
        reminders: 0,
        check_in_until: Some(AT + wait),
    }));
    // The prompt says how long the quiet has lasted, never "0 hours".
    let hours = changes.iter().find_map(|c| match c {
        Change::Text { facts, .. } => Some(facts.hours),
        _ => None,
    });
    assert_eq!(hours, Some(12));
}

#[test]
fn an_answered_check_in_covers_its_quiet_stretch_until_the_next_grade() {
    let home = household(true);
    let mut covered = facts(&home);
    covered.cover = Some(Severity::Warning);
    let settings = settings();
    let warning = on_reading(&[], &quiet(Severity::Warning, 13), &covered, &settings, AT);
    assert!(
        warning.is_empty(),
        "no new prompt for the same quiet stretch: {warning:?}"
    );
    let urgent = on_reading(&[], &quiet(Severity::Urgent, 24), &covered, &settings, AT);
    assert_eq!(opens(&urgent), 1, "the evidence grew to the next grade");
    // Use resumes: the cover ends.
    let resumed = on_reading(&[], &nothing(AT), &covered, &settings, AT);
    assert_eq!(resumed, [Change::EndCover]);
}

#[test]
fn a_resident_is_prompted_at_most_check_ins_per_day_then_the_contacts_are_told() {
    let home = household(true);
    let mut asked = facts(&home);
    let settings = settings();
    asked.check_ins_today = settings.check_ins_per_day;
    let changes = on_reading(&[], &quiet(Severity::Warning, 12), &asked, &settings, AT);
    assert_eq!(texts(&changes), [STEP_ONE]);
}

#[test]
fn an_unanswered_check_in_goes_to_the_contacts_even_for_a_warning() {
    let home = household(true);
    let settings = settings();
    assert!(!settings.notify_warning);
    let mut alert = active(7, Kind::NoUsage, Severity::Warning);
    alert.check_in_until = Some(AT);
    assert!(
        on_timer(&alert, &home, &settings, AT - 1).is_empty(),
        "still waiting"
    );
    let changes = on_timer(&alert, &home, &settings, AT);
    assert_eq!(texts(&changes), [STEP_ONE]);
    assert!(changes.iter().any(|c| matches!(
        c,
        Change::Event {
            action: "check_in_unanswered",
            ..
        }
    )));
    // Urgent by then: every step at once.
    alert.severity = "urgent".into();
    let changes = on_timer(&alert, &home, &settings, AT);
    assert_eq!(
        texts(&changes),
        [(Purpose::Alert, Recipients::Contacts { above: 0, up_to: 2 })]
    );
}

#[test]
fn a_warning_without_check_in_texts_nobody_unless_notify_warning() {
    let home = household(false);
    let mut settings = settings();
    let changes = on_reading(
        &[],
        &quiet(Severity::Warning, 12),
        &facts(&home),
        &settings,
        AT,
    );
    assert_eq!(opens(&changes), 1);
    assert!(texts(&changes).is_empty());
    settings.notify_warning = true;
    let changes = on_reading(
        &[],
        &quiet(Severity::Warning, 12),
        &facts(&home),
        &settings,
        AT,
    );
    assert_eq!(texts(&changes), [STEP_ONE]);
}

#[test]
fn a_maintenance_alert_waits_out_its_hold_before_it_resolves() {
    let home = household(false);
    let settings = settings();
    let hold = settings.leak_hold_s;
    let open = active(3, Kind::Leak, Severity::Maintenance);
    // The leak is not seen: the hold starts, nothing resolves.
    let changes = on_reading(
        std::slice::from_ref(&open),
        &nothing(AT),
        &facts(&home),
        &settings,
        AT,
    );
    assert!(changes.contains(&Change::Hold {
        alert: Target::Stored(3),
        clear_since: Some(AT),
    }));
    assert!(!changes.iter().any(|c| matches!(c, Change::Resolve { .. })));
    let mut holding = open.clone();
    holding.clear_since = Some(AT);
    // Seen again within the hold: the same alert carries on, no new one, no text.
    let changes = on_reading(
        &[holding.clone()],
        &leak(AT + HOUR),
        &facts(&home),
        &settings,
        AT,
    );
    assert_eq!(opens(&changes), 0);
    assert!(texts(&changes).is_empty());
    assert!(changes.contains(&Change::Hold {
        alert: Target::Stored(3),
        clear_since: None,
    }));
    // Still absent, one second short of the hold, then at it.
    let short = on_reading(
        &[holding.clone()],
        &nothing(AT + hold - 1),
        &facts(&home),
        &settings,
        AT,
    );
    assert!(short.is_empty(), "{short:?}");
    let done = on_reading(
        &[holding],
        &nothing(AT + hold),
        &facts(&home),
        &settings,
        AT,
    );
    assert!(done.contains(&Change::Resolve {
        alert: Target::Stored(3),
        channel: "detector",
    }));
    // A welfare alert resolves at once.
    let flow = active(4, Kind::ContinuousFlow, Severity::Urgent);
    let changes = on_reading(&[flow], &nothing(AT), &facts(&home), &settings, AT);
    assert!(changes.iter().any(|c| matches!(c, Change::Resolve { .. })));
}

#[test]
fn maintenance_texts_about_one_meter_are_capped_per_day() {
    let home = household(false);
    let mut settings = settings();
    settings.maintenance_phones = true;
    let mut flags = StatusFlags::default();
    flags.insert(StatusFlag::LowBattery);
    let fault = Assessment {
        at: Timestamp::from_secs(AT),
        background_mlph: 0,
        conditions: vec![Condition::DeviceFault { flags }],
        abnormal_quiet_since: None,
    };
    let changes = on_reading(&[], &fault, &facts(&home), &settings, AT);
    assert_eq!(texts(&changes), [(Purpose::Alert, Recipients::Maintenance)]);
    let mut busy = facts(&home);
    busy.maintenance_texts_today = settings.maintenance_texts_per_day;
    let changes = on_reading(&[], &fault, &busy, &settings, AT);
    assert_eq!(opens(&changes), 1, "still recorded and shown");
    assert!(texts(&changes).is_empty());
}

#[test]
fn a_meter_is_offline_after_three_intervals_or_the_floor() {
    let home = household(false);
    let floor = 2 * HOUR;
    let settings = Settings {
        offline_at_least_s: floor,
        ..settings()
    };
    let silence = |silent_s, interval_min| Silence {
        silent_s,
        interval_min,
        since: AT - silent_s,
        never_reported: false,
    };
    let late = |silent| offline(&silence(silent, 60), &facts(&home), &settings, AT);
    assert!(late(3 * HOUR - 1).is_empty());
    assert_eq!(opens(&late(3 * HOUR)), 1);
    let quarter = offline(&silence(floor, 15), &facts(&home), &settings, AT);
    assert_eq!(opens(&quarter), 1, "15-minute meters: the floor wins");
}

#[test]
fn maintenance_is_reminded_at_most_daily() {
    let home = household(false);
    let settings = settings();
    let mut leak = active(5, Kind::Leak, Severity::Maintenance);
    leak.notified_step = 1;
    leak.last_notified_at = Some(AT);
    assert!(on_timer(&leak, &home, &settings, AT + settings.repeat_after_s).is_empty());
    let changes = on_timer(&leak, &home, &settings, AT + MAINTENANCE_REMINDER_S);
    assert!(changes.iter().any(|c| matches!(c, Change::Reminder { .. })));
}

#[test]
fn escalation_then_reminders_on_the_timer() {
    let home = household(false);
    let settings = settings();
    let mut alert = active(9, Kind::NoUsage, Severity::Warning);
    alert.notified_step = 1;
    alert.last_notified_at = Some(AT);
    assert!(on_timer(&alert, &home, &settings, AT + settings.escalate_after_s - 1).is_empty());
    let changes = on_timer(&alert, &home, &settings, AT + settings.escalate_after_s);
    assert_eq!(
        texts(&changes),
        [(Purpose::Alert, Recipients::Contacts { above: 1, up_to: 2 })]
    );
    alert.notified_step = 2;
    assert!(on_timer(&alert, &home, &settings, AT + settings.repeat_after_s - 1).is_empty());
    let changes = on_timer(&alert, &home, &settings, AT + settings.repeat_after_s);
    assert!(changes.contains(&Change::Reminder {
        alert: Target::Stored(9),
        kind: Kind::NoUsage,
        n: 1
    }));
}
