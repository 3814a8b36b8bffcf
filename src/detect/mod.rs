//! Detection: from a meter's stored readings to what holds at one point.
//!
//! A [`Detector`] is a pure function of a meter's readings (sorted by time), an
//! evaluation point (the index of a reading) and the household's [`Policy`]: it
//! looks only at readings up to that point, so evaluating reading by reading —
//! live, one at a time, or replayed from the store at any speed — gives the same
//! answers. It does no I/O and never reads the clock; `meter_offline`, the one
//! rule that needs the wall clock, lives with the alert lifecycle.
//!
//! [`Rules`] (in [`rules`]) is the fixed-threshold detector. [`Combined`] runs
//! several detectors side by side and keeps, per kind, the most serious finding,
//! so a learned detector can later run beside the rules; replay runs any
//! detector over stored readings without sending anything.

pub mod rules;

pub use crate::domain::{AlertKind as Kind, Severity};
use crate::domain::{StatusFlag, StatusFlags, StoredReading, Timestamp};
pub use crate::policy::Policy;
pub use rules::{background_mlph, Rules};

pub(crate) const HOUR: i64 = 3600;

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
    },
    /// At least `min_flow_lph` in every interval since `since`.
    ContinuousFlow { since: Timestamp, litres: i64 },
    /// Some use in every hour since `since`, not all of it fast enough to be a flow.
    Leak { since: Timestamp, litres: i64 },
    /// More than `max_litres_per_day` in the 24 h since `since`.
    HighUsage { since: Timestamp, litres: i64 },
    /// The meter reports a fault flag.
    DeviceFault { flags: StatusFlags },
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

    /// How serious the finding is: `no_usage` carries its own grade, flows and
    /// very high use are urgent, leaks and faults are maintenance.
    pub fn severity(&self) -> Severity {
        match self {
            Condition::NoUsage { severity, .. } => *severity,
            Condition::ContinuousFlow { .. } | Condition::HighUsage { .. } => Severity::Urgent,
            Condition::Leak { .. } | Condition::DeviceFault { .. } => Severity::Maintenance,
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
}

impl Assessment {
    pub fn condition(&self, kind: Kind) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind() == kind)
    }
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
        let mut merged = first.assess(readings, at, policy);
        for detector in detectors {
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

#[cfg(test)]
mod tests;
