//! Households as they are registered, and the rules that hold wherever
//! households are written: category names and how long an absence may last.

use std::fmt;

use chrono_tz::Tz;
use thiserror::Error;

use super::{MeterId, PhoneNumber};

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

/// A household with its meter, ready to be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHousehold {
    /// The CSV row it came from (the header is row 1); 0 when typed on the command line.
    pub row: usize,
    pub meter: MeterId,
    pub resident_name: String,
    pub address: String,
    pub category: String,
    pub timezone: Tz,
    pub reporting_interval_min: u32,
    pub contacts: Vec<Contact>,
    pub notes: String,
    /// The resident's own phone, asked first when a `no_usage` alert opens.
    pub check_in_phone: Option<PhoneNumber>,
    /// An NB-IoT meter's module IMEI: how a carrier platform's pushes find it.
    pub imei: Option<String>,
    /// The device id a carrier platform gives the meter.
    pub platform_device_id: Option<String>,
}

/// The longest absence that can be declared, in days (PRODUCT.md section 4).
pub const MAX_ABSENCE_DAYS: i64 = 90;

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
}
