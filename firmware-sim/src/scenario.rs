//! Incidents: what happens to a home that the gateway should notice (or, for
//! trips and hospital stays, should not cry wolf about), planned from the seed
//! and written as ground truth next to what is published.

use serde_json::json;

use crate::rng::Rng;

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// How long after an incapacitation someone comes anyway (a neighbour, the
/// weekly visit): the ground truth's end, after which life resumes.
pub const FOUND_ANYWAY_S: i64 = 72 * HOUR;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum IncidentKind {
    /// No more use from the start; a running washing machine finishes, a drip keeps dripping.
    Incapacitation,
    /// Collapse in the shower: the shower keeps running.
    ShowerCollapse,
    /// A tap left running (the resident is fine).
    TapRunning {
        lph: f64,
    },
    Burst {
        lph: f64,
    },
    /// Away from home; `declared` when the absence was declared (a hospital stay).
    Trip {
        declared: bool,
    },
    /// The meter sends nothing.
    SilentMeter,
    /// Use dwindles over weeks to a third.
    Decline,
}

impl IncidentKind {
    /// The ground truth's name for it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Incapacitation => "incapacitation",
            Self::ShowerCollapse => "shower_collapse",
            Self::TapRunning { .. } => "tap_running",
            Self::Burst { .. } => "burst",
            Self::Trip { declared: false } => "trip",
            Self::Trip { declared: true } => "hospital",
            Self::SilentMeter => "silent_meter",
            Self::Decline => "decline",
        }
    }

    /// Whether the resident cannot answer the phone.
    pub fn helpless(&self) -> bool {
        matches!(self, Self::Incapacitation | Self::ShowerCollapse)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Incident {
    pub kind: IncidentKind,
    pub start: i64,
    pub end: i64,
}

impl Incident {
    /// One line of ground truth.
    pub fn truth(&self, meter: &str) -> serde_json::Value {
        let mut line = json!({
            "meter": meter,
            "kind": self.kind.name(),
            "start": rfc3339(self.start),
            "end": rfc3339(self.end),
        });
        if let IncidentKind::Trip { declared } = self.kind {
            line["declared"] = json!(declared);
        }
        line
    }
}

/// Every kind, in the order they are drawn.
pub const KINDS: [&str; 8] = [
    "incapacitation",
    "shower_collapse",
    "tap_running",
    "burst",
    "trip",
    "hospital",
    "silent_meter",
    "decline",
];

/// The incidents of one home over `[start, start + days)`: each kind happens
/// with probability `rate`, at most once, never overlapping another (a day
/// apart), and not in the first week (a gateway needs some history).
pub fn plan(seed: u64, home: u64, start: i64, days: i64, rate: f64) -> Vec<Incident> {
    let mut rng = Rng::keyed(seed, &[home, 4]);
    let mut planned: Vec<Incident> = Vec::new();
    if days < 12 || rate <= 0.0 {
        return planned;
    }
    for kind in KINDS {
        if !rng.chance(rate) {
            continue;
        }
        let day = 7 + rng.below((days - 11) as u64) as i64;
        let hour = |rng: &mut Rng, low: f64, high: f64| {
            start + day * DAY + (rng.range(low, high) * HOUR as f64) as i64
        };
        let (kind, at, length) = match kind {
            "incapacitation" => (
                IncidentKind::Incapacitation,
                hour(&mut rng, 0.0, 24.0),
                FOUND_ANYWAY_S,
            ),
            "shower_collapse" => (
                IncidentKind::ShowerCollapse,
                hour(&mut rng, 7.0, 22.0),
                FOUND_ANYWAY_S,
            ),
            "tap_running" => (
                IncidentKind::TapRunning {
                    lph: rng.range(120.0, 400.0),
                },
                hour(&mut rng, 8.0, 20.0),
                (rng.range(2.5, 6.0) * HOUR as f64) as i64,
            ),
            "burst" => (
                IncidentKind::Burst {
                    lph: rng.range(500.0, 1500.0),
                },
                hour(&mut rng, 0.0, 24.0),
                (rng.range(4.0, 24.0) * HOUR as f64) as i64,
            ),
            "trip" => (
                IncidentKind::Trip { declared: false },
                hour(&mut rng, 8.0, 12.0),
                rng.range(2.0, 7.0) as i64 * DAY,
            ),
            "hospital" => (
                IncidentKind::Trip { declared: true },
                hour(&mut rng, 9.0, 17.0),
                rng.range(3.0, 14.0) as i64 * DAY,
            ),
            "silent_meter" => (
                IncidentKind::SilentMeter,
                hour(&mut rng, 0.0, 24.0),
                (rng.range(12.0, 96.0) * HOUR as f64) as i64,
            ),
            _ => (
                IncidentKind::Decline,
                hour(&mut rng, 0.0, 24.0),
                rng.range(21.0, 42.0) as i64 * DAY,
            ),
        };
        let incident = Incident {
            kind,
            start: at,
            end: (at + length).min(start + days * DAY),
        };
        if planned
            .iter()
            .all(|p| incident.end + DAY <= p.start || incident.start >= p.end + DAY)
        {
            planned.push(incident);
        }
    }
    planned.sort_by_key(|i| i.start);
    planned
}

/// RFC 3339 in China Standard Time.
pub fn rfc3339(at: i64) -> String {
    rfc3339_in(
        at,
        &chrono::FixedOffset::east_opt(8 * 3600).expect("a valid offset"),
    )
}

/// RFC 3339 in `zone`.
pub fn rfc3339_in<Z: chrono::TimeZone>(at: i64, zone: &Z) -> String
where
    Z::Offset: std::fmt::Display,
{
    chrono::DateTime::from_timestamp(at, 0)
        .unwrap_or_default()
        .with_timezone(zone)
        .to_rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_are_reproducible_apart_and_after_the_first_week() {
        let start = 1_793_462_400;
        let mut kinds = std::collections::BTreeSet::new();
        for home in 0..400 {
            let planned = plan(9, home, start, 60, 0.05);
            assert_eq!(planned, plan(9, home, start, 60, 0.05));
            for pair in planned.windows(2) {
                assert!(pair[0].end + DAY <= pair[1].start, "{pair:?}");
            }
            for incident in &planned {
                assert!(incident.start >= start + 7 * DAY);
                assert!(incident.end <= start + 60 * DAY);
                kinds.insert(incident.kind.name());
            }
        }
        assert_eq!(kinds.len(), KINDS.len(), "{kinds:?}");
    }
}
