//! Detection: from a meter's stored readings to what holds at one point.
//!
//! A [`Detector`] is a pure function of a meter's readings (sorted by time), an
//! evaluation point (the index of a reading) and the household's [`Policy`]: it
//! looks only at readings up to that point, so evaluating reading by reading —
//! live, one at a time, or replayed from the store at any speed — gives the same
//! answers. It does no I/O and never reads the clock; `meter_offline`, the one
//! rule that needs the wall clock, lives with the alert lifecycle.
//!
//! [`Rules`] (in [`rules`]) is the fixed-threshold detector. [`Learned`] judges
//! quiet stretches by the household's own [`Routine`] (in [`routine`]), a
//! small state folded over the readings in order and kept with the meter's
//! state, with the rules as floor and ceiling. [`Combined`] runs several
//! detectors side by side and keeps, per kind, the most serious finding;
//! replay runs any detector over stored readings without sending anything.

pub mod routine;
pub mod rules;

pub use crate::domain::{AlertKind as Kind, Severity};
use crate::domain::{StatusFlag, StatusFlags, StoredReading, Timestamp};
pub use crate::policy::Policy;
pub use routine::{Habit, Routine};
pub use rules::{background_mlph, Rules};

pub(crate) const HOUR: i64 = 3600;

/// How much history a replay reads before the first point it reports, so the
/// learned routine knows the home about as well as the live engine did (the
/// routine weighs the last 60 days most).
pub fn warm_up_s(policy: &Policy) -> i64 {
    Learned.history_s(policy).max(60 * 24 * HOUR)
}

/// A finding that holds at the evaluation point, with what an SMS needs to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Less than `min_litres` above background in the window. `since`: where the
    /// quiet stretch began — going back from the evaluation point, the end of
    /// the interval at which use above the background first reaches
    /// `min_litres` (or the first reading, when it never does).
    NoUsage {
        severity: Severity,
        since: Timestamp,
        used_l: i64,
        /// Why, when the household's routine found it (the fixed rules say
        /// "N hours without water" and need no more).
        habit: Option<Habit>,
    },
    /// At least `min_flow_lph` in every interval since `since`.
    ContinuousFlow { since: Timestamp, litres: i64 },
    /// Some use in every hour since `since`, not all of it fast enough to be a flow.
    Leak { since: Timestamp, litres: i64 },
    /// More than `max_litres_per_day` in the 24 h since `since`.
    HighUsage { since: Timestamp, litres: i64 },
    /// The meter reports a fault flag.
    DeviceFault { flags: StatusFlags },
    /// Fewer of the day's readings arrived than the meter's schedule promises,
    /// by more than the share allowed.
    ReadingsLost { received: u32, expected: u32 },
}

impl Condition {
    pub fn kind(&self) -> Kind {
        match self {
            Condition::NoUsage { .. } => Kind::NoUsage,
            Condition::ContinuousFlow { .. } => Kind::ContinuousFlow,
            Condition::Leak { .. } => Kind::Leak,
            Condition::HighUsage { .. } => Kind::HighUsage,
            Condition::DeviceFault { .. } => Kind::DeviceFault,
            Condition::ReadingsLost { .. } => Kind::ReadingsLost,
        }
    }

    /// How serious the finding is: `no_usage` carries its own grade, flows and
    /// very high use are urgent, leaks and faults are maintenance.
    pub fn severity(&self) -> Severity {
        match self {
            Condition::NoUsage { severity, .. } => *severity,
            Condition::ContinuousFlow { .. } | Condition::HighUsage { .. } => Severity::Urgent,
            Condition::Leak { .. }
            | Condition::DeviceFault { .. }
            | Condition::ReadingsLost { .. } => Severity::Maintenance,
        }
    }
}

/// What holds at one evaluation point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// The evaluation point: the meter time of the reading assessed.
    pub at: Timestamp,
    /// The estimated background (leak) rate, millilitres per hour.
    pub background_mlph: i64,
    pub conditions: Vec<Condition>,
    /// Where the household's current quiet stretch began (meter clock), when
    /// its routine finds that stretch abnormal (watch or alarm); `None`
    /// otherwise or without a routine. A quiet stretch begun after an alert
    /// was acknowledged is news the alert did not cover.
    pub abnormal_quiet_since: Option<i64>,
}

impl Assessment {
    pub fn condition(&self, kind: Kind) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind() == kind)
    }
}

/// `readings_lost` at `readings[at]`: of the readings a meter reporting every
/// `interval_min` minutes should have taken in the 24 h up to this one, fewer
/// than `1 - lost_share` arrived, lost here and there. A silence longer than
/// `offline_s` is `meter_offline`'s, reported already.
/// Judged only once the history covers the whole day; a pure function of the
/// readings and the schedule.
pub fn readings_lost(
    readings: &[StoredReading],
    at: usize,
    interval_min: u32,
    lost_share: f64,
    offline_s: i64,
) -> Option<Condition> {
    let now = readings[at].ts.secs();
    let day_start = now - 86_400;
    if readings.first()?.ts.secs() > day_start {
        return None;
    }
    let expected = (86_400 / (i64::from(interval_min.max(1)) * 60)) as u32;
    let first = readings[..=at].partition_point(|r| r.ts.secs() <= day_start);
    let received = (at + 1 - first) as u32;
    if f64::from(received) >= f64::from(expected) * (1.0 - lost_share) {
        return None;
    }
    let scattered = readings[first.saturating_sub(1)..=at]
        .windows(2)
        .all(|pair| pair[1].ts.secs() - pair[0].ts.secs() <= offline_s);
    scattered.then_some(Condition::ReadingsLost { received, expected })
}

/// What a learning detector needs to know about the household besides its readings.
#[derive(Debug, Clone, Copy)]
pub struct Home<'a> {
    /// Local time: routines are by the hour of the resident's day.
    pub zone: chrono_tz::Tz,
    /// Declared absences (`[start, end)`, meter clock): never learned as routine.
    pub absences: &'a [(i64, i64)],
}

/// Something that judges a meter's readings at one evaluation point.
pub trait Detector: Send + Sync {
    /// A short name for logs, metrics and replay reports.
    fn name(&self) -> &'static str;

    /// How much history before the evaluation point the detector reads.
    fn history_s(&self, policy: &Policy) -> i64;

    /// Judges `readings[at]`, looking only at readings up to it. `readings`
    /// must be sorted by time.
    fn assess(&self, readings: &[StoredReading], at: usize, policy: &Policy) -> Assessment;

    /// [`Detector::assess`] when the caller already knows the background rate
    /// at this point for this `background_window` (a replay judging the same
    /// readings with other thresholds computes it once). A detector without a
    /// background ignores it.
    fn assess_knowing_background(
        &self,
        readings: &[StoredReading],
        at: usize,
        policy: &Policy,
        background_mlph: i64,
    ) -> Assessment {
        let _ = background_mlph;
        self.assess(readings, at, policy)
    }

    /// Judges `readings[at]` with what the detector has learned about this
    /// home: a learning detector first folds `readings[at]` into `routine`
    /// (the caller keeps it per meter, passes readings in order, and
    /// persists it with the meter's state), then judges. `background_mlph`:
    /// as in [`Detector::assess_knowing_background`], when known. A detector
    /// that does not learn ignores `home` and `routine`.
    fn assess_learning(
        &self,
        readings: &[StoredReading],
        at: usize,
        policy: &Policy,
        home: &Home<'_>,
        routine: &mut Routine,
        background_mlph: Option<i64>,
    ) -> Assessment {
        let _ = (home, routine);
        match background_mlph {
            Some(known) => self.assess_knowing_background(readings, at, policy, known),
            None => self.assess(readings, at, policy),
        }
    }
}

/// The household's learned routine for `no_usage`, with the fixed rules as
/// floor and ceiling: once the routine speaks (a week of readings from a meter
/// reporting at least every 2 hours) it replaces the fixed warning window —
/// its watch grade is a warning (the resident's check-in), its alarm grade
/// urgent (the contacts) — while the fixed urgent window still opens an urgent
/// alert however the routine judges. Before that, for slow meters, and for
/// households set to `detector = "rules"`, this is the fixed rules. Every
/// other kind is the rules'.
#[derive(Debug, Clone, Copy, Default)]
pub struct Learned;

impl Detector for Learned {
    fn name(&self) -> &'static str {
        "learned"
    }

    fn history_s(&self, policy: &Policy) -> i64 {
        Rules.history_s(policy)
    }

    /// Without its routine this detector is the rules.
    fn assess(&self, readings: &[StoredReading], at: usize, policy: &Policy) -> Assessment {
        Rules.assess(readings, at, policy)
    }

    fn assess_knowing_background(
        &self,
        readings: &[StoredReading],
        at: usize,
        policy: &Policy,
        background_mlph: i64,
    ) -> Assessment {
        Rules.assess_knowing_background(readings, at, policy, background_mlph)
    }

    fn assess_learning(
        &self,
        readings: &[StoredReading],
        at: usize,
        policy: &Policy,
        home: &Home<'_>,
        routine: &mut Routine,
        background_mlph: Option<i64>,
    ) -> Assessment {
        let mut assessment =
            Rules.assess_learning(readings, at, policy, home, routine, background_mlph);
        routine.observe(
            &readings[at],
            assessment.background_mlph,
            home.zone,
            home.absences,
        );
        if policy.detector != crate::policy::DetectorChoice::Learned || !routine.speaks() {
            return assessment;
        }
        // The routine replaces the fixed warning; the fixed urgent window stays.
        assessment.conditions.retain(|c| {
            !matches!(
                c,
                Condition::NoUsage {
                    severity: Severity::Warning,
                    ..
                }
            )
        });
        let Some(finding) = routine.judge(policy.sensitivity, home.zone) else {
            return assessment;
        };
        assessment.abnormal_quiet_since = Some(finding.since);
        let severity = if finding.alarm {
            Severity::Urgent
        } else {
            Severity::Warning
        };
        if assessment.condition(Kind::NoUsage).is_none() {
            assessment.conditions.push(Condition::NoUsage {
                severity,
                since: Timestamp::from_secs(finding.since),
                used_l: finding.used_l,
                habit: Some(finding.habit),
            });
        }
        assessment
    }
}

/// Several detectors side by side: per kind, the most serious finding wins
/// (the first detector's on a tie), and the background is the first detector's.
pub struct Combined {
    detectors: Vec<Box<dyn Detector>>,
}

impl Combined {
    /// # Panics
    /// When `detectors` is empty.
    pub fn new(detectors: Vec<Box<dyn Detector>>) -> Self {
        assert!(!detectors.is_empty(), "Combined needs a detector");
        Self { detectors }
    }
}

impl Detector for Combined {
    fn name(&self) -> &'static str {
        "combined"
    }

    fn history_s(&self, policy: &Policy) -> i64 {
        self.detectors
            .iter()
            .map(|d| d.history_s(policy))
            .max()
            .unwrap_or(0)
    }

    fn assess(&self, readings: &[StoredReading], at: usize, policy: &Policy) -> Assessment {
        let mut detectors = self.detectors.iter();
        let first = detectors.next().expect("Combined is never empty");
        let merged = first.assess(readings, at, policy);
        self.merge(merged, readings, at, policy)
    }

    /// The first detector learns (one routine per meter: only one detector may
    /// learn); the others judge without it.
    fn assess_learning(
        &self,
        readings: &[StoredReading],
        at: usize,
        policy: &Policy,
        home: &Home<'_>,
        routine: &mut Routine,
        background_mlph: Option<i64>,
    ) -> Assessment {
        let first = self.detectors.first().expect("Combined is never empty");
        let merged = first.assess_learning(readings, at, policy, home, routine, background_mlph);
        self.merge(merged, readings, at, policy)
    }
}

impl Combined {
    /// Adds the other detectors' findings to the first's.
    fn merge(
        &self,
        mut merged: Assessment,
        readings: &[StoredReading],
        at: usize,
        policy: &Policy,
    ) -> Assessment {
        for detector in self.detectors.iter().skip(1) {
            for condition in detector.assess(readings, at, policy).conditions {
                match merged
                    .conditions
                    .iter_mut()
                    .find(|c| c.kind() == condition.kind())
                {
                    Some(existing) if existing.severity() >= condition.severity() => {}
                    Some(existing) => *existing = condition,
                    None => merged.conditions.push(condition),
                }
            }
        }
        merged
    }
}

/// The fixed rules at one point: shorthand for [`Rules`]`.assess`.
pub fn assess(readings: &[StoredReading], at: usize, policy: &Policy) -> Assessment {
    Rules.assess(readings, at, policy)
}

/// Flags that open a `device_fault`. A closed valve is one too: the
/// resident has no water, and a silent home behind it is not a silent person.
pub fn fault_flags(status: StatusFlags) -> StatusFlags {
    let mut faults = StatusFlags::default();
    for flag in [
        StatusFlag::LowBattery,
        StatusFlag::Tamper,
        StatusFlag::Burst,
        StatusFlag::Reverse,
        StatusFlag::ValveClosed,
        StatusFlag::ValveFault,
    ] {
        if status.contains(flag) {
            faults.insert(flag);
        }
    }
    faults
}

#[cfg(test)]
mod tests;
