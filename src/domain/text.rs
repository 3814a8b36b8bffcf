//! Texts: what is sent to whom about which alert, structured so that a
//! provider sending a template code with parameters never re-parses text.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::alert::named_enum;
use super::{AlertId, AlertKind, PhoneNumber, Timestamp};

/// A text's key in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TextId(pub i64);

impl fmt::Display for TextId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a text is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// The alert itself, to a contact or maintenance.
    Alert,
    /// The alert again, to everyone texted, while nobody acknowledges.
    Reminder,
    /// The resident's own "reply if you are fine".
    CheckIn,
    /// The condition cleared by itself.
    Resolved,
}

named_enum!(Purpose {
    Alert => "alert",
    Reminder => "reminder",
    CheckIn => "check_in",
    Resolved => "resolved",
});

/// Who a recipient is to the household.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// One of the household's contacts (escalation steps).
    Contact,
    /// The resident, through their check-in phone.
    Resident,
    /// The maintenance phones of `[alerts] maintenance`.
    Maintenance,
}

named_enum!(Audience {
    Contact => "contact",
    Resident => "resident",
    Maintenance => "maintenance",
});

/// Where a text is in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextState {
    Pending,
    Sent,
    /// Refused by the provider, or out of attempts.
    Failed,
    /// Not sent because someone acted on the alert first.
    Cancelled,
}

named_enum!(TextState {
    Pending => "pending",
    Sent => "sent",
    Failed => "failed",
    Cancelled => "cancelled",
});

/// Someone who gets a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub name: String,
    pub phone: PhoneNumber,
    /// Escalation step (contacts); 0 for the resident and maintenance.
    pub step: u32,
    pub audience: Audience,
}

/// The values a template may use, as `{name}` placeholders.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateValues {
    pub name: String,
    pub address: String,
    pub meter: String,
    /// When the condition began, in the household's zone, e.g. "11月23日 06:40".
    pub since: String,
    /// Whole hours from `since` to when the text was written.
    pub hours: i64,
    pub litres: i64,
    pub flags: String,
    /// The reply code for this recipient.
    pub code: u32,
    /// The reminder's number (reminders only).
    #[serde(default)]
    pub reminder: u32,
}

impl TemplateValues {
    /// The placeholders every template may use.
    pub const PLACEHOLDERS: [&'static str; 9] = [
        "name", "address", "meter", "since", "hours", "litres", "flags", "code", "reminder",
    ];

    /// The value of one placeholder.
    pub fn get(&self, placeholder: &str) -> Option<String> {
        Some(match placeholder {
            "name" => self.name.clone(),
            "address" => self.address.clone(),
            "meter" => self.meter.clone(),
            "since" => self.since.clone(),
            "hours" => self.hours.to_string(),
            "litres" => self.litres.to_string(),
            "flags" => self.flags.clone(),
            "code" => self.code.to_string(),
            "reminder" => self.reminder.to_string(),
            _ => return None,
        })
    }
}

/// A text the alert lifecycle wants sent: rendered, and with what it was
/// rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingText {
    pub recipient: Recipient,
    pub kind: AlertKind,
    pub purpose: Purpose,
    /// Which escalation step or reminder this is; with the alert, the purpose
    /// and the phone it makes the idempotency key.
    pub round: u32,
    /// `"<kind>.<purpose>"`: which template was used.
    pub template: String,
    pub values: TemplateValues,
    pub text: String,
}

/// The key that is the same for every attempt at one text, so an SMS gateway
/// can drop repeats: `"{alert}:{purpose}:{round}:{phone}"`.
pub fn idempotency_key(
    alert: AlertId,
    purpose: Purpose,
    round: u32,
    phone: &PhoneNumber,
) -> String {
    format!(
        "{}:{}:{round}:{}",
        alert.0,
        purpose.as_str(),
        phone.as_str()
    )
}

/// A text in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub id: TextId,
    pub alert: AlertId,
    pub kind: AlertKind,
    pub recipient: Recipient,
    pub purpose: Purpose,
    pub round: u32,
    pub template: String,
    pub values: TemplateValues,
    pub text: String,
    pub idempotency_key: String,
    pub state: TextState,
    pub attempts: u32,
    /// Wall clock when the next attempt is due.
    pub due_at: Timestamp,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
}

/// How one delivery attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Sent,
    /// Failed for now; due again later.
    Retry,
    /// Failed for good (refused, or out of attempts).
    Failed,
    /// Accepted by the provider after the text had been cancelled.
    SentAfterCancel,
}

named_enum!(AttemptOutcome {
    Sent => "sent",
    Retry => "retry",
    Failed => "failed",
    SentAfterCancel => "sent_after_cancel",
});

/// One recorded delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub at: Timestamp,
    pub outcome: AttemptOutcome,
    pub error: Option<String>,
}
