//! Households: the resident, where they live, whom to tell, and their absences.

use std::fmt;

use chrono_tz::Tz;
use thiserror::Error;

use super::{MeterId, PhoneNumber, Timestamp};

/// A household's key in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HouseholdId(pub i64);

impl fmt::Display for HouseholdId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A resident category (`elderly_alone`, `special_hardship`, …): 1–32
/// characters of `a-z`, `0-9`, `_` and `-`. The same rule holds wherever a
/// category is written: the installation CSV, the config file, `rules set`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Category(String);

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0:?} must be 1-32 characters of a-z, 0-9, '_' and '-' (e.g. elderly_alone)")]
pub struct CategoryError(pub String);

impl Category {
    /// The category of a household whose CSV row leaves it empty.
    pub const DEFAULT: &'static str = "general";

    pub fn parse(text: &str) -> Result<Self, CategoryError> {
        let ok = !text.is_empty()
            && text.len() <= 32
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(text.to_string()))
        } else {
            Err(CategoryError(text.to_string()))
        }
    }

    pub fn general() -> Self {
        Self(Self::DEFAULT.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person to alert, in escalation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub name: String,
    pub phone: PhoneNumber,
    /// Escalation step: 1 is told at once, 2 when step 1 does not acknowledge, …
    pub step: u32,
}

/// Household settings an installer may leave out.
#[derive(Debug, Clone)]
pub struct HouseholdDefaults {
    pub timezone: Tz,
    pub reporting_interval_min: u32,
}

impl Default for HouseholdDefaults {
    fn default() -> Self {
        Self {
            timezone: chrono_tz::Asia::Shanghai,
            reporting_interval_min: 60,
        }
    }
}

/// A household with its meter, validated and ready to be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHousehold {
    /// The CSV row it came from (the header is row 1); 0 when typed on the command line.
    pub row: usize,
    pub meter: MeterId,
    pub resident_name: String,
    pub address: String,
    pub category: Category,
    pub timezone: Tz,
    pub reporting_interval_min: u32,
    pub contacts: Vec<Contact>,
    pub notes: String,
}

/// A registered household as alerts and operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Household {
    pub id: HouseholdId,
    pub resident_name: String,
    pub address: String,
    pub category: Category,
    pub timezone: Tz,
    pub reporting_interval_min: u32,
    pub notes: String,
    /// The resident's own phone, asked first ("reply if you are fine").
    pub check_in_phone: Option<PhoneNumber>,
    /// In escalation order.
    pub contacts: Vec<Contact>,
}

impl Household {
    /// The contacts of one escalation step.
    pub fn step(&self, step: u32) -> impl Iterator<Item = &Contact> {
        self.contacts.iter().filter(move |c| c.step == step)
    }

    pub fn first_step(&self) -> Option<u32> {
        self.contacts.iter().map(|c| c.step).min()
    }

    pub fn last_step(&self) -> Option<u32> {
        self.contacts.iter().map(|c| c.step).max()
    }

    /// The step after `step`, if any.
    pub fn next_step(&self, step: u32) -> Option<u32> {
        self.contacts
            .iter()
            .map(|c| c.step)
            .filter(|s| *s > step)
            .min()
    }
}

/// Whether a meter's registration is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterStatus {
    Active,
    Replaced,
    Removed,
}

impl MeterStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MeterStatus::Active => "active",
            MeterStatus::Replaced => "replaced",
            MeterStatus::Removed => "removed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Replaced, Self::Removed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A meter's registration (current or past) with its household.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub meter: MeterId,
    pub status: MeterStatus,
    pub registered_at: Timestamp,
    pub replaced_by: Option<MeterId>,
    pub household: Household,
}

/// An absence's key in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbsenceId(pub i64);

/// The longest absence that can be declared, in days (PRODUCT.md section 4).
pub const MAX_ABSENCE_DAYS: i64 = 90;

/// A declared absence: welfare alerts are silenced while it lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Absence {
    pub id: AbsenceId,
    pub household: HouseholdId,
    pub reason: String,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub declared_by: String,
    /// Set when it was ended early.
    pub ended_at: Option<Timestamp>,
}

impl Absence {
    /// Does it cover `at`?
    pub fn covers(&self, at: Timestamp) -> bool {
        self.starts_at <= at && at < self.ended_at.unwrap_or(self.ends_at)
    }
}

/// An absence as `absences list` shows it, with the household's meters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsenceListing {
    pub absence: Absence,
    pub resident_name: String,
    /// The household's active meters.
    pub meters: Vec<MeterId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_follow_one_rule() {
        assert!(Category::parse("elderly_alone").is_ok());
        assert!(Category::parse("special-hardship2").is_ok());
        for bad in ["", "Special Hardship", "特困", &"a".repeat(33)] {
            assert!(Category::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Category::parse("Elderly")
            .unwrap_err()
            .to_string()
            .contains("a-z, 0-9"));
    }

    #[test]
    fn an_absence_covers_until_its_end_or_early_end() {
        let mut absence = Absence {
            id: AbsenceId(1),
            household: HouseholdId(1),
            reason: "hospital".into(),
            starts_at: Timestamp::from_secs(100),
            ends_at: Timestamp::from_secs(200),
            declared_by: "op".into(),
            ended_at: None,
        };
        assert!(!absence.covers(Timestamp::from_secs(99)));
        assert!(absence.covers(Timestamp::from_secs(150)));
        assert!(!absence.covers(Timestamp::from_secs(200)));
        absence.ended_at = Some(Timestamp::from_secs(120));
        assert!(!absence.covers(Timestamp::from_secs(150)));
    }
}
