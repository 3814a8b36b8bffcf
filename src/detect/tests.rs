//! Tables of cases at the boundaries, at 15-minute, hourly and daily resolution.

use super::*;
use crate::detect::rules::background_mlph;
use crate::domain::{StatusFlag, StatusFlags, StoredReading, Timestamp};

const T0: i64 = 1_795_363_200; // 2026-11-22T16:00:00Z = 2026-11-23 00:00 in Shanghai
const QUARTER: i64 = 900;
const DAY: i64 = 24 * HOUR;

/// Readings every `step` seconds starting at `start`, the register rising by
/// `used[i]` litres in interval `i`.
fn series(start: i64, step: i64, used: &[i64]) -> Vec<StoredReading> {
    let mut total = 50_000;
    let mut readings = vec![reading(start, total)];
    for (index, litres) in used.iter().enumerate() {
        total += litres;
        readings.push(reading(start + (index as i64 + 1) * step, total));
    }
    readings
}

fn reading(ts: i64, total_l: i64) -> StoredReading {
    StoredReading::plain(ts, total_l)
}

fn last(readings: &[StoredReading]) -> Assessment {
    assess(readings, readings.len() - 1, &Policy::default())
}

fn kinds(assessment: &Assessment) -> Vec<Kind> {
    assessment.conditions.iter().map(Condition::kind).collect()
}

fn no_usage(assessment: &Assessment) -> Option<(Severity, i64, i64)> {
    // `since` as Unix seconds, to compare with the cases' times.
    assessment.conditions.iter().find_map(|c| match c {
        Condition::NoUsage {
            severity,
            since,
            used_l,
            ..
        } => Some((*severity, since.secs(), *used_l)),
        _ => None,
    })
}

/// `hours` of hourly intervals using `litres` each, then the pattern.
fn hourly(litres: i64, hours: usize) -> Vec<i64> {
    vec![litres; hours]
}

#[test]
fn no_usage_boundaries_in_litres() {
    // 12 hourly intervals; all use in the first hour.
    let cases = [(9, true), (10, false), (0, true), (11, false)];
    for (litres, fires) in cases {
        let mut used = hourly(0, 12);
        used[0] = litres;
        let readings = series(T0, HOUR, &used);
        let found = no_usage(&last(&readings));
        assert_eq!(found.is_some(), fires, "{litres} L in 12 h");
        if let Some((severity, since, used_l)) = found {
            assert_eq!(severity, Severity::Warning);
            assert_eq!(used_l, litres);
            assert_eq!(
                since, T0,
                "less than min_litres in the whole history: quiet since the first reading"
            );
        }
    }
}

#[test]
fn no_usage_needs_a_whole_window_of_history() {
    // 11 h 59 min of silence since the first reading: not yet judged.
    let readings = vec![reading(T0, 100), reading(T0 + 12 * HOUR - 60, 100)];
    assert_eq!(no_usage(&last(&readings)), None);
    // Exactly 12 h: judged, and nothing was used.
    let readings = vec![reading(T0, 100), reading(T0 + 12 * HOUR, 100)];
    assert_eq!(no_usage(&last(&readings)), Some((Severity::Warning, T0, 0)));
}

#[test]
fn a_day_without_water_is_urgent() {
    let readings = series(T0, HOUR, &hourly(0, 24));
    assert_eq!(
        no_usage(&last(&readings)).map(|f| f.0),
        Some(Severity::Urgent)
    );
    let readings = series(T0, HOUR, &hourly(0, 23));
    assert_eq!(
        no_usage(&last(&readings)).map(|f| f.0),
        Some(Severity::Warning)
    );
    // 9 L in 24 h, but 10 L in the last 12: not even a warning.
    let mut used = hourly(0, 24);
    used[20] = 10;
    let readings = series(T0, HOUR, &used);
    assert_eq!(no_usage(&last(&readings)), None);
}

#[test]
fn no_usage_is_the_same_at_fifteen_minute_hourly_and_batch_resolution() {
    // A flush at 07:00 and nothing after, observed three ways.
    let mut quarter = vec![0; 13 * 4];
    quarter[3] = 6;
    let mut hours = vec![0; 13];
    hours[0] = 6;
    let fine = series(T0 + 6 * HOUR, QUARTER, &quarter);
    let coarse = series(T0 + 6 * HOUR, HOUR, &hours);
    // 6 L is less than min_litres: the quiet stretch began with the history.
    assert_eq!(
        no_usage(&last(&fine)),
        Some((Severity::Warning, T0 + 6 * HOUR, 0))
    );
    assert_eq!(
        no_usage(&last(&coarse)),
        Some((Severity::Warning, T0 + 6 * HOUR, 0))
    );
    // A 12 L wash at 07:00 is use: quiet since it ended, at either resolution.
    quarter[3] = 12;
    hours[0] = 12;
    let fine = series(T0 + 6 * HOUR, QUARTER, &quarter);
    let coarse = series(T0 + 6 * HOUR, HOUR, &hours);
    assert_eq!(no_usage(&last(&fine)).map(|f| f.1), Some(T0 + 7 * HOUR));
    assert_eq!(no_usage(&last(&coarse)).map(|f| f.1), Some(T0 + 7 * HOUR));
    hours[0] = 6;
    let coarse = series(T0 + 6 * HOUR, HOUR, &hours);
    // A daily batch of the same hourly data, evaluated interval by interval,
    // opens at the same reading as live hourly data would: the first point with
    // 12 h of history (18:00), when only the 6 L flush lies in the window.
    let first_firing =
        (0..coarse.len()).find(|&i| no_usage(&assess(&coarse, i, &Policy::default())).is_some());
    assert_eq!(coarse[first_firing.unwrap()].ts.secs(), T0 + 18 * HOUR);
    assert_eq!(
        no_usage(&assess(&coarse, first_firing.unwrap(), &Policy::default())).map(|f| f.2),
        Some(6)
    );
    // A meter that sends one total a day: judged over the whole day. The 5 L
    // of the last day are not use; the 40 L of the day before are, so the quiet
    // stretch began when that day's total came.
    let daily = series(T0, DAY, &[40, 5]);
    assert_eq!(
        no_usage(&last(&daily)),
        Some((Severity::Urgent, T0 + DAY, 5))
    );
}

#[test]
fn a_dripping_toilet_does_not_hide_a_resident_who_stopped() {
    // A week of a 2.5 L/h drip ("2, 3, 2, 3" per hour) plus normal daily use,
    // then 12 h of only the drip.
    let mut used: Vec<i64> = (0..7 * 24)
        .map(|h| if h % 2 == 0 { 2 } else { 3 })
        .collect();
    for day in 0..7 {
        used[day * 24 + 8] += 40;
    }
    used.extend((0..12).map(|h| if h % 2 == 0 { 2 } else { 3 }));
    let readings = series(T0, HOUR, &used);
    let assessment = last(&readings);
    // The drip's mean rate; the seven hours with a 40 L wash are not quiet.
    assert!(
        (2500..=2530).contains(&assessment.background_mlph),
        "{}",
        assessment.background_mlph
    );
    // The last wash was 28 h ago: the drip in the window is not use.
    let (severity, since, used_l) = no_usage(&assessment).expect("drip is not use");
    assert_eq!((severity, used_l), (Severity::Urgent, 60));
    assert_eq!(
        since,
        T0 + (6 * 24 + 9) * HOUR,
        "quiet since the wash ended"
    );
    // The same drip with a 12 L wash on top is a resident who is well.
    let last_hour = used.len() - 1;
    used[last_hour] += 12;
    assert_eq!(no_usage(&last(&series(T0, HOUR, &used))), None);
    // Without a day of history there is no background estimate yet.
    let young = series(T0, HOUR, &used[..20]);
    assert_eq!(last(&young).background_mlph, 0);
}

#[test]
fn a_cistern_that_refills_in_bursts_does_not_hide_a_resident_who_stopped() {
    // A phantom refill of 2 L every 15–45 minutes (mean 30 min, 4 L/h) for a
    // week with a 60 L morning, then no morning for 50 h: urgent, and the quiet
    // stretch is counted from the last morning, not from the last refill.
    let mut used = vec![0i64; 9 * 24 * 4];
    let mut quarter = 0;
    let mut step = 0;
    while quarter < used.len() {
        used[quarter] += 2;
        quarter += [1, 2, 3, 2][step % 4];
        step += 1;
    }
    let stopped = 7 * 24 * 4 + 8 * 4; // the first morning without use
    let last_use = stopped - 24 * 4;
    for day in 0..8 {
        if day * 24 * 4 + 8 * 4 < stopped {
            used[day * 24 * 4 + 8 * 4] += 60;
        }
    }
    let end = stopped + 26 * 4;
    let readings = series(T0, QUARTER, &used[..end]);
    let assessment = last(&readings);
    assert!(
        (3500..=4500).contains(&assessment.background_mlph),
        "the refills' mean rate, not the quietest hour's: {}",
        assessment.background_mlph
    );
    let (severity, since, _) = no_usage(&assessment).expect("refills are not use");
    assert_eq!(severity, Severity::Urgent);
    assert!(
        (T0 + last_use as i64 * QUARTER..=T0 + (last_use as i64 + 4) * QUARTER).contains(&since),
        "since {} h before the end",
        (readings.last().unwrap().ts.secs() - since) / HOUR
    );
    // Two hours after its last morning, the same home goes unremarked.
    let well = series(T0, QUARTER, &used[..last_use + 8]);
    assert_eq!(no_usage(&last(&well)), None);
}

#[test]
fn background_is_judged_in_hours_even_at_fifteen_minutes() {
    // 2 L/h as "0, 1, 1, 0" per quarter hour for two days.
    let used: Vec<i64> = (0..2 * 24 * 4)
        .map(|q| i64::from(q % 4 == 1 || q % 4 == 2))
        .collect();
    let readings = series(T0, QUARTER, &used);
    assert_eq!(background_mlph(&readings, &Policy::default()), 2000);
}

#[test]
fn continuous_flow_needs_the_rate_in_every_interval_for_two_hours() {
    let cases: [(&str, i64, &[i64], bool); 7] = [
        ("hourly 100 L/h for 2 h", HOUR, &[0, 100, 100], true),
        ("hourly 99 L/h", HOUR, &[0, 99, 100], false),
        ("hourly 100 L/h for 1 h", HOUR, &[0, 0, 100], false),
        ("a busy morning", HOUR, &[60, 150, 30], false),
        ("15-min 25 L each for 2 h", QUARTER, &[25; 8], true),
        ("15-min 24 L each", QUARTER, &[24; 8], false),
        (
            "15-min one quiet quarter",
            QUARTER,
            &[25, 25, 25, 25, 0, 25, 25, 25, 25],
            false,
        ),
    ];
    for (name, step, used, fires) in cases {
        let readings = series(T0, step, used);
        assert_eq!(
            kinds(&last(&readings)).contains(&Kind::ContinuousFlow),
            fires,
            "{name}"
        );
    }
    // A daily total cannot show a two-hour flow.
    assert!(!kinds(&last(&series(T0, DAY, &[3000]))).contains(&Kind::ContinuousFlow));
    let readings = series(T0, HOUR, &[0, 120, 100]);
    let found = last(&readings)
        .conditions
        .into_iter()
        .find(|c| c.kind() == Kind::ContinuousFlow);
    assert_eq!(
        found,
        Some(Condition::ContinuousFlow {
            since: Timestamp::from_secs(T0 + HOUR),
            litres: 220
        })
    );
}

#[test]
fn leak_is_some_use_in_every_hour_for_a_day() {
    let drip: Vec<i64> = (0..24).map(|h| if h % 2 == 0 { 2 } else { 3 }).collect();
    let readings = series(T0, HOUR, &drip);
    assert_eq!(
        last(&readings)
            .conditions
            .iter()
            .find(|c| c.kind() == Kind::Leak),
        Some(&Condition::Leak {
            since: Timestamp::from_secs(T0),
            litres: 60
        })
    );
    let mut dry_hour = drip.clone();
    dry_hour[10] = 0;
    assert!(!kinds(&last(&series(T0, HOUR, &dry_hour))).contains(&Kind::Leak));
    assert!(
        !kinds(&last(&series(T0, HOUR, &drip[..23]))).contains(&Kind::Leak),
        "23 h is not yet a day"
    );
    // The same drip at 15 minutes, where many quarters show 0 L.
    let quarters: Vec<i64> = (0..24 * 4)
        .map(|q| i64::from(q % 4 == 1 || q % 4 == 2))
        .collect();
    assert!(kinds(&last(&series(T0, QUARTER, &quarters))).contains(&Kind::Leak));
}

#[test]
fn high_usage_is_more_than_the_daily_limit() {
    let mut used = hourly(0, 24);
    used[5] = 2000;
    assert!(!kinds(&last(&series(T0, HOUR, &used))).contains(&Kind::HighUsage));
    used[6] = 1;
    let readings = series(T0, HOUR, &used);
    assert_eq!(
        last(&readings)
            .conditions
            .iter()
            .find(|c| c.kind() == Kind::HighUsage),
        Some(&Condition::HighUsage {
            since: Timestamp::from_secs(T0),
            litres: 2001
        })
    );
    // 2,001 L over three days is not a day's use.
    assert!(!kinds(&last(&series(T0, 3 * DAY, &[2001]))).contains(&Kind::HighUsage));
}

#[test]
fn fault_flags_open_device_faults_and_other_flags_do_not() {
    let mut readings = series(T0, HOUR, &[1, 1]);
    let mut flags = StatusFlags::default();
    flags.insert(StatusFlag::Dry);
    flags.insert(StatusFlag::NoConsumption);
    readings[2].status = flags.bits();
    assert!(!kinds(&last(&readings)).contains(&Kind::DeviceFault));
    flags.insert(StatusFlag::LowBattery);
    readings[2].status = flags.bits();
    let mut expected = StatusFlags::default();
    expected.insert(StatusFlag::LowBattery);
    assert!(last(&readings)
        .conditions
        .contains(&Condition::DeviceFault { flags: expected }));
    // A closed valve (a CJ/T 188 meter's status) is maintenance's to know.
    let mut valve = StatusFlags::default();
    valve.insert(StatusFlag::ValveClosed);
    readings[2].status = valve.bits();
    assert!(last(&readings)
        .conditions
        .contains(&Condition::DeviceFault { flags: valve }));
}

#[test]
fn a_register_reset_is_not_use() {
    let mut readings = series(T0, HOUR, &hourly(0, 12));
    for (index, reading) in readings.iter_mut().enumerate().skip(6) {
        reading.total_l = 3 + index as i64; // new meter head: a low register rising 1 L/h
    }
    readings[6].register_reset = true;
    // 5 L after the reset (rising 1 L/h for 6 h would be 6; the reset interval counts 0).
    assert_eq!(no_usage(&last(&readings)).map(|f| f.2), Some(6));
}

#[test]
fn each_evaluation_point_sees_only_the_readings_before_it() {
    // Use resumes in the last hour: the point before still fires, the last does not.
    let mut used = hourly(0, 13);
    used[12] = 30;
    let readings = series(T0, HOUR, &used);
    let policy = Policy::default();
    assert!(no_usage(&assess(&readings, readings.len() - 2, &policy)).is_some());
    assert!(no_usage(&assess(&readings, readings.len() - 1, &policy)).is_none());
}

#[test]
fn daily_meters_show_a_quiet_day_and_never_a_leak() {
    // Ten ordinary days read once a day, then a day without use, read a
    // second early (the meter's clock drifts).
    let mut readings = series(T0, DAY, &[90, 110, 80, 120, 100, 95, 105, 85, 115, 100]);
    let newest = readings.last().unwrap().ts.secs();
    let total = readings.last().unwrap().total_l;
    readings.push(reading(newest + DAY - 1, total));
    let assessment = assess(&readings, readings.len() - 1, &Policy::default());
    assert_eq!(
        no_usage(&assessment).map(|(severity, since, _)| (severity, since)),
        Some((Severity::Warning, newest)),
        "{assessment:?}"
    );
    assert!(!kinds(&assessment).contains(&Kind::Leak), "{assessment:?}");
    // Two ordinary days are not a background rate: no "no use" on day three.
    let early = series(T0, DAY, &[139, 81]);
    assert_eq!(no_usage(&last(&early)), None, "{:?}", last(&early));
    assert_eq!(background_mlph(&early, &Policy::default()), 0);
}

/// When an hourly meter is offline at the default floor: three hours.
const OFFLINE_HOURLY: i64 = 3 * 3600;

#[test]
fn readings_lost_counts_the_last_day_against_the_schedule() {
    let hourly = |hours: &[i64]| -> Vec<StoredReading> {
        hours.iter().map(|h| reading(h * 3600, 1_000)).collect()
    };
    let every_third: Vec<i64> = (0..=27).step_by(3).collect();
    let readings = hourly(&every_third);
    let at = readings.len() - 1;
    assert_eq!(
        crate::detect::readings_lost(&readings, at, 60, 0.5, OFFLINE_HOURLY),
        Some(Condition::ReadingsLost {
            received: 8,
            expected: 24
        })
    );
    // The same day from a meter that reports every 3 hours lost nothing.
    assert_eq!(
        crate::detect::readings_lost(&readings, at, 180, 0.5, 9 * 3600),
        None
    );
    // Under a day of history: not judged yet.
    assert_eq!(
        crate::detect::readings_lost(&readings, 4, 60, 0.5, OFFLINE_HOURLY),
        None
    );
    // A stricter share flags a third lost; the default does not.
    let two_in_three: Vec<i64> = (0..30).filter(|h| h % 3 != 2).collect();
    let readings = hourly(&two_in_three);
    let at = readings.len() - 1;
    assert_eq!(
        crate::detect::readings_lost(&readings, at, 60, 0.5, OFFLINE_HOURLY),
        None
    );
    assert!(crate::detect::readings_lost(&readings, at, 60, 0.2, OFFLINE_HOURLY).is_some());
    // One 14-hour silence is an offline meter, already reported as such.
    let outage: Vec<i64> = (0..30).filter(|h| !(10..24).contains(h)).collect();
    let readings = hourly(&outage);
    assert_eq!(
        crate::detect::readings_lost(&readings, readings.len() - 1, 60, 0.5, OFFLINE_HOURLY),
        None
    );
}
