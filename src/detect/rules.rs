//! The fixed-threshold rules: `no_usage` (warning and urgent), `continuous_flow`,
//! `leak`, `high_usage` and `device_fault`.
//!
//! Readings may come every 15 minutes, every hour or in daily batches, and
//! registers count whole litres. Rules therefore look at *intervals* between
//! consecutive readings, and where a rule is about hours (background rate,
//! leaks) intervals are merged into windows of at least an hour, so a meter that
//! counts a 2.5 L/h drip as "2, 3, 2, 3 L" per hour — or "0, 1, 1, 0" per quarter
//! hour — is judged the same.

use super::{fault_flags, Assessment, Condition, Detector, Policy, Severity, HOUR};
use crate::domain::{StatusFlags, StoredReading, Timestamp};

/// The fixed-threshold detector.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules;

impl Detector for Rules {
    fn name(&self) -> &'static str {
        "rules"
    }

    fn history_s(&self, policy: &Policy) -> i64 {
        policy
            .background_s
            .max(policy.urgent_window_s)
            .max(policy.leak_s)
            .max(2 * 24 * HOUR)
    }

    fn assess(&self, readings: &[StoredReading], at: usize, policy: &Policy) -> Assessment {
        let background = background_mlph(&readings[..=at], policy);
        self.assess_knowing_background(readings, at, policy, background)
    }

    fn assess_knowing_background(
        &self,
        readings: &[StoredReading],
        at: usize,
        policy: &Policy,
        background: i64,
    ) -> Assessment {
        let history = &readings[..=at];
        let now = history[at].ts;
        let mut conditions = Vec::new();

        let urgent = no_usage(history, policy.urgent_window_s, background, policy);
        let warning = no_usage(history, policy.warning_window_s, background, policy);
        match (urgent, warning) {
            (Some((since, used_l)), _) => conditions.push(Condition::NoUsage {
                severity: Severity::Urgent,
                since,
                used_l,
                habit: None,
            }),
            (None, Some((since, used_l))) => conditions.push(Condition::NoUsage {
                severity: Severity::Warning,
                since,
                used_l,
                habit: None,
            }),
            (None, None) => {}
        }
        if let Some((since, litres)) = continuous_flow(history, policy) {
            conditions.push(Condition::ContinuousFlow { since, litres });
        } else if let Some((since, litres)) = leak(history, policy) {
            conditions.push(Condition::Leak { since, litres });
        }
        if let Some((since, litres)) = high_usage(history, policy) {
            conditions.push(Condition::HighUsage { since, litres });
        }
        let faults = fault_flags(StatusFlags::from_bits(history[at].status));
        if !faults.is_empty() {
            conditions.push(Condition::DeviceFault { flags: faults });
        }
        Assessment {
            at: now,
            background_mlph: background,
            conditions,
            abnormal_quiet_since: None,
        }
    }
}

/// One interval between consecutive readings.
#[derive(Debug, Clone, Copy)]
struct Interval {
    start: Timestamp,
    end: Timestamp,
    /// Litres used; 0 across a register reset (the true use is unknown).
    litres: i64,
}

fn intervals(readings: &[StoredReading]) -> impl DoubleEndedIterator<Item = Interval> + '_ {
    readings.windows(2).map(|pair| Interval {
        start: pair[0].ts,
        end: pair[1].ts,
        litres: if pair[1].register_reset {
            0
        } else {
            (pair[1].total_l - pair[0].total_l).max(0)
        },
    })
}

/// Merges intervals, newest first, into windows of at least an hour (newest first).
fn hour_windows(readings: &[StoredReading]) -> Windows<'_> {
    windows_of(readings, HOUR)
}

/// Merges intervals, newest first, into windows of at least `length` seconds,
/// lazily: a rule that stops at its first quiet hour reads no further.
fn windows_of(readings: &[StoredReading], length: i64) -> Windows<'_> {
    Windows {
        readings,
        length,
        next: readings.len(),
    }
}

/// The windows of [`windows_of`], newest first.
struct Windows<'a> {
    readings: &'a [StoredReading],
    length: i64,
    /// The end reading of the next window (an index into `readings`).
    next: usize,
}

impl Iterator for Windows<'_> {
    type Item = Interval;

    fn next(&mut self) -> Option<Interval> {
        let end = self.next.checked_sub(1)?;
        let mut litres = 0;
        let mut start = end;
        while start > 0 {
            let (before, after) = (&self.readings[start - 1], &self.readings[start]);
            litres += if after.register_reset {
                0
            } else {
                (after.total_l - before.total_l).max(0)
            };
            start -= 1;
            if self.readings[end].ts - self.readings[start].ts >= self.length {
                self.next = start + 1;
                return Some(Interval {
                    start: self.readings[start].ts,
                    end: self.readings[end].ts,
                    litres,
                });
            }
        }
        // What is left is shorter than a window: no more windows.
        self.next = 0;
        None
    }
}

/// The longest window a leak can be judged over: a meter read less often
/// than this cannot show use in every hour.
const LEAK_WINDOW_MAX_S: i64 = 2 * HOUR;

/// How long the windows are that the background rate is judged over: long
/// enough that a cistern refilling every 15–45 minutes shows its mean rate.
const BACKGROUND_WINDOW_S: i64 = 4 * HOUR;

/// The background (leak) rate in mL/h: the time-weighted mean rate of the
/// quiet windows (of at least `BACKGROUND_WINDOW_S`, 4 hours) over the background
/// period. A window counts as quiet when its rate is at most twice the quietest
/// window's plus 1 L/h, so a cistern that refills in bursts is measured at its
/// mean rate, not at the rate of its luckiest hour, and a wash or a shower is
/// never background. 0 until a day of history exists.
pub fn background_mlph(readings: &[StoredReading], policy: &Policy) -> i64 {
    let Some(last) = readings.last() else {
        return 0;
    };
    let from = last.ts - policy.background_s;
    let first = readings.partition_point(|r| r.ts < from);
    let recent = &readings[first..];
    if recent.len() < 2 || last.ts - recent[0].ts < 24 * HOUR {
        return 0;
    }
    // A window much longer than asked for is one long interval (a daily
    // meter's day): the use of a day, not a background rate.
    let windows: Vec<Interval> = windows_of(recent, BACKGROUND_WINDOW_S)
        .filter(|w| w.end - w.start <= 2 * BACKGROUND_WINDOW_S)
        .collect();
    let rate = |w: &Interval| w.litres * 1000 * HOUR / (w.end - w.start);
    let Some(quietest) = windows.iter().map(rate).min() else {
        return 0;
    };
    let ceiling = 2 * quietest + 1000;
    let (litres, seconds) = windows
        .iter()
        .filter(|w| rate(w) <= ceiling)
        .fold((0, 0), |(l, s), w| (l + w.litres, s + (w.end - w.start)));
    if seconds == 0 {
        return 0;
    }
    litres * 1000 * HOUR / seconds
}

/// The newest reading at or before `ts`.
fn reading_at_or_before(history: &[StoredReading], ts: Timestamp) -> Option<usize> {
    history.partition_point(|r| r.ts <= ts).checked_sub(1)
}

/// `(since, used litres)` when less than `min_litres` above background were used
/// in the `window_s` before the newest reading; `None` when there was enough use
/// or the history is shorter than the window. `since` is where the quiet stretch
/// began (see [`Condition::NoUsage`]), so it is never later than the window's
/// start unless the interval that crosses it carried the use.
fn no_usage(
    history: &[StoredReading],
    window_s: i64,
    background: i64,
    policy: &Policy,
) -> Option<(Timestamp, i64)> {
    let now = history.last()?.ts;
    let start = reading_at_or_before(history, now - window_s)?;
    let span = &history[start..];
    let used_l: i64 = intervals(span).map(|i| i.litres).sum();
    let excess_ml = used_l * 1000 - background * (now - span[0].ts) / HOUR;
    if excess_ml >= policy.min_litres * 1000 {
        return None;
    }
    let mut excess = 0;
    let since = intervals(history)
        .rev()
        .find(|i| {
            excess += i.litres * 1000 - background * (i.end - i.start) / HOUR;
            excess >= policy.min_litres * 1000
        })
        .map_or(history[0].ts, |i| i.end);
    Some((since, used_l))
}

/// `(since, litres)` when every interval back to `since`, covering at least
/// `flow_s`, averaged at least `min_flow_lph`.
fn continuous_flow(history: &[StoredReading], policy: &Policy) -> Option<(Timestamp, i64)> {
    let now = history.last()?.ts;
    let mut litres = 0;
    for interval in intervals(history).rev() {
        let duration = interval.end - interval.start;
        let fast = duration > 0
            && duration <= policy.flow_s
            && interval.litres * HOUR >= policy.min_flow_lph * duration;
        if !fast {
            break;
        }
        litres += interval.litres;
        if now - interval.start >= policy.flow_s {
            return Some((interval.start, litres));
        }
    }
    None
}

/// `(since, litres)` when every hour window back to `since`, covering at least
/// `leak_s`, had some use.
fn leak(history: &[StoredReading], policy: &Policy) -> Option<(Timestamp, i64)> {
    let now = history.last()?.ts;
    let mut litres = 0;
    for window in hour_windows(history) {
        // No use in an hour ends it; an interval of many hours (a daily
        // meter) cannot show that every hour had some.
        if window.litres == 0 || window.end - window.start > LEAK_WINDOW_MAX_S {
            return None;
        }
        litres += window.litres;
        if now - window.start >= policy.leak_s {
            return Some((window.start, litres));
        }
    }
    None
}

/// `(since, litres)` when more than `max_litres_per_day` were used in the 24 h
/// before the newest reading (judged only when readings span that day closely).
fn high_usage(history: &[StoredReading], policy: &Policy) -> Option<(Timestamp, i64)> {
    let now = history.last()?.ts;
    let start = reading_at_or_before(history, now - 24 * HOUR)?;
    let span = &history[start..];
    if now - span[0].ts > 48 * HOUR {
        return None;
    }
    let litres: i64 = intervals(span).map(|i| i.litres).sum();
    (litres > policy.max_litres_per_day).then_some((span[0].ts, litres))
}
