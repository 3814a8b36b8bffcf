//! Hand-made homes where the answer is obvious.

use super::*;
use crate::detect::{Condition, Detector, Home, Kind, Learned, Policy, Rules, Severity};
use crate::domain::StoredReading;
use crate::policy::DetectorChoice;

/// Monday 2026-11-23 00:00 in Shanghai.
const T0: i64 = 1_795_363_200;
const ZONE: Tz = chrono_tz::Asia::Shanghai;
const MIN: i64 = 60;

/// A number in [0, 1) from a few integers, the same every run.
fn noise(a: i64, b: i64, salt: u64) -> f64 {
    let mut x = (a as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((b as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(salt);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Readings every `step` seconds for `days` days from T0; `use_in(day,
/// minute)` gives the litres used in that local minute of that day;
/// `drip_lph` adds a steady leak, counted in whole litres.
fn home(
    days: i64,
    step: i64,
    drip_lph: f64,
    use_in: impl Fn(i64, i64) -> i64,
) -> Vec<StoredReading> {
    let mut total = 10_000;
    let mut dripped = 0.0;
    let mut readings = vec![StoredReading::plain(T0, total)];
    let mut ts = T0;
    while ts < T0 + days * DAY {
        for minute in (ts - T0) / MIN..(ts + step - T0) / MIN {
            total += use_in(minute * MIN / DAY, minute % (DAY / MIN));
        }
        ts += step;
        dripped += drip_lph * step as f64 / HOUR as f64;
        let whole = dripped.floor();
        dripped -= whole;
        total += whole as i64;
        readings.push(StoredReading::plain(ts, total));
    }
    readings
}

/// An early riser: up at about 06:00, water in most hours until about 21:00,
/// now and then out for two or three hours; `stops` (day, minute): the
/// moment they stop using water for good.
fn early_riser(day: i64, minute: i64, stops: Option<(i64, i64)>) -> i64 {
    if stops.is_some_and(|(d, m)| (day, minute) > (d, m)) {
        return 0;
    }
    let hour = minute / 60;
    let up = 360 + (noise(day, 0, 1) * 40.0) as i64;
    let bed = 1260 + (noise(day, 0, 2) * 60.0) as i64;
    let out_from = 540 + (noise(day, 0, 3) * 300.0) as i64;
    let out = noise(day, 0, 4) < 0.4 && minute >= out_from && minute < out_from + 150;
    if minute < up || minute >= bed || out {
        return 0;
    }
    // The first use of the day, then most hours.
    if minute == up {
        return 12;
    }
    if minute % 60 == 30 && noise(day, hour, 5) < 0.85 {
        return 3 + (noise(day, hour, 6) * 6.0) as i64;
    }
    0
}

/// (meter time, grade) of every learned or fixed `no_usage` finding, folding
/// the routine over `readings` as the engine does.
fn judged(readings: &[StoredReading], policy: &Policy) -> (Vec<(i64, Condition)>, Routine) {
    let mut routine = Routine::default();
    let home = Home {
        zone: ZONE,
        absences: &[],
    };
    let mut found = Vec::new();
    for at in 0..readings.len() {
        let assessment = Learned.assess_learning(readings, at, policy, &home, &mut routine, None);
        if let Some(condition) = assessment.condition(Kind::NoUsage) {
            found.push((readings[at].ts.secs(), condition.clone()));
        }
    }
    (found, routine)
}

fn first(found: &[(i64, Condition)], after: i64, severity: Severity) -> Option<i64> {
    found
        .iter()
        .find(|(ts, c)| *ts > after && c.severity() >= severity)
        .map(|(ts, _)| *ts)
}

/// An early riser read every 15 minutes who stops using water on day
/// `stop_day` at `minute`, judged as the engine does: (readings, findings,
/// routine).
fn riser_who_stops(
    stop_day: i64,
    minute: i64,
) -> (Vec<StoredReading>, Vec<(i64, Condition)>, Routine) {
    let readings = home(stop_day + 1, 15 * MIN, 0.0, |d, m| {
        early_riser(d, m, Some((stop_day, minute)))
    });
    let (found, routine) = judged(&readings, &Policy::default());
    (readings, found, routine)
}

#[test]
fn an_early_riser_who_stops_at_six_is_found_by_mid_morning() {
    let stop_day = 27;
    let (readings, found, routine) = riser_who_stops(stop_day, 410);
    assert!(routine.speaks());
    let morning = T0 + stop_day * DAY;
    let watch = first(&found, morning, Severity::Warning).expect("a warning");
    let alarm = first(&found, morning, Severity::Urgent).expect("an urgent alert");
    assert!(
        watch <= morning + 10 * HOUR,
        "the resident is asked by 10:00, not {}",
        (watch - morning) / MIN
    );
    assert!(
        alarm <= morning + 13 * HOUR,
        "contacts hear by 13:00, not {}",
        (alarm - morning) / MIN
    );
    // Said in words: the routine's finding, not the fixed window's.
    let Some((_, Condition::NoUsage { habit, .. })) = found.iter().find(|(ts, _)| *ts == watch)
    else {
        panic!("no finding at {watch}");
    };
    assert!(matches!(habit, Some(Habit::Rare { .. })), "{habit:?}");
    // The fixed rules alone would have waited for the 12 h warning.
    let rules = Policy {
        detector: DetectorChoice::Rules,
        ..Policy::default()
    };
    let (fixed, _) = judged(&readings, &rules);
    assert!(first(&fixed, morning, Severity::Warning).unwrap() >= morning + 18 * HOUR);
}

#[test]
fn the_same_home_on_normal_days_is_rarely_asked_and_never_alarmed() {
    let readings = home(60, 15 * MIN, 0.0, |d, m| early_riser(d, m, None));
    let (found, _) = judged(&readings, &Policy::default());
    let learned = |severity| {
        let mut stretches: Vec<i64> = found
            .iter()
            .filter(|(ts, c)| *ts > T0 + 7 * DAY && c.severity() == severity)
            .filter_map(|(_, c)| match c {
                Condition::NoUsage { since, .. } => Some(since.secs()),
                _ => None,
            })
            .collect();
        stretches.dedup();
        stretches.len()
    };
    assert!(
        learned(Severity::Warning) <= 4,
        "{}",
        learned(Severity::Warning)
    );
    assert_eq!(learned(Severity::Urgent), 0);
}

#[test]
fn a_night_shift_workers_daytime_sleep_is_no_alarm() {
    // Up at about 16:00, water most hours until about 07:30, asleep by day.
    let worker = |day: i64, minute: i64| {
        let up = 960 + (noise(day, 0, 7) * 60.0) as i64;
        let bed = 450 + (noise(day, 0, 8) * 60.0) as i64;
        let awake = minute >= up || minute < bed;
        if awake && minute % 60 == 15 && noise(day, minute / 60, 9) < 0.85 {
            4 + (noise(day, minute / 60, 10) * 5.0) as i64
        } else {
            0
        }
    };
    let readings = home(42, HOUR, 0.0, worker);
    let (found, routine) = judged(&readings, &Policy::default());
    assert!(routine.speaks());
    let after_learning = found.iter().filter(|(ts, _)| *ts > T0 + 10 * DAY).count();
    assert_eq!(after_learning, 0);
    // Nobody gets up in the morning here: no "not up yet".
    assert_eq!(routine.usual_wake(false), None);
}

#[test]
fn a_home_with_a_two_litre_an_hour_drip_is_still_found() {
    // The same resident with and without a dripping toilet, read hourly.
    let stop_day = 24;
    let found_at = |drip_lph: f64| {
        let readings = home(25, HOUR, drip_lph, |d, m| {
            early_riser(d, m, Some((stop_day, 410)))
        });
        let (found, routine) = judged(&readings, &Policy::default());
        assert!(routine.speaks());
        let morning = T0 + stop_day * DAY;
        let watch = first(&found, morning, Severity::Warning).expect("a warning");
        let alarm = first(&found, morning, Severity::Urgent).expect("an urgent alert");
        (watch - morning, alarm - morning)
    };
    let (dry_watch, dry_alarm) = found_at(0.0);
    let (watch, alarm) = found_at(2.0);
    // The drip does not hide the stop: the resident is asked well before
    // the fixed 12 h warning (06:50 + 12 h), the contacts before the fixed 24 h.
    assert!(watch <= 15 * HOUR, "{} min", watch / MIN);
    assert!(alarm <= 20 * HOUR, "{} min", alarm / MIN);
    // It delays the grades by up to three hours: the background estimate of
    // a steady 2 L/h drip swings from 2.4 to 3.6 L/h, so a small use in an
    // hour it runs high is taken for the drip.
    assert!(
        watch <= dry_watch + 3 * HOUR,
        "{} vs {} min",
        watch / MIN,
        dry_watch / MIN
    );
    assert!(
        alarm <= dry_alarm + 3 * HOUR,
        "{} vs {} min",
        alarm / MIN,
        dry_alarm / MIN
    );
}

#[test]
fn the_first_week_is_the_fixed_rules() {
    // Five quiet days: the rules warn at 12 h and are urgent at 24 h, and
    // the learned detector says exactly what they say.
    let readings = home(6, HOUR, 0.0, |d, m| i64::from(d == 0 && m == 60) * 20);
    let mut routine = Routine::default();
    let home = Home {
        zone: ZONE,
        absences: &[],
    };
    let policy = Policy::default();
    for at in 0..readings.len() {
        let learned = Learned.assess_learning(&readings, at, &policy, &home, &mut routine, None);
        assert_eq!(learned, Rules.assess(&readings, at, &policy));
    }
    assert!(!routine.speaks());
}

#[test]
fn daily_meters_are_left_to_the_fixed_rules() {
    let readings = home(30, DAY, 0.0, |_, _| 120);
    let (_, routine) = judged(&readings, &Policy::default());
    assert!(routine.days_seen() >= MIN_DAYS);
    assert!(
        !routine.speaks(),
        "a daily meter cannot show a quiet morning"
    );
}

#[test]
fn declared_absences_and_day_long_stretches_are_not_learned() {
    let readings = home(20, HOUR, 0.0, |d, m| early_riser(d, m, None));
    let learn = |readings: &[StoredReading], absences: &[(i64, i64)]| {
        let mut routine = Routine::default();
        for reading in readings {
            routine.observe(reading, 0, ZONE, absences);
        }
        routine
    };
    // Normal stretches, weighted, that reached the evidence of a long quiet day.
    let long = |routine: &Routine| routine.stretches[bin_of(15.0)..].iter().sum::<f32>();
    // Hourly readings: index i is T0 + i hours. `quiet(from, to)`: no water
    // from reading `from` until the one before `to`, the register catching up at `to`.
    let quiet = |from: usize, to: usize| {
        let mut changed = readings.clone();
        for reading in &mut changed[from + 1..to] {
            reading.total_l = readings[from].total_l;
        }
        changed
    };
    assert_eq!(long(&learn(&readings, &[])), 0.0);
    // Day 10, out from 08:00 to 20:00: learned as routine unless declared.
    let (from, to) = (10 * 24 + 8, 10 * 24 + 21);
    let out = quiet(from, to);
    assert!(out[to].total_l > out[from].total_l);
    assert!(long(&learn(&out, &[])) > 0.0);
    let declared = [(T0 + from as i64 * HOUR, T0 + to as i64 * HOUR)];
    assert_eq!(long(&learn(&out, &declared)), 0.0);
    // More than a day without water is an incident or an absence, never routine.
    let gone = quiet(12 * 24 + 8, 13 * 24 + 20);
    assert_eq!(long(&learn(&gone, &[])), 0.0);
}

#[test]
fn the_state_is_small_and_survives_encoding() {
    let readings = home(30, 15 * MIN, 1.5, |d, m| early_riser(d, m, None));
    let (_, routine) = judged(&readings, &Policy::default());
    let bytes = routine.encode();
    assert_eq!(bytes.len(), ENCODED_LEN);
    assert!(bytes.len() <= 2048, "{} bytes", bytes.len());
    assert_eq!(Routine::decode(&bytes), Some(routine.clone()));
    assert_eq!(Routine::decode(&bytes[1..]), None);
    let mut other = bytes.clone();
    other[0] = 99;
    assert_eq!(Routine::decode(&other), None);
    // Continuing from the decoded state is continuing from the original.
    let more = home(31, 15 * MIN, 1.5, |d, m| early_riser(d, m, None));
    let mut a = routine.clone();
    let mut b = Routine::decode(&bytes).unwrap();
    for reading in &more[readings.len()..] {
        a.observe(reading, 1500, ZONE, &[]);
        b.observe(reading, 1500, ZONE, &[]);
    }
    assert_eq!(a, b);
}

#[test]
fn a_routine_stored_before_bedtimes_were_learned_still_reads() {
    let readings = home(30, HOUR, 0.0, |d, m| early_riser(d, m, None));
    let (_, routine) = judged(&readings, &Policy::default());
    let bytes = routine.encode();
    // Version 1: no `night_from` (the tenth integer) and no bedtimes (the
    // 6 floats after the 3 scalars and the 6 of getting up).
    let ints_end = 1 + 10 * 8;
    let floats_at = ints_end + 1 + 4;
    let mut old = vec![1];
    old.extend_from_slice(&bytes[1..ints_end - 8]);
    old.extend_from_slice(&bytes[ints_end..floats_at + 9 * 4]);
    old.extend_from_slice(&bytes[floats_at + 15 * 4..]);
    let decoded = Routine::decode(&old).expect("a version-1 routine reads");
    assert_eq!(decoded.usual_bed(false), None);
    assert_eq!(decoded.usual_wake(false), routine.usual_wake(false));
    assert_eq!(
        decoded.levels(Sensitivity::Normal),
        routine.levels(Sensitivity::Normal)
    );
}

#[test]
fn bedtime_is_learned_either_side_of_midnight() {
    // The early riser's last use is at 20:30 or 21:30.
    let readings = home(28, 15 * MIN, 0.0, |d, m| early_riser(d, m, None));
    let (_, routine) = judged(&readings, &Policy::default());
    let (bed, spread) = routine.usual_bed(false).expect("a weekday bedtime");
    assert!((20 * 60..=22 * 60).contains(&bed), "{bed}");
    assert!(spread <= 45, "{spread}");
    // A night owl up at 10:00, using water at :30 until 00:30 or 01:30.
    let owl = home(28, 15 * MIN, 0.0, |d, m| {
        let late = if noise(d, 0, 9) < 0.5 { 30 } else { 90 };
        let awake = m >= 600 || m <= late;
        i64::from(awake && m % 60 == 30) * 5
    });
    let (_, routine) = judged(&owl, &Policy::default());
    let (bed, spread) = routine.usual_bed(false).expect("a weekday bedtime");
    assert!((30..=90).contains(&bed), "after midnight, not {bed}");
    assert!(spread <= 40, "{spread}");
}

#[test]
fn higher_sensitivity_means_lower_levels() {
    let readings = home(30, HOUR, 0.0, |d, m| early_riser(d, m, None));
    let (_, routine) = judged(&readings, &Policy::default());
    let [low, normal, high] = Sensitivity::ALL.map(|s| routine.levels(s).unwrap());
    assert!(low.watch >= normal.watch && normal.watch >= high.watch);
    assert!(low.alarm > normal.alarm && normal.alarm > high.alarm);
    assert!(normal.alarm >= normal.watch + MIN_ALARM_GAP);
}

#[test]
fn a_resident_who_does_not_get_up_is_found_soon_after_the_usual_time() {
    // Up between 06:00 and 06:40 every day; on day 20 they never get up.
    let stop_day = 20;
    let (_, found, routine) = riser_who_stops(stop_day, 0);
    let (usual, by) = routine.usual_wake(false).unwrap();
    assert!((360..=400).contains(&usual), "{usual}");
    let morning = T0 + stop_day * DAY;
    let (watch, condition) = found
        .iter()
        .find(|(ts, c)| *ts > morning && c.severity() >= Severity::Warning)
        .expect("a warning");
    assert!(
        *watch <= morning + 7 * HOUR + 45 * MIN,
        "asked by 07:45, not {}",
        (watch - morning) / MIN
    );
    let Condition::NoUsage { habit, .. } = condition else {
        panic!("{condition:?}");
    };
    // Day 20 is a Sunday: the weekend's own mornings.
    let (_, sunday_by) = routine.usual_wake(true).unwrap();
    assert!(sunday_by.abs_diff(by) <= 30, "{sunday_by} {by}");
    assert_eq!(
        *habit,
        Some(Habit::NotUpYet {
            usual_by_min: sunday_by
        })
    );
}
