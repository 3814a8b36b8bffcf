//! Domain values: meter ids, phone numbers, status flags and readings.
//!
//! Every value here is validated when it is made, so the rest of the gateway
//! can pass them around without checking again. This module does no I/O and
//! knows nothing of JSON shapes, SQL or MQTT.

use std::fmt;

use thiserror::Error;

/// A meter's id: 1–32 characters of `[A-Za-z0-9_-]` (PRODUCT.md section 3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MeterId(String);

/// Why a meter id was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MeterIdError {
    #[error("meter id is empty")]
    Empty,
    #[error("meter id {0:?} is longer than 32 characters")]
    TooLong(String),
    #[error("meter id {0:?} may only contain letters, digits, '_' and '-'")]
    BadCharacter(String),
}

impl MeterId {
    pub const MAX_LEN: usize = 32;

    pub fn parse(text: &str) -> Result<Self, MeterIdError> {
        if text.is_empty() {
            return Err(MeterIdError::Empty);
        }
        if text.len() > Self::MAX_LEN {
            return Err(MeterIdError::TooLong(text.chars().take(40).collect()));
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(MeterIdError::BadCharacter(text.to_string()));
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MeterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone number normalised to E.164 (`+8613800138000`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

/// Why a phone number was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error(
        "{0:?} is not a phone number: use E.164 (+8613800138000) or an 11-digit mainland mobile number (13800138000)"
    )]
    Malformed(String),
}

impl PhoneNumber {
    /// Accepts E.164 (`+` then 8–15 digits, first digit not 0) or an 11-digit
    /// mainland mobile number (`1[3-9]` then 9 digits), which becomes `+86…`.
    /// Spaces and dashes between digits are ignored.
    ///
    /// ```
    /// use stillwater::domain::PhoneNumber;
    /// assert_eq!(PhoneNumber::parse("138 0013 8000").unwrap().as_str(), "+8613800138000");
    /// assert!(PhoneNumber::parse("12345").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, PhoneError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        let compact: String = trimmed.chars().filter(|c| *c != ' ' && *c != '-').collect();
        let malformed = || PhoneError::Malformed(trimmed.to_string());
        if let Some(digits) = compact.strip_prefix('+') {
            let ok = (8..=15).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0');
            if !ok {
                return Err(malformed());
            }
            if let Some(national) = digits.strip_prefix("86") {
                // A mainland number after +86 must itself be well formed when it is a mobile.
                if national.starts_with('1') && !is_mainland_mobile(national) {
                    return Err(malformed());
                }
            }
            return Ok(Self(compact));
        }
        if is_mainland_mobile(&compact) {
            return Ok(Self(format!("+86{compact}")));
        }
        Err(malformed())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with its middle hidden, for logs: `+86138****8000`.
    pub fn masked(&self) -> String {
        mask_phone(&self.0)
    }
}

fn is_mainland_mobile(digits: &str) -> bool {
    digits.len() == 11
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.starts_with('1')
        && matches!(digits.as_bytes()[1], b'3'..=b'9')
}

/// Hides the middle of a phone number: keeps the first six and last four characters.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..chars.len().min(6).min(chars.len() - 4)]
        .iter()
        .collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// Hides all but the first character of a name, for logs: `张**`.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => format!("{first}{}", "*".repeat(chars.count().max(1))),
        None => String::new(),
    }
}

/// Parses a duration with a unit — "90s", "30m", "12h", "7d" — into seconds.
///
/// ```
/// assert_eq!(stillwater::domain::parse_duration("12h"), Some(43_200));
/// assert_eq!(stillwater::domain::parse_duration("12"), None);
/// ```
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().checked_sub(1)?);
    let number: i64 = number.parse().ok().filter(|n| *n > 0)?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    number.checked_mul(scale)
}

/// Status flags a meter can report, in wmbusmeters' vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFlag {
    Leak,
    Burst,
    Dry,
    Reverse,
    Tamper,
    LowBattery,
    NoConsumption,
}

impl StatusFlag {
    pub const ALL: [StatusFlag; 7] = [
        StatusFlag::Leak,
        StatusFlag::Burst,
        StatusFlag::Dry,
        StatusFlag::Reverse,
        StatusFlag::Tamper,
        StatusFlag::LowBattery,
        StatusFlag::NoConsumption,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StatusFlag::Leak => "LEAK",
            StatusFlag::Burst => "BURST",
            StatusFlag::Dry => "DRY",
            StatusFlag::Reverse => "REVERSE",
            StatusFlag::Tamper => "TAMPER",
            StatusFlag::LowBattery => "LOW_BATTERY",
            StatusFlag::NoConsumption => "NO_CONSUMPTION",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|flag| flag.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of [`StatusFlag`]s, stored as a bit mask.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusFlags(u16);

impl StatusFlags {
    pub fn from_bits(bits: u16) -> Self {
        Self(bits & ((1 << StatusFlag::ALL.len()) - 1))
    }

    pub fn bits(self) -> u16 {
        self.0
    }

    pub fn insert(&mut self, flag: StatusFlag) {
        self.0 |= flag.bit();
    }

    pub fn contains(self, flag: StatusFlag) -> bool {
        self.0 & flag.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = StatusFlag> {
        StatusFlag::ALL
            .into_iter()
            .filter(move |flag| self.contains(*flag))
    }
}

impl fmt::Display for StatusFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(StatusFlag::name).collect();
        f.write_str(&names.join(" "))
    }
}

/// One valid reading of a meter's register, as decoded from the wire.
///
/// Volumes are whole litres: every format we accept carries at most litre
/// resolution (`total_l`, or `total_m3` with three decimals), and integers
/// never drift the way summed floats do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub meter: MeterId,
    /// The meter's own timestamp, Unix seconds (UTC).
    pub ts: i64,
    /// The cumulative register, litres.
    pub total_l: i64,
    /// Instantaneous flow, litres per hour, when the meter reports it.
    pub flow_lph: Option<i64>,
    pub battery_pct: Option<u8>,
    pub status: StatusFlags,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_ids_follow_the_documented_alphabet() {
        assert!(MeterId::parse("WM-0001_a").is_ok());
        assert!(MeterId::parse(&"a".repeat(32)).is_ok());
        assert_eq!(MeterId::parse(""), Err(MeterIdError::Empty));
        assert!(matches!(
            MeterId::parse(&"a".repeat(33)),
            Err(MeterIdError::TooLong(_))
        ));
        assert!(matches!(
            MeterId::parse("meter/1"),
            Err(MeterIdError::BadCharacter(_))
        ));
        assert!(matches!(
            MeterId::parse("水表1"),
            Err(MeterIdError::BadCharacter(_))
        ));
    }

    #[test]
    fn mainland_mobiles_become_e164() {
        assert_eq!(
            PhoneNumber::parse("13800138000").unwrap().as_str(),
            "+8613800138000"
        );
        assert_eq!(
            PhoneNumber::parse(" 138-0013-8000 ").unwrap().as_str(),
            "+8613800138000"
        );
        assert_eq!(
            PhoneNumber::parse("+8613800138000").unwrap().as_str(),
            "+8613800138000"
        );
        assert_eq!(
            PhoneNumber::parse("+447700900123").unwrap().as_str(),
            "+447700900123"
        );
    }

    #[test]
    fn malformed_phone_numbers_are_refused() {
        for bad in [
            "12800138000",
            "1380013800",
            "+86123",
            "+8612800138000",
            "+0123456789",
            "phone",
            "+86 138 0013 800x",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad} was accepted");
        }
        assert_eq!(PhoneNumber::parse("  "), Err(PhoneError::Empty));
    }

    #[test]
    fn personal_data_is_masked_for_logs() {
        assert_eq!(mask_phone("+8613800138000"), "+86138****8000");
        assert_eq!(mask_name("张桂芳"), "张**");
        assert_eq!(mask_name("A"), "A*");
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("30m"), Some(1800));
        assert_eq!(parse_duration(" 12h "), Some(43_200));
        assert_eq!(parse_duration("7d"), Some(604_800));
        for bad in ["", "12", "h", "0h", "-1h", "1.5h", "2w"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn status_flags_round_trip_through_bits() {
        let mut flags = StatusFlags::default();
        flags.insert(StatusFlag::LowBattery);
        flags.insert(StatusFlag::Leak);
        assert_eq!(StatusFlags::from_bits(flags.bits()), flags);
        assert_eq!(flags.to_string(), "LEAK LOW_BATTERY");
        assert_eq!(StatusFlag::from_name("TAMPER"), Some(StatusFlag::Tamper));
        assert_eq!(StatusFlag::from_name("OK"), None);
    }
}
