//! What a text is made from: the values its template fills in, kept beside
//! the rendered text so a provider sending a template code with parameters
//! never re-parses text.

use serde::{Deserialize, Serialize};

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
    /// Why a learned routine found a quiet stretch abnormal, as a phrase to
    /// append ("; usually uses water by 07:40"); empty otherwise.
    #[serde(default)]
    pub usual: String,
    /// The reply code for this recipient.
    pub code: u32,
    /// The reminder's number (reminders only).
    #[serde(default)]
    pub reminder: u32,
}

impl TemplateValues {
    /// The placeholders every template may use.
    pub const PLACEHOLDERS: [&'static str; 10] = [
        "name", "address", "meter", "since", "hours", "litres", "flags", "usual", "code",
        "reminder",
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
            "usual" => self.usual.clone(),
            "code" => self.code.to_string(),
            "reminder" => self.reminder.to_string(),
            _ => return None,
        })
    }
}
