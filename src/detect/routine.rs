//! The learned per-household routine: when this home uses water, and how
//! unusual a quiet stretch is *for this home*.
//!
//! A [`Routine`] is folded over a meter's readings one at a time, in event
//! time, and persisted with the meter's state (about 650 bytes), so each
//! reading costs the same however long the history. It learns:
//!
//! - **the probability of use in each hour of the day**, weekdays and weekends
//!   apart (a weekend hour leans on the all-days figure until the home's
//!   weekends show enough of their own); "use" is water above the background
//!   rate, so a dripping toilet never looks like someone at home;
//! - **how unusual its quiet stretches are**: while the home is quiet, each
//!   hour adds evidence `-ln(1 - p)` for that hour's probability of use `p`
//!   (an hour in which this resident almost always uses water adds a lot; a
//!   night hour almost nothing). Every quiet stretch of an hour or more that
//!   ended normally leaves the evidence it reached in a histogram, so the
//!   home's own outings, naps and late mornings calibrate the levels: the
//!   watch and alarm levels are where this home's normal stretches would cross
//!   them about once in 20 days and once in 250 days (an exponential tail
//!   fitted over its longest stretches, so a level beyond anything seen yet
//!   can still be set);
//! - **the usual first use of the day** (getting up), with its spread, to
//!   say "usually uses water by 07:40".
//!
//! It learns only from normal stretches: one that overlaps a declared
//! absence, reaches 24 hours (an absence or an incident, never routine),
//! or begins at a gap in the readings or a register reset is left out, with
//! the days it spans. Older days weigh less (the histogram halves in about 23
//! days, an hour's probability in about 17 observations of that hour).
//!
//! It speaks after 7 days with readings, and only for meters that report at
//! least every 2 hours: a daily meter cannot show a quiet morning.

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;

use crate::domain::StoredReading;
pub use crate::policy::Sensitivity;

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
/// Evidence histogram: bins of 0.5 from 0 to 24 (the last holds everything above).
const BINS: usize = 48;
const BIN: f32 = 0.5;
/// Per observation of an hour slot.
const SLOT_DECAY: f32 = 0.96;
/// Per day, for the stretch histogram and the day count.
const DAY_DECAY: f32 = 0.97;
/// Days with readings before the routine speaks.
pub const MIN_DAYS: u32 = 7;
/// A quiet stretch this long is an absence or an incident, never routine.
const MAX_STRETCH_S: i64 = 24 * HOUR;
/// An interval longer than this is a gap in the readings.
const GAP_S: i64 = 26 * HOUR;
/// Meters reporting less often than this are left to the fixed rules.
const FAST_INTERVAL_S: f32 = 2.0 * HOUR as f32;
/// The first use of the day is looked for from 03:00 local time.
const WAKE_FROM_MIN: i64 = 3 * 60;
/// Water above the background, summed, that is use: a small flush.
const USE_ML: i64 = 2500;
/// Background noise allowed per hour before it adds up to use.
const SLACK_MLPH: i64 = 500;
/// A quiet stretch at least this long before the day's first use is a night.
const NIGHT_S: i64 = 3 * HOUR;
/// Getting up is a first use followed by more within this long.
const GETTING_UP_S: i64 = 90 * 60;
/// Never below this evidence (about two quiet hours a home nearly always uses).
const MIN_WATCH: f32 = 3.0;
/// The alarm level is at least this far above the watch level.
const MIN_ALARM_GAP: f32 = 1.5;
const FORMAT_VERSION: u8 = 2;

/// (watch, alarm): how often, per day, the home's own normal quiet stretches
/// may reach each grade.
fn targets(sensitivity: Sensitivity) -> (f32, f32) {
    match sensitivity {
        Sensitivity::Low => (0.02, 0.0015),
        Sensitivity::Normal => (0.05, 0.004),
        Sensitivity::High => (0.12, 0.01),
    }
}

/// What a grade found, in words a monitor understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Habit {
    /// Not up yet: usually uses water by this time (minutes after local midnight).
    NotUpYet { usual_by_min: u16 },
    /// This home is quiet this long at this time of day about once in this many days.
    Rare { once_in_days: u32 },
}

/// A grade the routine reached at one reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finding {
    pub alarm: bool,
    /// Where the quiet stretch began (meter clock).
    pub since: i64,
    /// Litres used in the stretch (below what counts as use).
    pub used_l: i64,
    pub evidence: f32,
    pub habit: Habit,
}

/// The levels in force for a home.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels {
    pub watch: f32,
    pub alarm: f32,
}

/// When a resident gets up: observations (decayed), mean and variance in
/// minutes after local midnight.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Wake {
    seen: f32,
    mean: f32,
    var: f32,
}

impl Wake {
    fn learn(&mut self, minute: f32) {
        const DECAY: f32 = 0.95;
        self.seen = self.seen * DECAY + 1.0;
        let step = 1.0 / self.seen;
        let delta = minute - self.mean;
        self.mean += step * delta;
        self.var = (1.0 - step) * (self.var + step * delta * delta);
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Slot {
    /// Observations (decayed).
    seen: f32,
    /// Of which with use.
    used: f32,
}

/// One meter's learned routine.
#[derive(Debug, Clone, PartialEq)]
pub struct Routine {
    /// The last reading folded in: (meter time, register).
    last: Option<(i64, i64)>,
    /// Its local day.
    last_day: i64,
    /// The current quiet stretch: where it began, whether that is uncertain
    /// (a gap or reset), the litres in it, and its evidence up to `last`.
    quiet_since: i64,
    uncertain: bool,
    quiet_litres: i64,
    /// Water the background does not explain, summed since the stretch began (mL).
    cusum_ml: i64,
    evidence: f32,
    /// The first local hour (index since the epoch) not yet learned.
    pending_hour: i64,
    /// The usual interval between readings (seconds, smoothed).
    interval_s: f32,
    /// Days observed (decayed) and with readings (plain count).
    days: f32,
    days_seen: u32,
    /// `[weekday, weekend][hour]`.
    slots: [[Slot; 24]; 2],
    /// Normal quiet stretches of an hour or more by the evidence they reached (decayed).
    stretches: [f32; BINS],
    /// First use of the day: observations, mean and variance (minutes after midnight).
    /// `[weekday, weekend]`.
    wake: [Wake; 2],
    /// Last use before the night (going to bed): observations, mean and
    /// variance in minutes after local noon (so 23:30 and 00:30 are an hour
    /// apart). `[weekday, weekend]` by the evening's day.
    bed: [Wake; 2],
    /// A first use of the day waiting to be confirmed by another use soon
    /// after it (meter clock; 0: none): a night-time visit to the toilet is
    /// not getting up.
    wake_candidate: i64,
    /// Where the night before that candidate began (meter clock).
    night_from: i64,
    /// The local day whose first use was recorded.
    woke_day: i64,
}

impl Default for Routine {
    fn default() -> Self {
        Self {
            last: None,
            last_day: 0,
            quiet_since: 0,
            uncertain: true,
            quiet_litres: 0,
            cusum_ml: 0,
            evidence: 0.0,
            pending_hour: 0,
            interval_s: HOUR as f32,
            days: 0.0,
            days_seen: 0,
            slots: [[Slot::default(); 24]; 2],
            stretches: [0.0; BINS],
            wake: [Wake::default(); 2],
            bed: [Wake::default(); 2],
            wake_candidate: 0,
            night_from: 0,
            woke_day: i64::MIN,
        }
    }
}

/// Seconds to add to UTC for local time in `zone` at `ts`.
pub fn utc_offset(zone: Tz, ts: i64) -> i64 {
    let Some(utc) = chrono::DateTime::from_timestamp(ts, 0) else {
        return 0;
    };
    i64::from(
        zone.offset_from_utc_datetime(&utc.naive_utc())
            .fix()
            .local_minus_utc(),
    )
}

/// 0 for Monday–Friday, 1 for Saturday and Sunday (a local day index).
fn day_type(local_day: i64) -> usize {
    // 1970-01-01 was a Thursday.
    usize::from((local_day + 3).rem_euclid(7) >= 5)
}

/// Where a stretch's evidence falls in the histogram.
fn bin_of(evidence: f32) -> usize {
    ((evidence / BIN) as usize).min(BINS - 1)
}

impl Routine {
    /// Whether the routine has learned enough to judge, and the meter reports
    /// often enough for it.
    pub fn speaks(&self) -> bool {
        self.days_seen >= MIN_DAYS && self.days >= 5.0 && self.interval_s <= FAST_INTERVAL_S
    }

    pub fn days_seen(&self) -> u32 {
        self.days_seen
    }

    /// The usual interval between readings, seconds.
    pub fn interval_s(&self) -> i64 {
        self.interval_s as i64
    }

    /// The probability of use in one local hour of a weekday (`weekend` false) or weekend day.
    pub fn probability(&self, weekend: bool, hour: usize) -> f32 {
        let [weekday, weekend_slot] = [self.slots[0][hour], self.slots[1][hour]];
        let seen = weekday.seen + weekend_slot.seen;
        let all = (weekday.used + weekend_slot.used + 0.3) / (seen + 1.0);
        let own = self.slots[usize::from(weekend)][hour];
        ((own.used + 4.0 * all) / (own.seen + 4.0)).clamp(0.02, 0.95)
    }

    fn weight(&self, local_hour: i64) -> f32 {
        let weekend = day_type(local_hour.div_euclid(24)) == 1;
        let hour = local_hour.rem_euclid(24) as usize;
        -(1.0 - self.probability(weekend, hour)).ln()
    }

    /// The evidence a quiet stretch gathers from `from` to `to` (meter clock).
    fn evidence_between(&self, from: i64, to: i64, offset: i64) -> f32 {
        let to = to.min(from + 2 * MAX_STRETCH_S);
        let mut evidence = 0.0;
        let mut t = from;
        while t < to {
            let hour = (t + offset).div_euclid(HOUR);
            let end = ((hour + 1) * HOUR - offset).min(to);
            evidence += self.weight(hour) * (end - t) as f32 / HOUR as f32;
            t = end;
        }
        evidence
    }

    fn learn_hour(&mut self, local_hour: i64, used: bool) {
        let slot = &mut self.slots[day_type(local_hour.div_euclid(24))]
            [local_hour.rem_euclid(24) as usize];
        slot.seen = slot.seen * SLOT_DECAY + 1.0;
        slot.used = slot.used * SLOT_DECAY + f32::from(u8::from(used));
    }

    fn new_day(&mut self) {
        self.days = self.days * DAY_DECAY + 1.0;
        for bin in &mut self.stretches {
            *bin *= DAY_DECAY;
        }
        self.days_seen += 1;
    }

    /// Starts a stretch of unknown beginning at `ts` (the first reading, a gap, a reset).
    fn restart(&mut self, ts: i64, offset: i64) {
        self.quiet_since = ts;
        self.uncertain = true;
        self.quiet_litres = 0;
        self.cusum_ml = 0;
        self.evidence = 0.0;
        self.pending_hour = (ts + offset).div_euclid(HOUR) + 1;
    }

    /// Folds the next reading in (readings in time order; older ones are
    /// ignored). `background_mlph`: the background rate at this reading;
    /// `absences`: the household's declared absences (`[start, end)`).
    pub fn observe(
        &mut self,
        reading: &StoredReading,
        background_mlph: i64,
        zone: Tz,
        absences: &[(i64, i64)],
    ) {
        let (ts, total) = (reading.ts.secs(), reading.total_l);
        let offset = utc_offset(zone, ts);
        let day = (ts + offset).div_euclid(DAY);
        let Some((last_ts, last_total)) = self.last else {
            self.last = Some((ts, total));
            self.last_day = day;
            self.restart(ts, offset);
            return;
        };
        if ts <= last_ts {
            return;
        }
        self.last = Some((ts, total));
        let length = ts - last_ts;
        if length <= GAP_S {
            self.interval_s = 0.9 * self.interval_s + 0.1 * length as f32;
            for _ in 0..(day - self.last_day).clamp(0, 2) {
                self.new_day();
            }
        }
        self.last_day = day;
        if reading.register_reset || length > GAP_S {
            self.restart(ts, offset);
            return;
        }
        let litres = (total - last_total).max(0);
        let background_ml = background_mlph * length / HOUR;
        // Use is what the background cannot explain, summed while it lasts
        // (a cumulative sum that never goes below zero, with a slack of
        // `SLACK_MLPH`): a drip counted in whole litres (2, 3, 2 …) or a
        // cistern refilling in bursts (6, 2, 4 …) averages out and never
        // looks like someone at home; a flush, or two small uses in a row, do.
        self.cusum_ml =
            (self.cusum_ml + litres * 1000 - background_ml - SLACK_MLPH * length / HOUR).max(0);
        if self.cusum_ml < USE_ML {
            self.evidence += self.evidence_between(last_ts, ts, offset);
            self.quiet_litres += litres;
            return;
        }
        self.stretch_ended(last_ts, ts, offset, absences);
    }

    /// Use somewhere in `[from, to]`: the quiet stretch ended at `from`.
    fn stretch_ended(&mut self, from: i64, to: i64, offset: i64, absences: &[(i64, i64)]) {
        let start = self.quiet_since;
        let length = from - start;
        let excluded = self.uncertain
            || length >= MAX_STRETCH_S
            || absences.iter().any(|&(a, b)| a < from && start < b);
        let local_from = (from + offset).div_euclid(HOUR);
        let used_hour = (to - 1 + offset).div_euclid(HOUR);
        if excluded {
            // Its days taught nothing about quiet stretches.
            self.days = (self.days - (length / DAY) as f32).max(0.0);
        } else {
            if length >= HOUR {
                self.stretches[bin_of(self.evidence)] += 1.0;
            }
            for hour in self.pending_hour..local_from.min(used_hour) {
                self.learn_hour(hour, false);
            }
        }
        if used_hour >= self.pending_hour {
            self.learn_hour(used_hour, true);
        }
        // Getting up: the day's first use (from 03:00) after a night — a
        // stretch of at least `NIGHT_S` through 03:00 — confirmed by more use
        // within `GETTING_UP_S` (a visit to the toilet at 04:00 is not
        // getting up). A night worker, asleep by day, has no such morning.
        let day = (to + offset).div_euclid(DAY);
        let minute = (to + offset).rem_euclid(DAY) / 60;
        let candidate = self.wake_candidate;
        if candidate > 0 && to - candidate <= GETTING_UP_S && !excluded {
            let local = candidate + offset;
            self.woke_day = local.div_euclid(DAY);
            self.wake[day_type(self.woke_day)].learn((local.rem_euclid(DAY) / 60) as f32);
            // The night began with the evening's last use: minutes after
            // that evening's noon.
            let evening = self.night_from + offset - DAY / 2;
            self.bed[day_type(evening.div_euclid(DAY))]
                .learn((evening.rem_euclid(DAY) / 60) as f32);
            self.wake_candidate = 0;
        } else if self.woke_day != day
            && minute >= WAKE_FROM_MIN
            && !excluded
            && length >= NIGHT_S
            && start + offset < day * DAY + WAKE_FROM_MIN * 60
        {
            self.wake_candidate = to;
            self.night_from = start;
        } else if candidate > 0 && to - candidate > GETTING_UP_S {
            self.wake_candidate = 0;
        }
        self.quiet_since = to;
        self.cusum_ml = 0;
        self.uncertain = false;
        self.quiet_litres = 0;
        self.evidence = 0.0;
        self.pending_hour = self.pending_hour.max(used_hour + 1);
    }

    /// The mornings of this day type, or of the other when this one has
    /// fewer than `at_least` observations; `None` when neither has.
    fn wake_seen(&self, weekend: bool, at_least: f32) -> Option<Wake> {
        [weekend, !weekend]
            .into_iter()
            .map(|w| self.wake[usize::from(w)])
            .find(|wake| wake.seen >= at_least)
    }

    /// The usual first use of the day on weekdays (`weekend` false) or
    /// weekends, if known: (mean, "usually by") in minutes after local
    /// midnight, "by" a standard deviation later. A day type with too few
    /// mornings yet borrows the other's.
    pub fn usual_wake(&self, weekend: bool) -> Option<(u16, u16)> {
        self.wake_seen(weekend, 4.0).map(|wake| {
            let by = wake.mean + wake.var.sqrt();
            (
                wake.mean.round() as u16,
                by.round().clamp(0.0, 1439.0) as u16,
            )
        })
    }

    /// The usual last use before the night on weekday (`weekend` false) or
    /// weekend evenings, if known: (mean, spread) in minutes, the mean after
    /// local midnight (a bedtime after midnight is early morning).
    pub fn usual_bed(&self, weekend: bool) -> Option<(u16, u16)> {
        [weekend, !weekend]
            .into_iter()
            .map(|w| self.bed[usize::from(w)])
            .find(|bed| bed.seen >= 4.0)
            .map(|bed| {
                let minute = (bed.mean.round() as i64 + 12 * 60).rem_euclid(24 * 60);
                (minute as u16, bed.var.sqrt().round() as u16)
            })
    }

    /// Minutes after midnight past which a morning without use is late for
    /// this home at `sensitivity`: the usual time, `z` spreads (at least 20
    /// minutes) and 20 minutes more.
    fn late_by(&self, weekend: bool, sensitivity: Sensitivity) -> Option<i64> {
        let wake = self.wake_seen(weekend, 6.0)?;
        let z = match sensitivity {
            Sensitivity::Low => 3.0,
            Sensitivity::Normal => 2.5,
            Sensitivity::High => 2.0,
        };
        Some((wake.mean + (z * wake.var.sqrt()).max(20.0) + 20.0) as i64)
    }

    /// Normal stretches per day reaching `evidence`, from the fitted tail.
    fn tail(&self) -> Option<Tail> {
        if self.days < 1.0 {
            return None;
        }
        // The threshold: where about one stretch in two days goes beyond.
        let mut above = 0.0;
        let mut k = BINS;
        while k > 0 && (above + self.stretches[k - 1]) / self.days <= 0.5 {
            above += self.stretches[k - 1];
            k -= 1;
        }
        let u = k as f32 * BIN;
        let excess: f32 = (k..BINS)
            .map(|j| self.stretches[j] * ((j as f32 + 0.5) * BIN - u))
            .sum();
        // Two pseudo-stretches 1.5 above the threshold keep a few days of
        // data from fitting an implausibly thin tail.
        let scale = ((excess + 3.0) / (above + 2.0)).clamp(0.75, 6.0);
        let rate = ((above + 0.5) / self.days).min(0.5);
        Some(Tail { u, rate, scale })
    }

    /// The watch and alarm levels at `sensitivity`, once the routine speaks.
    pub fn levels(&self, sensitivity: Sensitivity) -> Option<Levels> {
        if !self.speaks() {
            return None;
        }
        let tail = self.tail()?;
        let (watch, alarm) = targets(sensitivity);
        let watch = tail.level(watch).max(MIN_WATCH);
        let alarm = tail.level(alarm).max(watch + MIN_ALARM_GAP);
        Some(Levels { watch, alarm })
    }

    /// The grade the current quiet stretch has reached at the last reading
    /// folded in, if any (never before an hour of quiet).
    pub fn judge(&self, sensitivity: Sensitivity, zone: Tz) -> Option<Finding> {
        let (now, _) = self.last?;
        let levels = self.levels(sensitivity)?;
        if now - self.quiet_since < HOUR {
            return None;
        }
        let offset = utc_offset(zone, now);
        let today = (now + offset).div_euclid(DAY);
        let minute = (now + offset).rem_euclid(DAY) / 60;
        let weekend = day_type(today) == 1;
        // Not up yet: quiet since before 03:00 and past the usual time.
        let usual = self.usual_wake(weekend);
        let not_up = |by: i64| {
            self.woke_day != today
                && minute >= WAKE_FROM_MIN
                && minute > by
                && now - self.quiet_since >= NIGHT_S
                && self.quiet_since + offset < today * DAY + WAKE_FROM_MIN * 60
        };
        let late = self.late_by(weekend, sensitivity).is_some_and(&not_up);
        if self.evidence < levels.watch && !late {
            return None;
        }
        let habit = match usual {
            Some((_, by)) if not_up(i64::from(by)) => Habit::NotUpYet { usual_by_min: by },
            _ => {
                let per_day = self.tail().map_or(0.0, |t| t.rate_at(self.evidence));
                Habit::Rare {
                    once_in_days: (1.0 / per_day.max(1e-4)).round().min(9999.0) as u32,
                }
            }
        };
        Some(Finding {
            alarm: self.evidence >= levels.alarm,
            since: self.quiet_since,
            used_l: self.quiet_litres,
            evidence: self.evidence,
            habit,
        })
    }

    /// How long a quiet stretch starting at local `hour` on a weekday takes
    /// to reach `level` (seconds), if within a day.
    pub fn quiet_to_reach(&self, hour: usize, level: f32) -> Option<i64> {
        let mut evidence = 0.0;
        for h in 0..24 {
            let weight = -(1.0 - self.probability(false, (hour + h) % 24)).ln();
            if evidence + weight >= level {
                return Some(h as i64 * HOUR + ((level - evidence) / weight * HOUR as f32) as i64);
            }
            evidence += weight;
        }
        None
    }
}

/// The fitted tail of a home's quiet stretches: above `u`, `rate` stretches
/// a day, thinning by e every `scale` of evidence.
#[derive(Debug, Clone, Copy)]
struct Tail {
    u: f32,
    rate: f32,
    scale: f32,
}

impl Tail {
    /// The evidence normal stretches reach `per_day` times a day.
    fn level(&self, per_day: f32) -> f32 {
        self.u + self.scale * (self.rate / per_day).ln().max(0.0)
    }

    fn rate_at(&self, evidence: f32) -> f32 {
        self.rate * (-(evidence - self.u).max(0.0) / self.scale).exp()
    }
}

mod encoding;
pub use encoding::ENCODED_LEN;

#[cfg(test)]
mod tests;
