//! Alert kinds, severities and dispositions, and who acts through which
//! channel.

/// Implements `as_str`, `parse`, `ALL` and `Display` for a fieldless enum
/// whose variants have fixed names.
macro_rules! named_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }

            /// Every name, comma-separated, for error messages.
            pub fn names() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// The alert kinds (the names used in the store, the config and the docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    NoUsage,
    ContinuousFlow,
    Leak,
    HighUsage,
    MeterOffline,
    DeviceFault,
    ReadingsLost,
}

named_enum!(AlertKind {
    NoUsage => "no_usage",
    ContinuousFlow => "continuous_flow",
    Leak => "leak",
    HighUsage => "high_usage",
    MeterOffline => "meter_offline",
    DeviceFault => "device_fault",
    ReadingsLost => "readings_lost",
});

impl AlertKind {
    /// Welfare alerts go to the household's contacts and are silenced by a
    /// declared absence; the others go to maintenance.
    pub fn is_welfare(self) -> bool {
        matches!(
            self,
            AlertKind::NoUsage | AlertKind::ContinuousFlow | AlertKind::HighUsage
        )
    }
}

/// How serious an alert is. `no_usage` is a warning or urgent; the other
/// welfare kinds are urgent; leaks, offline meters and faults are maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Maintenance,
    Warning,
    Urgent,
}

named_enum!(Severity {
    Maintenance => "maintenance",
    Warning => "warning",
    Urgent => "urgent",
});

/// What was found when someone went to look: the closed loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    Safe,
    Away,
    NeededHelp,
    Hospitalised,
    Deceased,
    DeviceFault,
    Other,
}

named_enum!(Disposition {
    Safe => "safe",
    Away => "away",
    NeededHelp => "needed_help",
    Hospitalised => "hospitalised",
    Deceased => "deceased",
    DeviceFault => "device_fault",
    Other => "other",
});

/// Through which way a change came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// The alert engine, judging readings.
    Detector,
    /// The alert engine's wall-clock duties (offline meters, check-in waits).
    Timer,
    /// The alert engine's escalation and reminders.
    Escalation,
    /// The notifier, delivering texts.
    Notifier,
    /// A reply to a text.
    Sms,
    /// The command line.
    Cli,
    /// The HTTP API.
    Api,
    /// The web dashboard.
    Web,
}

named_enum!(Channel {
    Detector => "detector",
    Timer => "timer",
    Escalation => "escalation",
    Notifier => "notifier",
    Sms => "sms",
    Cli => "cli",
    Api => "api",
    Web => "web",
});

/// What someone may do (PRODUCT.md section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything.
    Admin,
    /// Thresholds, absences, alerts, reports.
    Operator,
    /// Meters, households, contacts.
    Installer,
    /// Read alerts and households; acknowledge, resolve, close.
    Monitor,
    /// A resident answering their own check-in.
    Resident,
    /// The gateway itself.
    System,
}

named_enum!(Role {
    Admin => "admin",
    Operator => "operator",
    Installer => "installer",
    Monitor => "monitor",
    Resident => "resident",
    System => "system",
});

/// Who does something, as what, through which channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Role,
    pub channel: Channel,
}

impl Actor {
    pub fn new(name: impl Into<String>, role: Role, channel: Channel) -> Self {
        Self {
            name: name.into(),
            role,
            channel,
        }
    }

    /// The gateway, acting through `channel`.
    pub fn system(channel: Channel) -> Self {
        Self::new(SYSTEM_ACTOR, Role::System, channel)
    }
}

/// The gateway's own name in histories and the audit log.
pub const SYSTEM_ACTOR: &str = "stillwater";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in AlertKind::ALL {
            assert_eq!(AlertKind::parse(kind.as_str()), Some(*kind));
        }
        for disposition in Disposition::ALL {
            assert_eq!(
                Disposition::parse(&disposition.to_string()),
                Some(*disposition)
            );
        }
        assert!(Disposition::names().starts_with("safe, away, needed_help"));
        assert!(Severity::Urgent > Severity::Warning);
    }
}
