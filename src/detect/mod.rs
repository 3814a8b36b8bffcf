//! Welfare and device rules, evaluated in event time.
//!
//! [`assess`] is a pure function of a meter's stored readings, the resolved
//! [`Policy`] and an evaluation point (the index of a reading): it looks only at
//! readings up to that point, so evaluating reading by reading — live, one at a
//! time, or replayed from the store at any speed — gives the same answers. It
//! does no I/O and never reads the clock; `meter_offline`, the one rule that
//! needs the wall clock, lives with the alert lifecycle.
//!
//! Readings may come every 15 minutes, every hour or in daily batches, and
//! registers count whole litres. Rules therefore look at *intervals* between
//! consecutive readings, and where a rule is about hours (background rate,
//! leaks) intervals are merged into windows of at least an hour, so a meter that
//! counts a 2.5 L/h drip as "2, 3, 2, 3 L" per hour — or "0, 1, 1, 0" per quarter
//! hour — is judged the same.

use crate::domain::{StatusFlag, StatusFlags};
use crate::store::StoredReading;

const HOUR: i64 = 3600;

/// The thresholds of every rule, resolved for one household.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `no_usage`: less than this many litres above the background rate…
    pub min_litres: i64,
    /// …in this many seconds is a warning,
    pub warning_window_s: i64,
    /// …and in this many seconds is urgent.
    pub urgent_window_s: i64,
    /// `continuous_flow`: at least this average rate (L/h) in every interval…
    pub min_flow_lph: i64,
    /// …for this long (seconds).
    pub flow_s: i64,
    /// `leak`: some use in every hour, below `min_flow_lph`, for this long (seconds).
    pub leak_s: i64,
    /// `high_usage`: more than this many litres in 24 h.
    pub max_litres_per_day: i64,
    /// How far back the background rate is estimated (seconds).
    pub background_s: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            min_litres: 10,
            warning_window_s: 12 * HOUR,
            urgent_window_s: 24 * HOUR,
            min_flow_lph: 100,
            flow_s: 2 * HOUR,
            leak_s: 24 * HOUR,
            max_litres_per_day: 2000,
            background_s: 7 * 24 * HOUR,
        }
    }
}

impl Policy {
    /// The rule parameters that can be set per category or household, as
    /// written in `[rules]`.
    pub const KEYS: [&'static str; 7] = [
        "min_litres",
        "warning_window",
        "urgent_window",
        "min_flow_lph",
        "flow_for",
        "leak_for",
        "max_litres_per_day",
    ];

    /// Sets one parameter from its text (`"8h"`, `"5"`); the error says what is allowed.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let count = || match value.trim().parse::<i64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "{key} = {value:?}: must be a whole number of at least 1"
            )),
        };
        let duration = || {
            crate::domain::parse_duration(value)
                .ok_or_else(|| format!("{key} = {value:?}: must be a duration such as \"90s\", \"30m\", \"12h\" or \"7d\""))
        };
        match key {
            "min_litres" => self.min_litres = count()?,
            "warning_window" => self.warning_window_s = duration()?,
            "urgent_window" => self.urgent_window_s = duration()?,
            "min_flow_lph" => self.min_flow_lph = count()?,
            "flow_for" => self.flow_s = duration()?,
            "leak_for" => self.leak_s = duration()?,
            "max_litres_per_day" => self.max_litres_per_day = count()?,
            other => {
                return Err(format!(
                    "{other:?} is not a rule parameter; they are {}",
                    Self::KEYS.join(", ")
                ))
            }
        }
        Ok(())
    }

    /// The text of one parameter, as `set` takes it.
    pub fn get(&self, key: &str) -> Option<String> {
        let hours = |s: i64| {
            if s % 3600 == 0 {
                format!("{}h", s / 3600)
            } else {
                format!("{s}s")
            }
        };
        Some(match key {
            "min_litres" => self.min_litres.to_string(),
            "warning_window" => hours(self.warning_window_s),
            "urgent_window" => hours(self.urgent_window_s),
            "min_flow_lph" => self.min_flow_lph.to_string(),
            "flow_for" => hours(self.flow_s),
            "leak_for" => hours(self.leak_s),
            "max_litres_per_day" => self.max_litres_per_day.to_string(),
            _ => return None,
        })
    }
}

/// How serious a `no_usage` finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Urgent,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Urgent => "urgent",
        }
    }
}

/// A rule that holds at the evaluation point, with what an SMS needs to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Less than `min_litres` above background in the window. `since`: the end
    /// of the last interval with use above the background (or the window's start).
    NoUsage {
        severity: Severity,
        since: i64,
        used_l: i64,
    },
    /// At least `min_flow_lph` in every interval since `since`.
    ContinuousFlow { since: i64, litres: i64 },
    /// Some use in every hour since `since`, not all of it fast enough to be a flow.
    Leak { since: i64, litres: i64 },
    /// More than `max_litres_per_day` in the 24 h since `since`.
    HighUsage { since: i64, litres: i64 },
    /// The meter reports a fault flag.
    DeviceFault { flags: StatusFlags },
}

/// The alert kinds (the names used in the store, the config and the docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    NoUsage,
    ContinuousFlow,
    Leak,
    HighUsage,
    MeterOffline,
    DeviceFault,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::NoUsage,
        Kind::ContinuousFlow,
        Kind::Leak,
        Kind::HighUsage,
        Kind::MeterOffline,
        Kind::DeviceFault,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NoUsage => "no_usage",
            Kind::ContinuousFlow => "continuous_flow",
            Kind::Leak => "leak",
            Kind::HighUsage => "high_usage",
            Kind::MeterOffline => "meter_offline",
            Kind::DeviceFault => "device_fault",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Welfare alerts go to the household's contacts and are silenced by a
    /// declared absence; the others go to maintenance.
    pub fn is_welfare(self) -> bool {
        matches!(self, Kind::NoUsage | Kind::ContinuousFlow | Kind::HighUsage)
    }
}

impl Condition {
    pub fn kind(&self) -> Kind {
        match self {
            Condition::NoUsage { .. } => Kind::NoUsage,
            Condition::ContinuousFlow { .. } => Kind::ContinuousFlow,
            Condition::Leak { .. } => Kind::Leak,
            Condition::HighUsage { .. } => Kind::HighUsage,
            Condition::DeviceFault { .. } => Kind::DeviceFault,
        }
    }
}

/// What holds at one evaluation point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// The evaluation point: the meter time of the reading assessed.
    pub at: i64,
    /// The estimated background (leak) rate, millilitres per hour.
    pub background_mlph: i64,
    pub conditions: Vec<Condition>,
}

/// Flags that open a `device_fault`.
pub fn fault_flags(status: StatusFlags) -> StatusFlags {
    let mut faults = StatusFlags::default();
    for flag in [
        StatusFlag::LowBattery,
        StatusFlag::Tamper,
        StatusFlag::Burst,
        StatusFlag::Reverse,
    ] {
        if status.contains(flag) {
            faults.insert(flag);
        }
    }
    faults
}

/// One interval between consecutive readings.
#[derive(Debug, Clone, Copy)]
struct Interval {
    start: i64,
    end: i64,
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
fn hour_windows(readings: &[StoredReading]) -> Vec<Interval> {
    let mut windows = Vec::new();
    let mut open: Option<Interval> = None;
    for interval in intervals(readings).rev() {
        let window = match open.take() {
            None => interval,
            Some(window) => Interval {
                start: interval.start,
                end: window.end,
                litres: window.litres + interval.litres,
            },
        };
        if window.end - window.start >= HOUR {
            windows.push(window);
        } else {
            open = Some(window);
        }
    }
    windows
}

/// The lowest hourly rate (mL/h) over the background period, from windows of at
/// least an hour; 0 until a day of history exists.
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
    hour_windows(recent)
        .iter()
        .map(|w| w.litres * 1000 * HOUR / (w.end - w.start))
        .min()
        .unwrap_or(0)
}

/// Evaluates every rule at `readings[at]`, looking only at readings up to it.
/// `readings` must be sorted by time.
pub fn assess(readings: &[StoredReading], at: usize, policy: &Policy) -> Assessment {
    let history = &readings[..=at];
    let now = history[at].ts;
    let background = background_mlph(history, policy);
    let mut conditions = Vec::new();

    let urgent = no_usage(history, policy.urgent_window_s, background, policy);
    let warning = no_usage(history, policy.warning_window_s, background, policy);
    match (urgent, warning) {
        (Some((since, used_l)), _) => conditions.push(Condition::NoUsage {
            severity: Severity::Urgent,
            since,
            used_l,
        }),
        (None, Some((since, used_l))) => conditions.push(Condition::NoUsage {
            severity: Severity::Warning,
            since,
            used_l,
        }),
        (None, None) => {}
    }
    let flow = continuous_flow(history, policy);
    if let Some((since, litres)) = flow {
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
    }
}

/// The newest reading at or before `ts`.
fn reading_at_or_before(history: &[StoredReading], ts: i64) -> Option<usize> {
    history.partition_point(|r| r.ts <= ts).checked_sub(1)
}

/// `(since, used litres)` when less than `min_litres` above background were used
/// in the `window_s` before the newest reading; `None` when there was enough use
/// or the history is shorter than the window.
fn no_usage(
    history: &[StoredReading],
    window_s: i64,
    background: i64,
    policy: &Policy,
) -> Option<(i64, i64)> {
    let now = history.last()?.ts;
    let start = reading_at_or_before(history, now - window_s)?;
    let span = &history[start..];
    let used_l: i64 = intervals(span).map(|i| i.litres).sum();
    let excess_ml = used_l * 1000 - background * (now - span[0].ts) / HOUR;
    if excess_ml >= policy.min_litres * 1000 {
        return None;
    }
    let since = intervals(span)
        .filter(|i| i.litres * 1000 > background * (i.end - i.start) / HOUR)
        .map(|i| i.end)
        .next_back()
        .unwrap_or(span[0].ts);
    Some((since, used_l))
}

/// `(since, litres)` when every interval back to `since`, covering at least
/// `flow_s`, averaged at least `min_flow_lph`.
fn continuous_flow(history: &[StoredReading], policy: &Policy) -> Option<(i64, i64)> {
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
fn leak(history: &[StoredReading], policy: &Policy) -> Option<(i64, i64)> {
    let now = history.last()?.ts;
    let mut litres = 0;
    for window in hour_windows(history) {
        if window.litres == 0 {
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
fn high_usage(history: &[StoredReading], policy: &Policy) -> Option<(i64, i64)> {
    let now = history.last()?.ts;
    let start = reading_at_or_before(history, now - 24 * HOUR)?;
    let span = &history[start..];
    if now - span[0].ts > 48 * HOUR {
        return None;
    }
    let litres: i64 = intervals(span).map(|i| i.litres).sum();
    (litres > policy.max_litres_per_day).then_some((span[0].ts, litres))
}

#[cfg(test)]
mod tests;
