//! Alerts: kinds, severities, states, dispositions, and who did what through
//! which channel.

use std::fmt;

use super::{HouseholdId, MeterId, Timestamp};

/// An alert's key in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertId(pub i64);

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

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
pub(crate) use named_enum;

/// The alert kinds (the names used in the store, the config and the docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    NoUsage,
    ContinuousFlow,
    Leak,
    HighUsage,
    MeterOffline,
    DeviceFault,
}

named_enum!(AlertKind {
    NoUsage => "no_usage",
    ContinuousFlow => "continuous_flow",
    Leak => "leak",
    HighUsage => "high_usage",
    MeterOffline => "meter_offline",
    DeviceFault => "device_fault",
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

/// Where an alert is in its lifecycle: open → acknowledged → resolved → closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertState {
    Open,
    Acknowledged,
    Resolved,
    Closed,
}

named_enum!(AlertState {
    Open => "open",
    Acknowledged => "acknowledged",
    Resolved => "resolved",
    Closed => "closed",
});

impl AlertState {
    /// Open or acknowledged: the condition is not over.
    pub fn is_active(self) -> bool {
        matches!(self, AlertState::Open | AlertState::Acknowledged)
    }
}

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

/// When, by whom and through which channel a transition happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub at: Timestamp,
    pub by: String,
    pub channel: Channel,
}

/// An alert as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub id: AlertId,
    pub meter: MeterId,
    pub household: Option<HouseholdId>,
    pub kind: AlertKind,
    pub severity: Severity,
    pub state: AlertState,
    /// When the condition began (meter clock; wall clock for `meter_offline`).
    pub since: Timestamp,
    /// When it was detected (meter clock; wall clock for `meter_offline`).
    pub opened_at: Timestamp,
    pub last_detected_at: Timestamp,
    pub detail: String,
    /// Wall clock.
    pub created_at: Timestamp,
    /// The highest escalation step texted so far (0: none).
    pub notified_step: u32,
    /// Wall clock of the newest step or reminder.
    pub last_notified_at: Option<Timestamp>,
    pub reminders: u32,
    /// Wall clock until which the contacts wait for the resident's check-in reply.
    pub check_in_until: Option<Timestamp>,
    /// Meter clock since which a maintenance condition has been absent (its hold).
    pub clear_since: Option<Timestamp>,
    pub acknowledged: Option<Stamp>,
    pub resolved: Option<Stamp>,
    pub closed: Option<Stamp>,
    pub disposition: Option<Disposition>,
    pub note: Option<String>,
}

/// An alert with the name of its resident, as lists show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertListing {
    pub alert: Alert,
    pub resident_name: Option<String>,
}

/// One line of an alert's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertEvent {
    pub at: Timestamp,
    pub actor: String,
    pub channel: Channel,
    pub action: String,
    pub detail: String,
}

/// A resident's "I am fine" reply to a check-in, covering the quiet stretch it
/// answered: no new prompt for it unless the evidence grows beyond `severity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cover {
    pub meter: MeterId,
    /// The start of the quiet stretch the reply answered (meter clock).
    pub since: Timestamp,
    /// The grade the resident was asked about.
    pub severity: Severity,
    /// Wall clock of the reply.
    pub answered_at: Timestamp,
}

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
        assert_eq!(AlertState::parse("reminder"), None);
        assert!(Disposition::names().starts_with("safe, away, needed_help"));
        assert!(Severity::Urgent > Severity::Warning);
    }
}
