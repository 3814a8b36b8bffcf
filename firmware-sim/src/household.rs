//! One resident living alone: presence first (asleep, at home, out), water
//! second. Water is used in tap openings — a fixture running at its own flow
//! for a while — at the day's transitions (getting up, going to bed, coming
//! home), at meals, and at random while the resident is awake and at home.
//!
//! Long on purpose: a resident's day is one piece of reasoning (presence,
//! then the uses that follow from it), read top to bottom in `Home::day`.
//!
//! Everything is drawn from keyed generators (the home, the day, the purpose),
//! so a home's day is the same whatever else the run holds. Days are local
//! days in China Standard Time (UTC+8, no daylight saving). The figures and
//! their sources are in `docs/simulation.md`.

use crate::rng::Rng;
use crate::scenario::{Incident, IncidentKind};

/// UTC+8.
pub const LOCAL_OFFSET_S: i64 = 8 * 3600;
const MIN: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// What ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixture {
    Toilet,
    Basin,
    Kitchen,
    Shower,
    Washer,
    Bucket,
    /// A dripping toilet valve: runs all the time.
    Drip,
    /// A burst pipe.
    Burst,
}

/// A fixture running at `lph` litres per hour over `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Opening {
    pub start: i64,
    pub end: i64,
    pub lph: f64,
    pub fixture: Fixture,
    /// A washing machine's fill belongs to a cycle that began here: a cycle
    /// started before the resident fell finishes on its own.
    pub cycle: Option<i64>,
}

impl Opening {
    fn new(fixture: Fixture, start: i64, litres: f64, lpm: f64) -> Self {
        let seconds = (litres / lpm * 60.0).max(1.0);
        Self {
            start,
            end: start + seconds.round() as i64,
            lph: lpm * 60.0,
            fixture,
            cycle: None,
        }
    }

    pub fn litres(&self) -> f64 {
        (self.end - self.start) as f64 * self.lph / 3600.0
    }
}

/// A resident's habits and a home's fixtures, drawn once per home.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Minutes after local midnight.
    pub wake_min: f64,
    pub bed_min: f64,
    /// Day-to-day spread of getting up and going to bed, minutes.
    pub jitter_min: f64,
    /// Gets up this much later on Saturdays and Sundays, minutes.
    pub weekend_shift_min: f64,
    /// Sleeps irregularly: wide spread, and often up for a while at night.
    pub irregular: bool,
    /// Night toilet visits, mean per night.
    pub nocturia: f64,
    /// An after-lunch nap.
    pub naps: bool,
    /// Litres per flush.
    pub cistern_l: f64,
    pub refill_lpm: f64,
    pub basin_lpm: f64,
    pub kitchen_lpm: f64,
    pub shower_lpm: f64,
    /// Litres per shower (mean).
    pub shower_l: f64,
    pub showers_per_week: f64,
    pub evening_shower: bool,
    /// Washing machine loads a week (0: washes by hand).
    pub machine_loads_per_week: f64,
    pub hand_washes_per_week: f64,
    pub mops_per_week: f64,
    /// Random uses per hour awake at home.
    pub uses_per_hour: f64,
    /// A very low user: 30–60 L a day.
    pub frugal: bool,
    /// Share of toilet visits flushed (thrifty residents save flushes).
    pub flush_share: f64,
    pub market_chance: f64,
    /// Day-centre weekdays (0 = Monday).
    pub day_centre: Vec<u32>,
    /// Dialysis on Monday, Wednesday and Friday mornings.
    pub dialysis: bool,
    pub walk_chance: f64,
    pub evening_out_chance: f64,
    /// Overnight stays with family, per 30 days.
    pub family_stays_per_month: f64,
    pub visitors_per_week: f64,
    pub sick_days_per_year: f64,
    /// A dripping toilet, litres per hour.
    pub drip_lph: Option<f64>,
}

impl Profile {
    /// A resident; `irregular`: the chance they sleep irregularly.
    pub fn draw(rng: &mut Rng, irregular: f64) -> Self {
        let frugal = rng.chance(0.15);
        let irregular = rng.chance(irregular);
        let machine = rng.chance(0.7);
        let day_centre = if rng.chance(0.15) {
            let days = 2 + rng.below(4) as u32;
            (0..5).filter(|_| rng.chance(days as f64 / 5.0)).collect()
        } else {
            Vec::new()
        };
        Self {
            wake_min: rng.normal(6.6 * 60.0, 45.0).clamp(4.5 * 60.0, 9.5 * 60.0),
            bed_min: rng
                .normal(21.9 * 60.0, 50.0)
                .clamp(20.0 * 60.0, 24.5 * 60.0),
            jitter_min: if irregular {
                100.0
            } else {
                rng.range(15.0, 40.0)
            },
            weekend_shift_min: rng.range(0.0, 45.0),
            irregular,
            nocturia: rng.range(0.3, 1.8),
            naps: rng.chance(0.4),
            cistern_l: [4.5, 6.0, 6.0, 6.0, 9.0][rng.below(5) as usize]
                * if frugal { 0.8 } else { 1.0 },
            refill_lpm: rng.range(6.0, 10.0),
            basin_lpm: rng.range(3.0, 7.0),
            kitchen_lpm: rng.range(4.0, 8.0),
            shower_lpm: rng.range(6.0, 12.0),
            shower_l: if frugal {
                rng.range(20.0, 35.0)
            } else {
                rng.range(25.0, 85.0)
            },
            showers_per_week: if frugal {
                rng.range(1.0, 2.5)
            } else {
                rng.normal(4.0, 1.5).clamp(1.5, 7.0)
            },
            evening_shower: rng.chance(0.65),
            machine_loads_per_week: if machine { rng.range(1.0, 3.0) } else { 0.0 },
            hand_washes_per_week: if machine { 0.0 } else { rng.range(2.0, 4.0) },
            mops_per_week: rng.range(0.5, 2.0),
            uses_per_hour: rng.range(0.5, 1.1) * if frugal { 0.5 } else { 1.0 },
            frugal,
            flush_share: if frugal { rng.range(0.4, 0.7) } else { 1.0 },
            market_chance: rng.range(0.3, 0.7),
            day_centre,
            dialysis: rng.chance(0.04),
            walk_chance: rng.range(0.3, 0.6),
            evening_out_chance: if rng.chance(0.15) { 0.5 } else { 0.0 },
            family_stays_per_month: if rng.chance(0.4) {
                rng.range(0.3, 2.0)
            } else {
                0.0
            },
            visitors_per_week: rng.range(0.0, 2.0),
            sick_days_per_year: rng.range(2.0, 12.0),
            drip_lph: rng.chance(0.06).then(|| rng.range(0.3, 3.0)),
        }
    }
}

/// A stretch the resident spends away overnight with family (normal life,
/// written to the ground truth as `stay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stay {
    pub start: i64,
    pub end: i64,
}

/// One home's water, generated a day at a time as readings ask for it.
#[derive(Debug, Clone)]
pub struct Home {
    seed: u64,
    index: u64,
    pub profile: Profile,
    /// Local midnight of the first day (Unix seconds).
    day0: i64,
    next_day: i64,
    /// Generated openings not yet over, by start.
    openings: Vec<Opening>,
    incidents: Vec<Incident>,
    pub stays: Vec<Stay>,
    away_until: i64,
    sick_until: i64,
}

impl Home {
    /// Home `index` of a run seeded `seed`, whose first day is the local day of `start`.
    pub fn new(seed: u64, index: u64, start: i64, incidents: Vec<Incident>) -> Self {
        Self::with_irregular(seed, index, start, incidents, 0.1)
    }

    /// [`Home::new`] drawn from a town where `irregular` of the residents sleep irregularly.
    pub fn with_irregular(
        seed: u64,
        index: u64,
        start: i64,
        incidents: Vec<Incident>,
        irregular: f64,
    ) -> Self {
        let profile = Profile::draw(&mut Rng::keyed(seed, &[index, 1]), irregular);
        let day0 = (start + LOCAL_OFFSET_S).div_euclid(DAY) * DAY - LOCAL_OFFSET_S;
        let mut home = Self {
            seed,
            index,
            profile,
            day0,
            next_day: 0,
            openings: Vec::new(),
            incidents,
            stays: Vec::new(),
            away_until: i64::MIN,
            sick_until: i64::MIN,
        };
        if let Some(lph) = home.profile.drip_lph {
            home.openings.push(Opening {
                start: i64::MIN / 2,
                end: i64::MAX / 2,
                lph,
                fixture: Fixture::Drip,
                cycle: None,
            });
        }
        for incident in home.incidents.clone() {
            let (fixture, lph) = match incident.kind {
                IncidentKind::ShowerCollapse => (Fixture::Shower, home.profile.shower_lpm * 60.0),
                IncidentKind::TapRunning { lph } => (Fixture::Kitchen, lph),
                IncidentKind::Burst { lph } => (Fixture::Burst, lph),
                _ => continue,
            };
            home.openings.push(Opening {
                start: incident.start,
                end: incident.end,
                lph,
                fixture,
                cycle: None,
            });
        }
        home.openings.sort_by_key(|o| o.start);
        home
    }

    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    /// Litres used over `[from, to)`. Calls must move forward in time.
    pub fn litres(&mut self, from: i64, to: i64) -> f64 {
        self.generate_through(to);
        self.openings.retain(|o| o.end > from);
        self.openings
            .iter()
            .take_while(|o| o.start < to)
            .map(|o| (o.end.min(to) - o.start.max(from)).max(0) as f64 * o.lph / 3600.0)
            .sum()
    }

    /// Litres per hour running at `at`.
    pub fn flow_at(&mut self, at: i64) -> f64 {
        self.generate_through(at + 1);
        self.openings
            .iter()
            .take_while(|o| o.start <= at)
            .filter(|o| o.end > at)
            .map(|o| o.lph)
            .sum()
    }

    fn generate_through(&mut self, until: i64) {
        // A day's openings start at its getting-up time at the earliest, which
        // is after 04:00: a day is generated once `until` reaches its midnight.
        while self.day0 + self.next_day * DAY <= until {
            let day = self.next_day;
            self.next_day += 1;
            let mut fresh = self.day(day);
            fresh.retain(|o| self.keeps(o));
            self.openings.extend(fresh);
            self.openings.sort_by_key(|o| o.start);
        }
    }

    /// Whether an opening of ordinary life survives the incidents.
    fn keeps(&self, opening: &Opening) -> bool {
        self.incidents.iter().all(|incident| match incident.kind {
            IncidentKind::Incapacitation | IncidentKind::ShowerCollapse => {
                let during = opening.start >= incident.start && opening.start < incident.end;
                let finishing_cycle = opening.cycle.is_some_and(|c| c < incident.start);
                !during || finishing_cycle
            }
            IncidentKind::Trip { .. } => {
                opening.start < incident.start || opening.start >= incident.end
            }
            _ => true,
        })
    }

    /// How active the resident is at `at`: 1, less in a decline.
    fn activity(&self, at: i64) -> f64 {
        self.incidents
            .iter()
            .filter(|i| i.kind == IncidentKind::Decline && at >= i.start)
            .map(|i| {
                let share = (at - i.start) as f64 / (i.end - i.start).max(1) as f64;
                1.0 - 0.7 * share.min(1.0)
            })
            .fold(1.0, f64::min)
    }

    fn wake(&self, day: i64) -> i64 {
        let mut rng = Rng::keyed(self.seed, &[self.index, 2, day as u64]);
        let midnight = self.day0 + day * DAY;
        let weekday = weekday(midnight);
        let shift = if weekday >= 5 {
            self.profile.weekend_shift_min
        } else {
            0.0
        };
        let minutes = rng.normal(self.profile.wake_min + shift, self.profile.jitter_min);
        midnight + (minutes.clamp(4.0 * 60.0, 11.0 * 60.0) * 60.0) as i64
    }

    /// The openings of day `day`: from getting up to getting up the next day.
    fn day(&mut self, day: i64) -> Vec<Opening> {
        let p = self.profile.clone();
        let mut rng = Rng::keyed(self.seed, &[self.index, 3, day as u64]);
        let midnight = self.day0 + day * DAY;
        let weekday = weekday(midnight);
        let wake = self.wake(day);
        let next_wake = self.wake(day + 1);
        let bed = (midnight + (rng.normal(p.bed_min, p.jitter_min) * 60.0) as i64)
            .clamp(wake + 10 * HOUR, next_wake - 4 * HOUR);
        let activity = self.activity(wake);
        let mut uses = Vec::new();

        // Sick spells and overnight stays with family are decided day by day.
        if rng.chance(p.sick_days_per_year / 365.0 / 2.5) && self.sick_until < wake {
            self.sick_until = midnight + (1 + rng.below(4) as i64) * DAY;
        }
        let sick = self.sick_until > wake;
        if self.away_until < wake && !sick && rng.chance(p.family_stays_per_month / 30.0) {
            let leave = midnight + (rng.range(10.0, 16.0) * HOUR as f64) as i64;
            let back = midnight
                + (1 + rng.below(3) as i64) * DAY
                + (rng.range(10.0, 18.0) * HOUR as f64) as i64;
            self.away_until = back;
            self.stays.push(Stay {
                start: leave,
                end: back,
            });
        }

        // Out of the home: outings, stays, trips and hospital stays.
        let mut out: Vec<(i64, i64)> = Vec::new();
        let go = |out: &mut Vec<(i64, i64)>, start: i64, end: i64| {
            if end > start && out.iter().all(|&(s, e)| end <= s || start >= e) {
                out.push((start, end));
            }
        };
        let at = |hours: f64| midnight + (hours * HOUR as f64) as i64;
        if !sick {
            if p.dialysis && matches!(weekday, 0 | 2 | 4) {
                go(&mut out, at(rng.range(6.8, 7.5)), at(rng.range(11.5, 12.5)));
            }
            if p.day_centre.contains(&weekday) {
                go(&mut out, at(rng.range(8.3, 9.0)), at(rng.range(15.5, 16.5)));
            }
            if rng.chance(p.market_chance * activity) {
                let start = rng.range(7.5, 9.5);
                go(&mut out, at(start), at(start + rng.range(1.0, 2.5)));
            }
            if rng.chance(p.walk_chance * activity) {
                let start = rng.range(15.0, 16.5);
                go(&mut out, at(start), at(start + rng.range(0.6, 1.5)));
            }
            if rng.chance(p.evening_out_chance * activity) {
                go(&mut out, at(19.0), at(rng.range(20.5, 21.3)));
            }
        }
        out.retain(|&(s, e)| s >= wake + 20 * MIN && e <= bed && e > s);
        for stay in &self.stays {
            if stay.start < next_wake && stay.end > wake {
                out.push((stay.start.max(wake), stay.end.min(next_wake)));
            }
        }
        out.sort();
        let is_out = |t: i64| out.iter().any(|&(s, e)| t >= s && t < e);

        let toilet = |rng: &mut Rng, uses: &mut Vec<Opening>, t: i64| {
            if rng.chance(p.flush_share) {
                uses.push(Opening::new(Fixture::Toilet, t, p.cistern_l, p.refill_lpm));
            }
            if rng.chance(0.85 * p.flush_share) {
                let t = t + 40 + rng.below(40) as i64;
                uses.push(draw(rng, Fixture::Basin, t, (0.5, 1.5), p.basin_lpm));
            }
        };
        let home_at_wake = !is_out(wake);
        if home_at_wake {
            // Getting up: toilet, face and teeth, the kettle, breakfast.
            let t = wake + rng.below(300) as i64;
            toilet(&mut rng, &mut uses, t);
            let t = wake + 5 * MIN + rng.below(600) as i64;
            uses.push(draw(&mut rng, Fixture::Basin, t, (2.0, 5.0), p.basin_lpm));
            let t = wake + 15 * MIN + rng.below(900) as i64;
            uses.push(draw(
                &mut rng,
                Fixture::Kitchen,
                t,
                (1.0, 1.6),
                p.kitchen_lpm,
            ));
            if rng.chance(0.6) {
                let t = wake + 30 * MIN + rng.below(1200) as i64;
                uses.push(draw(
                    &mut rng,
                    Fixture::Kitchen,
                    t,
                    (1.0, 4.0),
                    p.kitchen_lpm,
                ));
            }
        }
        // Meals at home: cooking, then dishes by hand.
        for (hours, spread, dishes) in [(11.8, 0.5, 0.5), (17.9, 0.6, 0.9)] {
            let meal = at(rng.normal(hours, spread));
            if meal > wake && meal < bed && !is_out(meal) && rng.chance(0.9 * activity.sqrt()) {
                let cooking = rng.range(2.0, 8.0) * if p.frugal { 0.5 } else { 1.0 };
                uses.push(Opening::new(Fixture::Kitchen, meal, cooking, p.kitchen_lpm));
                if rng.chance(dishes) {
                    let t = meal + 35 * MIN + rng.below(1800) as i64;
                    let litres = rng.range(8.0, 20.0) * if p.frugal { 0.5 } else { 1.0 };
                    uses.push(Opening::new(Fixture::Kitchen, t, litres, p.kitchen_lpm));
                }
            }
        }
        // A shower, morning or evening.
        if !sick && rng.chance(p.showers_per_week / 7.0 * activity) {
            let t = if p.evening_shower {
                bed - (30 + rng.below(60) as i64) * MIN
            } else {
                wake + (20 + rng.below(40) as i64) * MIN
            };
            if !is_out(t) {
                let litres = rng.normal(p.shower_l, p.shower_l * 0.15).max(15.0);
                uses.push(Opening::new(Fixture::Shower, t, litres, p.shower_lpm));
            }
        }
        // Laundry: a machine fills four times over a cycle; by hand, basins.
        if rng.chance(p.machine_loads_per_week / 7.0) {
            let start = at(rng.range(8.5, 19.0));
            if !is_out(start) && start > wake && start < bed - HOUR {
                let total = rng.range(40.0, 60.0);
                for offset in [0, 12, 38, 55] {
                    let mut fill = Opening::new(
                        Fixture::Washer,
                        start + offset * MIN,
                        total / 4.0,
                        rng.range(8.0, 12.0),
                    );
                    fill.cycle = Some(start);
                    uses.push(fill);
                }
            }
        }
        if !sick && rng.chance(p.hand_washes_per_week / 7.0 * activity) {
            let start = at(rng.range(9.0, 17.0));
            if !is_out(start) && start > wake {
                for n in 0..3 {
                    let t = start + n * (8 + rng.below(8) as i64) * MIN;
                    uses.push(draw(
                        &mut rng,
                        Fixture::Basin,
                        t,
                        (8.0, 12.0),
                        p.kitchen_lpm,
                    ));
                }
            }
        }
        if !sick && rng.chance(p.mops_per_week / 7.0 * activity) {
            let t = at(rng.range(9.0, 18.0));
            if !is_out(t) && t > wake {
                uses.push(draw(
                    &mut rng,
                    Fixture::Bucket,
                    t,
                    (6.0, 10.0),
                    p.kitchen_lpm,
                ));
            }
        }
        // Visitors: tea and the toilet.
        if rng.chance(p.visitors_per_week / 7.0) {
            let start = at(rng.range(14.0, 16.0));
            if !is_out(start) && start > wake && start < bed {
                uses.push(Opening::new(
                    Fixture::Kitchen,
                    start + 5 * MIN,
                    1.5,
                    p.kitchen_lpm,
                ));
                for _ in 0..1 + rng.below(3) {
                    let t = start + rng.below(7200) as i64;
                    toilet(&mut rng, &mut uses, t);
                }
                let t = start + 2 * HOUR + rng.below(1800) as i64;
                uses.push(draw(
                    &mut rng,
                    Fixture::Kitchen,
                    t,
                    (5.0, 10.0),
                    p.kitchen_lpm,
                ));
            }
        }
        // Coming home: wash hands, often the toilet.
        for &(_, back) in &out {
            if back < bed && back > wake {
                let t = back + 60 + rng.below(300) as i64;
                uses.push(draw(&mut rng, Fixture::Basin, t, (0.5, 1.5), p.basin_lpm));
                if rng.chance(0.5) {
                    let t = t + 5 * MIN + rng.below(900) as i64;
                    toilet(&mut rng, &mut uses, t);
                }
            }
        }
        // At random while awake at home (not during a nap).
        let nap = p.naps.then(|| {
            let start = at(rng.range(12.5, 13.5));
            (start, start + rng.range(45.0, 100.0) as i64 * MIN)
        });
        let rate = p.uses_per_hour * activity * if sick { 0.7 } else { 1.0 };
        let mut t = wake + 30 * MIN;
        loop {
            let gap = -(1.0 - rng.next_f64()).ln() / rate * HOUR as f64;
            t += gap as i64;
            if t >= bed - 10 * MIN {
                break;
            }
            if is_out(t) || nap.is_some_and(|(s, e)| t >= s && t < e) {
                continue;
            }
            match rng.below(100) {
                0..=44 => toilet(&mut rng, &mut uses, t),
                45..=69 => uses.push(draw(&mut rng, Fixture::Basin, t, (0.5, 2.0), p.basin_lpm)),
                70..=89 => uses.push(draw(
                    &mut rng,
                    Fixture::Kitchen,
                    t,
                    (0.5, 3.0),
                    p.kitchen_lpm,
                )),
                _ => uses.push(draw(
                    &mut rng,
                    Fixture::Kitchen,
                    t,
                    (1.0, 1.6),
                    p.kitchen_lpm,
                )),
            }
        }
        // Going to bed: face and teeth, the toilet; then the night.
        if !is_out(bed - MIN) {
            uses.push(draw(
                &mut rng,
                Fixture::Basin,
                bed - 15 * MIN,
                (1.5, 4.0),
                p.basin_lpm,
            ));
            toilet(&mut rng, &mut uses, bed - 5 * MIN);
        }
        for _ in 0..rng.poisson(p.nocturia) {
            let t = bed + 30 * MIN + rng.below((next_wake - bed - HOUR).max(1) as u64) as i64;
            if !is_out(t) {
                toilet(&mut rng, &mut uses, t);
            }
        }
        if p.irregular && rng.chance(0.5) {
            let t = bed + HOUR + rng.below((next_wake - bed - 2 * HOUR).max(1) as u64) as i64;
            if !is_out(t) {
                uses.push(Opening::new(Fixture::Kitchen, t, 1.2, p.kitchen_lpm));
                let t = t + rng.below(3600) as i64;
                toilet(&mut rng, &mut uses, t);
            }
        }
        if p.frugal {
            // Thrifty: taps opened less far, basins half filled.
            for u in &mut uses {
                if matches!(
                    u.fixture,
                    Fixture::Basin | Fixture::Kitchen | Fixture::Bucket
                ) {
                    u.end = u.start + ((u.end - u.start) as f64 * 0.6).max(1.0) as i64;
                }
            }
        }
        uses
    }
}

/// An opening of `fixture` at `t` of between `litres.0` and `litres.1` litres.
fn draw(rng: &mut Rng, fixture: Fixture, t: i64, litres: (f64, f64), lpm: f64) -> Opening {
    Opening::new(fixture, t, rng.range(litres.0, litres.1), lpm)
}

/// 0 = Monday, for the local day starting at `midnight`.
fn weekday(midnight: i64) -> u32 {
    // 1970-01-01 was a Thursday.
    ((midnight + LOCAL_OFFSET_S).div_euclid(DAY) + 3).rem_euclid(7) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: i64 = 1_793_462_400; // 2026-11-01T00:00:00+08:00

    fn daily_litres(home: &mut Home, days: i64) -> Vec<f64> {
        (0..days)
            .map(|d| home.litres(START + d * DAY, START + (d + 1) * DAY))
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_home() {
        let a = daily_litres(&mut Home::new(7, 3, START, vec![]), 10);
        let b = daily_litres(&mut Home::new(7, 3, START, vec![]), 10);
        let c = daily_litres(&mut Home::new(8, 3, START, vec![]), 10);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn weekday_of_a_known_date() {
        assert_eq!(weekday(START), 6, "2026-11-01 is a Sunday");
    }

    #[test]
    fn homes_use_what_one_person_uses() {
        let mut days = Vec::new();
        for index in 0..200 {
            days.extend(daily_litres(&mut Home::new(1, index, START, vec![]), 30));
        }
        days.sort_by(f64::total_cmp);
        let median = days[days.len() / 2];
        assert!((60.0..160.0).contains(&median), "median {median} L a day");
        assert!(
            days[days.len() / 20] < 45.0,
            "low users: {}",
            days[days.len() / 20]
        );
        let mut frugal = Vec::new();
        for index in 0..200 {
            let mut home = Home::new(1, index, START, vec![]);
            if home.profile.frugal {
                frugal.extend(daily_litres(&mut home, 30));
            }
        }
        frugal.sort_by(f64::total_cmp);
        let median = frugal[frugal.len() / 2];
        assert!(
            (30.0..60.0).contains(&median),
            "a low user's median day: {median} L"
        );
    }

    #[test]
    fn nights_are_quieter_than_mornings() {
        let (mut night, mut morning) = (0.0, 0.0);
        for index in 0..100 {
            let mut home = Home::new(2, index, START, vec![]);
            for d in 0..14 {
                let midnight = START + d * DAY;
                night += home.litres(midnight + 2 * HOUR, midnight + 4 * HOUR);
                morning += home.litres(midnight + 6 * HOUR, midnight + 9 * HOUR);
            }
        }
        assert!(
            morning > night * 5.0,
            "morning {morning} L, night {night} L"
        );
    }

    #[test]
    fn an_incapacitated_resident_uses_nothing_but_a_finishing_machine_and_a_drip() {
        let fall = START + 3 * DAY + 10 * HOUR;
        let incident = Incident {
            kind: IncidentKind::Incapacitation,
            start: fall,
            end: fall + 3 * DAY,
        };
        for index in 0..50 {
            let mut home = Home::new(5, index, START, vec![incident]);
            let drip = home.profile.drip_lph.unwrap_or(0.0);
            home.litres(START, fall);
            let after = home.litres(fall + 2 * HOUR, fall + 3 * DAY);
            let expected = drip * (3 * DAY - 2 * HOUR) as f64 / 3600.0;
            assert!(
                (after - expected).abs() < 1e-6,
                "home {index}: {after} L after the fall"
            );
            assert!(
                home.litres(fall + 3 * DAY, fall + 5 * DAY) > 20.0,
                "life resumes"
            );
        }
    }
}
