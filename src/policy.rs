//! Rule thresholds: the typed [`Policy`], the parameters operators may set per
//! category or household ([`Setting`]), their limits, and working out the
//! thresholds in force for one household ([`resolve`]).
//!
//! This is the one place that parses, bounds and layers thresholds: the config
//! file, `stillwater rules set` and the alert engine all go through it, so a
//! value refused in one is refused in all. Pure: no I/O.

use std::fmt;

use crate::domain::{format_duration, parse_duration, Category, Timestamp};

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

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
    /// How far back the background rate is estimated (seconds). Global only.
    pub background_s: i64,
    /// Which detector judges `no_usage`: the learned routine (with the fixed
    /// rules as floor and ceiling) or the fixed rules alone.
    pub detector: DetectorChoice,
    /// How readily the learned routine speaks.
    pub sensitivity: Sensitivity,
}

/// Which detector judges a household's quiet stretches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DetectorChoice {
    /// The household's learned routine once it has a week of history; the
    /// fixed rules before that, and always as floor and ceiling.
    #[default]
    Learned,
    /// The fixed windows alone.
    Rules,
}

impl DetectorChoice {
    const NAMES: &'static [&'static str] = &["learned", "rules"];
    const ALL: [DetectorChoice; 2] = [DetectorChoice::Learned, DetectorChoice::Rules];
}

/// How readily the learned routine speaks: the rate at which a home's own
/// normal quiet stretches would reach each grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sensitivity {
    Low,
    #[default]
    Normal,
    High,
}

impl Sensitivity {
    const NAMES: &'static [&'static str] = &["low", "normal", "high"];
    pub const ALL: [Sensitivity; 3] = [Sensitivity::Low, Sensitivity::Normal, Sensitivity::High];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
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
            background_s: 7 * DAY,
            detector: DetectorChoice::Learned,
            sensitivity: Sensitivity::Normal,
        }
    }
}

/// A rule parameter that can be set per category or household.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    MinLitres,
    WarningWindow,
    UrgentWindow,
    MinFlowLph,
    FlowFor,
    LeakFor,
    MaxLitresPerDay,
    Detector,
    Sensitivity,
}

/// Whether a key is a count or a duration, and its bounds (inclusive).
#[derive(Debug, Clone, Copy)]
enum Unit {
    Count {
        min: i64,
        max: i64,
        what: &'static str,
    },
    Duration {
        min: i64,
        max: i64,
    },
    /// One of these names, stored as its index.
    Choice(&'static [&'static str]),
}

impl Key {
    pub const ALL: [Key; 9] = [
        Key::MinLitres,
        Key::WarningWindow,
        Key::UrgentWindow,
        Key::MinFlowLph,
        Key::FlowFor,
        Key::LeakFor,
        Key::MaxLitresPerDay,
        Key::Detector,
        Key::Sensitivity,
    ];

    /// The name as written in `[rules]` and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Key::MinLitres => "min_litres",
            Key::WarningWindow => "warning_window",
            Key::UrgentWindow => "urgent_window",
            Key::MinFlowLph => "min_flow_lph",
            Key::FlowFor => "flow_for",
            Key::LeakFor => "leak_for",
            Key::MaxLitresPerDay => "max_litres_per_day",
            Key::Detector => "detector",
            Key::Sensitivity => "sensitivity",
        }
    }

    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|key| key.as_str() == name)
            .ok_or_else(|| {
                format!(
                    "{name:?} is not a rule parameter; they are {}",
                    Self::ALL.map(Key::as_str).join(", ")
                )
            })
    }

    fn unit(self) -> Unit {
        match self {
            Key::MinLitres => Unit::Count {
                min: 1,
                max: 1_000,
                what: "litres",
            },
            Key::WarningWindow => Unit::Duration {
                min: HOUR,
                max: 7 * DAY,
            },
            Key::UrgentWindow => Unit::Duration {
                min: HOUR,
                max: 14 * DAY,
            },
            Key::MinFlowLph => Unit::Count {
                min: 1,
                max: 10_000,
                what: "litres per hour",
            },
            Key::FlowFor => Unit::Duration {
                min: 15 * 60,
                max: DAY,
            },
            Key::LeakFor => Unit::Duration {
                min: HOUR,
                max: 14 * DAY,
            },
            Key::MaxLitresPerDay => Unit::Count {
                min: 1,
                max: 100_000,
                what: "litres",
            },
            Key::Detector => Unit::Choice(DetectorChoice::NAMES),
            Key::Sensitivity => Unit::Choice(Sensitivity::NAMES),
        }
    }

    /// Parses and bounds a value written for this key (`"8h"`, `"5"`).
    pub fn value(self, text: &str) -> Result<i64, String> {
        let text = text.trim();
        let name = self.as_str();
        match self.unit() {
            Unit::Count { min, max, what } => match text.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(format!(
                    "{name} = {text:?}: must be a whole number of {what} from {min} to {max}"
                )),
            },
            Unit::Duration { min, max } => {
                let seconds = parse_duration(text)
                    .map_err(|problem| format!("{name} = {text:?}: {problem}"))?;
                if (min..=max).contains(&seconds) {
                    Ok(seconds)
                } else {
                    Err(format!(
                        "{name} = {text:?}: must be from {} to {}",
                        format_duration(min),
                        format_duration(max)
                    ))
                }
            }
            Unit::Choice(names) => names
                .iter()
                .position(|n| *n == text)
                .map(|i| i as i64)
                .ok_or_else(|| format!("{name} = {text:?}: must be one of {}", names.join(", "))),
        }
    }

    /// A value as `value` reads it.
    pub fn format(self, value: i64) -> String {
        match self.unit() {
            Unit::Count { .. } => value.to_string(),
            Unit::Duration { .. } => format_duration(value),
            Unit::Choice(names) => names
                .get(value as usize)
                .map_or_else(|| value.to_string(), |n| n.to_string()),
        }
    }

    fn get(self, policy: &Policy) -> i64 {
        match self {
            Key::MinLitres => policy.min_litres,
            Key::WarningWindow => policy.warning_window_s,
            Key::UrgentWindow => policy.urgent_window_s,
            Key::MinFlowLph => policy.min_flow_lph,
            Key::FlowFor => policy.flow_s,
            Key::LeakFor => policy.leak_s,
            Key::MaxLitresPerDay => policy.max_litres_per_day,
            Key::Detector => policy.detector as i64,
            Key::Sensitivity => policy.sensitivity as i64,
        }
    }

    fn set(self, policy: &mut Policy, value: i64) {
        let index = usize::try_from(value).unwrap_or(usize::MAX);
        let field = match self {
            Key::Detector => {
                policy.detector = DetectorChoice::ALL.get(index).copied().unwrap_or_default();
                return;
            }
            Key::Sensitivity => {
                policy.sensitivity = Sensitivity::ALL.get(index).copied().unwrap_or_default();
                return;
            }
            Key::MinLitres => &mut policy.min_litres,
            Key::WarningWindow => &mut policy.warning_window_s,
            Key::UrgentWindow => &mut policy.urgent_window_s,
            Key::MinFlowLph => &mut policy.min_flow_lph,
            Key::FlowFor => &mut policy.flow_s,
            Key::LeakFor => &mut policy.leak_s,
            Key::MaxLitresPerDay => &mut policy.max_litres_per_day,
        };
        *field = value;
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parameter with a valid value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub key: Key,
    pub value: i64,
}

impl Setting {
    /// Parses `key` and `value` as written (`"warning_window"`, `"8h"`).
    pub fn parse(key: &str, value: &str) -> Result<Self, String> {
        let key = Key::parse(key.trim())?;
        Ok(Self {
            key,
            value: key.value(value)?,
        })
    }

    /// Parses `KEY=VALUE`.
    pub fn parse_assignment(text: &str) -> Result<Self, String> {
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} must be KEY=VALUE, e.g. warning_window=8h"))?;
        Self::parse(key, value)
    }

    pub fn formatted_value(&self) -> String {
        self.key.format(self.value)
    }
}

/// The global-only parameter bounds.
pub const BACKGROUND_WINDOW: (i64, i64) = (DAY, 30 * DAY);

impl Policy {
    /// Applies settings in order.
    pub fn with(mut self, settings: &[Setting]) -> Self {
        for setting in settings {
            setting.key.set(&mut self, setting.value);
        }
        self
    }

    pub fn get(&self, key: Key) -> i64 {
        key.get(self)
    }

    /// Problems no single value shows: windows in the wrong order.
    pub fn check(&self) -> Result<(), String> {
        if self.urgent_window_s < self.warning_window_s {
            return Err(format!(
                "urgent_window ({}) must be at least warning_window ({})",
                format_duration(self.urgent_window_s),
                format_duration(self.warning_window_s)
            ));
        }
        Ok(())
    }
}

/// Where a threshold in force comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The global `[rules]` (the file's, or the built-in default).
    Global,
    /// Set for every household (`rules set --global`).
    StoredGlobal { by: String, at: Timestamp },
    /// `[rules.categories.NAME]` in the config file.
    ConfigCategory(Category),
    /// Set with `stillwater rules set --category`.
    StoredCategory {
        category: Category,
        by: String,
        at: Timestamp,
    },
    /// Set with `stillwater rules set --meter` for the household.
    StoredHousehold { by: String, at: Timestamp },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Global => f.write_str("default"),
            Source::StoredGlobal { by, at } => {
                write!(f, "set for every household by {by} at {at}")
            }
            Source::ConfigCategory(category) => write!(f, "config, category {category}"),
            Source::StoredCategory { category, by, at } => {
                write!(f, "set for category {category} by {by} at {at}")
            }
            Source::StoredHousehold { by, at } => {
                write!(f, "set for this household by {by} at {at}")
            }
        }
    }
}

/// One layer of settings over the global policy, with where it came from.
#[derive(Debug, Clone)]
pub struct Layer {
    pub source: Source,
    pub settings: Vec<Setting>,
}

/// The thresholds in force and where each came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub policy: Policy,
    pub sources: Vec<(Key, Source)>,
    /// Layers that were skipped because, applied, they broke a rule that holds
    /// across keys (e.g. urgent_window shorter than warning_window).
    pub skipped: Vec<String>,
}

impl Resolved {
    pub fn source(&self, key: Key) -> &Source {
        self.sources
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, source)| source)
            .unwrap_or(&Source::Global)
    }
}

/// Works out the policy in force: `global`, then each layer in order (last
/// wins). A layer that would make the policy inconsistent is skipped whole and
/// reported, so a household never runs with, say, an urgent window shorter
/// than its warning window.
pub fn resolve(global: &Policy, layers: &[Layer]) -> Resolved {
    let mut policy = global.clone();
    let mut sources: Vec<(Key, Source)> = Vec::new();
    let mut skipped = Vec::new();
    for layer in layers {
        let candidate = policy.clone().with(&layer.settings);
        if let Err(problem) = candidate.check() {
            skipped.push(format!("ignored the settings {}: {problem}", layer.source));
            continue;
        }
        policy = candidate;
        for setting in &layer.settings {
            sources.retain(|(key, _)| *key != setting.key);
            sources.push((setting.key, layer.source.clone()));
        }
    }
    Resolved {
        policy,
        sources,
        skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_parsed_and_bounded_by_key() {
        assert_eq!(
            Setting::parse("warning_window", "8h").unwrap().value,
            8 * HOUR
        );
        assert_eq!(Setting::parse("min_litres", " 5 ").unwrap().value, 5);
        for (key, value, phrase) in [
            ("warning_window", "8", "with a unit"),
            ("warning_window", "0s", "must be positive"),
            ("urgent_window", "100000d", "from 1h to 14d"),
            ("min_litres", "0", "from 1 to 1000"),
            ("min_litres", "5.5", "whole number"),
            ("flow_for", "5m", "from 15m to 1d"),
            ("warning", "8h", "not a rule parameter"),
        ] {
            let error = Setting::parse(key, value).unwrap_err();
            assert!(error.contains(phrase), "{key}={value}: {error}");
        }
        assert!(Setting::parse_assignment("min_litres").is_err());
    }

    #[test]
    fn every_key_round_trips_through_its_text() {
        let policy = Policy::default();
        for key in Key::ALL {
            let text = key.format(policy.get(key));
            assert_eq!(key.value(&text), Ok(policy.get(key)), "{key}");
        }
    }

    #[test]
    fn layers_apply_in_order_and_record_their_source() {
        let category = Category::parse("special_hardship").unwrap();
        let layers = [
            Layer {
                source: Source::ConfigCategory(category.clone()),
                settings: vec![Setting::parse("warning_window", "8h").unwrap()],
            },
            Layer {
                source: Source::StoredHousehold {
                    by: "op".into(),
                    at: Timestamp::from_secs(1),
                },
                settings: vec![Setting::parse("min_litres", "5").unwrap()],
            },
        ];
        let resolved = resolve(&Policy::default(), &layers);
        assert_eq!(resolved.policy.warning_window_s, 8 * HOUR);
        assert_eq!(resolved.policy.min_litres, 5);
        assert_eq!(
            resolved.source(Key::WarningWindow),
            &Source::ConfigCategory(category)
        );
        assert_eq!(resolved.source(Key::UrgentWindow), &Source::Global);
    }

    #[test]
    fn an_inconsistent_layer_is_skipped_whole() {
        let layers = [Layer {
            source: Source::StoredHousehold {
                by: "op".into(),
                at: Timestamp::from_secs(1),
            },
            settings: vec![
                Setting::parse("warning_window", "30h").unwrap(),
                Setting::parse("min_litres", "5").unwrap(),
            ],
        }];
        let resolved = resolve(&Policy::default(), &layers);
        assert_eq!(resolved.policy, Policy::default());
        assert_eq!(resolved.skipped.len(), 1);
        assert!(
            resolved.skipped[0]
                .contains("urgent_window (1d) must be at least warning_window (30h)"),
            "{}",
            resolved.skipped[0]
        );
    }
}
